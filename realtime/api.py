"""The Python API for programs that embed the unmasker.

    import cv2
    from realtime import Unmasker

    with Unmasker(backend="auto", max_faces=4) as unmasker:
        result = unmasker.process(cv2.imread("masked.jpg"))   # BGR uint8, as OpenCV reads
        for face in result.faces:
            print(face.box_xyxy, face.painted, face.mask_hw.max())
        cv2.imwrite("unmasked.png", result.frame_bgr)          # pixels only, no metadata
        unmasker.reset()                                       # the next input is unrelated
        summary = unmasker.process_video("clip.mp4", "clip_unmasked.mp4")

Successive ``process`` calls are frames of one video: tracking, the covering vote and the
smoothing carry over; call ``reset()`` between unrelated pictures (``process_image`` does).
A painted face is a plausible guess, not the hidden identity. ``process_video`` and
``process_image`` write that into their files' metadata as the command line does; ``process``
returns bare pixels, which carry no metadata, so the caller is responsible for telling
viewers. ``label=True`` (the default) draws the small "reconstructed" tag on every returned
frame, as the command line does on written frames.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from engines.config import check_backend, check_crop_size, check_max_faces
from realtime.types import Backend, ClosedError, Closing, Face, Frame

if TYPE_CHECKING:
    from realtime.pipeline import Pipeline

_logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class UnmaskerConfig:
    """What an ``Unmasker`` does; each field is a keyword argument of ``Unmasker``."""

    backend: Backend = "auto"
    """'auto' picks the fastest that runs here (TensorRT, ONNX Runtime CUDA/CPU, PyTorch)."""
    max_faces: int = 4
    """Most faces processed per frame, 1-16."""
    segmenter_checkpoint: Path | str | None = None
    """Segmenter weights (.safetensors); None uses the bundled ones."""
    generator_checkpoint: Path | str | None = None
    """Generator weights (.safetensors); None uses the bundled ones."""
    smoothing: bool = True
    """Average masks and painted faces over successive frames of a track (steadier video)."""
    covering_check: bool = True
    """Paint only faces judged to wear a covering, and only the covering; False paints
    whatever the segmenter marks below the eyes."""
    label: bool = True
    """Draw the 'reconstructed' tag on returned and written frames."""
    crop_size: int = 128
    """Side of the aligned face crop: 128 (real time) or 256."""
    cache_dir: Path | str | None = None
    """Where compiled engines are kept; None uses the platform's user cache."""
    random_weights: bool = False
    """Deterministic random weights instead of the bundled ones (speed and shape checks)."""

    def __post_init__(self) -> None:
        check_backend(self.backend, "backend")
        check_max_faces(self.max_faces, "max_faces")
        check_crop_size(self.crop_size, "crop_size")

    def run_config(self, **overrides: Any):
        """The equivalent ``realtime.loop.RunConfig`` (``source`` and the rest of its own
        fields overridable)."""
        from engines.config import EngineConfig
        from realtime.covering import CoveringConfig
        from realtime.loop import RunConfig
        from realtime.pipeline import PipelineConfig
        from realtime.present import PresentConfig
        from realtime.smoothing import SmoothingConfig
        from realtime.tracking import TrackerConfig

        engines = EngineConfig(
            backend=self.backend, crop_size=self.crop_size, max_batch=self.max_faces,
            segmenter_checkpoint=self.segmenter_checkpoint,
            generator_checkpoint=self.generator_checkpoint, cache_dir=self.cache_dir,
            random_weights=self.random_weights)
        pipeline = PipelineConfig(
            crop_size=self.crop_size, smoothing=SmoothingConfig() if self.smoothing else None,
            covering=CoveringConfig() if self.covering_check else None)
        fields: dict[str, Any] = dict(
            source="", engines=engines, pipeline=pipeline,
            tracker=TrackerConfig(max_faces=self.max_faces),
            present=PresentConfig(label=self.label), display=False, progress=False)
        fields.update(overrides)
        return RunConfig(**fields)


@dataclass(frozen=True)
class FaceResult:
    """One face of one processed frame."""

    track_id: int
    """Stable while the same face is followed from frame to frame; never reused."""
    box_xyxy: np.ndarray
    """float32 (4,): the face's box in frame pixels, clipped to the frame."""
    painted: bool
    """Whether the face was judged to wear a covering, and so was painted."""
    mask_hw: np.ndarray
    """float32 H x W in [0, 1], the size of the frame: how much of each pixel was painted for
    this face (all zeros where it was not painted). Where the painted regions of two faces
    overlap, each pixel goes to the face whose box centre is nearer."""
    score: float
    """Detector confidence in [0, 1]."""


@dataclass(frozen=True)
class Result:
    """What ``Unmasker.process`` made of one frame."""

    frame_bgr: np.ndarray
    """H x W x 3 uint8 BGR, the input's size: the unmasked frame (a new array, never the
    input), with the 'reconstructed' tag when ``label`` is on."""
    faces: tuple[FaceResult, ...]
    """Every face found, painted or not, in track order."""
    mask_hw: np.ndarray
    """float32 H x W in [0, 1]: all faces' painted regions together."""

    @property
    def painted(self) -> bool:
        """True when at least one face was painted."""
        return any(face.painted for face in self.faces)


class Unmasker(Closing):
    """Unmasks frames, pictures and videos; owns its face tracker and engines until closed.

    Building one loads the engines (seconds the first time, then from the cache); keep it for
    a whole stream rather than making one per frame. Not thread-safe: one stream per
    ``Unmasker``.
    """

    def __init__(self, backend: Backend = "auto", max_faces: int = 4, *,
                 log: Callable[[str], None] = _logger.info, **options: Any) -> None:
        from realtime.pipeline import build_pipeline

        self.config = UnmaskerConfig(backend=backend, max_faces=max_faces, **options)
        self._log = log
        run = self.config.run_config()
        # Full-frame masks always: every Result carries the painted region.
        self._pipeline = build_pipeline(replace(run.pipeline, want_mask=True),
                                        engines=run.engines, tracker=run.tracker, log=log)
        self._index = 0
        self._size_hw: tuple[int, int] | None = None

    @property
    def backend(self) -> str:
        """Which backend runs the nets, e.g. 'onnxruntime-cpu'."""
        return self._live().engines.backend

    def process(self, frame_bgr: np.ndarray) -> Result:
        """Unmasks one frame of a stream (H x W x 3 uint8 BGR, as OpenCV reads)."""
        return self._process(frame_bgr, label=self.config.label)

    def _process(self, frame_bgr: np.ndarray, *, label: bool, picture: bool = False,
                 ) -> Result:
        """One frame of the stream, or with ``picture`` one unrelated picture
        (``realtime.picture``: padded, then cut back; no history kept)."""
        pipeline = self._live()
        _check_frame(frame_bgr)
        if frame_bgr.shape[:2] != self._size_hw:
            pipeline.reset()  # a new size cannot be the same video: nothing to follow
            self._size_hw = frame_bgr.shape[:2]
        frame = Frame(self._index, time.perf_counter(), np.ascontiguousarray(frame_bgr))
        self._index += 1
        if picture:
            from realtime.picture import unmask_picture

            result = unmask_picture(pipeline, frame)
        else:
            result = pipeline.process(frame)
        out_bgr = result.out_bgr
        if out_bgr is frame.bgr or out_bgr is frame_bgr:
            out_bgr = out_bgr.copy()  # the caller's array is never handed back to be changed
        if label:
            out_bgr = _tagged(out_bgr)
        height, width = out_bgr.shape[:2]
        mask_hw = (result.mask_full_hw if result.mask_full_hw is not None
                   else np.zeros((height, width), np.float32))
        covered = result.covered or [False] * len(result.faces)
        return Result(out_bgr, _face_results(result.faces, covered, mask_hw), mask_hw)

    def reset(self) -> None:
        """Forgets every track: the next frame starts a new, unrelated stream."""
        self._live().reset()
        self._size_hw = None

    def process_image(self, path_in: str | Path, path_out: str | Path | None = None) -> Result:
        """Unmasks one picture file; ``path_out`` (png, jpg, webp, bmp) is written with the
        provenance note in its metadata. Tight face crops are retried with a border added."""
        from realtime.image_io import read_image, save_picture

        image_bgr = read_image(Path(path_in))
        result = self._picture(image_bgr)
        if path_out is not None:
            save_picture(Path(path_out), result.frame_bgr, provenance=True)
        return result

    def _picture(self, image_bgr: np.ndarray) -> Result:
        result = self._process(image_bgr, label=self.config.label, picture=True)
        self._size_hw = None  # the next input is unrelated
        return result

    def process_video(self, src: str | Path, dst: str | Path | None, *,
                      max_frames: int | None = None) -> dict:
        """Runs the product's own loop from ``src`` (a video, a folder of images, a camera
        index, a URL) to ``dst`` (a video, an image or a folder; None writes nothing), with the
        input's audio and the provenance note; returns the summary ``--stats-json`` writes."""
        from realtime.loop import run

        pipeline = self._live()
        config = self.config.run_config(
            source=src if isinstance(src, int) else str(src),
            output=str(dst) if dst is not None else None, max_frames=max_frames)
        self.reset()
        try:
            return run(config, log=self._log, pipeline=pipeline)
        finally:
            self.reset()

    def close(self) -> None:
        """Closes the face tracker and lets the engines go; later calls raise ClosedError."""
        pipeline, self._pipeline = self._pipeline, None
        if pipeline is not None:
            pipeline.close()

    def _live(self) -> Pipeline:
        if self._pipeline is None:
            raise ClosedError("this Unmasker is closed (its with block ended, or close() was "
                              "called); make a new Unmasker to process more frames")
        return self._pipeline


def _tagged(frame_bgr: np.ndarray) -> np.ndarray:
    """The 'reconstructed' tag drawn on the API's own copy of a frame, as the command line
    draws it on written frames."""
    from realtime.present import PresentConfig, present

    return present(frame_bgr, frame_bgr, None, PresentConfig(label=True), in_place=True)


def _check_frame(frame_bgr: object) -> None:
    if not isinstance(frame_bgr, np.ndarray):
        raise ValueError(f"frame_bgr must be a numpy array (H x W x 3 uint8 BGR, as "
                         f"cv2.imread returns), got {type(frame_bgr).__name__}")
    shape_ok = frame_bgr.ndim == 3 and frame_bgr.shape[2] == 3 and frame_bgr.size > 0
    if not shape_ok or frame_bgr.dtype != np.uint8:
        hint = ""
        if frame_bgr.ndim == 3 and frame_bgr.shape[2] == 4:
            hint = "; drop the alpha channel with cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)"
        elif frame_bgr.dtype != np.uint8 and frame_bgr.dtype.kind == "f":
            hint = "; scale floats in [0, 1] with (image * 255).round().astype(np.uint8)"
        raise ValueError(f"frame_bgr must be an H x W x 3 uint8 array in BGR order, got "
                         f"{frame_bgr.dtype} {frame_bgr.shape}{hint}")


def _face_results(faces: list[Face], covered: list[bool],
                  mask_hw: np.ndarray) -> tuple[FaceResult, ...]:
    height, width = mask_hw.shape
    limits = np.array([width, height, width, height], np.float32)
    boxes_xyxy = [np.clip(f.box_xyxy.astype(np.float32), 0, limits) for f in faces]
    masks_hw = _split_mask(mask_hw, [b for b, c in zip(boxes_xyxy, covered, strict=True) if c])
    per_face = iter(masks_hw)
    return tuple(
        FaceResult(track_id=f.track_id, box_xyxy=box, painted=bool(c),
                   mask_hw=next(per_face) if c else np.zeros_like(mask_hw), score=float(f.score))
        for f, box, c in zip(faces, boxes_xyxy, covered, strict=True))


def _split_mask(mask_hw: np.ndarray, boxes_xyxy: list[np.ndarray]) -> list[np.ndarray]:
    """The union mask shared out among painted faces, each pixel to the face whose box
    centre is nearest in units of that box's size (exact when regions do not overlap)."""
    if len(boxes_xyxy) <= 1:
        return [mask_hw] * len(boxes_xyxy)
    ys, xs = np.nonzero(mask_hw)
    boxes = np.stack(boxes_xyxy)
    centres_xy = (boxes[:, :2] + boxes[:, 2:]) / 2
    sizes_wh = np.maximum(boxes[:, 2:] - boxes[:, :2], 1.0)
    # A pixel (x, y) spans [x, x + 1): its centre is half a pixel further on.
    dx = (xs[None, :] + 0.5 - centres_xy[:, :1]) / sizes_wh[:, :1]
    dy = (ys[None, :] + 0.5 - centres_xy[:, 1:]) / sizes_wh[:, 1:]
    owner = np.argmin(dx * dx + dy * dy, axis=0)
    out = []
    for k in range(len(boxes_xyxy)):
        m = np.zeros_like(mask_hw)
        mine = owner == k
        m[ys[mine], xs[mine]] = mask_hw[ys[mine], xs[mine]]
        out.append(m)
    return out
