"""The covering rule: which marked regions are a face covering, and the per-track vote."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from realtime.covering import (
    EYE_Y,
    MOUTH_NOSE_XY,
    CoveringConfig,
    CoveringVotes,
    plausible_covering,
)

S = 128


def _surgical_mask() -> np.ndarray:
    """A mask-shaped region from the nose bridge to below the chin."""
    m = np.zeros((S, S), np.uint8)
    cv2.ellipse(m, (64, 80), (34, 32), 0, 0, 360, 1, -1)
    m[:int(EYE_Y * S) + 6] = 0
    return m.astype(np.float32)


def _box_frame() -> np.ndarray:
    m = np.zeros((S, S), np.uint8)
    cv2.rectangle(m, (30, 25), (98, 115), 1, 2)  # a burned-in detection box around the face
    return m.astype(np.float32)


def _forehead_patch() -> np.ndarray:
    m = np.zeros((S, S), np.float32)
    m[10:34, 40:90] = 1
    return m


def _timestamp_stripe() -> np.ndarray:
    m = np.zeros((S, S), np.float32)
    m[100:104, 10:120] = 1
    return m


def _cheek_blob() -> np.ndarray:
    m = np.zeros((S, S), np.uint8)
    cv2.circle(m, (30, 70), 10, 1, -1)  # a smudge on one cheek, away from the mouth
    return m.astype(np.float32)


@pytest.mark.parametrize(("name", "mask", "covered"), [
    ("empty", np.zeros((S, S), np.float32), False),
    ("surgical mask", _surgical_mask(), True),
    ("surgical mask plus box frame", np.maximum(_surgical_mask(), _box_frame()), True),
    ("box frame", _box_frame(), False),
    ("forehead patch", _forehead_patch(), False),
    ("timestamp stripe", _timestamp_stripe(), False),
    ("cheek blob", _cheek_blob(), False),
])
def test_only_lower_face_coverings_count(name: str, mask: np.ndarray, covered: bool) -> None:
    kept, is_covering = plausible_covering(mask, CoveringConfig())
    assert is_covering == covered, name
    assert kept.dtype == np.float32 and kept.shape == (S, S)
    assert not kept[: int(np.ceil(EYE_Y * S))].any()  # never above the eyes


def test_the_box_frame_around_a_masked_face_is_dropped() -> None:
    kept, covered = plausible_covering(np.maximum(_surgical_mask(), _box_frame()),
                                       CoveringConfig())
    assert covered
    assert kept[25:28, 30:98].sum() == 0  # the box's top edge is gone
    cx, cy = (round(v * S) for v in MOUTH_NOSE_XY)
    assert kept[cy, cx] == 1


@pytest.mark.parametrize(("evidence", "expected"), [
    ([True], [True]),                                   # a still image: decided at once
    ([False], [False]),
    ([False, True, True, True], [False, False, True, True]),      # on at the 2nd hit
    ([True, False, False, False], [True, True, True, False]),     # off at the 3rd miss
    ([True, False, True, False, True], [True] * 5),                # no flicker
    ([False, True, False, True, False], [False] * 5),
])
def test_votes_have_hysteresis(evidence: list[bool], expected: list[bool]) -> None:
    votes = CoveringVotes(CoveringConfig())
    assert [votes.update(7, e) for e in evidence] == expected


def test_votes_are_per_track_and_pruned() -> None:
    votes = CoveringVotes(CoveringConfig())
    assert votes.update(1, True) and not votes.update(2, False)
    votes.prune({2})
    assert not votes.update(1, False)  # track 1 starts afresh
    assert votes.update(2, True) is False  # track 2 keeps its history (0 -> 0.5)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"min_area": 1.0}, "min_area"), ({"mouth_cover": 1.5}, "mouth_cover"),
    ({"disc_radius": 0.0}, "disc_radius"), ({"open_px": 9}, "open_px"),
    ({"on_score": 0.2, "off_score": 0.3}, "vote scores"), ({"decay": 0.0}, "decay"),
])
def test_config_validation(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        CoveringConfig(**kwargs)


def test_an_unsure_mark_is_no_covering() -> None:
    mask = _surgical_mask()
    sure, unsure = np.where(mask > 0, 0.97, 0.02), np.where(mask > 0, 0.7, 0.02)
    assert plausible_covering(mask, CoveringConfig(), sure.astype(np.float32))[1]
    assert not plausible_covering(mask, CoveringConfig(), unsure.astype(np.float32))[1]
