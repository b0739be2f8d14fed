"""The face mesh on tight crops, and reading its landmarks fast."""

from __future__ import annotations

import numpy as np
import pytest
from mediapipe.framework.formats import landmark_pb2

from realtime.face import mesh
from realtime.face.landmarks import CropLandmarker, _normalized_xy, detect_landmarks_on_crop

OUTER_EYE_CORNERS = (mesh.RIGHT_EYE[0], mesh.LEFT_EYE[1])


def test_landmarks_on_celeba_crops(celeba_crops_rgb: list[np.ndarray]) -> None:
    with CropLandmarker() as landmarker:
        for crop_rgb in celeba_crops_rgb:
            landmarks_xy = detect_landmarks_on_crop(crop_rgb, landmarker)
            assert landmarks_xy is not None and landmarks_xy.shape == (mesh.NUM_LANDMARKS, 2)
            height, width = crop_rgb.shape[:2]
            # a tight crop can cut the chin, so allow landmarks a little past its edges
            margin = 0.1 * max(height, width)
            assert (landmarks_xy >= -margin).all()
            assert (landmarks_xy <= np.array([width, height]) + margin).all()
            right_eye_x, left_eye_x = landmarks_xy[list(OUTER_EYE_CORNERS), 0]
            assert right_eye_x < width / 2 < left_eye_x  # the subject's right eye is on the left
            assert landmarks_xy[mesh.RIGHT_EYE[0], 1] < landmarks_xy[mesh.INNER_LIPS[0], 1]


def test_landmarks_on_crop_without_landmarker(celeba_crops_rgb: list[np.ndarray]) -> None:
    assert detect_landmarks_on_crop(celeba_crops_rgb[1]).shape == (mesh.NUM_LANDMARKS, 2)
    assert detect_landmarks_on_crop(np.zeros((80, 80, 3), np.uint8)) is None


@pytest.mark.parametrize("with_visibility", [False, True])
def test_landmark_parsing_matches_protobuf(with_visibility: bool) -> None:
    rng = np.random.default_rng(0)
    points = rng.uniform(-0.2, 1.2, size=(mesh.NUM_LANDMARKS, 3)).astype(np.float32)
    landmark_list = landmark_pb2.NormalizedLandmarkList()
    for x, y, z in points:
        point = landmark_list.landmark.add(x=x, y=y, z=z)
        if with_visibility:
            point.visibility = 0.9  # a layout the fast path does not know
    np.testing.assert_array_equal(_normalized_xy(landmark_list), points[:, :2])
