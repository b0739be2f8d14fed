"""The per-frame stages with stand-in engines and tracker: geometry, masks, blending."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from standins import lower_half_segmenter, standin_engines, white_generator

from realtime.face import mesh
from realtime.face.align import CANONICAL_XY, affine_points, estimate_alignment, reference_points
from realtime.face.guide import draw_guide
from realtime.pipeline import Pipeline, PipelineConfig, from_network, to_network
from realtime.smoothing import SmoothingConfig
from realtime.types import Face, Frame

FACE_PX = 120  # side of the canonical crop in frame pixels


class OneFaceTracker:
    def __init__(self, origin_xy=(100.0, 60.0), present: bool = True) -> None:
        self.origin_xy = np.array(origin_xy, np.float32)
        self.present = present
        self.resets = self.closes = 0
        self.last_timings_ms: dict[str, float] = {}

    def close(self) -> None:
        self.closes += 1

    def update(self, frame_bgr: np.ndarray) -> list[Face]:
        if not self.present:
            return []
        points = CANONICAL_XY * FACE_PX + self.origin_xy
        keypoints = np.vstack([points, points[:2]]).astype(np.float32)
        box = np.array([*self.origin_xy, *(self.origin_xy + FACE_PX)], np.float32)
        return [Face(track_id=1, box_xyxy=box, keypoints_xy=keypoints, landmarks_xy=None,
                     score=0.9)]

    def reset(self) -> None:
        self.resets += 1


def _pipeline(**kwargs) -> Pipeline:
    engines = standin_engines()
    tracker = kwargs.pop("tracker", OneFaceTracker())
    kwargs.setdefault("colour_match", False)  # the stand-in's white is meant to stay white
    return Pipeline(PipelineConfig(**kwargs), engines=engines, tracker=tracker)


def _frame() -> Frame:
    bgr = np.full((240, 320, 3), 40, np.uint8)
    return Frame(index=0, t_capture=0.0, bgr=bgr)


def test_network_conversions_round_trip() -> None:
    crops = np.random.default_rng(0).integers(0, 256, (2, 8, 8, 3), dtype=np.uint8)
    x = to_network(crops)
    assert x.shape == (2, 3, 8, 8) and x.dtype == np.float32
    assert x.min() >= -1 and x.max() <= 1
    np.testing.assert_array_equal(from_network(x), crops)


def test_face_region_is_painted_and_the_rest_untouched() -> None:
    frame = _frame()
    result = _pipeline(want_mask=True).process(frame)
    out = result.out_bgr
    x0, y0 = 100, 60
    lower = out[y0 + int(FACE_PX * 0.75): y0 + FACE_PX - 5, x0 + 10: x0 + FACE_PX - 10]
    upper = out[y0 + 5: y0 + int(FACE_PX * 0.35), x0 + 5: x0 + FACE_PX - 5]
    assert lower.min() > 240  # painted white by the stand-in generator
    assert np.all(upper == 40)  # above the mask nothing changes
    assert np.all(out[:, :90] == 40) and np.all(out[:50] == 40)
    assert np.array_equal(frame.bgr, _frame().bgr)  # the input frame is not modified
    mask = result.mask_full_hw
    assert mask is not None and mask.shape == (240, 320)
    assert mask[y0 + 100, x0 + 60] > 0.99 and mask[y0 + 20, x0 + 60] == 0
    assert set(frame.timings_ms) == {"detect", "align", "segment", "inpaint", "composite"}


def test_no_face_passes_the_frame_through() -> None:
    frame = _frame()
    result = _pipeline(tracker=OneFaceTracker(present=False), want_mask=True).process(frame)
    assert result.out_bgr is frame.bgr and result.faces == []
    assert result.mask_full_hw is not None and not result.mask_full_hw.any()


def test_telea_baseline_fills_from_the_surroundings() -> None:
    result = _pipeline(inpainter="telea").process(_frame())
    diff = np.abs(result.out_bgr.astype(int) - 40)
    # a flat frame stays (nearly) flat; Telea drifts a little where the mask meets the edges
    assert diff.max() <= 16 and diff.mean() < 1


def test_smoothing_carries_history_per_track() -> None:
    calls = {"n": 0}

    def flicker(batch: np.ndarray) -> np.ndarray:
        calls["n"] += 1
        return lower_half_segmenter(batch) * (1 if calls["n"] % 5 else -1)  # 1 frame in 5 wrong

    engines = standin_engines(segmenter=flicker, generator=white_generator)
    smooth = Pipeline(PipelineConfig(smoothing=SmoothingConfig(alpha=0.3)), engines=engines,
                      tracker=OneFaceTracker())
    painted = [smooth.process(_frame()).out_bgr[160, 160].max() > 200 for _ in range(10)]
    assert all(painted)  # the wrong frames never un-paint the face


@pytest.mark.parametrize("kwargs,match", [({"crop_size": 100}, "crop size"),
                                          ({"inpainter": "magic"}, "inpainter"),
                                          ({"feather_px": -1}, "feather")])
def test_config_validation(kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        PipelineConfig(**kwargs)


@pytest.mark.parametrize("radius", [0, 1, 3])
def test_grow_dilates_by_the_radius(radius: int) -> None:
    from realtime.edges import grow

    masks = np.zeros((2, 32, 32), np.float32)
    masks[:, 20:, 8:24] = 1
    grown = grow(masks, radius)
    assert grown.shape == masks.shape and set(np.unique(grown)) <= {0.0, 1.0}
    assert grown[0, 20 - radius, 16] == 1 and grown[0, 19 - radius, 16] == 0
    assert np.all(grown[masks == 1] == 1)


class ShadeGenerator:
    """Paints the masked region a flat grey that changes on every call, like shimmer."""

    def __init__(self, shades=(0.0, 0.8)) -> None:
        self.shades = shades
        self.calls = 0

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        shade = self.shades[self.calls % len(self.shades)]
        self.calls += 1
        rgb, mask = batch[:, :3], batch[:, 3:4]
        return rgb * (1 - mask) + shade * mask


def _shade_pipeline(smoothing: SmoothingConfig | None, tracker=None) -> Pipeline:
    engines = standin_engines(segmenter=lower_half_segmenter, generator=ShadeGenerator())
    return Pipeline(PipelineConfig(smoothing=smoothing, colour_match=False), engines=engines,
                    tracker=tracker or OneFaceTracker())


PAINTED_YX = (60 + 105, 100 + 60)  # well inside the painted lower face


@pytest.mark.parametrize("smoothing,second_frame", [
    (None, 230),                                   # each frame painted alone: 0.8 -> 230
    (SmoothingConfig(paint_alpha=1.0), 230),
    (SmoothingConfig(paint_alpha=0.5), 179),       # halfway between 128 and 230
])
def test_painted_face_is_averaged_over_frames(smoothing, second_frame) -> None:
    pipeline = _shade_pipeline(smoothing)
    first = pipeline.process(_frame()).out_bgr[PAINTED_YX]
    second = pipeline.process(_frame()).out_bgr[PAINTED_YX]
    assert np.all(first == 128)
    assert np.all(np.abs(second.astype(int) - second_frame) <= 1)


def test_a_single_frame_is_painted_as_without_smoothing() -> None:
    smooth = _shade_pipeline(SmoothingConfig()).process(_frame())
    plain = _shade_pipeline(None).process(_frame())
    np.testing.assert_array_equal(smooth.out_bgr, plain.out_bgr)


def test_reset_forgets_painted_history_between_unrelated_images() -> None:
    pipeline = _shade_pipeline(SmoothingConfig(paint_alpha=0.5))
    alone = _shade_pipeline(SmoothingConfig(paint_alpha=0.5))
    alone.engines.generator.calls = 1  # the shade the second image will get
    expected = alone.process(_frame()).out_bgr
    pipeline.process(_frame())
    pipeline.reset()
    np.testing.assert_array_equal(pipeline.process(_frame()).out_bgr, expected)
    assert pipeline.tracker.resets == 1


class TwoFaceTracker(OneFaceTracker):
    """Two faces side by side (track ids 1 and 2)."""

    def update(self, frame_bgr: np.ndarray) -> list[Face]:
        left = super().update(frame_bgr)[0]
        shift = np.array([FACE_PX + 40, 0], np.float32)
        right = Face(track_id=2, box_xyxy=left.box_xyxy + np.tile(shift, 2),
                     keypoints_xy=left.keypoints_xy + shift, landmarks_xy=None, score=0.9)
        return [left, right]


def _counting_generator(calls: list[int]):
    def generator(batch: np.ndarray) -> np.ndarray:
        calls.append(batch.shape[0])
        return white_generator(batch)
    return generator


def _segmenter_masking(first_face_only: bool):
    def segmenter(batch: np.ndarray) -> np.ndarray:
        logits = lower_half_segmenter(batch)
        logits[1 if first_face_only else 0:] = -8.0  # nothing on these faces
        return logits
    return segmenter


@pytest.mark.parametrize(("first_face_only", "expected_calls"), [(True, [1]), (False, [])])
def test_generator_runs_only_on_faces_with_a_mask(first_face_only: bool,
                                                  expected_calls: list[int]) -> None:
    calls: list[int] = []
    engines = standin_engines(segmenter=_segmenter_masking(first_face_only),
                              generator=_counting_generator(calls))
    pipeline = Pipeline(PipelineConfig(smoothing=None, colour_match=False), engines=engines,
                        tracker=TwoFaceTracker(origin_xy=(20.0, 60.0)))
    frame = Frame(index=0, t_capture=0.0, bgr=np.full((240, 360, 3), 40, np.uint8))
    result = pipeline.process(frame)
    assert calls == expected_calls
    right_half = (slice(None), slice(180, None))
    np.testing.assert_array_equal(result.out_bgr[right_half], frame.bgr[right_half])
    assert (result.out_bgr[:, :180] == 255).any() == first_face_only


def _segmenter_marking(rows: slice, cols: slice = slice(None)):
    def segmenter(batch: np.ndarray) -> np.ndarray:
        logits = np.full((batch.shape[0], 1, *batch.shape[2:]), -8.0, np.float32)
        logits[:, :, rows, cols] = 8.0
        return logits
    return segmenter


@pytest.mark.parametrize("segmenter", [
    _segmenter_marking(slice(0, 30)),             # the forehead: above the eyes
    _segmenter_marking(slice(60, 63)),            # a thin line across the face (an overlay)
    _segmenter_marking(slice(100, 128)),          # the neck, below the mouth
])
def test_marks_that_are_no_covering_are_not_painted(segmenter) -> None:
    engines = standin_engines(segmenter=segmenter, generator=white_generator)
    pipeline = Pipeline(PipelineConfig(want_mask=True), engines=engines,
                        tracker=OneFaceTracker())
    frame = _frame()
    result = pipeline.process(frame)
    assert result.covered == [False]
    np.testing.assert_array_equal(result.out_bgr, frame.bgr)


def test_nothing_above_the_eyes_is_painted_even_without_the_covering_rule() -> None:
    engines = standin_engines(segmenter=_segmenter_marking(slice(0, 128)),
                              generator=white_generator)
    for covering in (None, PipelineConfig().covering):
        pipeline = Pipeline(PipelineConfig(want_mask=True, covering=covering, feather_px=3,
                                           colour_match=False),
                            engines=engines, tracker=OneFaceTracker())
        result = pipeline.process(_frame())
        eye_row = 60 + CANONICAL_XY[0, 1] * FACE_PX  # frame row of the eye line
        assert result.mask_full_hw is not None
        assert not result.mask_full_hw[: int(np.floor(eye_row)) - 1].any()
        assert result.mask_full_hw[int(eye_row) + 20, 160] > 0.99


def test_colour_match_shifts_the_paint_towards_the_skin_around_it() -> None:
    painted = _pipeline(colour_match=True).process(_frame()).out_bgr
    plain = _pipeline(colour_match=False).process(_frame()).out_bgr
    inside = (60 + 100, 160)
    assert plain[inside].tolist() == [255, 255, 255]
    assert painted[inside].tolist() == [225, 225, 225]  # 255 shifted by at most 30 towards 40


def test_band_generator_sees_the_ring_along_the_segmented_edge() -> None:
    seen = []

    def recording_generator(batch: np.ndarray) -> np.ndarray:
        seen.append(batch.copy())
        return white_generator(batch)

    for band in (False, True):
        pipeline = Pipeline(PipelineConfig(smoothing=None, colour_match=False),
                            engines=standin_engines(generator=recording_generator,
                                                    generator_band=band),
                            tracker=OneFaceTracker())
        pipeline.process(_frame())
    plain, banded = (b[0, 3] for b in seen)
    assert set(np.unique(plain)) == {0.0, 1.0}
    assert set(np.unique(banded)) == {0.0, 0.5, 1.0}
    np.testing.assert_array_equal(banded > 0, plain > 0)  # the same region is painted
    ring = banded == 0.5
    rgb = seen[1][0, :3]
    assert np.abs(rgb[:, ring]).sum() > 0  # the ring's pixels are shown, not zeroed
    assert not rgb[:, banded == 1].any()


def test_closing_the_pipeline_closes_its_tracker() -> None:
    with _pipeline() as pipeline:
        pipeline.process(_frame())
    assert pipeline.tracker.closes == 1


class LandmarkedTracker(OneFaceTracker):
    """One face whose mesh landmarks lie inside its box (or None)."""

    def __init__(self, landmarks: bool) -> None:
        super().__init__()
        self.landmarks = landmarks

    def update(self, frame_bgr: np.ndarray) -> list[Face]:
        faces = super().update(frame_bgr)
        rng = np.random.default_rng(0)
        marks = (self.origin_xy + rng.uniform(0.3, 0.8, (468, 2)) * FACE_PX).astype(np.float32)
        eyes_nose_mouth = CANONICAL_XY * FACE_PX + self.origin_xy  # align as the keypoints do
        for group, xy in zip((mesh.RIGHT_EYE[:2], mesh.LEFT_EYE[:2], (mesh.NOSE_TIP,),
                              mesh.INNER_LIPS), eyes_nose_mouth, strict=True):
            marks[list(group)] = xy
        return [replace(f, landmarks_xy=marks if self.landmarks else None) for f in faces]


def test_guided_generator_reads_the_lower_face_guide() -> None:
    seen = []

    def recording_generator(batch: np.ndarray) -> np.ndarray:
        seen.append(batch.copy())
        return white_generator(batch)

    for guide, landmarks in ((False, True), (True, True), (True, False)):
        pipeline = Pipeline(PipelineConfig(smoothing=None, colour_match=False),
                            engines=standin_engines(generator=recording_generator,
                                                    generator_guide=guide),
                            tracker=LandmarkedTracker(landmarks))
        pipeline.process(_frame())
    plain, guided, blind = seen
    assert plain.shape[1] == 4 and guided.shape[1] == blind.shape[1] == 5
    np.testing.assert_array_equal(guided[:, :4], plain)  # the same crop and mask
    face = LandmarkedTracker(True).update(_frame().bgr)[0]
    alignment = estimate_alignment(reference_points(landmarks_xy=face.landmarks_xy,
                                                    keypoints_xy=face.keypoints_xy), 128)
    np.testing.assert_array_equal(guided[0, 4], draw_guide(
        affine_points(alignment.matrix, face.landmarks_xy), 128))  # drawn in crop pixels
    assert guided[0, 4].max() > 0.5
    assert not blind[0, 4].any()  # no landmarks: an empty guide
