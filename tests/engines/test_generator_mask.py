"""The band generator's three-level mask, as the pipeline and the evaluation build it."""

from __future__ import annotations

import cv2
import numpy as np

from engines.base import BAND_LEVEL, generator_mask


def _square(lo: int, hi: int, size: int = 64) -> np.ndarray:
    m = np.zeros((size, size), np.float32)
    m[lo:hi, lo:hi] = 1
    return m


def test_ring_straddles_the_segmented_edge() -> None:
    segmented = _square(20, 40)
    painted = cv2.dilate(segmented, np.ones((5, 5), np.uint8))  # grown 2 px
    channel = generator_mask(segmented[None], painted[None])[0]
    assert set(np.unique(channel)) == {0.0, BAND_LEVEL, 1.0}
    np.testing.assert_array_equal(channel == 1, _square(21, 39) > 0)  # 1 px inside the edge
    np.testing.assert_array_equal(channel > 0, painted > 0)  # everything painted, no more
    assert channel[20, 30] == BAND_LEVEL and channel[18, 30] == BAND_LEVEL  # both sides


def test_nothing_segmented_is_nothing_to_paint() -> None:
    empty = np.zeros((2, 32, 32), np.float32)
    assert not generator_mask(empty, empty).any()
    assert generator_mask(empty[:0], empty[:0]).shape == (0, 32, 32)


def test_core_never_exceeds_the_painted_region() -> None:
    segmented = _square(0, 64)  # the eye line cuts the painted region, not the segmentation
    painted = segmented.copy()
    painted[:10] = 0
    channel = generator_mask(segmented[None], painted[None])[0]
    assert not channel[:10].any() and (channel[12:-2, 2:-2] == 1).all()
