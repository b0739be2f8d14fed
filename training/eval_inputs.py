"""The fixed inputs ``training.evaluate`` scores, in batches: the occlusion recipes, the
paper's rectangles and the negatives (bare faces, burned-in overlays, distractors).

Every draw is seeded by ``EvalConfig.seed`` and the sample's index, so that two runs, and
two checkpoints, are scored on the same pixels.

    for ks, batch in fixed_batches(faces, occluders, generator_occlusions(mix), config, "x"):
        ...
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from training.eval_report import PAPER_BANDS

if TYPE_CHECKING:
    from training.evaluate import EvalConfig


def batches(count: int, make: Callable[[range], dict], config: EvalConfig,
            desc: str) -> Iterator[tuple[range, dict]]:
    """(stream indices, ``make(indices)``) per ``config.batch_size``, with a progress bar."""
    from tqdm import tqdm

    starts = range(0, count, config.batch_size)
    for start in tqdm(starts, desc=desc, disable=not config.progress, unit="batch"):
        ks = range(start, min(start + config.batch_size, count))
        yield ks, make(ks)


def fixed_batches(faces, occluders, occlusion, config: EvalConfig,
                  desc: str) -> Iterator[tuple[range, dict]]:
    """``faces`` in order, each with its fixed occlusion (``config.seed``), as batches."""
    from training.data import OcclusionDataset

    dataset = OcclusionDataset(faces, occluders, occlusion, seed=config.seed, shuffle=False)
    yield from batches(len(dataset), lambda ks: dataset.collate([dataset.sample(k) for k in ks]),
                       config, desc)


def generator_occlusions(mix: tuple[float, float, float]):
    """GENERATOR_MIX with these (template, rectangle, freeform) shares, never re-lit or
    mirrored, so that runs compare."""
    from training.data import GENERATOR_MIX

    return replace(GENERATOR_MIX, template_p=mix[0], rectangle_p=mix[1], freeform_p=mix[2],
                   photometric_p=0.0, flip_p=0.0)


def segmenter_templates():
    """SEGMENTER_MIX's coverings alone: no bare faces, distractors, damage, re-lighting or
    mirroring."""
    from training.data import SEGMENTER_MIX

    return replace(SEGMENTER_MIX, clean_p=0.0, distractor_p=0.0, degrade_p=0.0,
                   photometric_p=0.0, flip_p=0.0)


def paper_sample(faces, k: int, size: int, seed: int):
    """Sample ``k`` of the paper setting: face ``k % len(faces)`` with one black rectangle in
    band ``k % 2`` of ``PAPER_BANDS``."""
    from training.data import Sample

    i, (lo, hi, _) = k % len(faces), PAPER_BANDS[k % len(PAPER_BANDS)]
    mask_hw = paper_rectangle(faces.landmarks_xy[i], size, (lo, hi),
                              np.random.default_rng([seed, 5, k]))
    clean = faces.crops_rgb[i]
    masked = (clean * (1 - mask_hw[..., None])).astype(np.uint8)
    return Sample(masked, mask_hw, clean, "rectangle", faces.valid(i))


def paper_rectangle(landmarks_xy: np.ndarray, size: int, band: tuple[float, float],
                    rng: np.random.Generator, tries: int = 8) -> np.ndarray:
    """A rectangle in the face box whose share of the whole crop lands in ``band`` (a few draws;
    the last one is kept even if clipping at the box left it outside)."""
    from training.occluders import face_box_xyxy, rectangle_mask

    x0, y0, x1, y1 = face_box_xyxy(landmarks_xy, size)
    box_share = (x1 - x0) * (y1 - y0) / size**2
    for _ in range(tries):
        coverage = min(rng.uniform(*band) / box_share, 0.99)
        mask_hw = rectangle_mask(landmarks_xy, size, (coverage, coverage), rng)
        if band[0] <= mask_hw.mean() < band[1]:
            break
    return mask_hw


def negative_crop(faces, i: int, condition: str, seed: int) -> np.ndarray:
    """Face ``i`` bare, with burned-in overlays, or with two distractors of any kind."""
    from training.distractors import draw_distractors, overlay

    crop, landmarks = faces.crops_rgb[i], faces.landmarks_xy[i]
    if condition == "overlays":
        drawn = overlay(crop.astype(np.float32), landmarks, np.random.default_rng([seed, 3, i]))
        return np.clip(np.rint(drawn), 0, 255).astype(np.uint8)
    if condition == "distractors":
        rng = np.random.default_rng([seed, 4, i])
        with np.errstate(over="ignore"):  # a hard shadow's logistic saturates, correctly
            return draw_distractors(crop, landmarks, rng, count=2, with_covering=False)[0]
    return crop
