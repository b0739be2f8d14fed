"""Alignment to the canonical crop and back."""

from __future__ import annotations

import numpy as np
import pytest

from realtime.face import mesh
from realtime.face.align import (
    CANONICAL_XY,
    crop_roi,
    estimate_alignment,
    reference_points,
    similarity_transform,
    warp_to_crop,
    warp_to_frame,
)


def _rotation(angle_deg: float, scale: float, shift_xy: tuple[float, float]) -> np.ndarray:
    a = np.deg2rad(angle_deg)
    rot = scale * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return np.hstack([rot, np.array(shift_xy)[:, None]])


@pytest.mark.parametrize("angle,scale,shift", [(0, 1, (0, 0)), (17, 2.5, (40, -12)),
                                               (-40, 0.3, (300, 200))])
def test_similarity_recovers_a_known_transform(angle, scale, shift) -> None:
    src = np.array([[10, 20], [50, 22], [31, 60], [30, 80]], dtype=np.float32)
    m = _rotation(angle, scale, shift)
    dst = src @ m[:, :2].T + m[:, 2]
    est = similarity_transform(src, dst, np.array([1, 1, 0.5, 0.5]))
    np.testing.assert_allclose(est, m, atol=1e-3)


def test_similarity_rejects_coincident_points() -> None:
    with pytest.raises(ValueError, match="coincide"):
        similarity_transform(np.zeros((4, 2)), np.ones((4, 2)))


def test_alignment_puts_points_on_the_canonical_layout() -> None:
    m = _rotation(12, 0.8, (120, 40))
    points = (CANONICAL_XY * 160) @ m[:, :2].T + m[:, 2]  # a face seen through a transform
    alignment = estimate_alignment(points.astype(np.float32), crop_size=128)
    mapped = points @ alignment.matrix[:, :2].T + alignment.matrix[:, 2]
    np.testing.assert_allclose(mapped, CANONICAL_XY * 128, atol=1e-2)
    # the inverse is an inverse
    back = mapped @ alignment.inverse[:, :2].T + alignment.inverse[:, 2]
    np.testing.assert_allclose(back, points, atol=1e-2)


def test_crop_and_inverse_round_trip_pixels() -> None:
    rng = np.random.default_rng(0)
    frame = (rng.random((240, 320, 3)) * 255).astype(np.uint8)
    frame = np.ascontiguousarray(np.repeat(np.repeat(frame[::8, ::8], 8, 0), 8, 1))  # smooth
    m = _rotation(-8, 1.3, (150, 90))
    points = (CANONICAL_XY * 100) @ m[:, :2].T + m[:, 2]
    alignment = estimate_alignment(points.astype(np.float32), crop_size=128)
    crop_rgb = warp_to_crop(frame, alignment)
    assert crop_rgb.shape == (128, 128, 3)
    roi = crop_roi(alignment, (320, 240))
    assert roi is not None
    x0, y0, x1, y1 = roi
    back_bgr = warp_to_frame(crop_rgb[..., ::-1].copy(), alignment, roi)
    inside = warp_to_frame(np.ones((128, 128), np.float32), alignment, roi) > 0.999
    diff = np.abs(back_bgr.astype(int) - frame[y0:y1, x0:x1].astype(int))[inside]
    assert inside.sum() > 5000
    assert np.median(diff) <= 8  # bilinear twice over a blocky image


def test_reference_points_fall_back_to_detector_keypoints() -> None:
    keypoints = np.arange(12, dtype=np.float32).reshape(6, 2)
    np.testing.assert_array_equal(
        reference_points(landmarks_xy=None, keypoints_xy=keypoints), keypoints[:4])
    landmarks_xy = np.zeros((mesh.NUM_LANDMARKS, 2), np.float32)
    landmarks_xy[list(mesh.RIGHT_EYE[:2])] = [[10, 10], [20, 10]]
    pts = reference_points(landmarks_xy=landmarks_xy, keypoints_xy=keypoints)
    np.testing.assert_allclose(pts[0], [15, 10])


def test_crop_roi_off_frame_is_none() -> None:
    points = CANONICAL_XY * 50 + 5000
    alignment = estimate_alignment(points.astype(np.float32), crop_size=128)
    assert crop_roi(alignment, (640, 360)) is None
