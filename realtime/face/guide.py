"""The generator's landmark guide: a line drawing of the lower face (lips, nose, jaw) from
the face-mesh landmarks, one extra input channel. The mesh places these even under a
covering, from the eyes, the brow and the covering's outline, so the painted mouth and nose
follow the person's pose and proportions instead of an average face.

    guide_hw = draw_guide(landmarks_crop_xy, 128)      # (128, 128) float32 in [0, 1]
    guides_hw = draw_guides([marks_or_none, ...], 128) # None: an empty guide
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from realtime.face import mesh

_SHIFT = 2
"""Sub-pixel bits of the line end points (OpenCV's ``shift``): quarter-pixel placement."""
_EDGES = np.asarray(mesh.GUIDE_EDGES, np.int64)


def draw_guide(landmarks_xy: np.ndarray | None, size: int) -> np.ndarray:
    """(size, size) float32 in [0, 1]: anti-aliased 1 px lines along ``mesh.GUIDE_EDGES`` of
    the (468, 2) landmarks in crop pixels; all zeros for None (no landmarks), which a guided
    generator is trained to paint without."""
    canvas = np.zeros((size, size), np.uint8)
    if landmarks_xy is None:
        return canvas.astype(np.float32)
    points = np.round(np.asarray(landmarks_xy, np.float64) * (1 << _SHIFT)).astype(np.int32)
    segments = list(points[_EDGES])  # (E, 2, 2): one two-point polyline per edge
    cv2.polylines(canvas, segments, False, 255, 1, cv2.LINE_AA, _SHIFT)
    return canvas.astype(np.float32) / 255.0


def draw_guides(landmarks: Sequence[np.ndarray | None], size: int) -> np.ndarray:
    """``draw_guide`` of each face: (N, size, size) float32."""
    if not len(landmarks):
        return np.zeros((0, size, size), np.float32)
    return np.stack([draw_guide(m, size) for m in landmarks])
