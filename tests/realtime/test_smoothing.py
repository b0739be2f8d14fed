"""Per-track temporal smoothing of masks and painted crops."""

from __future__ import annotations

import numpy as np
import pytest

from realtime.face.align import CANONICAL_XY, estimate_alignment
from realtime.smoothing import MaskSmoother, MaskSmoothers, SmoothingConfig


def _alignment(shift_x: float = 0.0, scale: float = 1.0):
    return estimate_alignment((CANONICAL_XY * 100 * scale + [200 + shift_x, 100]).astype(
        np.float32), crop_size=64)


def _truth() -> np.ndarray:
    mask = np.zeros((64, 64), np.float32)
    mask[36:, 12:52] = 1
    return mask


def test_noisy_masks_settle_to_the_truth() -> None:
    rng = np.random.default_rng(1)
    truth = _truth()
    smoother = MaskSmoother(SmoothingConfig(alpha=0.3))
    raw_flips, smooth_flips, prev_raw, prev_smooth = 0, 0, None, None
    for _ in range(60):
        prob = np.clip(truth * 0.8 + 0.1 + rng.normal(0, 0.25, truth.shape), 0, 1)
        raw = prob > 0.5
        out = smoother.update(prob.astype(np.float32), _alignment())
        if prev_raw is not None:
            raw_flips += int((raw != prev_raw).sum())
            smooth_flips += int((out != prev_smooth).sum())
        prev_raw, prev_smooth = raw, out
    assert np.mean(out == truth) > 0.99
    assert smooth_flips < raw_flips / 20  # far steadier than thresholding each frame


def test_alpha_one_is_per_frame_with_hysteresis_only() -> None:
    smoother = MaskSmoother(SmoothingConfig(alpha=1.0, on_threshold=0.5, off_threshold=0.5))
    truth = _truth()
    smoother.update(truth, _alignment())
    out = smoother.update(1 - truth, _alignment())
    np.testing.assert_array_equal(out, 1 - truth)


def test_a_jump_resets_the_history() -> None:
    smoother = MaskSmoother(SmoothingConfig(alpha=0.1))
    truth = _truth()
    for _ in range(10):
        smoother.update(truth, _alignment())
    # small motion keeps history: one contradicting frame barely changes the mask
    assert smoother.update(1 - truth, _alignment(shift_x=3)).sum() > truth.sum() * 0.9
    # a jump across the frame starts over from the new frame
    out = smoother.update(1 - truth, _alignment(shift_x=400))
    np.testing.assert_array_equal(out, 1 - truth)
    out = smoother.update(truth, _alignment(shift_x=400, scale=2.0))
    np.testing.assert_array_equal(out, truth)


def test_new_track_starts_fresh_and_dropped_tracks_are_forgotten() -> None:
    smoothers = MaskSmoothers(SmoothingConfig(alpha=0.1))
    truth = _truth()
    for _ in range(10):
        smoothers.update(1, truth, _alignment())
    out = smoothers.update(2, 1 - truth, _alignment())
    np.testing.assert_array_equal(out, 1 - truth)  # track 2 does not inherit track 1
    smoothers.prune({2})
    out = smoothers.update(1, 1 - truth, _alignment())
    np.testing.assert_array_equal(out, 1 - truth)  # track 1 was forgotten


@pytest.mark.parametrize("kwargs,match", [
    ({"alpha": 0.0}, "alpha"), ({"alpha": 1.5}, "alpha"),
    ({"on_threshold": 0.3, "off_threshold": 0.6}, "thresholds"),
    ({"jump_fraction": 0.0}, "jump_fraction"),
    ({"paint_alpha": 0.0}, "paint_alpha"), ({"paint_alpha": 1.01}, "paint_alpha"),
])
def test_config_validation(kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        SmoothingConfig(**kwargs)


def _painted(value: int, size: int = 64) -> np.ndarray:
    return np.full((size, size, 3), value, np.uint8)


def _noisy_paint(rng: np.random.Generator) -> np.ndarray:
    """A static painted face whose texture shimmers the way the generator's does."""
    base = np.tile(np.linspace(60, 200, 64, dtype=np.float32)[None, :, None], (64, 1, 3))
    return np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("paint_alpha,steadier", [(0.5, True), (0.3, True), (1.0, False)])
def test_painted_crops_of_a_static_face_shimmer_less(paint_alpha, steadier) -> None:
    rng = np.random.default_rng(2)
    smoother = MaskSmoother(SmoothingConfig(paint_alpha=paint_alpha))
    raw_change = smooth_change = 0.0
    prev_raw = prev_out = None
    for _ in range(30):
        smoother.update(_truth(), _alignment())
        raw = _noisy_paint(rng)
        out = smoother.smooth_painted(raw)
        assert out.dtype == np.uint8 and out.shape == raw.shape
        if prev_raw is not None:
            raw_change += np.abs(raw.astype(int) - prev_raw).mean()
            smooth_change += np.abs(out.astype(int) - prev_out).mean()
        prev_raw, prev_out = raw, out
    if steadier:
        assert smooth_change < 0.8 * raw_change
    else:
        assert smooth_change == raw_change  # 1.0 shows each frame's paint alone


def test_the_first_painted_crop_passes_through_unchanged() -> None:
    smoother = MaskSmoother(SmoothingConfig())
    smoother.update(_truth(), _alignment())
    crop = _noisy_paint(np.random.default_rng(3))
    np.testing.assert_array_equal(smoother.smooth_painted(crop), crop)


def test_the_painted_average_follows_the_newest_crop_by_its_weight() -> None:
    smoother = MaskSmoother(SmoothingConfig(paint_alpha=0.25))
    smoother.update(_truth(), _alignment())
    smoother.smooth_painted(_painted(0))
    out = smoother.smooth_painted(_painted(200))
    assert np.all(out == 50)
    out = smoother.smooth_painted(_painted(200))
    assert np.all(out == 88)  # 50 + 0.25 * 150 = 87.5, rounded half to even


@pytest.mark.parametrize("moved", [
    pytest.param({"shift_x": 400}, id="jump across the frame"),
    pytest.param({"scale": 2.0}, id="rescale"),
])
def test_a_jump_resets_the_painted_history(moved) -> None:
    smoother = MaskSmoother(SmoothingConfig(paint_alpha=0.1))
    for _ in range(5):
        smoother.update(_truth(), _alignment())
        smoother.smooth_painted(_painted(0))
    smoother.update(_truth(), _alignment(shift_x=3))  # small motion keeps the history
    assert smoother.smooth_painted(_painted(200)).max() < 30
    smoother.update(_truth(), _alignment(**moved))
    np.testing.assert_array_equal(smoother.smooth_painted(_painted(200)), _painted(200))


def test_reset_and_prune_forget_the_painted_history() -> None:
    smoothers = MaskSmoothers(SmoothingConfig(paint_alpha=0.1))
    for track_id in (1, 2):
        smoothers.update(track_id, _truth(), _alignment())
        smoothers.smooth_painted(track_id, _painted(0))
    smoothers.update(2, _truth(), _alignment())
    assert smoothers.smooth_painted(2, _painted(200)).max() == 20  # track 2 kept its history
    smoothers.prune({2})
    smoothers.update(1, _truth(), _alignment())
    np.testing.assert_array_equal(smoothers.smooth_painted(1, _painted(200)), _painted(200))
    smoothers.clear()
    smoothers.update(2, _truth(), _alignment())
    np.testing.assert_array_equal(smoothers.smooth_painted(2, _painted(200)), _painted(200))


def test_painting_before_the_mask_update_is_refused() -> None:
    with pytest.raises(RuntimeError, match="update"):
        MaskSmoothers(SmoothingConfig()).smooth_painted(7, _painted(0))


def test_transposed_crops_from_the_network_are_accepted() -> None:
    # from_network hands over N x H x W x 3 views of an N x 3 x H x W batch
    smoother = MaskSmoother(SmoothingConfig(paint_alpha=0.5))
    smoother.update(_truth(), _alignment())
    batch_chw = np.zeros((1, 3, 64, 64), np.uint8)
    smoother.smooth_painted(batch_chw.transpose(0, 2, 3, 1)[0])
    batch_chw[:] = 100
    out = smoother.smooth_painted(batch_chw.transpose(0, 2, 3, 1)[0])
    assert np.all(out == 50)
