"""Crops the face tracker placed wrongly: the face shifted, turned or scaled in its crop.

Training faces are aligned by the face mesh on whole photos, so a segmenter trained on them
only ever sees the mouth where the canonical crop puts it, and learns that position as much
as the covering's look. In the real masked photos the mesh sometimes takes a brow for an eye
(a 100 px N95 photo cut at the forehead): the crop's eye line then lies a whole nose above
the real eyes, and a segmenter that goes by position marks the eyes as covering.
``misalign`` moves a sample's face about in its crop so that the look has to decide:

    (masked_rgb, clean_rgb), (mask_hw,), valid_hw = misalign(
        [masked_rgb, clean_rgb], [mask_hw], valid_hw, rng)

The crop beyond the cached one repeats its edge, as the pipeline's replicated border does,
and is marked invalid; labels go through the same warp (covering where the warped label is
more than half covering). ``random_similarity`` and ``warp_crops`` also jitter the real
photos' samples (``training.real_labels``), with smaller ranges.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

SHIFT = (0.10, 0.16)
"""Largest shift (x, y) as a fraction of the crop side; the y one is about a nose's length."""
SCALE = (0.80, 1.20)
"""Range of the face's scale about the crop centre."""
TURN_DEGREES = 15.0
"""Largest in-plane rotation."""


def random_similarity(size: int, rng: np.random.Generator, *, degrees: float,
                      scale: tuple[float, float], shift: float | tuple[float, float],
                      ) -> np.ndarray:
    """(2, 3) float64 similarity for an (S, S) crop: a turn of up to ``degrees`` and a scale
    drawn from ``scale`` about the centre, then a shift of up to ``shift`` (x, y) times S."""
    matrix = cv2.getRotationMatrix2D((size / 2, size / 2), rng.uniform(-degrees, degrees),
                                     rng.uniform(*scale))
    limit = np.broadcast_to(np.asarray(shift, np.float64), (2,))
    matrix[:, 2] += rng.uniform(-limit, limit) * size
    return matrix


def misalign_matrix(size: int, rng: np.random.Generator) -> np.ndarray:
    """The misplaced crop's similarity: ``TURN_DEGREES``, ``SCALE`` and ``SHIFT``."""
    return random_similarity(size, rng, degrees=TURN_DEGREES, scale=SCALE, shift=SHIFT)


def _warp(image: np.ndarray, matrix: np.ndarray, border: int) -> np.ndarray:
    size = image.shape[1], image.shape[0]
    return cv2.warpAffine(np.ascontiguousarray(image), matrix, size, flags=cv2.INTER_LINEAR,
                          borderMode=border)


def warp_crops(matrix: np.ndarray, images: Sequence[np.ndarray],
               labels_hw: Sequence[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(each image warped by ``matrix`` with a replicated border; each label the same, float32
    in {0, 1}: covering where the warped label is more than half covering)."""
    warped = [_warp(image, matrix, cv2.BORDER_REPLICATE) for image in images]
    labels = [(_warp(label.astype(np.float32), matrix, cv2.BORDER_REPLICATE) > 0.5)
              .astype(np.float32) for label in labels_hw]
    return warped, labels


def misalign(images: Sequence[np.ndarray], labels_hw: Sequence[np.ndarray],
             valid_hw: np.ndarray, rng: np.random.Generator,
             ) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
    """(each image (S, S[, C]) warped by one random similarity with a replicated border;
    each (S, S) label the same, kept in {0, 1}; the validity, 0 where the warp reaches past
    the cached crop or onto its invalid pixels)."""
    matrix = misalign_matrix(valid_hw.shape[0], rng)
    warped, labels = warp_crops(matrix, images, labels_hw)
    valid = _warp(valid_hw.astype(np.float32), matrix, cv2.BORDER_CONSTANT) > 0.999
    return warped, labels, valid.astype(np.float32)
