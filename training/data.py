"""Aligned faces and synthetic occlusions for training the segmenter and the generator.

Every image of a folder of UNMASKED faces is aligned once with the project's own code (the
face mesh of ``realtime.landmarks`` and the canonical crop of ``realtime.align``) and cached on
disk with its 468 landmarks in crop pixels; occluders are pasted on the fly:

    faces = load_faces([Path("../shared/data/faces/celeba_crops")], crop_size=128,
                       cache_dir=Path("~/.cache/realtime-unmask/faces").expanduser())
    train, val = split_faces(faces)
    occluders = load_occluders(Path("../shared/data/mask_templates/masktheface/masks"), 128)
    dataset = OcclusionDataset(train, occluders, OcclusionConfig(), seed=0)
    masked_rgb, mask_hw, clean_rgb, kind = dataset.sample(7)     # numpy, uint8 / float32
    batch = dataset.batch(step=12, batch_size=16)                # torch tensors, NCHW

    python -m training.data ../shared/data/faces/celeba_crops --crop 128 --grid /tmp/grid.png

A sample is deterministic in (seed, stream index): no global RNG, no dependence on order.
"""

from __future__ import annotations

import argparse
import configparser
import hashlib
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

CODE_VERSION = 1
"""Bump when alignment or caching changes, so stale caches are rebuilt."""
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
OcclusionKind = Literal["template", "rectangle", "freeform", "none"]
Pose = Literal["front", "left", "right"]

MESH_ANCHORS = (93, 197, 323, 172, 152, 397)
"""Face-mesh indices for the template anchors a..f: the face outline just below eye level on
the image's left, the middle of the nose bridge, the outline on the right, the jaw on the left
(about two thirds of the way down to the chin), the chin, the jaw on the right. With the
outline at eye level (234/454) a template covered an eye centre in 10% of the faces; with
93/323 in 1%, and the mouth in 99%."""
MESH_NOSE_TIP, MESH_OUTLINE_LEFT, MESH_OUTLINE_RIGHT = 1, 234, 454


@dataclass(frozen=True)
class FaceSet:
    """Aligned face crops and their landmarks."""

    crops_rgb: np.ndarray
    """(N, S, S, 3) uint8 aligned crops."""
    landmarks_xy: np.ndarray
    """(N, 468, 2) float32 face-mesh landmarks in crop pixels."""
    names: tuple[str, ...]
    """Source file name of each crop."""
    skipped: int = 0
    """Images where the face mesh found no face (not included)."""

    def __len__(self) -> int:
        return len(self.names)

    def subset(self, indices: Sequence[int] | np.ndarray) -> FaceSet:
        idx = np.asarray(indices, dtype=np.int64)
        return FaceSet(self.crops_rgb[idx], self.landmarks_xy[idx],
                       tuple(self.names[i] for i in idx), self.skipped)


@dataclass(frozen=True)
class OcclusionConfig:
    """How occluders are drawn onto clean faces."""

    template_p: float = 0.70
    """Share of samples with a MaskTheFace template (surgical, cloth, N95, KN95, gas)."""
    rectangle_p: float = 0.15
    """Share with a black rectangle covering 10-30% of the face box."""
    freeform_p: float = 0.15
    """Share with random thick strokes and blobs."""
    rect_coverage: tuple[float, float] = (0.10, 0.30)
    """Rectangle area as a fraction of the face's landmark bounding box."""
    pose_by_yaw: bool = True
    """Pick the frontal/left/right template by the head yaw; False picks the pose at random."""
    misplace: float = 0.03
    """Largest random shift of the template anchors, as a fraction of the crop side."""
    texture_p: float = 0.25
    """Share of templates painted with a texture from masks/textures."""
    tint_p: float = 0.30
    """Share of templates tinted with a random colour."""
    flip_p: float = 0.5
    """Share of samples mirrored left-right (after the occluder is pasted)."""
    template_scale: tuple[float, float] = (0.95, 1.08)
    """Range of the template's scale about its anchors' centre (looser or tighter fit)."""
    template_grow: float = 0.0
    """Largest extra reach of the template's lower edge below the nose bridge (and half of it
    in width), as a fraction: real masks are often larger than the templates' anchors say.
    0 draws nothing, so the samples of a seed stay what they were."""
    clean_p: float = 0.0
    """Share of samples left without any occluder (an empty mask), drawn before the shares
    above: most faces in real video wear no mask, and a segmenter that never saw one paints
    some of every face. 0 draws nothing, so the samples of a seed stay what they were."""
    degrade_p: float = 0.0
    """Share of samples whose masked input gets camera damage (rescaling, blur, JPEG, noise)
    over the whole crop, as real webcams and surveillance video have; the clean target and
    the mask are untouched. Segmenter training only: the masked crop then differs from the
    clean one outside the mask too."""

    def __post_init__(self) -> None:
        shares = (self.template_p, self.rectangle_p, self.freeform_p)
        if min(shares) < 0 or abs(sum(shares) - 1.0) > 1e-6:
            raise ValueError(f"occlusion shares must be >= 0 and sum to 1, got {shares}")
        lo, hi = self.rect_coverage
        if not 0 < lo <= hi < 1:
            raise ValueError(f"rect_coverage must satisfy 0 < lo <= hi < 1, got {lo}, {hi}")
        lo, hi = self.template_scale
        if not 0.5 <= lo <= hi <= 2.0:
            raise ValueError(f"template_scale must satisfy 0.5 <= lo <= hi <= 2, got {lo}, {hi}")
        if not 0 <= self.template_grow <= 1:
            raise ValueError(f"template_grow must be in [0, 1], got {self.template_grow}")
        for name in ("misplace", "texture_p", "tint_p", "flip_p", "clean_p", "degrade_p"):
            value = getattr(self, name)
            if not 0 <= value <= 1:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        if self.texture_p + self.tint_p > 1:
            raise ValueError("texture_p + tint_p must be at most 1, got "
                             f"{self.texture_p + self.tint_p}")


# ---------------------------------------------------------------------------------------------
# Faces: align once, cache on disk


def default_cache_dir() -> Path:
    """The user cache (XDG_CACHE_HOME or ~/.cache); read only at the CLI edge."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "realtime-unmask" / "faces"


def list_images(folder: Path) -> list[Path]:
    """Image files directly in ``folder``, sorted by name."""
    if not folder.is_dir():
        raise FileNotFoundError(f"face folder not found: {folder}")
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def align_images(paths: Sequence[Path], crop_size: int, *, progress: bool = False) -> FaceSet:
    """Face-mesh landmarks, canonical alignment and crop of each image (no caching)."""
    from tqdm import tqdm

    from realtime.align import (
        affine_points,
        estimate_alignment,
        reference_points,
        warp_to_crop,
    )
    from realtime.landmarks import CropLandmarker, detect_landmarks_on_crop

    crops, marks, names, skipped = [], [], [], 0
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
            names.append(path.name)
    return FaceSet(
        crops_rgb=np.asarray(crops, dtype=np.uint8).reshape(-1, crop_size, crop_size, 3),
        landmarks_xy=np.asarray(marks, dtype=np.float32).reshape(-1, 468, 2),
        names=tuple(names), skipped=skipped)


def cache_key(paths: Sequence[Path], crop_size: int) -> str:
    """Hash of the file list (names, sizes), crop size, code version and canonical layout."""
    from realtime.align import CANONICAL_XY, POINT_WEIGHTS

    h = hashlib.sha256(f"v{CODE_VERSION}|{crop_size}".encode())
    h.update(CANONICAL_XY.tobytes() + POINT_WEIGHTS.tobytes())
    for p in paths:
        h.update(f"|{p.name}:{p.stat().st_size}".encode())
    return h.hexdigest()[:16]


def load_face_folder(folder: Path, crop_size: int, cache_dir: Path, *,
                     progress: bool = True, prefix: str = "") -> FaceSet:
    """Aligned faces of one folder (only files named ``prefix*``), from the cache or computed
    once and cached."""
    paths = [p for p in list_images(folder) if p.name.startswith(prefix)]
    if not paths:
        raise ValueError(f"no images ({', '.join(IMAGE_SUFFIXES)}) named {prefix}* in {folder}")
    stem = f"{folder.name}-{prefix}" if prefix else folder.name
    cache = cache_dir / f"{stem}-{crop_size}px-{cache_key(paths, crop_size)}.npz"
    if cache.is_file():
        with np.load(cache) as z:
            return FaceSet(z["crops_rgb"], z["landmarks_xy"], tuple(z["names"].tolist()),
                           int(z["skipped"]))
    faces = align_images(paths, crop_size, progress=progress)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, crops_rgb=faces.crops_rgb, landmarks_xy=faces.landmarks_xy,
                        names=np.array(faces.names), skipped=faces.skipped)
    os.replace(tmp, cache)  # a half-written cache never looks complete
    return faces


def concat_faces(sets: Sequence[FaceSet]) -> FaceSet:
    return FaceSet(np.concatenate([s.crops_rgb for s in sets]),
                   np.concatenate([s.landmarks_xy for s in sets]),
                   tuple(n for s in sets for n in s.names), sum(s.skipped for s in sets))


def load_faces(folders: Sequence[Path], crop_size: int, cache_dir: Path, *,
               progress: bool = True) -> FaceSet:
    """Aligned faces of several folders, concatenated (each folder cached separately)."""
    if crop_size not in (128, 256):
        raise ValueError(f"crop size must be 128 or 256, got {crop_size}")
    return concat_faces([load_face_folder(Path(f), crop_size, cache_dir, progress=progress)
                         for f in folders])


def split_faces(faces: FaceSet, holdout_every: int = 50) -> tuple[FaceSet, FaceSet]:
    """(train, validation): files named ``validation_*`` are validation (celeba_crops'
    convention); when there are none, every ``holdout_every``-th face is held out instead."""
    is_val = np.array([n.startswith("validation_") for n in faces.names], dtype=bool)
    if not is_val.any():
        is_val = np.arange(len(faces)) % holdout_every == holdout_every - 1
    return faces.subset(np.flatnonzero(~is_val)), faces.subset(np.flatnonzero(is_val))


def load_validation_faces(folders: Sequence[Path], crop_size: int, cache_dir: Path, *,
                          progress: bool = True) -> FaceSet:
    """The validation split of ``folders``, as ``split_faces`` defines it, aligning only the
    ``validation_*`` files where there are any (seconds, not the minute the whole set takes)."""
    named = [Path(f) for f in folders
             if any(p.name.startswith("validation_") for p in list_images(Path(f)))]
    if not named:
        return split_faces(load_faces(folders, crop_size, cache_dir, progress=progress))[1]
    return concat_faces([load_face_folder(f, crop_size, cache_dir, progress=progress,
                                          prefix="validation_") for f in named])


# ---------------------------------------------------------------------------------------------
# Occluders: MaskTheFace templates and textures


@dataclass(frozen=True)
class MaskTemplate:
    name: str
    rgba: np.ndarray
    """(H, W, 4) uint8 RGBA, pre-shrunk to about twice the crop size (less aliasing)."""
    anchors_xy: np.ndarray
    """(6, 2) float32 anchor points a..f in template pixels."""
    pose: Pose


@dataclass(frozen=True)
class Occluders:
    templates: tuple[MaskTemplate, ...]
    textures_rgb: tuple[np.ndarray, ...]
    """Textures as (S, S, 3) uint8, resized to the crop size."""


def _read_template(root: Path, name: str, section: configparser.SectionProxy,
                   crop_size: int) -> MaskTemplate:
    image = cv2.imread(str(root.parent / section["template"]), cv2.IMREAD_UNCHANGED)
    if image is None or image.ndim != 3 or image.shape[2] != 4:
        raise ValueError(f"template {name} is not an RGBA image: {section['template']}")
    anchors_xy = np.array([[float(v) for v in section[f"mask_{k}"].split(",")]
                           for k in "abcdef"], dtype=np.float32)
    scale = min(1.0, 2 * crop_size / max(image.shape[:2]))
    image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    pose: Pose = ("left" if name.endswith("_left")
                  else "right" if name.endswith("_right") else "front")
    rgba = np.concatenate([cv2.cvtColor(image[..., :3], cv2.COLOR_BGR2RGB), image[..., 3:]], 2)
    return MaskTemplate(name, rgba, anchors_xy * scale, pose)


def load_occluders(masks_root: Path, crop_size: int) -> Occluders:
    """Templates listed in ``masks_root/masks.cfg`` and textures under ``masks_root/textures``.

    ``masks_root`` is MaskTheFace's ``masks`` folder; the cfg's paths are relative to its
    parent.
    """
    cfg_path = masks_root / "masks.cfg"
    if not cfg_path.is_file():
        raise FileNotFoundError(f"mask templates not found: {cfg_path}")
    cfg = configparser.ConfigParser()
    cfg.read(cfg_path)
    templates = tuple(_read_template(masks_root, name, cfg[name], crop_size)
                      for name in cfg.sections() if "template" in cfg[name])
    textures = []
    for path in sorted((masks_root / "textures").rglob("*")):
        image = cv2.imread(str(path), cv2.IMREAD_COLOR) if path.is_file() else None
        if image is not None:
            image = cv2.resize(image, (crop_size, crop_size), interpolation=cv2.INTER_AREA)
            textures.append(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
    if not templates:
        raise ValueError(f"no templates in {cfg_path}")
    return Occluders(templates, tuple(textures))


# ---------------------------------------------------------------------------------------------
# Synthesis


def head_pose(landmarks_xy: np.ndarray, threshold: float = 0.12) -> Pose:
    """'left' when the nose tip is left of the outline's middle (the head turned towards the
    image's left), 'right' for the mirror case, else 'front'."""
    x_left, x_right = landmarks_xy[MESH_OUTLINE_LEFT, 0], landmarks_xy[MESH_OUTLINE_RIGHT, 0]
    ratio = (landmarks_xy[MESH_NOSE_TIP, 0] - x_left) / max(x_right - x_left, 1e-6)
    if ratio < 0.5 - threshold:
        return "left"
    return "right" if ratio > 0.5 + threshold else "front"


def face_box_xyxy(landmarks_xy: np.ndarray, crop_size: int) -> tuple[int, int, int, int]:
    """The landmarks' bounding box in whole crop pixels, clipped to the crop."""
    x0, y0 = np.floor(landmarks_xy.min(axis=0)).astype(int)
    x1, y1 = np.ceil(landmarks_xy.max(axis=0)).astype(int)
    x0, y0 = max(int(x0), 0), max(int(y0), 0)
    x1, y1 = min(int(x1), crop_size), min(int(y1), crop_size)
    if x1 - x0 < 4 or y1 - y0 < 4:  # degenerate landmarks: fall back to the whole crop
        return 0, 0, crop_size, crop_size
    return x0, y0, x1, y1


def _colour_template(rgb: np.ndarray, alpha: np.ndarray, occluders: Occluders,
                     config: OcclusionConfig, rng: np.random.Generator) -> np.ndarray:
    """The warped template's RGB re-coloured: texture, tint or as is, then brightness."""
    rgb = rgb.astype(np.float32)
    luma = rgb.mean(axis=2, keepdims=True)
    inside = alpha > 0.5
    shade = luma / max(float(luma[inside].mean()) if inside.any() else 1.0, 1.0)
    u = rng.random()
    if u < config.texture_p and occluders.textures_rgb:
        texture = occluders.textures_rgb[rng.integers(len(occluders.textures_rgb))]
        rgb = texture.astype(np.float32) * np.clip(shade, 0.3, 1.3)
    elif u < config.texture_p + config.tint_p:
        rgb = rng.uniform(20, 240, size=3).astype(np.float32) * np.clip(shade, 0.3, 1.3)
    return np.clip(rgb * rng.uniform(0.7, 1.2), 0, 255)


def template_occluder(landmarks_xy: np.ndarray, crop_size: int, occluders: Occluders,
                      config: OcclusionConfig, rng: np.random.Generator,
                      ) -> tuple[np.ndarray, np.ndarray]:
    """(occluder RGB float32 (S,S,3), alpha float32 (S,S)) of a template warped onto the face."""
    pose = head_pose(landmarks_xy) if config.pose_by_yaw else rng.choice(["front", "left",
                                                                          "right"])
    choices = [t for t in occluders.templates if t.pose == pose] or list(occluders.templates)
    template = choices[rng.integers(len(choices))]
    dst_xy = landmarks_xy[list(MESH_ANCHORS)].astype(np.float64)
    centre = dst_xy.mean(axis=0)
    dst_xy = (dst_xy - centre) * rng.uniform(*config.template_scale) + centre
    if config.template_grow > 0:  # a larger mask: lower edge further down, sides further out
        grow = rng.uniform(0, config.template_grow)
        dst_xy[3:] = dst_xy[1] + (dst_xy[3:] - dst_xy[1]) * (1 + grow)
        dst_xy[:, 0] = centre[0] + (dst_xy[:, 0] - centre[0]) * (1 + grow / 2)
    dst_xy += rng.uniform(-1, 1, size=2) * config.misplace * crop_size  # worn off-centre
    dst_xy += rng.normal(0, 0.25 * config.misplace * crop_size, size=(6, 2))
    homography, _ = cv2.findHomography(template.anchors_xy.astype(np.float64), dst_xy, 0)
    if homography is None:  # collinear anchors (broken landmarks): a plain affine fit
        affine, _ = cv2.estimateAffine2D(template.anchors_xy, dst_xy.astype(np.float32))
        homography = np.vstack([affine, [0, 0, 1]])
    warped = cv2.warpPerspective(template.rgba, homography, (crop_size, crop_size),
                                 flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                                 borderValue=0)
    alpha = warped[..., 3].astype(np.float32) / 255.0
    return _colour_template(warped[..., :3], alpha, occluders, config, rng), alpha


def rectangle_mask(landmarks_xy: np.ndarray, crop_size: int, coverage: tuple[float, float],
                   rng: np.random.Generator) -> np.ndarray:
    """(S, S) float32 mask of one axis-aligned rectangle inside the face box, covering a
    fraction in ``coverage`` of the box."""
    x0, y0, x1, y1 = face_box_xyxy(landmarks_xy, crop_size)
    box_w, box_h = x1 - x0, y1 - y0
    area = rng.uniform(*coverage) * box_w * box_h
    w = min(np.sqrt(area * rng.uniform(0.5, 2.0)), box_w)
    h = min(area / w, box_h)
    w, h = max(round(w), 1), max(round(h), 1)
    left = x0 + int(rng.integers(0, box_w - w + 1))
    top = y0 + int(rng.integers(0, box_h - h + 1))
    mask_hw = np.zeros((crop_size, crop_size), np.float32)
    mask_hw[top:top + h, left:left + w] = 1.0
    return mask_hw


def freeform_occluder(landmarks_xy: np.ndarray, crop_size: int, rng: np.random.Generator,
                      ) -> tuple[np.ndarray, np.ndarray]:
    """(occluder RGB float32, mask float32) of random thick strokes and blobs on the face."""
    x0, y0, x1, y1 = face_box_xyxy(landmarks_xy, crop_size)
    occluder_rgb = np.zeros((crop_size, crop_size, 3), np.float32)
    mask_u8 = np.zeros((crop_size, crop_size), np.uint8)
    for _ in range(int(rng.integers(1, 5))):
        layer = np.zeros_like(mask_u8)
        if rng.random() < 0.6:
            n = int(rng.integers(2, 6))
            pts = np.stack([rng.uniform(x0, x1, n), rng.uniform(y0, y1, n)], 1).astype(np.int32)
            thickness = max(2, int(crop_size * rng.uniform(0.04, 0.12)))
            cv2.polylines(layer, [pts], False, 255, thickness, cv2.LINE_8)
        else:
            centre = (int(rng.uniform(x0, x1)), int(rng.uniform(y0, y1)))
            axes = tuple(int(crop_size * a) for a in rng.uniform(0.05, 0.18, 2))
            cv2.ellipse(layer, centre, axes, float(rng.uniform(0, 180)), 0, 360, 255, -1)
        on = layer > 0
        occluder_rgb[on] = rng.uniform(0, 255, size=3)
        mask_u8 |= layer
    return occluder_rgb, (mask_u8 > 0).astype(np.float32)


def occlude(clean_rgb: np.ndarray, landmarks_xy: np.ndarray, occluders: Occluders,
            config: OcclusionConfig, rng: np.random.Generator,
            ) -> tuple[np.ndarray, np.ndarray, OcclusionKind]:
    """(masked crop uint8, mask float32 in {0, 1}, kind). The masked crop equals the clean
    crop exactly where the mask is 0."""
    size = clean_rgb.shape[0]
    if config.clean_p > 0 and rng.random() < config.clean_p:
        return clean_rgb.copy(), np.zeros((size, size), np.float32), "none"
    u = rng.random()
    kind: OcclusionKind
    if u < config.template_p:
        kind = "template"
        occluder_rgb, alpha = template_occluder(landmarks_xy, size, occluders, config, rng)
        mask_hw = (alpha > 0.5).astype(np.float32)
        weight = mask_hw * alpha  # soft edges stay inside the binary mask
    elif u < config.template_p + config.rectangle_p:
        kind = "rectangle"
        mask_hw = rectangle_mask(landmarks_xy, size, config.rect_coverage, rng)
        occluder_rgb, weight = np.zeros((size, size, 3), np.float32), mask_hw
    else:
        kind = "freeform"
        occluder_rgb, mask_hw = freeform_occluder(landmarks_xy, size, rng)
        weight = mask_hw
    w = weight[..., None]
    masked = clean_rgb.astype(np.float32) * (1 - w) + occluder_rgb * w
    masked_rgb = np.where(mask_hw[..., None] > 0, np.clip(np.rint(masked), 0, 255), clean_rgb)
    return masked_rgb.astype(np.uint8), mask_hw, kind


def degrade(image_rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Webcam and compression damage: each of down-and-up rescaling, Gaussian blur, JPEG and
    sensor noise with probability 1/2 (uint8 in, uint8 out, same size)."""
    size = image_rgb.shape[1], image_rgb.shape[0]
    out = image_rgb
    if rng.random() < 0.5:
        scale = rng.uniform(0.35, 0.85)
        small = cv2.resize(out, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        out = cv2.resize(small, size, interpolation=cv2.INTER_LINEAR)
    if rng.random() < 0.5:
        out = cv2.GaussianBlur(out, (0, 0), rng.uniform(0.4, 1.3))
    if rng.random() < 0.5:
        quality = int(rng.integers(25, 85))
        ok, jpeg = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if ok:
            out = cv2.imdecode(jpeg, cv2.IMREAD_UNCHANGED)
    if rng.random() < 0.5:
        noise = rng.normal(0, rng.uniform(1.5, 6.0), out.shape)
        out = np.clip(out.astype(np.float32) + noise, 0, 255).astype(np.uint8)
    return out


class OcclusionDataset:
    """Occluded samples from a FaceSet. Stream index k picks a face (a fresh permutation of all
    faces every epoch, or in order with ``shuffle=False``) and seeds the occlusion with
    ``(seed, k)``, so any sample can be recomputed alone and training resumes exactly."""

    def __init__(self, faces: FaceSet, occluders: Occluders, config: OcclusionConfig, *,
                 seed: int, shuffle: bool = True) -> None:
        if len(faces) == 0:
            raise ValueError("no faces to sample from")
        self.faces, self.occluders, self.config = faces, occluders, config
        self.seed, self.shuffle = seed, shuffle
        self._perm_epoch, self._perm = -1, np.arange(len(faces))

    def __len__(self) -> int:
        return len(self.faces)

    def face_index(self, k: int) -> int:
        n = len(self.faces)
        if not self.shuffle:
            return k % n
        if k // n != self._perm_epoch:
            self._perm_epoch = k // n
            self._perm = np.random.default_rng([self.seed, 1, k // n]).permutation(n)
        return int(self._perm[k % n])

    def sample(self, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, OcclusionKind]:
        """(masked_rgb uint8 (S,S,3), mask_hw float32 (S,S), clean_rgb uint8, kind)."""
        i = self.face_index(k)
        rng = np.random.default_rng([self.seed, 2, k])
        clean_rgb = self.faces.crops_rgb[i]
        masked_rgb, mask_hw, kind = occlude(clean_rgb, self.faces.landmarks_xy[i],
                                            self.occluders, self.config, rng)
        if rng.random() < self.config.flip_p:
            masked_rgb, mask_hw, clean_rgb = (a[:, ::-1] for a in (masked_rgb, mask_hw,
                                                                    clean_rgb))
        if self.config.degrade_p > 0 and rng.random() < self.config.degrade_p:
            masked_rgb = degrade(np.ascontiguousarray(masked_rgb), rng)
        return (np.ascontiguousarray(masked_rgb), np.ascontiguousarray(mask_hw),
                np.ascontiguousarray(clean_rgb), kind)

    def batch(self, step: int, batch_size: int) -> dict:
        """Samples ``step * batch_size ...`` as torch tensors: ``masked`` and ``clean`` RGB
        (N,3,S,S) in [-1, 1], ``mask`` (N,1,S,S) in {0, 1}, and ``kinds``."""
        return self.collate([self.sample(step * batch_size + j) for j in range(batch_size)])

    @staticmethod
    def collate(samples: Sequence[tuple]) -> dict:
        import torch

        def to_tensor(images: list[np.ndarray]) -> torch.Tensor:
            x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float()  # NHWC strides
            return x / 127.5 - 1.0

        return {"masked": to_tensor([s[0] for s in samples]),
                "mask": torch.from_numpy(np.stack([s[1] for s in samples]))[:, None],
                "clean": to_tensor([s[2] for s in samples]),
                "kinds": [s[3] for s in samples]}


def preview_grid(dataset: OcclusionDataset, count: int) -> np.ndarray:
    """RGB uint8 grid, one row per sample: masked | mask | clean."""
    rows = []
    for k in range(count):
        masked_rgb, mask_hw, clean_rgb, _ = dataset.sample(k)
        mask_rgb = np.repeat((mask_hw * 255).astype(np.uint8)[..., None], 3, axis=2)
        rows.append(np.concatenate([masked_rgb, mask_rgb, clean_rgb], axis=1))
    return np.concatenate(rows, axis=0)


def main(argv: list[str] | None = None) -> int:
    """Align (and cache) a folder, then save a preview grid of occluded samples."""
    parser = argparse.ArgumentParser(prog="python -m training.data", description=main.__doc__)
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--crop", type=int, default=128, choices=(128, 256))
    parser.add_argument("--cache", type=Path, default=None,
                        help="aligned-face cache (default: the user cache)")
    parser.add_argument("--masks", type=Path, default=Path(__file__).resolve().parents[2]
                        / "shared" / "data" / "mask_templates" / "masktheface" / "masks")
    parser.add_argument("--grid", type=Path, default=Path("occlusion_grid.png"))
    parser.add_argument("--count", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    faces = load_faces(args.folders, args.crop, args.cache or default_cache_dir())
    train, val = split_faces(faces)
    print(json.dumps({"faces": len(faces), "skipped": faces.skipped, "train": len(train),
                      "validation": len(val)}))
    dataset = OcclusionDataset(faces, load_occluders(args.masks, args.crop), OcclusionConfig(),
                               seed=args.seed)
    grid_rgb = preview_grid(dataset, args.count)
    cv2.imwrite(str(args.grid), cv2.cvtColor(grid_rgb, cv2.COLOR_RGB2BGR))
    return 0


if __name__ == "__main__":
    sys.exit(main())
