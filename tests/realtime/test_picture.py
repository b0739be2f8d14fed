"""Single pictures: borders tried in turn, the tracker's grey one, and the result cut back."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

import realtime.picture as picture
from realtime.pipeline import FrameResult, Pipeline, PipelineConfig
from realtime.types import Face, Frame
from tests.realtime.standins import standin_engines


def _face(offset: float) -> Face:
    box = np.array([10, 20, 50, 70], np.float32) + offset
    return Face(track_id=1, box_xyxy=box, keypoints_xy=np.full((6, 2), 30 + offset, np.float32),
                landmarks_xy=np.full((468, 2), 40 + offset, np.float32), score=0.9)


class ScriptedPipeline:
    """Finds ``counts[i]`` faces on its i-th try (0 past the list); records every frame it is
    given and every reset."""

    def __init__(self, counts: list[int]) -> None:
        self.counts, self.frames, self.events = counts, [], []

    def reset(self) -> None:
        self.events.append("reset")

    def process(self, frame: Frame) -> FrameResult:
        i = len(self.frames)
        self.frames.append(frame)
        self.events.append("process")
        frame.timings_ms["detect"] = 1.0
        h, w = frame.bgr.shape[:2]
        pad = (w - 60) // 2  # the photo is 60 px wide
        faces = [_face(pad)] * (self.counts[i] if i < len(self.counts) else 0)
        mask = np.zeros((h, w), np.float32)
        mask[h // 2, w // 2] = 1.0
        return FrameResult(255 - frame.bgr, mask, faces, [True] * len(faces))


def _photo() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (40, 60, 3), np.uint8)  # 40 rows, 60 columns


TRIED = [(0.25, False), (0.0, False), (0.5, False), (0.25, True), (0.5, True)]
"""What the tests expect: ``COMPARED``, then ``FALLBACKS``."""


@pytest.mark.parametrize(("counts", "tried", "kept"), [
    ([1, 1], 2, 0),           # a tie: the border is kept
    ([1, 2], 2, 1),           # more faces without the border
    ([2, 1], 2, 0),
    ([0, 1], 2, 1),
    ([0, 0, 0, 1], 4, 3),     # the first fallback that finds one: the tracker's grey border
    ([], 5, 4),               # none anywhere: the last try's result
])
def test_borders_are_compared_then_tried_until_a_face_is_found(
        counts: list[int], tried: int, kept: int) -> None:
    assert (*picture.COMPARED, *picture.FALLBACKS) == tuple(TRIED)
    photo = _photo()
    pipeline = ScriptedPipeline(counts)
    frame = Frame(3, 0.0, photo, name="p.png")
    result = picture.unmask_picture(pipeline, frame)
    expected = [(round(f * 60), grey) for f, grey in TRIED[:tried]]
    assert [(f.bgr.shape[1] - 60) // 2 for f in pipeline.frames] == [p for p, _ in expected]
    assert pipeline.events == ["reset", "process"] * tried + ["reset"]
    for seen, (pad, grey) in zip(pipeline.frames, expected, strict=True):
        assert seen.index == 3 and seen.name == "p.png" and seen.timings_ms is frame.timings_ms
        if pad == 0:
            assert seen.bgr is photo and seen.detect_bgr is None
            continue
        np.testing.assert_array_equal(seen.bgr, cv2.copyMakeBorder(
            photo, pad, pad, pad, pad, cv2.BORDER_REPLICATE))  # the nets' border
        if grey:
            np.testing.assert_array_equal(seen.detect_bgr[pad:pad + 40, pad:pad + 60], photo)
            border = seen.detect_bgr.copy()
            border[pad:pad + 40, pad:pad + 60] = picture.DETECT_GREY
            assert np.all(border == picture.DETECT_GREY)
        else:
            assert seen.detect_bgr is None
    assert frame.timings_ms == {"detect": 1.0}
    # Cut back to the picture: its size, its pixels, the faces in its coordinates.
    assert result.out_bgr.shape == photo.shape and result.mask_full_hw.shape == (40, 60)
    np.testing.assert_array_equal(result.out_bgr, 255 - photo)
    assert len(result.faces) == (counts[kept] if kept < len(counts) else 0)
    for face in result.faces:
        np.testing.assert_allclose(face.box_xyxy, [10, 20, 50, 70])
        np.testing.assert_allclose(face.keypoints_xy, 30)
        np.testing.assert_allclose(face.landmarks_xy, 40)


class RecordingTracker:
    def __init__(self) -> None:
        self.seen: list[np.ndarray] = []
        self.last_timings_ms: dict[str, float] = {}

    def update(self, frame_bgr: np.ndarray) -> list[Face]:
        self.seen.append(frame_bgr)
        return []

    def reset(self) -> None: ...

    def close(self) -> None: ...


def test_the_tracker_reads_detect_bgr_and_the_nets_bgr() -> None:
    tracker = RecordingTracker()
    pipeline = Pipeline(PipelineConfig(), engines=standin_engines(), tracker=tracker)
    bgr = np.zeros((32, 32, 3), np.uint8)
    detect = np.full((32, 32, 3), 128, np.uint8)
    out = pipeline.process(Frame(0, 0.0, bgr, detect_bgr=detect))
    assert tracker.seen[-1] is detect and out.out_bgr is bgr
    pipeline.process(Frame(1, 0.0, bgr))
    assert tracker.seen[-1] is bgr


@pytest.mark.slow
def test_a_tight_masked_photo_is_painted_without_a_border_of_its_own(
        shared_data: Path) -> None:
    """The real tracker and nets: a tight crop is found and painted only inside itself."""
    from engines import EngineConfig
    from realtime.pipeline import build_pipeline
    from realtime.tracking import TrackerConfig

    photo = cv2.imread(str(shared_data / "masked_real" / "test_219.png"))
    with build_pipeline(PipelineConfig(want_mask=True), engines=EngineConfig(),
                        tracker=TrackerConfig(), log=lambda line: None) as pipeline:
        result = picture.unmask_picture(pipeline, Frame(0, 0.0, photo))
    assert result.out_bgr.shape == photo.shape and result.mask_full_hw.shape == photo.shape[:2]
    assert result.covered == [True]
    changed = np.abs(result.out_bgr.astype(int) - photo.astype(int)).max(axis=2) > 0
    assert changed.mean() > 0.05 and not changed[result.mask_full_hw == 0].any()
    (face,) = result.faces
    x0, y0, x1, y1 = face.box_xyxy
    h, w = photo.shape[:2]
    assert -w / 2 < x0 < x1 < 1.5 * w and -h / 2 < y0 < y1 < 1.5 * h  # in the photo's pixels
