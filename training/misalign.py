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
at least half covering).
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


def misalign_matrix(size: int, rng: np.random.Generator) -> np.ndarray:
    """(2, 3) float64 similarity: a random turn and scale about the centre, then a shift."""
    matrix = cv2.getRotationMatrix2D((size / 2, size / 2), rng.uniform(-TURN_DEGREES, TURN_DEGREES),
                                     rng.uniform(*SCALE))
    matrix[:, 2] += rng.uniform(-1, 1, 2) * np.asarray(SHIFT) * size
    return matrix


def misalign(images: Sequence[np.ndarray], labels_hw: Sequence[np.ndarray],
             valid_hw: np.ndarray, rng: np.random.Generator,
             ) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
    """(each image (S, S[, C]) warped by one random similarity with a replicated border;
    each (S, S) label the same, kept in {0, 1}; the validity, 0 where the warp reaches past
    the cached crop or onto its invalid pixels)."""
    size = valid_hw.shape[0]
    matrix = misalign_matrix(size, rng)

    def warp(image: np.ndarray, border: int) -> np.ndarray:
        return cv2.warpAffine(np.ascontiguousarray(image), matrix, (size, size),
                              flags=cv2.INTER_LINEAR, borderMode=border)

    warped = [warp(image, cv2.BORDER_REPLICATE) for image in images]
    labels = [(warp(label.astype(np.float32), cv2.BORDER_REPLICATE) >= 0.5).astype(np.float32)
              for label in labels_hw]
    valid = (warp(valid_hw.astype(np.float32), cv2.BORDER_CONSTANT) > 0.999).astype(np.float32)
    return warped, labels, valid
