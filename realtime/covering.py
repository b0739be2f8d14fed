"""Which marked pixels are a face covering, and which faces wear one.

The segmenter's mask is not painted as it comes: a painter that paints an unmasked face or a
burned-in box destroys real pixels. Per crop, ``plausible_covering`` keeps only marked regions
that look like a covering of the lower face; per tracked face, ``CoveringVotes`` decides over
frames, with hysteresis, whether the face wears one at all.

The rule, in canonical crop coordinates (``realtime.face.align.CANONICAL_XY``):
- nothing above the eye line is ever painted;
- thin structures (lines, box edges, text strokes: narrower than ``2 * open_px + 1`` pixels)
  are removed by a morphological opening;
- only connected regions that reach the mouth-and-nose disc are kept (a covering covers the
  mouth; a frame around the face, a label or a smudge on the forehead does not);
- the face counts as covered in this frame when what is kept covers at least ``mouth_cover``
  of that disc and ``min_area`` of the crop, and the segmenter is sure of it: its mean
  probability there is at least ``min_confidence`` (real coverings: 0.96-0.98 on a webcam
  clip, 99% of 422 real masked photos above 0.85; the dark, blurred background faces it
  wrongly marked in a crowd: 0.75-0.91).

    mask_hw, covered = plausible_covering(binary_hw, CoveringConfig())
    votes = CoveringVotes(CoveringConfig())
    if votes.update(track_id, covered): ...paint mask_hw...
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import cv2
import numpy as np

from realtime.edges import disc
from realtime.face.align import CANONICAL_XY

EYE_Y = float(CANONICAL_XY[0, 1])
"""The eye line as a fraction of the crop side: no painted pixel lies above it."""
MOUTH_NOSE_XY = ((float(CANONICAL_XY[2, 0]) + float(CANONICAL_XY[3, 0])) / 2,
                 (float(CANONICAL_XY[2, 1]) + float(CANONICAL_XY[3, 1])) / 2)
"""Between the nose tip and the mouth centre, as fractions of the crop side."""


@dataclass(frozen=True)
class CoveringConfig:
    """When marked pixels count as a face covering."""

    min_area: float = 0.03
    """Least share of the crop a covering fills (a real surgical mask fills 12-25%)."""
    mouth_cover: float = 0.6
    """Least share of the mouth-and-nose disc a covering covers."""
    min_confidence: float = 0.85
    """Least mean segmenter probability over the kept region."""
    disc_radius: float = 0.06
    """Radius of that disc, as a fraction of the crop side (about a third of the eye
    distance: the mouth, the nostrils and the upper lip)."""
    open_px: int = 2
    """Opening radius at 128 px (scaled with the crop): removes lines up to 5 px wide."""
    on_score: float = 0.7
    """A track becomes covered when its vote score reaches this."""
    off_score: float = 0.2
    """A covered track becomes uncovered when its score falls to this."""
    decay: float = 0.5
    """Weight of the newest frame in the vote score (an exponential average of 0/1 evidence):
    0.5 turns on at the second covered frame and off after the third uncovered one."""

    def __post_init__(self) -> None:
        checks = [
            (0 <= self.min_area < 1, f"min_area must be in [0, 1), got {self.min_area}"),
            (0 <= self.mouth_cover <= 1,
             f"mouth_cover must be in [0, 1], got {self.mouth_cover}"),
            (0 <= self.min_confidence < 1,
             f"min_confidence must be in [0, 1), got {self.min_confidence}"),
            (0 < self.disc_radius < 0.5,
             f"disc_radius must be in (0, 0.5), got {self.disc_radius}"),
            (0 <= self.open_px <= 8, f"open_px must be in 0..8, got {self.open_px}"),
            (0 < self.off_score < self.on_score <= 1,
             f"vote scores must satisfy 0 < off < on <= 1, got {self.off_score}, "
             f"{self.on_score}"),
            (0 < self.decay <= 1, f"decay must be in (0, 1], got {self.decay}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)


@cache
def below_eyes(size: int) -> np.ndarray:
    """(S, 1) float32 column, read-only: 1 on and below the eye line, 0 above it. Computed
    once per crop size: every face of every frame uses it."""
    rows = np.arange(size, dtype=np.float32)[:, None]
    column = (rows >= EYE_Y * size).astype(np.float32)
    column.flags.writeable = False
    return column


@cache
def mouth_disc(size: int, radius: float) -> np.ndarray:
    """(S, S) bool, read-only: the mouth-and-nose disc of a crop of side ``size``."""
    yy, xx = np.mgrid[0:size, 0:size]
    cx, cy = MOUTH_NOSE_XY[0] * size, MOUTH_NOSE_XY[1] * size
    disc = (xx - cx) ** 2 + (yy - cy) ** 2 <= (radius * size) ** 2
    disc.flags.writeable = False
    return disc


def plausible_covering(binary_hw: np.ndarray, config: CoveringConfig,
                       prob_hw: np.ndarray | None = None) -> tuple[np.ndarray, bool]:
    """(the covering part of a binary mask (S, S) float32 0/1, whether it is a covering);
    ``prob_hw``, the segmenter's probabilities, adds the confidence test."""
    size = binary_hw.shape[0]
    mask_u8 = (binary_hw > 0.5).astype(np.uint8) * below_eyes(size).astype(np.uint8)
    if not mask_u8.any():
        return np.zeros_like(binary_hw, dtype=np.float32), False
    radius = max(1, round(config.open_px * size / 128)) if config.open_px else 0
    if radius:
        mask_u8 = cv2.morphologyEx(mask_u8, cv2.MORPH_OPEN, disc(radius))
    count, labels = cv2.connectedComponents(mask_u8, connectivity=8)
    mouth = mouth_disc(size, config.disc_radius)
    touching = np.unique(labels[mouth & (labels > 0)])
    kept = np.isin(labels, touching[touching > 0]) if count > 1 else np.zeros_like(mouth)
    covered = (kept[mouth].mean() >= config.mouth_cover
               and kept.mean() >= config.min_area
               and (prob_hw is None or float(prob_hw[kept].mean()) >= config.min_confidence))
    return kept.astype(np.float32), bool(covered)


class CoveringVotes:
    """Per-track vote, with hysteresis, on whether the face wears a covering.

    A new track starts at its first frame's evidence (so a still image is decided at once);
    after that the score is an exponential average of the frames' 0/1 evidence.
    """

    def __init__(self, config: CoveringConfig) -> None:
        self.config = config
        self._score: dict[int, float] = {}
        self._covered: dict[int, bool] = {}

    def update(self, track_id: int, evidence: bool) -> bool:
        cfg = self.config
        e = 1.0 if evidence else 0.0
        score = self._score.get(track_id)
        score = e if score is None else score + cfg.decay * (e - score)
        was = self._covered.get(track_id, False)
        covered = score >= cfg.on_score if not was else score > cfg.off_score
        self._score[track_id], self._covered[track_id] = score, covered
        return covered

    def prune(self, alive_track_ids: set[int]) -> None:
        for track_id in set(self._score) - alive_track_ids:
            del self._score[track_id], self._covered[track_id]

    def clear(self) -> None:
        self._score.clear()
        self._covered.clear()
