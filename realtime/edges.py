"""Where the painted region ends: the segmented covering grown into the rim that still looks
like the covering, and no further.

A segmenter stops a pixel or a few short of a real mask's edge (a hem, a blurred edge, a
shadowed fold), and what it leaves stays visible as a thin coloured line round the painted
face. Growing every mask by a fixed 2 px hid most of that line but repainted real skin all
round, which costs identity (ArcFace cosine 0.603 -> 0.565 on the true masks), most of it
along the mask's top edge, across the nose. Two grows follow the evidence instead, one pixel
ring at a time from the segmented edge outwards:

- ``prob_grow``: a pixel joins where the segmenter itself gives it at least a small
  probability of being covering. A real mask's soft edge fades through those values over a
  pixel or two; skin beside a crisp edge is near 0, and stays.
- ``guided_grow``: a pixel joins when at least a quarter of its colour is the covering's
  (``MIN_SHARE``), read off the picture.

    masks_hw = grow(masks_hw, 2)                                  # a fixed 2 px
    masks_hw = prob_grow(masks_hw, probs_hw, 2, min_prob=0.1)
    masks_hw = guided_grow(crops_rgb, masks_hw, min_px=0, max_px=4)

Before any grow, ``snap_edges`` re-decides the pixels along the segmented edge by colour,
both ways: a segmenter's edge wanders a pixel or two either side of a covering's (raw IoU
0.907 on the celebahq_192 validation templates), and every pixel of skin inside it is
repainted, every pixel of covering outside it left. ``grow(..., upward=False)`` grows down
and sideways only: the top edge runs across the nose, where repainted skin costs the most
identity.

    masks_hw = grow(snap_edges(crops_rgb, masks_hw, 2), 1, upward=False)
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

import cv2
import numpy as np

OUTSIDE_PX = 4
"""Width of the band beyond the reach whose colour stands for 'not the covering'."""
MIN_SHARE = 0.25
"""A ring pixel joins when at least this share of its colour is the covering's: read off
where it lies between the nearby covering colour and the nearby outside colour. Edge pixels
are mixtures (blur, JPEG, resizing); a nearest-colour test leaves the lighter half of them."""
MIN_CONTRAST = 6.0
"""Least Lab distance between the covering's and the outside's colour for the mixture to be
read; where they are alike no rim shows, and nothing joins."""
SNAP_INNER_PX = 3
"""How far inside the segmented edge the pixels that give the covering's colour start."""
SNAP_OUTER_PX = (3, 6)
"""The ring outside the segmented edge whose pixels give the outside's colour."""
SNAP_WINDOW_PX = 6
"""Half-width of the square window (at 128 px) over which the snap averages each side's
colour: local, so a shaded part of a mask is compared with its own neighbourhood."""
SNAP_MARGIN = 0.3
"""An edge pixel is re-decided only where it is nearer one side's colour than the other's by
at least this share of the two colours' distance; elsewhere (alike colours, a pixel halfway)
the segmenter's answer stands."""
SIGMA_PX = 5.0
"""Scale (at 128 px) over which the covering's and the outside's colours are averaged: local,
so a mask with a light top and a shaded bottom is compared with its own part."""


@cache
def disc(radius_px: int) -> np.ndarray:
    """The (2r+1)-square uint8 elliptic structuring element of ``radius_px``: the one kernel
    every grow, shrink, opening and feather of a mask uses, made once per radius."""
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius_px + 1,) * 2)


def grow(masks_hw: np.ndarray, radius_px: int, *, upward: bool = True) -> np.ndarray:
    """Dilates each binary mask (N x S x S float32) by a disc of ``radius_px``; without
    ``upward``, by its lower half (the middle row included): down and sideways only."""
    if radius_px <= 0:
        return masks_hw
    kernel = disc(radius_px) if upward else lower_half_disc(radius_px)
    return np.stack([cv2.dilate(m, kernel) for m in masks_hw])


@cache
def lower_half_disc(radius_px: int) -> np.ndarray:
    """``disc`` without the rows below its centre: a dilation by it moves no edge upwards
    (output row y takes the input rows y - r .. y)."""
    kernel = disc(radius_px).copy()
    kernel[radius_px + 1:] = 0
    return kernel


def prob_grow(masks_hw: np.ndarray, probs_hw: np.ndarray, radius_px: int,
              min_prob: float, *, upward: bool = True) -> np.ndarray:
    """Each binary mask (N x S x S float32) grown ring by ring, up to ``radius_px`` rings of
    the 3 x 3 neighbourhood, through pixels whose probability in ``probs_hw`` is at least
    ``min_prob``; ``min_prob`` 0 is the fixed ``grow``. ``upward``: as in ``grow``."""
    if radius_px <= 0:
        return masks_hw
    if min_prob <= 0:
        return grow(masks_hw, radius_px, upward=upward)
    out = []
    square = np.ones((3, 3), np.uint8)
    if not upward:
        square[2] = 0
    for mask_hw, prob_hw in zip(masks_hw, probs_hw, strict=True):
        allowed = (prob_hw >= min_prob).astype(np.float32)
        m = mask_hw.astype(np.float32, copy=True)
        for _ in range(radius_px):
            m = np.maximum(m, cv2.dilate(m, square) * allowed)
        out.append(m)
    return np.stack(out)


def _local_mean(lab: np.ndarray, weight_hw: np.ndarray,
                blur: Callable[[np.ndarray], np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(weighted local mean colour (S, S, 3), local weight (S, S)), local as ``blur`` is."""
    weight = blur(weight_hw)
    total = blur(lab * weight_hw[..., None])
    return total / np.maximum(weight[..., None], 1e-4), weight


def _gaussian(sigma: float) -> Callable[[np.ndarray], np.ndarray]:
    return lambda a: cv2.GaussianBlur(a, (0, 0), sigma)


def snap_edges_one(crop_rgb: np.ndarray, mask_hw: np.ndarray, band_px: int) -> np.ndarray:
    """One crop: the pixels of ``mask_hw`` (S, S) {0, 1} within ``band_px`` of its edge (at
    128 px, scaled with the crop), either side, re-decided by colour: covering where nearer
    the local colour of the mask's inside (``SNAP_INNER_PX`` in) than the outside's
    (``SNAP_OUTER_PX``), not where nearer the outside's, each by ``SNAP_MARGIN``; where the
    two colours differ by less than ``MIN_CONTRAST`` the segmenter's edge stands."""
    mask_u8 = (mask_hw > 0.5).astype(np.uint8)
    scale = crop_rgb.shape[0] / 128
    band_r = round(band_px * scale)
    if band_r <= 0 or not mask_u8.any():
        return mask_u8.astype(np.float32)
    far = cv2.dilate(mask_u8, disc(round(SNAP_OUTER_PX[1] * scale)))
    ys, xs = np.nonzero(far)  # everything read lies within the far ring: work in its box
    box = (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))
    m, far = mask_u8[box], far[box]
    lab = cv2.cvtColor(np.ascontiguousarray(crop_rgb[box]), cv2.COLOR_RGB2LAB)
    lab = lab.astype(np.float32)
    inner = cv2.erode(m, disc(round(SNAP_INNER_PX * scale)))
    outer = far - cv2.dilate(m, disc(round(SNAP_OUTER_PX[0] * scale)))
    band = cv2.dilate(m, disc(band_r)) > cv2.erode(m, disc(band_r))
    window = (2 * round(SNAP_WINDOW_PX * scale) + 1,) * 2

    def box_blur(a: np.ndarray) -> np.ndarray:  # a box, not a Gaussian: ~2x faster per face
        return cv2.blur(a, window, borderType=cv2.BORDER_CONSTANT)

    by, bx = np.nonzero(band)  # only the band's pixels are compared
    (inside_mean, inside_w), (outside_mean, outside_w) = (
        (mean[by, bx], weight[by, bx]) for mean, weight in (
            _local_mean(lab, part.astype(np.float32), box_blur) for part in (inner, outer)))
    colour = lab[by, bx]
    to_inside = np.linalg.norm(colour - inside_mean, axis=1)
    to_outside = np.linalg.norm(colour - outside_mean, axis=1)
    contrast = np.linalg.norm(inside_mean - outside_mean, axis=1)
    decided = ((inside_w > 0.02) & (outside_w > 0.02) & (contrast >= MIN_CONTRAST)
               & (np.abs(to_inside - to_outside) > SNAP_MARGIN * contrast))
    out = mask_u8.astype(np.float32)
    region = out[box]
    region[by[decided], bx[decided]] = to_inside[decided] < to_outside[decided]
    return out


def snap_edges(crops_rgb: np.ndarray, masks_hw: np.ndarray, band_px: int) -> np.ndarray:
    """``snap_edges_one`` over a batch: crops (N, S, S, 3) uint8 RGB, masks (N, S, S)."""
    if band_px <= 0:
        return masks_hw
    return np.stack([snap_edges_one(c, m, band_px)
                     for c, m in zip(crops_rgb, masks_hw, strict=True)])


def guided_grow_one(crop_rgb: np.ndarray, mask_hw: np.ndarray, min_px: int,
                    max_px: int, start_hw: np.ndarray | None = None) -> np.ndarray:
    """One crop: ``mask_hw`` (S, S) {0, 1} grown by ``min_px`` always, then ring by ring up to
    ``max_px`` (pixels at 128 px, scaled with the crop) through covering-coloured pixels.
    ``start_hw``: what the first ``min_px`` rings already grew to (another grow's result)
    instead of the fixed dilation; the colours are read about ``mask_hw`` either way."""
    scale = crop_rgb.shape[0] / 128
    min_r, max_r = round(min_px * scale), round(max_px * scale)
    mask_u8 = (mask_hw > 0.5).astype(np.uint8)
    if start_hw is not None:
        grown = (start_hw > 0.5).astype(np.uint8)
    else:
        grown = cv2.dilate(mask_u8, disc(min_r)) if min_r > 0 else mask_u8
    if max_r <= min_r or not mask_u8.any():
        return grown.astype(np.float32)
    lab = cv2.cvtColor(np.ascontiguousarray(crop_rgb), cv2.COLOR_RGB2LAB).astype(np.float32)
    inner = cv2.erode(mask_u8, np.ones((3, 3), np.uint8)).astype(np.float32)  # no edge pixels
    reach = cv2.dilate(mask_u8, disc(max_r + 1))
    outside = (cv2.dilate(mask_u8, disc(max_r + round(OUTSIDE_PX * scale))) - reach)
    blur = _gaussian(SIGMA_PX * scale)
    inside_mean, inside_w = _local_mean(lab, inner, blur)
    outside_mean, outside_w = _local_mean(lab, outside.astype(np.float32), blur)
    across = outside_mean - inside_mean
    length2 = (across ** 2).sum(axis=2)
    towards_outside = ((lab - inside_mean) * across).sum(axis=2) / np.maximum(length2, 1e-6)
    alike = ((towards_outside <= 1 - MIN_SHARE) & (length2 >= MIN_CONTRAST ** 2)
             & (inside_w > 1e-3) & (outside_w > 1e-3)).astype(np.uint8)
    for _ in range(max_r - min_r):
        ring = cv2.dilate(grown, disc(1)) & (1 - grown) & alike
        if not ring.any():
            break
        grown = grown | ring
    return grown.astype(np.float32)


def guided_grow(crops_rgb: np.ndarray, masks_hw: np.ndarray, min_px: int,
                max_px: int, starts_hw: np.ndarray | None = None) -> np.ndarray:
    """``guided_grow_one`` over a batch: crops (N, S, S, 3) uint8 RGB, masks (N, S, S) and
    optionally their ``start_hw`` (N, S, S)."""
    starts = [None] * len(masks_hw) if starts_hw is None else starts_hw
    return np.stack([guided_grow_one(c, m, min_px, max_px, st)
                     for c, m, st in zip(crops_rgb, masks_hw, starts, strict=True)])
