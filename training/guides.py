"""Landmark guides for training and evaluating a guided generator
(``realtime.face.guide``).

Training draws the guide from the clean face's landmarks, moved as the face mesh moves them
when a covering hides the lower face (``jittered``), and sometimes leaves it empty, as when
the mesh fails. The evaluation draws it from the mesh run on the masked crop, as the product
sees it (``mesh_guides``), never from the clean face.

    guide_hw = jittered_guide(landmarks_xy, 128, np.random.default_rng(k))
    guides_hw = mesh_guides(masked_rgb_batch)               # (N, S, S): the mesh's view
"""

from __future__ import annotations

from functools import cache

import numpy as np

from realtime.face import mesh
from realtime.face.guide import draw_guide, draw_guides

_LIPS = sorted({i for edge in mesh.LIPS_EDGES for i in edge})

EMPTY_P = 0.1
"""Share of training guides left empty: a generator that gets none must still paint."""
SHIFT_MEAN_PX = (0.0, -1.5)
SHIFT_SD_PX = (2.0, 2.5)
"""The drawn lower face's offset (crop pixels at 128 px, x and y): measured with the face
mesh on 126 template-masked ``celeba_crops`` (``/work/scripts/mesh_err.py`` in the model
card), its lips sit 2.4 px too high on average, with a per-face spread of 2.1 / 3.1 px, and
its lips, nose and jaw points lie 4.2 / 2.7 / 4.5 px from the clean face's (0.4 / 0.4 / 0.7
on the unmasked crops)."""
LIPS_SHIFT_SD_PX = 1.0
"""The lips' own offset on top of the face's."""
SCALE_SD = 0.04
"""Standard deviation of the drawn scale about the nose tip."""
POINT_PX = 0.8
"""Standard deviation of each point's own error."""
MOUTH_SD = 0.35
"""Standard deviation of the lips' height, as a fraction of itself: the mesh under a
covering guesses how open the mouth is."""


def jittered_guide(landmarks_xy: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """(S, S) float32 guide of a training face from its clean landmarks, moved about as the
    mesh under a covering moves them (the amounts above, scaled with ``size``); empty with
    ``EMPTY_P``."""
    if rng.random() < EMPTY_P:
        return np.zeros((size, size), np.float32)
    k = size / 128
    points = np.asarray(landmarks_xy, np.float64).copy()
    centre = points[_LIPS].mean(axis=0)
    points[_LIPS] = centre + (points[_LIPS] - centre) * np.array(
        [1.0, max(0.2, 1 + rng.normal(0, MOUTH_SD))])
    points[_LIPS] += rng.normal(0, LIPS_SHIFT_SD_PX * k, 2)
    pivot = points[mesh.NOSE_TIP]
    points = pivot + (points - pivot) * (1 + rng.normal(0, SCALE_SD))
    points += rng.normal(SHIFT_MEAN_PX, SHIFT_SD_PX) * k
    points += rng.normal(0, POINT_PX * k, points.shape)
    return draw_guide(points, size)


def mesh_guides(masked_rgb: np.ndarray) -> np.ndarray:
    """(N, S, S) float32 guides from the face mesh run on each masked crop (N, S, S, 3) uint8
    RGB, as the product's tracker runs it on the masked face; empty where it finds none."""
    landmarker = _landmarker()
    return draw_guides([landmarker(np.ascontiguousarray(c)) for c in masked_rgb],
                       masked_rgb.shape[1])


@cache
def _landmarker():
    """One face-mesh graph for the process (building one costs ~40 ms)."""
    from realtime.face.landmarks import CropLandmarker

    return CropLandmarker()
