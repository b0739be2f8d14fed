"""Box overlap and matching: what keeps track ids stable and merges the two detectors."""

from __future__ import annotations

import numpy as np
import pytest

from realtime.detection import Detection, greedy_match, iou_matrix, unmatched


@pytest.mark.parametrize(
    "box_a, box_b, expected",
    [
        ([0, 0, 10, 10], [0, 0, 10, 10], 1.0),
        ([0, 0, 10, 10], [5, 0, 15, 10], 1 / 3),
        ([0, 0, 10, 10], [20, 20, 30, 30], 0.0),
        ([0, 0, 0, 0], [0, 0, 0, 0], 0.0),
    ],
)
def test_iou(box_a: list[float], box_b: list[float], expected: float) -> None:
    iou = iou_matrix(np.array([box_a], np.float32), np.array([box_b], np.float32))
    assert iou.shape == (1, 1) and iou[0, 0] == pytest.approx(expected)


@pytest.mark.parametrize(
    "iou, expected",
    [
        ([[0.9, 0.1], [0.8, 0.7]], {0: 0, 1: 1}),  # best pair first, then the best one left
        ([[0.5, 0.6]], {0: 1}),
        ([[0.9], [0.95]], {1: 0}),  # a column is used once
        ([[0.2, 0.1]], {}),  # under the threshold
        (np.zeros((0, 2)), {}),
    ],
)
def test_greedy_match(iou: list[list[float]], expected: dict[int, int]) -> None:
    assert greedy_match(np.asarray(iou, np.float64), threshold=0.3) == expected


def _detection(box_xyxy: list[float]) -> Detection:
    return Detection(np.array(box_xyxy, np.float32), np.zeros((6, 2), np.float32), 0.9)


def test_unmatched_keeps_only_detections_that_overlap_none() -> None:
    found = [_detection([0, 0, 10, 10])]
    extra = [_detection([1, 0, 11, 10]), _detection([50, 50, 60, 60])]
    assert [d.box_xyxy.tolist() for d in unmatched(extra, found)] == [[50, 50, 60, 60]]
    assert len(unmatched(extra, [])) == 2 and unmatched([], found) == []
