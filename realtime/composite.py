"""Blending painted crops back into the frame with a feathered edge.

    alpha_hw = feather(mask_hw, radius_px=3)
    out_bgr, mask_full_hw = composite(frame_bgr, painted_rgb, alphas_hw, alignments)
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from realtime.edges import disc
from realtime.face.align import Alignment, crop_roi, warp_to_frame


def feather(mask_hw: np.ndarray, radius_px: int) -> np.ndarray:
    """A soft alpha (float32 in [0, 1]) that covers the mask and fades out past its edge."""
    if radius_px <= 0 or not mask_hw.any():
        return mask_hw.astype(np.float32)
    grown = cv2.dilate(mask_hw.astype(np.float32), disc(radius_px))
    return cv2.GaussianBlur(grown, (0, 0), sigmaX=radius_px / 2)


def composite(
    frame_bgr: np.ndarray,
    painted_rgb: Sequence[np.ndarray],
    alphas_hw: Sequence[np.ndarray],
    alignments: Sequence[Alignment],
    *,
    want_mask: bool = False,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Pastes each painted crop into a copy of the frame through its alpha.

    Returns the new frame and, when ``want_mask``, the full-frame alpha (float32 in [0, 1]).
    Only the rectangle each crop covers is touched, which keeps this cheap on large frames.
    """
    out_bgr = frame_bgr.copy()
    h, w = frame_bgr.shape[:2]
    mask_full_hw = np.zeros((h, w), np.float32) if want_mask else None
    for crop_rgb, alpha_hw, alignment in zip(painted_rgb, alphas_hw, alignments, strict=True):
        box = _nonzero_box(alpha_hw)
        roi = crop_roi(alignment, (w, h), box) if box is not None else None
        if roi is None:
            continue
        x0, y0, x1, y1 = roi
        # Colour is warped with a replicated border so pixels at the crop's edge don't pull in
        # black; alpha fades to 0 there instead. OpenCV blends uint8 through float weights
        # without the float copies of the region that numpy would make.
        crop_bgr = cv2.cvtColor(crop_rgb, cv2.COLOR_RGB2BGR)
        warped_bgr = warp_to_frame(crop_bgr, alignment, roi, replicate_border=True)
        a = warp_to_frame(alpha_hw.astype(np.float32, copy=False), alignment, roi)
        region = out_bgr[y0:y1, x0:x1]
        region[:] = cv2.blendLinear(warped_bgr, region, a, 1.0 - a)
        if mask_full_hw is not None:
            np.maximum(mask_full_hw[y0:y1, x0:x1], a, out=mask_full_hw[y0:y1, x0:x1])
    return out_bgr, mask_full_hw


def _nonzero_box(alpha_hw: np.ndarray) -> tuple[int, int, int, int] | None:
    """The crop-pixel box (x0, y0, x1, y1) around alpha > 0, one pixel wider for the warp."""
    rows, cols = np.flatnonzero(alpha_hw.any(axis=1)), np.flatnonzero(alpha_hw.any(axis=0))
    if rows.size == 0:
        return None
    s = alpha_hw.shape[0]
    return (max(int(cols[0]) - 1, 0), max(int(rows[0]) - 1, 0),
            min(int(cols[-1]) + 2, s), min(int(rows[-1]) + 2, s))


def match_colour(painted_rgb: np.ndarray, mask_hw: np.ndarray, *, ring_px: int = 3,
                 skin_below: float = 0.5, max_shift: float = 30.0) -> np.ndarray:
    """The painted crop with its hole shifted in colour to meet the visible skin: the mean of a
    ring of real pixels just outside the hole minus the mean of the painted ring just inside,
    both only in the crop's upper part (cheeks and nose, above ``skin_below`` of the crop side:
    below it the ring borders neck, clothes or background), added to the whole hole and
    clipped to ``max_shift`` levels. A generator's colour cast never then shows as a seam."""
    m = (mask_hw > 0.5).astype(np.uint8)
    if not m.any():
        return painted_rgb
    kernel = disc(ring_px)
    upper = np.zeros_like(m)
    upper[: int(skin_below * m.shape[0])] = 1
    outside = (cv2.dilate(m, kernel) - m) & upper
    inside = (m - cv2.erode(m, kernel)) & upper
    if outside.sum() < 8 or inside.sum() < 8:
        return painted_rgb
    shift = (painted_rgb[outside > 0].mean(axis=0) - painted_rgb[inside > 0].mean(axis=0))
    shift = np.clip(shift, -max_shift, max_shift).astype(np.float32)
    out = painted_rgb.copy()
    hole = m > 0
    out[hole] = np.clip(painted_rgb[hole].astype(np.float32) + shift, 0, 255).astype(np.uint8)
    return out


def telea_inpaint(crops_rgb: np.ndarray, masks_hw: np.ndarray, radius_px: int = 3) -> np.ndarray:
    """OpenCV's Telea inpainting of each crop inside its mask: the classical baseline."""
    out = np.empty_like(crops_rgb)
    for i, (crop, mask) in enumerate(zip(crops_rgb, masks_hw, strict=True)):
        out[i] = cv2.inpaint(crop, (mask > 0.5).astype(np.uint8), radius_px, cv2.INPAINT_TELEA)
    return out
