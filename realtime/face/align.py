"""Face alignment: a similarity transform to a canonical square crop, and back.

The canonical crop puts the eyes in the upper third and keeps the chin and the upper neck,
because masks reach below the chin. Training aligns its faces with this same code.

    points_xy = reference_points(landmarks_xy=face.landmarks_xy, keypoints_xy=face.keypoints_xy)
    alignment = estimate_alignment(points_xy, crop_size=128)
    crop_rgb = warp_to_crop(frame_bgr, alignment)
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from realtime.face import mesh

CANONICAL_XY = np.array(
    [[0.395, 0.29],   # eye on the image's left (the subject's right eye)
     [0.605, 0.29],   # eye on the image's right
     [0.500, 0.416],  # nose tip
     [0.500, 0.50]],  # mouth centre
    dtype=np.float32,
)
"""Where the reference points land, as fractions of the crop side.

Measured on frontal faces: nose tip 0.6 and mouth 1.0 inter-ocular distances (IOD) below the
eyes, chin about 1.6. With an IOD of 0.21 the crop reaches 3.4 IODs below the eyes: on a
real webcam clip a loose surgical mask ended 3.3 IODs below them (the mesh, which cannot see
the jaw under a mask, put the chin at 1.7), and a tighter crop cut the painted region off.
"""

POINT_WEIGHTS = np.array([1.0, 1.0, 0.5, 0.5], dtype=np.float32)
"""Eyes are visible above a mask; nose and mouth are guessed under it, so they count less."""

_MESH_GROUPS = (mesh.RIGHT_EYE[:2], mesh.LEFT_EYE[:2], (mesh.NOSE_TIP,), mesh.INNER_LIPS)
"""Face-mesh indices averaged into each reference point (eye corners, nose tip, inner lips)."""


@dataclass(frozen=True)
class Alignment:
    """A frame-to-crop similarity transform and its inverse."""

    matrix: np.ndarray
    """2 x 3 float32 affine mapping frame pixels to crop pixels."""
    inverse: np.ndarray
    """2 x 3 float32 affine mapping crop pixels back to frame pixels."""
    crop_size: int
    """Side of the square crop in pixels."""

    @property
    def scale(self) -> float:
        """Crop pixels per frame pixel."""
        return float(np.hypot(self.matrix[0, 0], self.matrix[0, 1]))

    @property
    def center_xy(self) -> np.ndarray:
        """The crop centre in frame pixels."""
        c = (self.crop_size - 1) / 2
        return self.inverse @ np.array([c, c, 1.0], dtype=np.float32)


def reference_points(
    *, landmarks_xy: np.ndarray | None, keypoints_xy: np.ndarray
) -> np.ndarray:
    """Eyes, nose tip and mouth centre (4 x 2) from the mesh, or the detector when it failed."""
    if landmarks_xy is not None:
        return np.stack([landmarks_xy[list(g)].mean(axis=0) for g in _MESH_GROUPS]).astype(
            np.float32
        )
    return np.asarray(keypoints_xy[:4], dtype=np.float32)


def similarity_transform(
    src_xy: np.ndarray, dst_xy: np.ndarray, weights: np.ndarray | None = None
) -> np.ndarray:
    """Weighted least-squares similarity (rotation, uniform scale, shift) mapping src to dst.

    Umeyama's closed form restricted to 2-D; reflections are excluded so a face is never
    mirrored. Returns a 2 x 3 float32 matrix.
    """
    src = np.asarray(src_xy, dtype=np.float64)
    dst = np.asarray(dst_xy, dtype=np.float64)
    w = np.ones(len(src)) if weights is None else np.asarray(weights, dtype=np.float64)
    w = w / w.sum()
    mu_s, mu_d = w @ src, w @ dst
    s, d = src - mu_s, dst - mu_d
    var_s = float(w @ (s**2).sum(axis=1))
    if var_s < 1e-9:
        raise ValueError("reference points coincide; cannot estimate an alignment")
    # Complex-number form of 2-D similarity: d ~ z * s with z = scale * e^{i angle}.
    s_c, d_c = s[:, 0] + 1j * s[:, 1], d[:, 0] + 1j * d[:, 1]
    z = (w * np.conj(s_c) * d_c).sum() / var_s
    a, b = z.real, z.imag
    rot = np.array([[a, -b], [b, a]])
    shift = mu_d - rot @ mu_s
    return np.hstack([rot, shift[:, None]]).astype(np.float32)


def estimate_alignment(points_xy: np.ndarray, crop_size: int) -> Alignment:
    """The alignment that maps the 4 reference points onto the canonical layout."""
    matrix = similarity_transform(points_xy, CANONICAL_XY * crop_size, POINT_WEIGHTS)
    return Alignment(matrix=matrix, inverse=cv2.invertAffineTransform(matrix),
                     crop_size=crop_size)


def affine_points(affine: np.ndarray, points_xy: np.ndarray) -> np.ndarray:
    """(N, 2) float32 points mapped by a 2 x 3 affine (e.g. ``Alignment.matrix``)."""
    return (points_xy @ affine[:, :2].T + affine[:, 2]).astype(np.float32)


def square_affine(center_xy: np.ndarray, side_px: float, out_px: int) -> np.ndarray:
    """2 x 3 affine taking the square of ``side_px`` around ``center_xy`` to an out_px image."""
    scale = out_px / side_px
    return np.array(
        [
            [scale, 0.0, out_px / 2 - scale * float(center_xy[0])],
            [0.0, scale, out_px / 2 - scale * float(center_xy[1])],
        ],
        dtype=np.float32,
    )


def warp_to_crop(frame_bgr: np.ndarray, alignment: Alignment) -> np.ndarray:
    """The aligned face as an RGB crop (crop_size x crop_size x 3 uint8)."""
    size = alignment.crop_size
    crop_bgr = cv2.warpAffine(frame_bgr, alignment.matrix, (size, size), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REPLICATE)
    return cv2.cvtColor(crop_bgr, cv2.COLOR_BGR2RGB)


def crop_roi(
    alignment: Alignment,
    size_wh: tuple[int, int],
    crop_box_xyxy: tuple[int, int, int, int] | None = None,
) -> tuple[int, int, int, int] | None:
    """The frame rectangle (x0, y0, x1, y1) covered by the crop, clipped; None if off-frame.

    ``crop_box_xyxy`` limits it to the part of the crop inside that box (e.g. the mask's).
    """
    s = alignment.crop_size
    cx0, cy0, cx1, cy1 = crop_box_xyxy if crop_box_xyxy is not None else (0, 0, s, s)
    corners = np.array([[cx0, cy0, 1], [cx1, cy0, 1], [cx0, cy1, 1], [cx1, cy1, 1]],
                       dtype=np.float32)
    xy = corners @ alignment.inverse.T
    x0, y0 = np.floor(xy.min(axis=0)).astype(int)
    x1, y1 = np.ceil(xy.max(axis=0)).astype(int)
    w, h = size_wh
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if x1 <= x0 or y1 <= y0:
        return None
    return int(x0), int(y0), int(x1), int(y1)


def warp_to_frame(
    image: np.ndarray,
    alignment: Alignment,
    roi_xyxy: tuple[int, int, int, int],
    *,
    replicate_border: bool = False,
) -> np.ndarray:
    """Warps a crop-space image (any channels) back into the frame rectangle ``roi_xyxy``.

    Outside the crop the result is 0, or the crop's edge pixels with ``replicate_border``.
    """
    x0, y0, x1, y1 = roi_xyxy
    inverse = alignment.inverse.copy()
    inverse[:, 2] -= (x0, y0)
    border = cv2.BORDER_REPLICATE if replicate_border else cv2.BORDER_CONSTANT
    return cv2.warpAffine(image, inverse, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR,
                          borderMode=border, borderValue=0)
