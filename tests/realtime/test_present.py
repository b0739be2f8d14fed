"""The presentation stage: the tag, side by side, the mask tint and the status line."""

from __future__ import annotations

import numpy as np
import pytest

from realtime.present import (
    PresentConfig,
    draw_label,
    draw_status,
    overlay_mask,
    present,
    side_by_side,
)


def _noise(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (120, 160, 3), dtype=np.uint8)


def test_the_tag_lands_on_the_painted_half_of_a_side_by_side_frame() -> None:
    input_bgr, out_bgr = _noise(0), _noise(1)
    before = out_bgr.copy()
    both = present(input_bgr, out_bgr, None, PresentConfig(side_by_side=True), in_place=True)
    assert both.shape == (120, 320, 3)
    assert np.array_equal(both[:, :159], input_bgr[:, :159])  # the input half is untouched
    right = both[:, 161:]
    assert not np.array_equal(right[-30:, :80], before[-30:, 1:81])  # the tag is here
    assert np.array_equal(right[:60], before[:60, 1:])  # and only in its corner
    assert np.array_equal(out_bgr, before)  # the pipeline's frame is not drawn on
    plain = present(input_bgr, out_bgr, None, PresentConfig(), in_place=True)
    assert plain is out_bgr and not np.array_equal(out_bgr, before)  # no copy when allowed
    bare = PresentConfig(label=False)
    assert present(input_bgr, before, None, bare) is before  # nothing to draw: the frame itself


def test_show_mask_tints_the_masked_region_only_and_never_the_frame_given() -> None:
    out_bgr = np.full((120, 160, 3), 128, np.uint8)
    mask_hw = np.zeros((120, 160), np.float32)
    mask_hw[60:100, 40:120] = 1.0
    view = PresentConfig(label=False, show_mask=True)
    tinted = present(out_bgr, out_bgr, mask_hw, view, in_place=True)
    assert tinted is not out_bgr and (out_bgr == 128).all()
    assert not np.array_equal(tinted[70:90, 50:110], out_bgr[70:90, 50:110])
    assert np.array_equal(tinted[:50], out_bgr[:50])
    assert present(out_bgr, out_bgr, None, view) is out_bgr  # no mask made: nothing to tint
    np.testing.assert_array_equal(overlay_mask(out_bgr, np.zeros_like(mask_hw)), out_bgr)


def test_tint_and_tag_together_on_the_right_half() -> None:
    out_bgr = np.full((120, 160, 3), 128, np.uint8)
    mask_hw = np.zeros((120, 160), np.float32)
    mask_hw[10:40, 100:150] = 1.0
    both = present(out_bgr, out_bgr, mask_hw, PresentConfig(side_by_side=True, show_mask=True))
    assert (both[:, :159] == 128).all()  # neither tint nor tag on the input
    assert not (both[10:40, 260:310] == 128).all() and not (both[-10:, 165:200] == 128).all()


def test_side_by_side_has_a_divider() -> None:
    sbs = side_by_side(np.zeros((10, 7, 3), np.uint8), np.zeros((10, 7, 3), np.uint8))
    assert sbs.shape == (10, 14, 3) and (sbs[:, 6:8] == 255).all()


def test_status_line_is_drawn_top_left() -> None:
    frame_bgr = np.zeros((120, 160, 3), np.uint8)
    assert draw_status(frame_bgr, "30.0 fps  12 ms latency") is frame_bgr
    rows, _ = np.nonzero(frame_bgr.any(axis=2))
    assert rows.size and rows.max() < 40


@pytest.mark.parametrize("size_hw", [(64, 64), (48, 200), (360, 640), (2160, 3840)])
def test_draw_label_touches_only_the_bottom_left(size_hw: tuple[int, int]):
    height, width = size_hw
    before_bgr = np.full((height, width, 3), 200, np.uint8)
    after_bgr = draw_label(before_bgr.copy())
    rows, cols = np.nonzero((after_bgr != before_bgr).any(axis=2))
    assert rows.size > 0, "nothing was drawn"
    # Tiny frames need a relatively bigger tag to stay readable at all.
    assert rows.min() >= height * (0.5 if height < 100 else 0.85)
    assert cols.max() < width * (0.95 if width < 320 else 0.5)
    if height >= 360:  # legible: the tag is a few percent of the frame height
        assert 0.02 * height <= rows.max() - rows.min() <= 0.1 * height
    # Translucent: the box darkens what is under it instead of painting it over.
    assert after_bgr[rows, cols].min() > 0


@pytest.mark.parametrize("size_hw", [(1, 1), (2, 2), (1, 64), (64, 1), (3, 3), (8, 8), (32, 32)])
def test_draw_label_on_tiny_frames_never_fails(size_hw: tuple[int, int]):
    frame_bgr = np.full((*size_hw, 3), 200, np.uint8)
    out_bgr = draw_label(frame_bgr)  # a 1x1 PNG used to crash here (TypeError from None)
    assert out_bgr is frame_bgr and out_bgr.shape == (*size_hw, 3)
