"""Carrying a face's landmarks from frame to frame by optical flow, instead of the mesh.

    patch = flow_patch(frame_rgb, landmarks_xy)            # after the mesh found them
    moved_xy = propagate_landmarks(patch, next_frame_rgb, landmarks_xy,
                                   max_error=0.03, max_scale_change=0.1)   # or None

Lucas-Kanade follows a few textured points (``mesh.FLOW_POINTS``) on a small grayscale patch;
a similarity fitted to those that also come back moves all 468 landmarks. ``FaceTracker``
(realtime.tracking) runs the mesh instead where the check fails.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from realtime.face import mesh
from realtime.face.align import affine_points, square_affine

FLOW_PATCH_PX = 128
"""Side of the grayscale square optical flow runs on: a fixed size makes its cost (~2 ms a
face) independent of the face's and the frame's size."""
FLOW_PATCH_SCALE = 1.5
"""Patch side / the landmarks' longer extent: room for the face to move within it."""
FLOW_MIN_INLIERS = 0.6
"""Least fraction of the followed points that must move with the fitted similarity."""
_LK_PARAMS = {
    "winSize": (11, 11),
    "maxLevel": 3,
    "criteria": (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 20, 0.03),
}
"""Pyramidal Lucas-Kanade on the 128 px patch: an 11 px window is ~1/4 of the eye distance,
and 3 pyramid levels reach ~40 px (a third of the patch) of motion per frame."""


@dataclass(frozen=True)
class FlowPatch:
    """A grayscale square around a face in one frame, to follow its landmarks into the next."""

    to_patch: np.ndarray
    """float32 (2, 3) affine from frame pixels to patch pixels."""
    patch_gray: np.ndarray
    """uint8 (FLOW_PATCH_PX, FLOW_PATCH_PX) grayscale patch."""


def flow_patch(frame_rgb: np.ndarray, landmarks_xy: np.ndarray) -> FlowPatch:
    """The patch around a face's landmarks in this frame."""
    low_xy, high_xy = landmarks_xy.min(axis=0), landmarks_xy.max(axis=0)
    side_px = FLOW_PATCH_SCALE * float(max(high_xy - low_xy))
    to_patch = square_affine((low_xy + high_xy) / 2, max(side_px, 1.0), FLOW_PATCH_PX)
    return FlowPatch(to_patch, _gray_patch(frame_rgb, to_patch))


def _gray_patch(frame_rgb: np.ndarray, to_patch: np.ndarray) -> np.ndarray:
    # Warping first converts 128 x 128 pixels to gray instead of the whole frame.
    patch_rgb = cv2.warpAffine(
        frame_rgb, to_patch, (FLOW_PATCH_PX, FLOW_PATCH_PX), flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE)
    return cv2.cvtColor(patch_rgb, cv2.COLOR_RGB2GRAY)


def propagate_landmarks(
    previous: FlowPatch,
    frame_rgb: np.ndarray,
    landmarks_xy: np.ndarray,
    *,
    max_error: float,
    max_scale_change: float,
    point_ids: tuple[int, ...] = mesh.FLOW_POINTS,
) -> np.ndarray | None:
    """The face's landmarks (468, 2) moved into this frame by optical flow, or None.

    The points of ``point_ids`` are followed by Lucas-Kanade from ``previous`` into the same
    square of this frame and back; a similarity fitted with RANSAC to those that come back
    within ``max_error`` x the eye distance moves every landmark. None, so that the mesh runs
    instead, when too few points agree or the scale changed by more than ``max_scale_change``
    (a zoom that fast is more likely a tracking failure).
    """
    start_xy = affine_points(previous.to_patch, landmarks_xy[list(point_ids)])
    max_error_px = max_error * _eye_distance_px(start_xy, point_ids)
    end_xy, tracked = _tracked_points(
        previous.patch_gray, _gray_patch(frame_rgb, previous.to_patch), start_xy, max_error_px)
    min_inliers = FLOW_MIN_INLIERS * len(point_ids)
    if tracked.sum() < min_inliers:
        return None
    motion, inliers = cv2.estimateAffinePartial2D(
        start_xy[tracked], end_xy[tracked], method=cv2.RANSAC,
        ransacReprojThreshold=max_error_px)
    if motion is None or inliers.sum() < min_inliers:
        return None
    if abs(np.sqrt(abs(np.linalg.det(motion[:, :2]))) - 1.0) > max_scale_change:
        return None
    to_frame = cv2.invertAffineTransform(previous.to_patch)
    return affine_points(to_frame, affine_points(motion, affine_points(
        previous.to_patch, landmarks_xy)))


def _tracked_points(
    previous_gray: np.ndarray, gray: np.ndarray, start_xy: np.ndarray, max_error_px: float
) -> tuple[np.ndarray, np.ndarray]:
    """Where Lucas-Kanade moves ``start_xy``, and which points come back to within
    ``max_error_px`` of where they started when followed backwards (a point that drifted onto
    a different texture, or across an occlusion, does not)."""
    end_xy, found, _ = cv2.calcOpticalFlowPyrLK(previous_gray, gray, start_xy, None, **_LK_PARAMS)
    back_xy, found_back, _ = cv2.calcOpticalFlowPyrLK(
        gray, previous_gray, end_xy, None, **_LK_PARAMS)
    error_px = np.linalg.norm(back_xy - start_xy, axis=1)
    tracked = (found.ravel() == 1) & (found_back.ravel() == 1) & (error_px <= max_error_px)
    return end_xy, tracked


def _eye_distance_px(points_xy: np.ndarray, point_ids: tuple[int, ...]) -> float:
    """Distance between the outer eye corners, which every flow point set includes."""
    outer = [point_ids.index(mesh.RIGHT_EYE[0]), point_ids.index(mesh.LEFT_EYE[1])]
    return float(np.linalg.norm(points_xy[outer[0]] - points_xy[outer[1]]))

