"""The built-in sample: a masked face under a moving camera, made from a bundled photo.

    from realtime.demo_clip import demo_frames, render_demo_clip

    render_demo_clip(Path("demo_input.mp4"), seconds=4.0)   # H.264 mp4, 640 x 360, 25 fps
    for frame_bgr in demo_frames(seconds=1.0):              # the same frames, not encoded
        ...

    python -m realtime.demo_clip demo_input.mp4

The photo is scikit-image's public-domain astronaut (NASA), so nothing is downloaded. The face
mesh finds the face once; a light-blue surgical mask is painted onto it from the landmarks;
then a slow pan, a ~15% zoom in and out and a tilt of a few degrees make each frame.
Everything is deterministic: the same arguments give the same pixels.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import skimage.data

from realtime.face import mesh
from realtime.tracking import FaceTracker, TrackerConfig
from realtime.types import UnmaskError

MASK_RGB = np.array([160, 202, 228], dtype=np.float32)
"""Surgical-mask light blue."""
CAMERA_PERIOD_S = 4.0
"""One full cycle of the camera motion; clips of any length move the same way."""
FACE_FRACTION = 0.42
"""Face box side as a fraction of the shorter frame side at mean zoom."""


def draw_surgical_mask(image_rgb: np.ndarray, landmarks_xy: np.ndarray) -> np.ndarray:
    """A copy of ``image_rgb`` with a surgical mask painted over the face's lower half.

    The mask runs from the nose bridge to below the chin and from cheek to cheek, with three
    pleats, side-to-side shading, a nose-wire seam and a soft shadow on the neck.
    """
    top_xy, bottom_xy = _mask_edges(landmarks_xy)
    outline_xy = np.concatenate([top_xy, bottom_xy[::-1]])
    height, width = image_rgb.shape[:2]
    alpha_hw = _soft_polygon(outline_xy, (height, width))
    face_width = float(np.linalg.norm(top_xy[-1] - top_xy[0]))
    cloth_rgb = _cloth(top_xy, bottom_xy, (height, width), face_width)
    drop_px = max(1, round(face_width * 0.03))
    shadow_hw = np.zeros_like(alpha_hw)
    shadow_hw[drop_px:] = alpha_hw[:-drop_px]  # light from above: the shadow falls lower
    shadow_hw = cv2.GaussianBlur(shadow_hw, (0, 0), face_width * 0.03)
    looped_rgb = image_rgb.copy()
    _ear_loops(looped_rgb, top_xy, bottom_xy)
    image = looped_rgb.astype(np.float32) * (1.0 - 0.35 * shadow_hw)[..., None]
    alpha_hw = alpha_hw[..., None]
    return np.clip(image * (1.0 - alpha_hw) + cloth_rgb * alpha_hw, 0, 255).astype(np.uint8)


def _mask_edges(landmarks_xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Upper and lower mask edges, each (64, 2), sampled left to right at matching fractions.

    A pulled-on mask stands off the face: the lower edge passes well under the chin and the
    sides a little outside the cheeks.
    """
    center_xy = landmarks_xy[mesh.NOSE_TIP]
    face_height = float(np.linalg.norm(landmarks_xy[mesh.CHIN] - landmarks_xy[mesh.NOSE_BRIDGE]))
    top_xy = landmarks_xy[list(mesh.SURGICAL_MASK_TOP)].astype(np.float32)
    top_xy[2, 1] -= 0.04 * face_height  # over the bridge, not on it
    bottom_xy = landmarks_xy[list(mesh.JAW_OUTLINE)].astype(np.float32)
    bottom_xy = center_xy + (bottom_xy - center_xy) * 1.06
    below_nose = np.clip((bottom_xy[:, 1] - center_xy[1]) / (0.6 * face_height), 0, 1)
    bottom_xy[:, 1] += 0.08 * face_height * below_nose**2
    return _resample(_smooth(top_xy), 64), _resample(_smooth(bottom_xy), 64)


def _smooth(points_xy: np.ndarray, rounds: int = 3) -> np.ndarray:
    """Chaikin corner cutting: a smooth curve through the landmark polyline, ends kept."""
    for _ in range(rounds):
        a_xy, b_xy = points_xy[:-1], points_xy[1:]
        cut_xy = np.stack([0.75 * a_xy + 0.25 * b_xy, 0.25 * a_xy + 0.75 * b_xy], axis=1)
        points_xy = np.concatenate([points_xy[:1], cut_xy.reshape(-1, 2), points_xy[-1:]])
    return points_xy


def _resample(points_xy: np.ndarray, count: int) -> np.ndarray:
    """``count`` points evenly spaced along a polyline."""
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(points_xy, axis=0), axis=1))])
    at = np.linspace(0.0, arc[-1], count)
    return np.stack([np.interp(at, arc, points_xy[:, i]) for i in (0, 1)], axis=1)


def _soft_polygon(outline_xy: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    """float32 [0, 1] coverage of a polygon with anti-aliased edges."""
    alpha_hw = np.zeros(size_hw, dtype=np.float32)
    points = np.round(outline_xy * 16).astype(np.int32)  # 4 fractional bits
    cv2.fillPoly(alpha_hw, [points], 1.0, lineType=cv2.LINE_AA, shift=4)
    return cv2.GaussianBlur(alpha_hw, (0, 0), 0.7)


def _cloth(
    top_xy: np.ndarray, bottom_xy: np.ndarray, size_hw: tuple[int, int], face_width: float
) -> np.ndarray:
    """float32 H x W x 3 RGB of the mask fabric: shading, pleats, seams, loops, weave."""
    height, width = size_hw
    y_hw, x_hw = np.mgrid[0:height, 0:width].astype(np.float32)
    center_x = float(top_xy[len(top_xy) // 2, 0])
    # The face curves away at the sides, and the chin is shaded from above.
    across_hw = np.clip(((x_hw - center_x) / (0.5 * face_width)) ** 2, 0, 1.5)
    top_y, bottom_y = float(top_xy[:, 1].min()), float(bottom_xy[:, 1].max())
    down_hw = np.clip((y_hw - top_y) / (bottom_y - top_y), 0, 1)
    shade_hw = 1.06 - 0.30 * across_hw - 0.18 * down_hw**2
    line_px = max(1.0, face_width / 80)
    for pleat_xy in _pleats(top_xy, bottom_xy):
        _polyline(shade_hw, pleat_xy, 0.86, 3 * line_px, shift_y=1.5 * line_px)  # shadow
        _polyline(shade_hw, pleat_xy, 0.72, line_px)  # fold
        _polyline(shade_hw, pleat_xy, 1.14, line_px, shift_y=-1.5 * line_px)  # ridge
    _polyline(shade_hw, top_xy, 1.10, 4 * line_px, shift_y=3 * line_px)  # nose-wire seam
    _polyline(shade_hw, bottom_xy, 0.90, line_px, shift_y=-2 * line_px)  # hem
    shade_hw = cv2.GaussianBlur(shade_hw, (0, 0), 0.5 * line_px)
    weave_hw = np.random.default_rng(7).normal(0.0, 0.015, size_hw).astype(np.float32)
    return MASK_RGB * (shade_hw + weave_hw)[..., None]


def _ear_loops(image_rgb: np.ndarray, top_xy: np.ndarray, bottom_xy: np.ndarray) -> None:
    """White elastic from each upper corner, out round the ear, back to the lower side."""
    face_width = float(np.linalg.norm(top_xy[-1] - top_xy[0]))
    for upper_xy, lower_xy, outward in (
        (top_xy[0], bottom_xy[12], -1),
        (top_xy[-1], bottom_xy[-13], 1),
    ):
        bulge_xy = (upper_xy + lower_xy) / 2 + (outward * 0.14 * face_width, 0)
        t = np.linspace(0, 1, 24)[:, None]
        loop_xy = (1 - t) ** 2 * upper_xy + 2 * t * (1 - t) * bulge_xy + t**2 * lower_xy
        points = np.round(loop_xy * 16).astype(np.int32)
        thickness = max(1, round(face_width / 70))
        cv2.polylines(image_rgb, [points], False, (232, 236, 238), thickness, cv2.LINE_AA, shift=4)


def _pleats(top_xy: np.ndarray, bottom_xy: np.ndarray) -> list[np.ndarray]:
    """Three folds across the front, from one side seam to the other.

    They run between the upper edge and a gently sagging line joining the jaw at mouth level,
    so they stay nearly level instead of following the U of the chin.
    """
    count = len(bottom_xy)
    left_xy, right_xy = bottom_xy[count // 5], bottom_xy[-1 - count // 5]
    sag_xy = (left_xy + right_xy) / 2 + (0, 0.25 * float(np.ptp(bottom_xy[:, 1])))
    t = np.linspace(0, 1, len(top_xy))[:, None]
    lower_xy = (1 - t) ** 2 * left_xy + 2 * t * (1 - t) * sag_xy + t**2 * right_xy
    side_xy = [bottom_xy[: count // 5 + 1], bottom_xy[-1 - count // 5 :]]
    pleats = []
    for fraction in (0.3, 0.65, 1.0):
        pleat_xy = (1 - fraction) * top_xy + fraction * lower_xy
        # The side seams follow the jaw: end each fold on the outline, not inside it.
        pleat_xy[0] = _nearest(side_xy[0], pleat_xy[1, 1])
        pleat_xy[-1] = _nearest(side_xy[1], pleat_xy[-2, 1])
        pleats.append(pleat_xy)
    return pleats


def _nearest(points_xy: np.ndarray, y: float) -> np.ndarray:
    return points_xy[np.argmin(np.abs(points_xy[:, 1] - y))]


def _polyline(
    canvas_hw: np.ndarray, points_xy: np.ndarray, value: float, width: float, shift_y: float = 0.0
) -> None:
    points = np.round((points_xy + np.array([0.0, shift_y])) * 16).astype(np.int32)
    cv2.polylines(canvas_hw, [points], False, value, max(1, round(width)), cv2.LINE_AA, shift=4)


def masked_sample() -> tuple[np.ndarray, np.ndarray, float]:
    """The masked astronaut (BGR), the face centre (x, y) and the face box side in pixels."""
    photo_bgr = cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR)
    with FaceTracker(TrackerConfig(max_faces=1, hold_frames=0)) as tracker:
        faces = tracker.update(photo_bgr)
    if not faces or faces[0].landmarks_xy is None:
        raise UnmaskError("the face mesh found no face in the bundled sample photo")
    face = faces[0]
    masked_rgb = draw_surgical_mask(cv2.cvtColor(photo_bgr, cv2.COLOR_BGR2RGB), face.landmarks_xy)
    center_xy = (face.box_xyxy[:2] + face.box_xyxy[2:]) / 2
    side_px = float(max(face.box_xyxy[2:] - face.box_xyxy[:2]))
    return cv2.cvtColor(masked_rgb, cv2.COLOR_RGB2BGR), center_xy, side_px


def _camera(
    t_s: float, center_xy: np.ndarray, side_px: float, size_wh: tuple[int, int]
) -> np.ndarray:
    """2 x 3 affine from photo to frame pixels at time ``t_s``: smooth, periodic motion."""
    phase = 2 * math.pi * t_s / CAMERA_PERIOD_S
    zoom = 1.0 + 0.15 * math.sin(phase)
    angle_deg = 3.0 * math.sin(phase + 1.0)
    look_xy = center_xy + side_px * np.array([0.35 * math.sin(phase + 2.0), 0.15 * math.cos(phase)])
    scale = zoom * FACE_FRACTION * min(size_wh) / side_px
    matrix = cv2.getRotationMatrix2D((float(look_xy[0]), float(look_xy[1])), angle_deg, scale)
    matrix[:, 2] += (size_wh[0] / 2 - look_xy[0], size_wh[1] / 2 - look_xy[1])
    return matrix


def _check_args(seconds: float, fps: float, size_wh: tuple[int, int]) -> None:
    if not 0 < seconds <= 600:
        raise ValueError(f"seconds must be in (0, 600], got {seconds}")
    if not 0 < fps <= 240:
        raise ValueError(f"fps must be in (0, 240], got {fps}")
    width, height = size_wh
    if not (16 <= width <= 4096 and 16 <= height <= 4096 and width % 2 == 0 == height % 2):
        raise ValueError(f"size_wh must be even numbers between 16 and 4096, got {size_wh}")


def frame_count(seconds: float, fps: float) -> int:
    """Number of frames ``demo_frames`` yields for this duration (at least one)."""
    return max(1, round(seconds * fps))


def demo_frames(
    *, seconds: float = 4.0, fps: float = 25.0, size_wh: tuple[int, int] = (640, 360)
) -> Iterator[np.ndarray]:
    """The sample's frames, H x W x 3 uint8 BGR, ``frame_count(seconds, fps)`` of them."""
    _check_args(seconds, fps, size_wh)
    sample_bgr, center_xy, side_px = masked_sample()
    for index in range(frame_count(seconds, fps)):
        matrix = _camera(index / fps, center_xy, side_px, size_wh)
        # Reflecting the photo beats black corners where zoom-out and tilt leave its edges.
        yield cv2.warpAffine(
            sample_bgr, matrix, size_wh, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101
        )


def render_demo_clip(
    path: Path,
    *,
    seconds: float = 4.0,
    fps: float = 25.0,
    size_wh: tuple[int, int] = (640, 360),
) -> Path:
    """Write the sample as H.264 yuv420p mp4 to ``path`` and return ``path``."""
    from realtime.video_writer import write_clip

    return write_clip(path, demo_frames(seconds=seconds, fps=fps, size_wh=size_wh), fps=fps)

if __name__ == "__main__":
    print(render_demo_clip(Path(sys.argv[1] if len(sys.argv) > 1 else "demo_input.mp4")))
