"""Temporal smoothing of the mask, per tracked face, so the painted region does not flicker.

Masks live in canonical crop coordinates, where a face that moves keeps its mask in place, so
a per-pixel exponential moving average is meaningful. Hysteresis turns the average into a
binary mask that only flips when the evidence clearly changes.

    smoothers = MaskSmoothers(SmoothingConfig(alpha=0.5))
    mask_hw = smoothers.update(face.track_id, prob_hw, alignment)
    smoothers.prune(alive_track_ids)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from realtime.align import Alignment


@dataclass(frozen=True)
class SmoothingConfig:
    """How strongly masks are smoothed over time."""

    alpha: float = 0.5
    """Weight of the newest frame in the moving average: 1.0 turns smoothing off."""
    on_threshold: float = 0.6
    """A pixel joins the mask when its averaged probability rises above this."""
    off_threshold: float = 0.4
    """A pixel leaves the mask when its averaged probability falls below this."""
    jump_fraction: float = 0.3
    """Reset when the face moves by more than this share of its size, or rescales by it."""

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha <= 1.0:
            raise ValueError(f"smoothing alpha must be in (0, 1], got {self.alpha}")
        if not 0.0 < self.off_threshold <= self.on_threshold < 1.0:
            raise ValueError(
                "thresholds must satisfy 0 < off <= on < 1, got "
                f"off={self.off_threshold}, on={self.on_threshold}"
            )
        if self.jump_fraction <= 0:
            raise ValueError(f"jump_fraction must be positive, got {self.jump_fraction}")


class MaskSmoother:
    """Moving average plus hysteresis for one track."""

    def __init__(self, config: SmoothingConfig) -> None:
        self.config = config
        self.average_hw: np.ndarray | None = None
        self.mask_hw: np.ndarray | None = None
        self.last_alignment: Alignment | None = None

    def reset(self) -> None:
        self.average_hw = None
        self.mask_hw = None
        self.last_alignment = None

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

    def prune(self, alive_track_ids: set[int]) -> None:
        for track_id in set(self._by_track) - alive_track_ids:
            del self._by_track[track_id]

    def clear(self) -> None:
        self._by_track.clear()
