"""Real masked photos as segmenter training samples, labelled by the segmenter itself.

    python -m training.real_labels ../shared/data/masked_real --out ~/runs/real_labels.npz
    realtime-unmask train segmenter ... --real-labels ~/runs/real_labels.npz --real-share 0.15

The synthetic coverings (``training.occluders``) are templates; real masks fold, shine, carry
prints and meet tight photo edges, and on some of them the segmenter marks nothing at all.
Some of those it does mark once the crop is mirrored, blurred, greyed or halved: its answer
there sits on a knife edge. Each photo is aligned as the product aligns it
(``realtime.picture``) and segmented under ``TRANSFORMS``; its label is the covering the
plain crop passes the covering rule with (``realtime.covering``), or else, when at least
``MIN_VOTES`` transformed crops pass it, the covering of their mean probability. Photos with
neither, or with more than one face, are left out. Trained on with jitter, re-lighting and
camera damage, these teach the segmenter the real photos' look without a hand-drawn label.

Only the photos whose names start with ``--prefix`` (default ``train_``) are labelled, so the
``test_`` and ``validation_`` photos stay held out for ``benchmarks.pictures``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

MIN_VOTES = 1
"""Transformed crops that must pass the covering rule when the plain one does not."""


def _mirror(crop_rgb: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(crop_rgb[:, ::-1])


def _blur(crop_rgb: np.ndarray) -> np.ndarray:
    return cv2.GaussianBlur(crop_rgb, (0, 0), 1.0)


def _grey(crop_rgb: np.ndarray) -> np.ndarray:
    return np.repeat(cv2.cvtColor(crop_rgb, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)


def _half(crop_rgb: np.ndarray) -> np.ndarray:
    size = crop_rgb.shape[0]
    small = cv2.resize(crop_rgb, (size // 2, size // 2), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (size, size), interpolation=cv2.INTER_LINEAR)


def _gamma(value: float) -> Callable[[np.ndarray], np.ndarray]:
    table = (255 * (np.arange(256) / 255) ** value).round().astype(np.uint8)
    return lambda crop_rgb: table[crop_rgb]


TRANSFORMS: tuple[tuple[str, Callable[[np.ndarray], np.ndarray], bool], ...] = (
    ("mirror", _mirror, True), ("blur", _blur, False), ("grey", _grey, False),
    ("half", _half, False), ("darker", _gamma(1.3), False), ("lighter", _gamma(0.77), False))
"""(name, transform of the crop, whether its probabilities must be mirrored back)."""


def teacher_label(segment: Callable[[np.ndarray], np.ndarray], crop_rgb: np.ndarray,
                  min_votes: int = MIN_VOTES) -> tuple[np.ndarray | None, str]:
    """(the covering label (S, S) float32 {0, 1} or None, "plain" / "vote" / "none").
    ``segment`` maps (N, S, S, 3) uint8 crops to (N, S, S) probabilities; ``min_votes`` 0
    takes only the plain crop's covering."""
    from realtime.covering import CoveringConfig, plausible_covering

    rule = CoveringConfig()
    crops = np.stack([crop_rgb] + [t(crop_rgb) for _, t, _ in TRANSFORMS])
    probs = segment(crops)
    probs[1:] = [p[:, ::-1] if back else p
                 for p, (_, _, back) in zip(probs[1:], TRANSFORMS, strict=True)]
    passes = [plausible_covering((p > 0.5).astype(np.float32), rule, p) for p in probs]
    if passes[0][1]:
        return passes[0][0], "plain"
    voted = [p for p, (_, ok) in zip(probs[1:], passes[1:], strict=True) if ok]
    if not min_votes or len(voted) < min_votes:
        return None, "none"
    mean = np.mean(voted, axis=0)
    kept, ok = plausible_covering((mean > 0.5).astype(np.float32), rule, mean)
    return (kept, "vote") if ok else (None, "none")


class RealLabels:
    """Labelled real crops drawn as segmenter samples: jittered (shift, rotation, scale),
    mirrored, re-lit and damaged as the synthetic ones are (``training.data``)."""

    def __init__(self, path: Path) -> None:
        if not path.is_file():
            raise FileNotFoundError(f"--real-labels file not found: {path}")
        with np.load(path) as data:
            self.crops_rgb, self.masks_hw = data["crops"], data["masks"].astype(np.float32)
        if len(self.crops_rgb) == 0:
            raise ValueError(f"no labelled photos in {path}")

    def __len__(self) -> int:
        return len(self.crops_rgb)

    def sample(self, k: int, seed: int):
        from training.data import Sample, degrade, photometric
        from training.misalign import random_similarity, warp_crops

        rng = np.random.default_rng([seed, 8, k])
        i = int(rng.integers(len(self)))
        crop, mask = self.crops_rgb[i], self.masks_hw[i]
        size = crop.shape[0]
        matrix = random_similarity(size, rng, degrees=5, scale=(0.94, 1.06), shift=0.025)
        (crop,), (mask,) = warp_crops(matrix, [crop], [mask])
        if rng.random() < 0.5:
            crop, mask = np.ascontiguousarray(crop[:, ::-1]), np.ascontiguousarray(mask[:, ::-1])
        if rng.random() < 0.5:
            crop = photometric(crop, rng)
        if rng.random() < 0.4:
            crop, _ = degrade(crop, rng, None)
        ones = np.ones((size, size), np.float32)
        return Sample(crop, mask, crop, "template", ones, np.zeros_like(ones))


def label_folder(folder: Path, prefix: str, segmenter: Path | None, min_votes: int = MIN_VOTES,
                 ) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """(arrays for the .npz: crops, masks, names; counts by outcome)."""
    from engines import EngineConfig
    from realtime.face.align import estimate_alignment, reference_points, warp_to_crop
    from realtime.picture import unmask_picture
    from realtime.pipeline import PipelineConfig, build_pipeline, segment
    from realtime.tracking import TrackerConfig
    from realtime.types import Frame
    from training.faces import list_images

    paths = [p for p in list_images(folder) if p.name.startswith(prefix)]
    if not paths:
        raise ValueError(f"no images named {prefix}* in {folder}")
    counts = {"photos": len(paths), "not one face": 0, "plain": 0, "vote": 0, "none": 0}
    crops, masks, names, voted = [], [], [], []
    config = PipelineConfig(smoothing=None)
    with build_pipeline(config, engines=EngineConfig(segmenter_checkpoint=segmenter),
                        tracker=TrackerConfig(), log=lambda _: None) as pipeline:
        for index, path in enumerate(tqdm(paths, unit="photo")):
            image_bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
            faces = [] if image_bgr is None else unmask_picture(
                pipeline, Frame(index, 0.0, image_bgr)).faces
            if len(faces) != 1:
                counts["not one face"] += 1
                continue
            face = faces[0]
            alignment = estimate_alignment(reference_points(
                landmarks_xy=face.landmarks_xy, keypoints_xy=face.keypoints_xy),
                config.crop_size)
            crop = warp_to_crop(image_bgr, alignment)
            mask, how = teacher_label(lambda c: segment(pipeline.engines.segmenter, c), crop,
                                      min_votes)
            counts[how] += 1
            if mask is not None:
                crops.append(crop)
                masks.append(mask.astype(np.uint8))
                names.append(path.name)
                voted.append(how == "vote")
    if not crops:
        raise ValueError(f"no photo in {folder} could be labelled")
    return {"crops": np.stack(crops), "masks": np.stack(masks), "names": np.array(names),
            "voted": np.array(voted)}, counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.real_labels",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("folder", type=Path, help="real masked photos, one face each")
    parser.add_argument("--out", type=Path, required=True, help=".npz to write")
    parser.add_argument("--prefix", default="train_",
                        help="label only photos whose names start with this (default: train_)")
    parser.add_argument("--segmenter", type=Path, help="default: the bundled weights")
    parser.add_argument("--min-votes", type=int, default=MIN_VOTES, metavar="N",
                        help=f"transformed crops that must pass where the plain one does not "
                             f"(default {MIN_VOTES}; 0: the plain crop's covering only)")
    args = parser.parse_args(argv)
    if not args.folder.is_dir():
        print(f"error: folder not found: {args.folder}", file=sys.stderr)
        return 1
    try:
        arrays, counts = label_folder(args.folder, args.prefix, args.segmenter, args.min_votes)
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".tmp.npz")
    np.savez_compressed(tmp, **arrays)
    tmp.replace(args.out)
    print(f"{args.out}: {len(arrays['crops'])} labelled; " + ", ".join(
        f"{k} {v}" for k, v in counts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
