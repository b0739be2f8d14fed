"""Temporal smoothing of the mask and the painted face, per tracked face, against flicker.

Masks and painted crops live in canonical crop coordinates, where a face that moves stays in
place, so per-pixel exponential moving averages are meaningful there and add no lag to the
face's motion in the frame. Hysteresis turns the mask average into a binary mask that only
flips when the evidence clearly changes. The painted crop is averaged too because the
generator repaints the lower face from scratch each frame and small input changes move its
texture; that shimmer, not the mask, was most of the flicker on a real masked clip.

    smoothers = MaskSmoothers(SmoothingConfig(alpha=0.5))
    mask_hw = smoothers.update(face.track_id, prob_hw, alignment)
    ...                                       # paint the crop inside mask_hw
    painted_rgb = smoothers.smooth_painted(face.track_id, painted_rgb)
    smoothers.prune(alive_track_ids)
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from realtime.face.align import Alignment


@dataclass(frozen=True)
class SmoothingConfig:
    """How strongly masks and painted faces are smoothed over time."""

    alpha: float = 0.5
    """Weight of the newest frame in the mask's moving average: 1.0 leaves hysteresis only."""
    paint_alpha: float = 0.5
    """Weight of the newest painted crop in its moving average: 1.0 shows each frame's paint
    alone. 0.5 took flicker on the masked webcam clip from 1.39 to 1.12; the newest crop weighs
    1/2, the one before 1/4, ..., so a change of expression or pose shows 7/8 within 3 frames."""
    on_threshold: float = 0.6
    """A pixel joins the mask when its averaged probability rises above this."""
    off_threshold: float = 0.4
    """A pixel leaves the mask when its averaged probability falls below this."""
    jump_fraction: float = 0.3
    """Reset when the face moves by more than this share of its size, or rescales by it."""

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha <= 1.0:
            raise ValueError(f"smoothing alpha must be in (0, 1], got {self.alpha}")
        if not 0.0 < self.paint_alpha <= 1.0:
            raise ValueError(f"paint_alpha must be in (0, 1], got {self.paint_alpha}")
        if not 0.0 < self.off_threshold <= self.on_threshold < 1.0:
            raise ValueError(
                "thresholds must satisfy 0 < off <= on < 1, got "
                f"off={self.off_threshold}, on={self.on_threshold}"
            )
        if self.jump_fraction <= 0:
            raise ValueError(f"jump_fraction must be positive, got {self.jump_fraction}")


def smoothing_for(alpha: float) -> SmoothingConfig | None:
    """The smoothing that ``--smoothing ALPHA`` and the web page's slider ask for: ``alpha``
    in (0, 1] weighs the newest mask, and 1 turns all smoothing (masks and painted faces) off
    rather than leaving hysteresis alone, so that "1" means "each frame on its own"."""
    if not 0.0 < alpha <= 1.0:
        raise ValueError(f"--smoothing must be in (0, 1], got {alpha}")
    return None if alpha >= 1.0 else SmoothingConfig(alpha=alpha)


class MaskSmoother:
    """Moving averages of one track's mask (plus hysteresis) and painted crop."""

    def __init__(self, config: SmoothingConfig) -> None:
        self.config = config
        self.average_hw: np.ndarray | None = None
        self.mask_hw: np.ndarray | None = None
        self.last_alignment: Alignment | None = None
        self.painted_average_rgb: np.ndarray | None = None
        """S x S x 3 float32: the averaged painted crop, None until a crop was painted."""

    def reset(self) -> None:
        self.average_hw = None
        self.mask_hw = None
        self.last_alignment = None
        self.painted_average_rgb = None

    def update(self, prob_hw: np.ndarray, alignment: Alignment) -> np.ndarray:
        """Feeds one frame's mask probabilities; returns the binary mask as float32 0/1."""
        cfg = self.config
        if self.last_alignment is not None and _jumped(self.last_alignment, alignment,
                                                       cfg.jump_fraction):
            self.reset()
        self.last_alignment = alignment
        prob_hw = prob_hw.astype(np.float32, copy=False)
        if self.average_hw is None or self.average_hw.shape != prob_hw.shape:
            self.average_hw = prob_hw.copy()
            self.mask_hw = (prob_hw > 0.5).astype(np.float32)
            return self.mask_hw
        self.average_hw += cfg.alpha * (prob_hw - self.average_hw)
        on = self.average_hw > cfg.on_threshold
        keep = (self.mask_hw > 0) & (self.average_hw > cfg.off_threshold)
        self.mask_hw = (on | keep).astype(np.float32)
        return self.mask_hw

    def smooth_painted(self, painted_rgb: np.ndarray) -> np.ndarray:
        """Feeds this frame's painted crop (S x S x 3 uint8, after ``update``); returns the
        averaged crop, or the crop itself when there is no history (first frame, after a
        jump or reset).

        The whole crop is averaged, not just the painted pixels: outside the mask the
        generator returns its input, so a pixel that joins the mask fades from what the
        output showed there to the new paint instead of popping.
        """
        alpha = self.config.paint_alpha
        average = self.painted_average_rgb
        if alpha >= 1.0:
            return painted_rgb
        if average is None or average.shape != painted_rgb.shape:
            # C order, because the generator's crops arrive as transposed views and OpenCV
            # accumulates only into contiguous arrays.
            self.painted_average_rgb = np.array(painted_rgb, dtype=np.float32, order="C")
            return painted_rgb
        cv2.accumulateWeighted(np.ascontiguousarray(painted_rgb), average, alpha)
        return np.rint(average).astype(np.uint8)


def _jumped(previous: Alignment, current: Alignment, fraction: float) -> bool:
    """True when the face moved or rescaled too much for the old average to apply."""
    face_px = current.crop_size / current.scale
    moved = float(np.linalg.norm(current.center_xy - previous.center_xy)) / face_px
    rescaled = abs(np.log(current.scale / previous.scale))
    return moved > fraction or rescaled > np.log1p(fraction)


class MaskSmoothers:
    """One MaskSmoother per track id; a new id starts fresh, dropped ids are forgotten."""

    def __init__(self, config: SmoothingConfig) -> None:
        self.config = config
        self._by_track: dict[int, MaskSmoother] = {}

    def update(self, track_id: int, prob_hw: np.ndarray, alignment: Alignment) -> np.ndarray:
        smoother = self._by_track.get(track_id)
        if smoother is None:
            smoother = self._by_track[track_id] = MaskSmoother(self.config)
        return smoother.update(prob_hw, alignment)

    def average(self, track_id: int) -> np.ndarray:
        """The averaged mask probabilities (S x S float32) of ``track_id``, after its
        ``update``."""
        return self._updated(track_id).average_hw

    def smooth_painted(self, track_id: int, painted_rgb: np.ndarray) -> np.ndarray:
        """``MaskSmoother.smooth_painted`` for ``track_id``; call after its ``update``."""
        return self._updated(track_id).smooth_painted(painted_rgb)

    def _updated(self, track_id: int) -> MaskSmoother:
        """The smoother of ``track_id``, which must have had an ``update`` since it was last
        reset."""
        smoother = self._by_track.get(track_id)
        if smoother is None or smoother.average_hw is None:
            raise RuntimeError(f"track {track_id} has no mask yet: call update() first")
        return smoother

    def prune(self, alive_track_ids: set[int]) -> None:
        for track_id in set(self._by_track) - alive_track_ids:
            del self._by_track[track_id]

    def clear(self) -> None:
        self._by_track.clear()
