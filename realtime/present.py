"""How a processed frame is shown and written: the mask tint, the "reconstructed" tag, the
input beside the result, a window's status line.

One stage after the pipeline, so that every output draws the same way: the loop's files,
windows and virtual cameras, the Python API and the web demo. The pipeline's own frame is
never drawn on unless the caller says nothing else needs it (``in_place``).

    view = PresentConfig(label=True, side_by_side=True, show_mask=False)
    written_bgr = present(frame.bgr, result.out_bgr, result.mask_full_hw, view)
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class PresentConfig:
    """What is drawn on a processed frame before anyone sees it."""

    label: bool = True
    """Draw the small 'reconstructed' tag (on the painted picture, never on the input)."""
    side_by_side: bool = False
    """Put the input on the left of the result, with a thin divider."""
    show_mask: bool = False
    """Tint the painted region and outline it (the pipeline must return its full-frame
    mask: ``PipelineConfig.want_mask``)."""


def present(input_bgr: np.ndarray, out_bgr: np.ndarray, mask_full_hw: np.ndarray | None,
            config: PresentConfig, *, in_place: bool = False) -> np.ndarray:
    """The frame as shown or written: ``out_bgr`` tinted where painted, tagged, and beside
    ``input_bgr`` when asked. ``in_place`` lets the tag draw on ``out_bgr`` itself when
    nothing else needs it as it is; with nothing to draw, ``out_bgr`` itself comes back."""
    if config.show_mask and mask_full_hw is not None:
        out_bgr, in_place = overlay_mask(out_bgr, mask_full_hw), True  # a new array
    if config.label:
        # The tag goes on the painted picture before it is put beside the input, so that in
        # side-by-side output it lands on the right half.
        out_bgr = draw_label(out_bgr if in_place and not config.side_by_side else out_bgr.copy())
    return side_by_side(input_bgr, out_bgr) if config.side_by_side else out_bgr


def side_by_side(left_bgr: np.ndarray, right_bgr: np.ndarray) -> np.ndarray:
    """Input and output next to each other, with a thin divider."""
    out = np.concatenate([left_bgr, right_bgr], axis=1)
    w = left_bgr.shape[1]
    out[:, max(w - 1, 0) : w + 1] = 255
    return out


def overlay_mask(frame_bgr: np.ndarray, mask_full_hw: np.ndarray,
                 color_bgr: tuple[int, int, int] = (60, 220, 60)) -> np.ndarray:
    """A copy with the masked pixels tinted (for ``--show-mask``) and the region outlined."""
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


def draw_label(frame_bgr: np.ndarray, text: str = "reconstructed") -> np.ndarray:
    """Draws a small translucent tag in the bottom-left corner, in place, and returns the frame.

    The text is about 3% of the frame height (legible from 360p to 4K), at least 8 px where
    the frame allows, and shrinks to fit narrow frames.
    """
    height, width = frame_bgr.shape[:2]
    font = cv2.FONT_HERSHEY_SIMPLEX
    margin = max(1, round(min(height, width) * 0.02))
    (unit_w, unit_h), _ = cv2.getTextSize(text, font, 1.0, 1)
    # 8 px is the smallest readable Hershey text; a fifth of the height keeps it a tag.
    text_h_px = min(max(height * 0.03, 8.0), height * 0.2)
    scale = min(text_h_px / unit_h, (width * 0.9 - 2 * margin) / unit_w)
    if scale <= 0:
        return frame_bgr  # narrower than its margins (1 or 2 px): no room for any tag
    thickness = max(1, round(scale * 1.2))
    (text_w, text_h), baseline = cv2.getTextSize(text, font, scale, thickness)
    pad = max(1, text_h // 3)
    x0, y1 = margin, height - margin
    x1, y0 = min(width, x0 + text_w + 2 * pad), max(0, y1 - text_h - baseline - 2 * pad)
    box = frame_bgr[y0:y1, x0:x1]
    if box.size == 0:
        return frame_bgr  # too low for a tag; convertScaleAbs would return None
    box[:] = cv2.convertScaleAbs(box, alpha=0.45)  # darkened, not hidden: translucent
    origin = (x0 + pad, y1 - pad - baseline)
    cv2.putText(frame_bgr, text, origin, font, scale, (255, 255, 255), thickness, cv2.LINE_AA)
    return frame_bgr


def draw_status(frame_bgr: np.ndarray, text: str) -> np.ndarray:
    """Writes a status line (a window's frame rate and latency) in the top-left corner, in
    place, white on a black outline so that it reads on any picture; returns the frame."""
    scale = max(0.4, frame_bgr.shape[0] / 720)
    org = (10, round(25 * scale))
    for color, thickness in (((0, 0, 0), 3), ((255, 255, 255), 1)):
        cv2.putText(frame_bgr, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, color, thickness)
    return frame_bgr
