"""Synthetic training samples: real unmasked faces with a covering, a hole or a distractor.

Faces come aligned and cached from ``training.faces``; occluders from ``training.occluders``
(face coverings, rectangles, strokes) and ``training.distractors`` (what is NOT a covering);
everything is drawn on the fly:

    faces = load_faces([Path("../shared/data/faces/celebahq_192")], 128, faces_cache_dir())
    train, val = split_faces(faces)
    occluders = load_occluders(Path("../shared/data/mask_templates/masktheface/masks"), 128)
    dataset = OcclusionDataset(train, occluders, SEGMENTER_MIX, seed=0)
    sample = dataset.sample(7)          # masked_rgb, mask_hw, clean_rgb, kind, valid_hw
    batch = dataset.batch(step=12, batch_size=16)                # torch tensors, NCHW

    python -m training.data ../shared/data/faces/celebahq_192 --mix segmenter --grid g.png

A sample is deterministic in (seed, stream index): no global RNG, no dependence on order.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Literal, NamedTuple

import cv2
import numpy as np

from training.distractors import draw_distractors
from training.faces import FaceSet, faces_cache_dir, load_faces, split_faces
from training.guides import jittered_guide
from training.misalign import misalign
from training.occluders import (
    Occluders,
    TemplateStyle,
    freeform_occluder,
    load_occluders,
    rectangle_mask,
    template_occluder,
)
from training.photo_edge import cut_photo

OcclusionKind = Literal["template", "rectangle", "freeform", "none"]
BLEED_LEVEL = 0.25
"""The covering's share of a damaged pixel from which ``bleed_labels`` counts it as covering."""


@dataclass(frozen=True)
class OcclusionConfig:
    """How samples are drawn from clean faces."""

    template_p: float = 0.70
    """Share of samples with a MaskTheFace template (surgical, cloth, N95, KN95, gas)."""
    rectangle_p: float = 0.15
    """Share with a black rectangle covering 10-30% of the face box (a hole, generator)."""
    freeform_p: float = 0.15
    """Share with random thick strokes and blobs (a hole, generator)."""
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
    pattern_p: float = 0.0
    """Share of templates painted with a procedural print or a solid black/white/grey."""
    photo_p: float = 0.0
    """Share of templates printed with a window of another training photo (hair, clothes,
    scenery): the variety of real prints (``training.occluders.photo_print``)."""
    flip_p: float = 0.5
    """Share of samples mirrored left-right (after the occluder is pasted)."""
    template_scale: tuple[float, float] = (0.95, 1.08)
    """Range of the template's scale about its anchors' centre (looser or tighter fit)."""
    template_grow: float = 0.0
    """Largest extra reach of the template's lower edge below the nose bridge (and half of it
    in width), as a fraction: real masks are often larger than the templates' anchors say."""
    clean_p: float = 0.0
    """Share of samples left without any occluder (an empty mask), drawn first: most faces
    in real video wear no mask."""
    distractor_p: float = 0.0
    """Share of samples that also get 1-2 distractors (overlays, glasses, beards, hands...),
    which are never in the mask: on clean faces they are the segmenter's negatives."""
    degrade_p: float = 0.0
    """Share of samples whose masked input gets camera damage (rescaling to surveillance
    sizes, blur, motion blur, JPEG, noise) over the whole crop; target and mask untouched.
    Segmenter training only: the masked crop then differs from the clean one everywhere."""
    photometric_p: float = 0.0
    """Share of faces re-lit before anything is drawn (brightness, contrast, gamma, hue,
    saturation, white balance, and sometimes blur, JPEG or noise): skin tones and lighting
    the photos lack. Both the input and the target change, so the pair stays consistent."""

    hem_p: float = 0.0
    """Share of templates given a hem along the upper edge (off-white or a shade of the
    mask), which the mask includes: real masks' bound top edge, missing from the templates."""
    loop_p: float = 0.0
    """Share of templates given ear loops from the side corners towards the ears (in the mask)."""
    cut_p: float = 0.0
    """Share of samples cut like a tight photo: the crop beyond a line below the nose or beside
    the face repeats the line's pixels, as the pipeline's replicated border does
    (``training.photo_edge``); drawn from its own random stream."""
    misalign_p: float = 0.0
    """Share of samples whose face is shifted, turned and scaled in its crop, as when the
    tracker places a crop wrongly (``training.misalign``); drawn from its own random stream."""
    bleed_labels: bool = False
    """With ``degrade_p``: where the damage (rescaling, blur) smears the covering's colour onto
    the skin around it by ``BLEED_LEVEL`` or more, the mask includes that pixel too; without it
    the segmenter learns to leave such a rim, which is then painted around."""

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
        for name in ("misplace", "texture_p", "tint_p", "pattern_p", "photo_p", "flip_p",
                     "clean_p", "distractor_p", "degrade_p", "photometric_p", "hem_p",
                     "loop_p", "cut_p", "misalign_p"):
            value = getattr(self, name)
            if not 0 <= value <= 1:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        prints = self.template_style.print_edges[-1]
        if prints > 1 + 1e-9:
            raise ValueError(f"texture_p + tint_p + pattern_p + photo_p must be at most 1, got "
                             f"{prints}")

    @property
    def template_style(self) -> TemplateStyle:
        names = {f.name for f in fields(TemplateStyle)}
        return TemplateStyle(**{n: getattr(self, n) for n in names})


SEGMENTER_MIX = OcclusionConfig(
    template_p=1.0, rectangle_p=0.0, freeform_p=0.0, texture_p=0.25, tint_p=0.25,
    pattern_p=0.25, template_scale=(0.95, 1.25), template_grow=0.3, clean_p=0.35,
    distractor_p=0.6, degrade_p=0.6, photometric_p=0.5)
"""The segmenter's recipe: face coverings are the only positives; bare faces, overlays,
glasses, beards, hands, hair and shadows are negatives; surveillance-size damage on half."""
GENERATOR_MIX = OcclusionConfig(template_grow=0.2, template_scale=(0.95, 1.2), pattern_p=0.2,
                                photometric_p=0.8)
"""The generator's recipe: coverings, rectangles and strokes as holes, on re-lit faces."""
MIXES = {"segmenter": SEGMENTER_MIX, "generator": GENERATOR_MIX, "legacy": OcclusionConfig()}


class Sample(NamedTuple):
    masked_rgb: np.ndarray
    """(S, S, 3) uint8 network input."""
    mask_hw: np.ndarray
    """(S, S) float32 in {0, 1}: the covering or hole."""
    clean_rgb: np.ndarray
    """(S, S, 3) uint8 target."""
    kind: OcclusionKind
    valid_hw: np.ndarray
    """(S, S) float32 in {0, 1}: 1 where the crop pixel is real (not replicated border)."""
    guide_hw: np.ndarray | None = None
    """(S, S) float32 landmark guide (``training.guides``); None: an empty one."""


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
        occluder_rgb, alpha = template_occluder(landmarks_xy, size, occluders,
                                                config.template_style, rng)
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


def _motion_kernel(rng: np.random.Generator) -> np.ndarray:
    """A normalised line kernel 3-7 px long at a random angle."""
    length = int(rng.integers(3, 8))
    kernel = np.zeros((length, length), np.float32)
    kernel[length // 2] = 1.0 / length
    rot = cv2.getRotationMatrix2D(((length - 1) / 2, (length - 1) / 2),
                                  float(rng.uniform(0, 180)), 1.0)
    kernel = cv2.warpAffine(kernel, rot, (length, length))
    return kernel / max(float(kernel.sum()), 1e-6)


def _jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.imdecode(jpeg, cv2.IMREAD_UNCHANGED) if ok else image


def degrade(image_rgb: np.ndarray, rng: np.random.Generator,
            cover_hw: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Webcam, surveillance and compression damage, each with probability 1/2: down-and-up
    rescaling (a face 30-110 px across), Gaussian or motion blur, JPEG, sensor noise (uint8 in,
    uint8 out, same size). ``cover_hw`` (float32, the occluder's share of each pixel) goes
    through the same rescaling and blur and comes back with the image: where the damage
    spreads the covering's colour onto the skin around it (None when not given)."""
    size = image_rgb.shape[1], image_rgb.shape[0]
    spatial: list[Callable[[np.ndarray], np.ndarray]] = []  # what happens to the cover too
    if rng.random() < 0.5:
        scale = rng.uniform(0.25, 0.9)
        spatial.append(lambda a: cv2.resize(cv2.resize(a, None, fx=scale, fy=scale,
                                                       interpolation=cv2.INTER_AREA),
                                            size, interpolation=cv2.INTER_LINEAR))
    if rng.random() < 0.5:
        if rng.random() < 0.6:
            sigma = rng.uniform(0.4, 1.3)
            spatial.append(lambda a: cv2.GaussianBlur(a, (0, 0), sigma))
        else:
            kernel = _motion_kernel(rng)
            spatial.append(lambda a: cv2.filter2D(a, -1, kernel))
    out, cover = image_rgb, cover_hw
    for op in spatial:
        out = op(out)
        cover = None if cover is None else op(cover)
    if rng.random() < 0.5:
        out = _jpeg(out, int(rng.integers(20, 85)))
    if rng.random() < 0.5:
        noise = rng.normal(0, rng.uniform(1.5, 7.0), out.shape)
        out = np.clip(out.astype(np.float32) + noise, 0, 255).astype(np.uint8)
    return out, cover


def photometric(image_rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random re-lighting: white balance, brightness, contrast, gamma, hue and saturation,
    then blur, JPEG or noise now and then (uint8 in and out)."""
    x = image_rgb.astype(np.float32) / 255
    x = x * rng.uniform(0.8, 1.2, 3).astype(np.float32)  # white balance
    mean = x.mean()
    x = (x - mean) * rng.uniform(0.7, 1.3) + mean * rng.uniform(0.6, 1.35)
    x = np.clip(x, 0, 1) ** rng.uniform(0.75, 1.35)
    hsv = cv2.cvtColor((x * 255).astype(np.uint8), cv2.COLOR_RGB2HSV).astype(np.float32)
    hsv[..., 0] = (hsv[..., 0] + rng.uniform(-8, 8)) % 180
    hsv[..., 1] = np.clip(hsv[..., 1] * rng.uniform(0.6, 1.4), 0, 255)
    out = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)
    u = rng.random()
    if u < 0.15:
        out = cv2.GaussianBlur(out, (0, 0), rng.uniform(0.4, 1.0))
    elif u < 0.3:
        out = _jpeg(out, int(rng.integers(40, 90)))
    elif u < 0.4:
        noise = rng.normal(0, rng.uniform(1.0, 4.0), out.shape)
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
        if config.photo_p > 0 and occluders.photos_rgb is None:
            occluders = replace(occluders, photos_rgb=faces.crops_rgb)
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

    def sample(self, k: int) -> Sample:
        i = self.face_index(k)
        rng = np.random.default_rng([self.seed, 2, k])
        cfg = self.config
        clean_rgb, landmarks_xy = self.faces.crops_rgb[i], self.faces.landmarks_xy[i]
        if cfg.photometric_p > 0 and rng.random() < cfg.photometric_p:
            clean_rgb = photometric(clean_rgb, rng)
        masked_rgb, mask_hw, kind = occlude(clean_rgb, landmarks_xy, self.occluders, cfg, rng)
        if cfg.distractor_p > 0 and rng.random() < cfg.distractor_p:
            masked_rgb, _ = draw_distractors(masked_rgb, landmarks_xy, rng,
                                             count=int(rng.integers(1, 3)),
                                             with_covering=kind != "none")
            if kind == "none":  # a distractor on a bare face is part of the target too
                clean_rgb = masked_rgb
        valid_hw = self.faces.valid(i)
        guide_hw = jittered_guide(landmarks_xy, clean_rgb.shape[0],  # own stream: the other
                                  np.random.default_rng([self.seed, 6, k]))  # draws stay
        flipped = rng.random() < cfg.flip_p
        if flipped:
            masked_rgb, mask_hw, clean_rgb, valid_hw, guide_hw = (a[:, ::-1] for a in (
                masked_rgb, mask_hw, clean_rgb, valid_hw, guide_hw))
        if cfg.degrade_p > 0 and rng.random() < cfg.degrade_p:
            cover = np.ascontiguousarray(mask_hw) if cfg.bleed_labels else None
            masked_rgb, cover = degrade(np.ascontiguousarray(masked_rgb), rng, cover)
            if cover is not None:  # the covering's colour smeared onto skin is covering too
                mask_hw = np.maximum(mask_hw, (cover >= BLEED_LEVEL).astype(np.float32))
        cut_rng = np.random.default_rng([self.seed, 7, k]) if cfg.cut_p > 0 else None
        if cut_rng is not None and cut_rng.random() < cfg.cut_p:  # own stream: the others stay
            marks = landmarks_xy.copy()
            if flipped:
                marks[:, 0] = clean_rgb.shape[1] - 1 - marks[:, 0]
            (masked_rgb, clean_rgb, mask_hw), valid_hw = cut_photo(
                [masked_rgb, clean_rgb, mask_hw], valid_hw, marks, cut_rng)
        turn_rng = np.random.default_rng([self.seed, 9, k]) if cfg.misalign_p > 0 else None
        if turn_rng is not None and turn_rng.random() < cfg.misalign_p:
            (masked_rgb, clean_rgb, guide_hw), (mask_hw,), valid_hw = misalign(
                [masked_rgb, clean_rgb, guide_hw], [mask_hw], valid_hw, turn_rng)
        c = np.ascontiguousarray
        return Sample(c(masked_rgb), c(mask_hw), c(clean_rgb), kind, c(valid_hw), c(guide_hw))

    def batch(self, step: int, batch_size: int) -> dict:
        """Samples ``step * batch_size ...`` as torch tensors: ``masked`` and ``clean`` RGB
        (N,3,S,S) in [-1, 1], ``mask`` and ``valid`` (N,1,S,S) in {0, 1}, ``guide`` (N,1,S,S)
        in [0, 1] and ``kinds``."""
        return self.collate([self.sample(step * batch_size + j) for j in range(batch_size)])

    @staticmethod
    def collate(samples: Sequence[Sample]) -> dict:
        import torch

        def to_tensor(images: list[np.ndarray]) -> torch.Tensor:
            x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float()  # NHWC strides
            return x / 127.5 - 1.0

        return {"masked": to_tensor([s.masked_rgb for s in samples]),
                "mask": torch.from_numpy(np.stack([s.mask_hw for s in samples]))[:, None],
                "clean": to_tensor([s.clean_rgb for s in samples]),
                "valid": torch.from_numpy(np.stack([s.valid_hw for s in samples]))[:, None],
                "guide": torch.from_numpy(np.stack([
                    s.guide_hw if s.guide_hw is not None else np.zeros_like(s.mask_hw)
                    for s in samples]))[:, None],
                "kinds": [s.kind for s in samples]}


def preview_grid(dataset: OcclusionDataset, count: int, columns: int = 4) -> np.ndarray:
    """RGB uint8 grid of samples (masked | mask | clean each), ``columns`` samples a row."""
    tiles = []
    for k in range(count):
        s = dataset.sample(k)
        mask_rgb = np.repeat((s.mask_hw * 255).astype(np.uint8)[..., None], 3, axis=2)
        tiles.append(np.concatenate([s.masked_rgb, mask_rgb, s.clean_rgb], axis=1))
    tiles += [np.zeros_like(tiles[0])] * (-len(tiles) % columns)
    rows = [np.concatenate(tiles[r:r + columns], axis=1) for r in range(0, len(tiles), columns)]
    return np.concatenate(rows, axis=0)


def main(argv: list[str] | None = None) -> int:
    """Align (and cache) face folders, then save a preview grid of training samples."""
    parser = argparse.ArgumentParser(prog="python -m training.data", description=main.__doc__)
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--crop", type=int, default=128, choices=(128, 256))
    parser.add_argument("--cache", type=Path, default=None,
                        help="aligned-face cache (default: the user cache)")
    parser.add_argument("--masks", type=Path, default=Path(__file__).resolve().parents[2]
                        / "shared" / "data" / "mask_templates" / "masktheface" / "masks")
    parser.add_argument("--mix", choices=sorted(MIXES), default="segmenter",
                        help="which trainer's sample recipe to show (default: segmenter)")
    parser.add_argument("--grid", type=Path, default=Path("occlusion_grid.png"))
    parser.add_argument("--count", type=int, default=24)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    faces = load_faces(args.folders, args.crop, args.cache or faces_cache_dir())
    train, val = split_faces(faces)
    print(json.dumps({"faces": len(faces), "skipped": faces.skipped, "train": len(train),
                      "validation": len(val)}))
    dataset = OcclusionDataset(faces, load_occluders(args.masks, args.crop), MIXES[args.mix],
                               seed=args.seed)
    grid_rgb = preview_grid(dataset, args.count)
    cv2.imwrite(str(args.grid), cv2.cvtColor(grid_rgb, cv2.COLOR_RGB2BGR))
    return 0


if __name__ == "__main__":
    sys.exit(main())
