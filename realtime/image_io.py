"""Image files in and out: reading pictures and folders, writing pictures atomically.

    from realtime.image_io import ImageSource, ImageSink

    with ImageSource("photos/") as source, ImageSink("unmasked/") as sink:
        for frame in source:
            sink.write(frame, frame.bgr, None)

Every output file is written under a hidden ``.NAME.partial.EXT`` name beside its target and
renamed into place when complete (``partial_path``); video outputs use the same helpers.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from realtime.types import Closing, Frame, SinkContext, SinkError, SourceError, StreamInfo

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp"})
PROVENANCE = (
    "Face regions in this file were synthesized by realtime-unmask: "
    "the painted face is a plausible guess, not the hidden identity."
)
_PIL_FORMATS = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".webp": "WEBP", ".bmp": "BMP"}
_EXIF_IMAGE_DESCRIPTION = 0x010E

log = logging.getLogger(__name__)


class ImageSource(Closing):
    """One image file, or every image directly inside a folder in sorted name order.

    In a folder, a file that cannot be read or decoded is reported in one warning line and
    skipped; ``failed`` counts them. Opening fails only when no image at all can be read.
    """

    def __init__(self, path: str | Path):
        path = Path(path)
        if path.is_dir():
            self.paths = sorted(
                p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
            )
            if not self.paths:
                exts = ", ".join(sorted(e[1:] for e in IMAGE_EXTENSIONS))
                raise SourceError(f"folder {path} holds no images ({exts})")
        elif path.is_file():
            self.paths = [path]
        else:
            raise SourceError(f"input not found: {path}")
        self.failed = 0
        """Images skipped because they could not be read or decoded."""
        self.dropped = 0
        """Always 0: pictures are read one by one as the loop asks, none is thrown away."""
        self._skip_errors = path.is_dir()
        self._first = self._first_readable(path)
        first_bgr = self._first[1]
        self.info = StreamInfo(
            size_wh=(first_bgr.shape[1], first_bgr.shape[0]),
            fps=1.0,
            live=False,
            frame_count=len(self.paths),
            kind="images",
        )

    def _first_readable(self, folder: Path) -> tuple[int, np.ndarray]:
        for index, image_path in enumerate(self.paths):
            image_bgr = self._read_or_skip(image_path)
            if image_bgr is not None:
                return index, image_bgr
        raise SourceError(f"none of the {len(self.paths)} images in {folder} could be read")

    def _read_or_skip(self, path: Path) -> np.ndarray | None:
        if not self._skip_errors:
            return read_image(path)
        try:
            return read_image(path)
        except SourceError as exc:
            log.warning("skipped: %s", exc)
            self.failed += 1
            return None

    def __iter__(self) -> Iterator[Frame]:
        start, first_bgr = self._first
        for index in range(start, len(self.paths)):
            t0 = time.perf_counter()
            image_bgr = first_bgr if index == start else self._read_or_skip(self.paths[index])
            if image_bgr is None:
                continue
            t_capture = time.perf_counter()
            timings_ms = {"decode": (t_capture - t0) * 1000.0}
            name = self.paths[index].name
            yield Frame(index, t_capture, image_bgr, name=name, timings_ms=timings_ms)

    def close(self) -> None:
        """Nothing stays open between images."""


def read_image(path: Path) -> np.ndarray:
    # imdecode on bytes instead of imread: imread cannot open non-ASCII paths on Windows.
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise SourceError(f"cannot read image {path}: {exc.strerror or exc}") from exc
    image_bgr = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image_bgr is None:
        raise SourceError(f"image {path} could not be decoded (corrupt or not an image)")
    return np.ascontiguousarray(image_bgr)



def partial_path(path: Path) -> Path:
    # The real extension stays last, so FFmpeg and Pillow still pick the right format.
    return path.with_name(f".{path.stem}.partial{path.suffix}")



def ensure_folder(folder: Path, output: Path) -> list[Path]:
    """Creates ``folder`` and any missing parents; returns those it created, outermost first.

    An output in a folder that does not exist yet just works (``--output rec/2024/a.mp4``);
    a writer that ends up writing nothing removes the folders it created (``remove_folders``).
    """
    folder = folder.absolute()
    created = [p for p in (folder, *folder.parents) if not p.exists()][::-1]
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        remove_folders(created)
        reason = "a file is in the way" if isinstance(exc, (FileExistsError,
                                                          NotADirectoryError)) else exc.strerror
        raise SinkError(f"cannot write output {output}: folder {folder} cannot be created "
                        f"({reason})") from exc
    if not os.access(folder, os.W_OK | os.X_OK):
        raise SinkError(f"cannot write output {output}: folder {folder} is not writable")
    return created


def remove_folders(created: list[Path]) -> None:
    """Removes folders ``ensure_folder`` created, innermost first, as long as they are empty."""
    for folder in reversed(created):
        try:
            folder.rmdir()
        except OSError:
            return  # not empty (or already gone): it and its parents stay


def save_picture(path: Path, image: np.ndarray, *, provenance: bool) -> None:
    """Writes BGR or single-channel pixels atomically in the format the extension names.

    The provenance note goes into a PNG ``Comment`` text chunk, a JPEG comment, or WebP
    EXIF ``ImageDescription``; BMP has no metadata field, so BMP files carry none.
    """
    image_format = _PIL_FORMATS.get(path.suffix.lower())
    if image_format is None:
        raise SinkError(f"cannot write {path}: unsupported image extension {path.suffix!r}")
    pixels = cv2.cvtColor(image, cv2.COLOR_BGR2RGB) if image.ndim == 3 else image
    options: dict[str, Any] = {"JPEG": {"quality": 95}, "WEBP": {"quality": 95}}.get(
        image_format, {}
    )
    if provenance and image_format == "PNG":
        options["pnginfo"] = PngInfo()
        options["pnginfo"].add_text("Comment", PROVENANCE)
    elif provenance and image_format == "JPEG":
        options["comment"] = PROVENANCE
    elif provenance and image_format == "WEBP":
        exif = Image.Exif()
        exif[_EXIF_IMAGE_DESCRIPTION] = PROVENANCE
        options["exif"] = exif.tobytes()
    partial = partial_path(path)
    try:
        Image.fromarray(pixels).save(partial, format=image_format, **options)
        os.replace(partial, path)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise SinkError(f"cannot write {path}: {exc.strerror or exc}") from exc



def mask_picture(mask_full_hw: np.ndarray | None, size_hw: tuple[int, int]) -> np.ndarray:
    if mask_full_hw is None:
        return np.zeros(size_hw, np.uint8)
    if mask_full_hw.shape[:2] != size_hw:
        raise SinkError(f"mask is {mask_full_hw.shape[:2]} but the frame is {size_hw}")
    return np.where(mask_full_hw > 0.5, 255, 0).astype(np.uint8)



class _ImageWriter(SinkContext):
    """What ImageSink and SingleImageSink share: one finished file per frame, plus its mask."""

    def __init__(self, save_masks: bool):
        self.save_masks = save_masks
        self.encode_ms: list[float] = []
        """Milliseconds spent encoding and writing each picture."""
        self._created: list[Path] = []

    def _write_to(self, path: Path, out_bgr: np.ndarray, mask_full_hw: np.ndarray | None) -> None:
        t0 = time.perf_counter()
        save_picture(path, out_bgr, provenance=True)
        if self.save_masks:
            (path.parent / "masks").mkdir(exist_ok=True)
            mask_u8 = mask_picture(mask_full_hw, out_bgr.shape[:2])
            save_picture(path.parent / "masks" / f"{path.stem}.png", mask_u8, provenance=False)
        self.encode_ms.append((time.perf_counter() - t0) * 1000.0)

    def close(self) -> None:
        """Every picture was complete when written; nothing is left to finish."""

    def abort(self) -> None:
        """Pictures already written are complete and kept; none is ever half-written.

        Folders this sink created are removed again if nothing went into them."""
        if not self.encode_ms:
            remove_folders(self._created)


class ImageSink(_ImageWriter):
    """One picture per frame in ``out_dir``, keeping the input's file names and formats.

    Frames without a name (from a video) become ``frame_000000.png`` and so on. With
    ``save_masks`` the face masks go to ``out_dir/masks/<stem>.png`` as 0/255 greyscale.
    """

    def __init__(self, out_dir: str | Path, *, save_masks: bool = False):
        super().__init__(save_masks)
        self.out_dir = Path(out_dir)
        if self.out_dir.exists() and not self.out_dir.is_dir():
            raise SinkError(f"cannot write output {self.out_dir}: it is a file, not a folder")
        self._created = ensure_folder(self.out_dir, self.out_dir)

    def write(self, frame: Frame, out_bgr: np.ndarray, mask_full_hw: np.ndarray | None) -> None:
        name = frame.name or f"frame_{frame.index:06d}.png"
        self._write_to(self.out_dir / name, out_bgr, mask_full_hw)


class SingleImageSink(_ImageWriter):
    """Exactly one picture at ``out_file``, in the format its extension names."""

    def __init__(self, out_file: str | Path, *, save_masks: bool = False):
        super().__init__(save_masks)
        self.path = Path(out_file)
        if self.path.suffix.lower() not in _PIL_FORMATS:
            raise SinkError(f"cannot write image {self.path}: unsupported extension")
        self._created = ensure_folder(self.path.absolute().parent, self.path)
        self._written = False

    def write(self, frame: Frame, out_bgr: np.ndarray, mask_full_hw: np.ndarray | None) -> None:
        if self._written:
            raise SinkError(f"{self.path} holds one picture but a second frame arrived")
        self._write_to(self.path, out_bgr, mask_full_hw)
        self._written = True

