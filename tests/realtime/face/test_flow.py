"""Optical flow of landmarks: a known motion is followed, another picture is refused."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from realtime.face import mesh
from realtime.face.flow import flow_patch, propagate_landmarks
from realtime.face.landmarks import CropLandmarker


@pytest.mark.parametrize(
    "shift_xy, angle_deg, scale, follows",
    [
        ((0.0, 0.0), 0.0, 1.0, True),
        ((6.0, -4.0), 0.0, 1.0, True),
        ((-9.0, 3.0), 8.0, 1.05, True),
        ((3.0, 2.0), 0.0, 1.3, False),  # a zoom too fast for one frame
    ],
)
def test_propagate_landmarks_follows_a_known_motion(
    face_frame_bgr: np.ndarray, eye_distances, shift_xy: tuple[float, float],
    angle_deg: float, scale: float, follows: bool,
) -> None:
    frame_rgb = cv2.cvtColor(face_frame_bgr, cv2.COLOR_BGR2RGB)
    with CropLandmarker() as landmarker:
        landmarks_xy = landmarker(frame_rgb)
    motion = cv2.getRotationMatrix2D((100.0, 100.0), angle_deg, scale)
    motion[:, 2] += shift_xy
    moved_rgb = cv2.warpAffine(frame_rgb, motion, (200, 200), borderMode=cv2.BORDER_REPLICATE)
    moved_xy = propagate_landmarks(
        flow_patch(frame_rgb, landmarks_xy), moved_rgb, landmarks_xy,
        max_error=0.03, max_scale_change=0.1)
    if not follows:
        assert moved_xy is None
        return
    expected_xy = landmarks_xy @ motion[:, :2].T + motion[:, 2]
    assert moved_xy.shape == (mesh.NUM_LANDMARKS, 2) and moved_xy.dtype == np.float32
    assert eye_distances(expected_xy, moved_xy).max() < 0.03


def test_propagate_landmarks_rejects_another_picture(face_frame_bgr: np.ndarray) -> None:
    frame_rgb = cv2.cvtColor(face_frame_bgr, cv2.COLOR_BGR2RGB)
    with CropLandmarker() as landmarker:
        landmarks_xy = landmarker(frame_rgb)
    noise_rgb = np.random.default_rng(0).integers(0, 256, frame_rgb.shape, dtype=np.uint8)
    assert propagate_landmarks(
        flow_patch(frame_rgb, landmarks_xy), noise_rgb, landmarks_xy,
        max_error=0.03, max_scale_change=0.1) is None
