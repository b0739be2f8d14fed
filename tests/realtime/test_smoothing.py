"""Per-track temporal mask smoothing."""

from __future__ import annotations

import numpy as np
import pytest

from realtime.align import CANONICAL_XY, estimate_alignment
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
])
def test_config_validation(kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        SmoothingConfig(**kwargs)
