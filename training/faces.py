"""Real unmasked faces, aligned once with the pipeline's own code and cached on disk.

Every image of a folder is aligned with the face mesh of ``realtime.face.landmarks`` and the
canonical crop of ``realtime.face.align``; the crop, its 468 landmarks in crop pixels and a validity
mask (which crop pixels came from the photo and which from the replicated border) are cached:

    faces = load_faces([Path("../shared/data/faces/celebahq_192")], crop_size=128,
                       cache_dir=faces_cache_dir())
    train, val = split_faces(faces)

    python -m training.data ../shared/data/faces/celebahq_192 --grid /tmp/grid.png   # a look

The canonical crop reaches 3.4 eye distances below the eyes, further than most photos: the
validity mask lets every loss ignore the padding.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

CODE_VERSION = 2
"""Bump when alignment or caching changes, so stale caches are rebuilt (2: validity masks)."""
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
VALIDATION_PREFIXES = ("validation_", "val_")
"""File-name prefixes of validation faces: celeba_crops' ``validation_*`` and celebahq_192's
``val_*``."""


@dataclass(frozen=True)
class FaceSet:
    """Aligned face crops, their landmarks and which of their pixels are real."""

    crops_rgb: np.ndarray
    """(N, S, S, 3) uint8 aligned crops."""
    landmarks_xy: np.ndarray
    """(N, 468, 2) float32 face-mesh landmarks in crop pixels."""
    names: tuple[str, ...]
    """Source file name of each crop."""
    skipped: int = 0
    """Images where the face mesh found no face (not included)."""
    valid_hw: np.ndarray | None = None
    """(N, S, S) uint8, 1 where the crop pixel lies inside the photo, 0 on the replicated
    border; None means all real."""

    def __len__(self) -> int:
        return len(self.names)

    def subset(self, indices: Sequence[int] | np.ndarray) -> FaceSet:
        idx = np.asarray(indices, dtype=np.int64)
        valid = None if self.valid_hw is None else self.valid_hw[idx]
        return FaceSet(self.crops_rgb[idx], self.landmarks_xy[idx],
                       tuple(self.names[i] for i in idx), self.skipped, valid)

    def valid(self, i: int) -> np.ndarray:
        """(S, S) float32 validity of face ``i`` (ones where unknown)."""
        if self.valid_hw is None:
            size = self.crops_rgb.shape[1]
            return np.ones((size, size), np.float32)
        return self.valid_hw[i].astype(np.float32)


def faces_cache_dir() -> Path:
    """Aligned faces in the user cache; read only at the CLI edge."""
    from training.downloads import cache_file

    return cache_file("faces")


def list_images(folder: Path) -> list[Path]:
    """Image files directly in ``folder``, sorted by name."""
    if not folder.is_dir():
        raise FileNotFoundError(f"face folder not found: {folder}")
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def validity_mask(image_hw: tuple[int, int], matrix: np.ndarray, crop_size: int) -> np.ndarray:
    """(S, S) uint8: 1 where the crop pixel maps inside the image (eroded by one pixel, since
    bilinear sampling at the edge already mixes in the border)."""
    ones = np.ones(image_hw, np.uint8)
    valid = cv2.warpAffine(ones, matrix, (crop_size, crop_size), flags=cv2.INTER_NEAREST,
                           borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return cv2.erode(valid, np.ones((3, 3), np.uint8))


def align_images(paths: Sequence[Path], crop_size: int, *, progress: bool = False) -> FaceSet:
    """Face-mesh landmarks, canonical alignment, crop and validity of each image (no cache)."""
    from tqdm import tqdm

    from realtime.face.align import (
        affine_points,
        estimate_alignment,
        reference_points,
        warp_to_crop,
    )
    from realtime.face.landmarks import CropLandmarker, detect_landmarks_on_crop

    crops, marks, valids, names, skipped = [], [], [], [], 0
    with CropLandmarker() as landmarker:
        for path in tqdm(paths, desc=f"aligning {len(paths)} faces", disable=not progress,
                         unit="img"):
            image_bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image_bgr is None:
                raise ValueError(f"not a readable image: {path}")
            image_rgb = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB)
            landmarks_xy = detect_landmarks_on_crop(image_rgb, landmarker)
            if landmarks_xy is None:
                skipped += 1
                continue
            points_xy = reference_points(landmarks_xy=landmarks_xy, keypoints_xy=None)
            alignment = estimate_alignment(points_xy, crop_size)
            crops.append(warp_to_crop(image_bgr, alignment))
            marks.append(affine_points(alignment.matrix, landmarks_xy))
            valids.append(validity_mask(image_bgr.shape[:2], alignment.matrix, crop_size))
            names.append(path.name)
    return FaceSet(
        crops_rgb=np.asarray(crops, dtype=np.uint8).reshape(-1, crop_size, crop_size, 3),
        landmarks_xy=np.asarray(marks, dtype=np.float32).reshape(-1, 468, 2),
        names=tuple(names), skipped=skipped,
        valid_hw=np.asarray(valids, dtype=np.uint8).reshape(-1, crop_size, crop_size))


def cache_key(paths: Sequence[Path], crop_size: int) -> str:
    """Hash of the file list (names, sizes), crop size, code version and canonical layout."""
    from realtime.face.align import CANONICAL_XY, POINT_WEIGHTS

    h = hashlib.sha256(f"v{CODE_VERSION}|{crop_size}".encode())
    h.update(CANONICAL_XY.tobytes() + POINT_WEIGHTS.tobytes())
    for p in paths:
        h.update(f"|{p.name}:{p.stat().st_size}".encode())
    return h.hexdigest()[:16]


def load_face_folder(folder: Path, crop_size: int, cache_dir: Path, *,
                     progress: bool = True, prefix: str = "") -> FaceSet:
    """Aligned faces of one folder (only files named ``prefix*``), from the cache or computed
    once and cached."""
    import training.faces as this  # looked up at call time, so tests can count alignments

    paths = [p for p in list_images(folder) if p.name.startswith(prefix)]
    if not paths:
        raise ValueError(f"no images ({', '.join(IMAGE_SUFFIXES)}) named {prefix}* in {folder}")
    stem = f"{folder.name}-{prefix}" if prefix else folder.name
    cache = cache_dir / f"{stem}-{crop_size}px-{cache_key(paths, crop_size)}.npz"
    if cache.is_file():
        with np.load(cache) as z:
            return FaceSet(z["crops_rgb"], z["landmarks_xy"], tuple(z["names"].tolist()),
                           int(z["skipped"]), z["valid_hw"])
    faces = this.align_images(paths, crop_size, progress=progress)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, crops_rgb=faces.crops_rgb, landmarks_xy=faces.landmarks_xy,
                        names=np.array(faces.names), skipped=faces.skipped,
                        valid_hw=faces.valid_hw)
    os.replace(tmp, cache)  # a half-written cache never looks complete
    return faces


def concat_faces(sets: Sequence[FaceSet]) -> FaceSet:
    size = sets[0].crops_rgb.shape[1] if sets else 0
    valids = [s.valid_hw if s.valid_hw is not None
              else np.ones((len(s), size, size), np.uint8) for s in sets]
    return FaceSet(np.concatenate([s.crops_rgb for s in sets]),
                   np.concatenate([s.landmarks_xy for s in sets]),
                   tuple(n for s in sets for n in s.names), sum(s.skipped for s in sets),
                   np.concatenate(valids))


def load_faces(folders: Sequence[Path], crop_size: int, cache_dir: Path, *,
               progress: bool = True) -> FaceSet:
    """Aligned faces of several folders, concatenated (each folder cached separately)."""
    if crop_size not in (128, 256):
        raise ValueError(f"crop size must be 128 or 256, got {crop_size}")
    return concat_faces([load_face_folder(Path(f), crop_size, cache_dir, progress=progress)
                         for f in folders])


def is_validation_name(name: str) -> bool:
    return name.startswith(VALIDATION_PREFIXES)


def split_faces(faces: FaceSet, holdout_every: int = 50) -> tuple[FaceSet, FaceSet]:
    """(train, validation): files named ``validation_*`` or ``val_*`` are validation and
    ``train_*`` training (the data's own splits); of the faces named neither way (sets without
    a split, e.g. UTKFace), every ``holdout_every``-th is held out."""
    names = faces.names
    unsplit = np.flatnonzero([not (is_validation_name(n) or n.startswith("train_"))
                              for n in names])
    is_val = np.array([is_validation_name(n) for n in names], dtype=bool)
    is_val[unsplit[holdout_every - 1::holdout_every]] = True
    return faces.subset(np.flatnonzero(~is_val)), faces.subset(np.flatnonzero(is_val))


def load_validation_faces(folders: Sequence[Path], crop_size: int, cache_dir: Path, *,
                          progress: bool = True) -> FaceSet:
    """The validation split of ``folders``, as ``split_faces`` defines it, aligning only the
    validation files where there are any (seconds, not the minutes the whole set takes)."""
    parts = []
    for folder in map(Path, folders):
        names = [p.name for p in list_images(folder)]
        prefix = next((p for p in VALIDATION_PREFIXES if any(n.startswith(p) for n in names)),
                      None)
        if prefix is None:
            parts.append(split_faces(load_face_folder(folder, crop_size, cache_dir,
                                                      progress=progress))[1])
        else:
            parts.append(load_face_folder(folder, crop_size, cache_dir, progress=progress,
                                          prefix=prefix))
    return concat_faces(parts)
