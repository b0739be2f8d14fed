"""Blending painted crops back: the feathered edge, Telea's baseline, the colour match."""

from __future__ import annotations

import numpy as np
import pytest

from realtime.composite import feather, match_colour, telea_inpaint


def test_feather_softens_the_edge() -> None:
    mask = np.zeros((32, 32), np.float32)
    mask[16:, :] = 1
    alpha = feather(mask, 3)
    assert alpha[31, 16] == pytest.approx(1.0, abs=1e-3)
    assert 0.0 < alpha[14, 16] < 1.0 and alpha[5, 16] == 0.0
    assert np.array_equal(feather(np.zeros((8, 8), np.float32), 3), np.zeros((8, 8)))


def test_telea_shapes() -> None:
    crops = np.full((2, 32, 32, 3), 90, np.uint8)
    crops[:, 20:] = 0
    masks = np.zeros((2, 32, 32), np.float32)
    masks[:, 20:] = 1
    out = telea_inpaint(crops, masks)
    assert out.shape == crops.shape and out[:, 25, 16].min() > 60


def test_colour_match_leaves_a_crop_without_a_hole_alone() -> None:
    painted = np.full((32, 32, 3), 200, np.uint8)
    assert match_colour(painted, np.zeros((32, 32), np.float32)) is painted


def test_colour_match_moves_the_hole_towards_the_ring_around_it_at_most_max_shift() -> None:
    painted = np.full((64, 64, 3), 100, np.uint8)
    mask = np.zeros((64, 64), np.float32)
    mask[16:48, 16:48] = 1
    painted[mask > 0] = 200  # a hole painted 100 levels too bright
    out = match_colour(painted, mask, max_shift=30.0)
    assert out[32, 32].tolist() == [170, 170, 170]
    assert np.array_equal(out[mask == 0], painted[mask == 0])  # only the hole changes
