"""Fixtures the tracker's and the face leaf's tests share: real faces from ../shared/data."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from realtime.face import mesh

CELEBA_FILES = ["validation_1002.png", "validation_1003.png", "validation_1016.png"]
OUTER_EYE_CORNERS = (mesh.RIGHT_EYE[0], mesh.LEFT_EYE[1])


@pytest.fixture(scope="session")
def celeba_crops_rgb(shared_data: Path) -> list[np.ndarray]:
    folder = shared_data / "faces" / "celeba_crops"
    return [cv2.cvtColor(cv2.imread(str(folder / n)), cv2.COLOR_BGR2RGB) for n in CELEBA_FILES]


@pytest.fixture(scope="session")
def face_frame_bgr(celeba_crops_rgb: list[np.ndarray]) -> np.ndarray:
    """One real face, scaled and padded so that the detector sees it comfortably."""
    crop_bgr = cv2.resize(cv2.cvtColor(celeba_crops_rgb[0], cv2.COLOR_RGB2BGR), (96, 96))
    return cv2.copyMakeBorder(crop_bgr, 52, 52, 52, 52, cv2.BORDER_REPLICATE)


@pytest.fixture(scope="session")
def eye_distances() -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """Per-landmark distance between two sets, as a fraction of the distance between the outer
    eye corners of the first."""
    def distances(landmarks_a: np.ndarray, landmarks_b: np.ndarray) -> np.ndarray:
        eye_distance = np.linalg.norm(np.subtract(*landmarks_a[list(OUTER_EYE_CORNERS)]))
        return np.linalg.norm(landmarks_a - landmarks_b, axis=1) / eye_distance
    return distances
