"""Blending painted crops back into the frame with a feathered edge.

    alpha_hw = feather(mask_hw, radius_px=3)
    out_bgr, mask_full_hw = composite(frame_bgr, painted_rgb, alphas_hw, alignments)
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from realtime.align import Alignment, crop_roi, warp_to_frame


def feather(mask_hw: np.ndarray, radius_px: int) -> np.ndarray:
    """A soft alpha (float32 in [0, 1]) that covers the mask and fades out past its edge."""
    if radius_px <= 0 or not mask_hw.any():
        return mask_hw.astype(np.float32)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius_px + 1,) * 2)
    grown = cv2.dilate(mask_hw.astype(np.float32), kernel)
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
        roi = crop_roi(alignment, (w, h))
        if roi is None or not alpha_hw.any():
            continue
        x0, y0, x1, y1 = roi
        # Alpha rides along as a fourth channel so one warp moves colour and alpha together;
        # colour is premultiplied so pixels at the crop's edge don't pull in the black border.
        alpha = alpha_hw.astype(np.float32)
        rgba = np.dstack([crop_rgb[..., ::-1].astype(np.float32) * alpha[..., None], alpha])
        warped = warp_to_frame(rgba, alignment, roi)
        a = warped[..., 3:4]
        region = out_bgr[y0:y1, x0:x1].astype(np.float32)
        out_bgr[y0:y1, x0:x1] = np.clip(region * (1 - a) + warped[..., :3] + 0.5, 0, 255).astype(
            np.uint8
        )
        if mask_full_hw is not None:
            np.maximum(mask_full_hw[y0:y1, x0:x1], a[..., 0], out=mask_full_hw[y0:y1, x0:x1])
    return out_bgr, mask_full_hw


def overlay_mask(frame_bgr: np.ndarray, mask_full_hw: np.ndarray,
                 color_bgr: tuple[int, int, int] = (60, 220, 60)) -> np.ndarray:
    """Tints the masked pixels (for ``--show-mask``) and outlines the region."""
    out = frame_bgr.copy()
    binary = mask_full_hw > 0.5
    if not binary.any():
        return out
    tint = np.array(color_bgr, dtype=np.float32)
    out[binary] = (0.55 * out[binary] + 0.45 * tint).astype(np.uint8)
    contours, _ = cv2.findContours(binary.astype(np.uint8), cv2.RETR_EXTERNAL,
                                   cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(out, contours, -1, color_bgr, 1, cv2.LINE_AA)
    return out


def telea_inpaint(crops_rgb: np.ndarray, masks_hw: np.ndarray, radius_px: int = 3) -> np.ndarray:
    """OpenCV's Telea inpainting of each crop inside its mask: the classical baseline."""
    out = np.empty_like(crops_rgb)
    for i, (crop, mask) in enumerate(zip(crops_rgb, masks_hw, strict=True)):
        out[i] = cv2.inpaint(crop, (mask > 0.5).astype(np.uint8), radius_px, cv2.INPAINT_TELEA)
    return out


def side_by_side(left_bgr: np.ndarray, right_bgr: np.ndarray) -> np.ndarray:
    """Input and output next to each other, with a thin divider."""
    out = np.concatenate([left_bgr, right_bgr], axis=1)
    w = left_bgr.shape[1]
    out[:, max(w - 1, 0) : w + 1] = 255
    return out
