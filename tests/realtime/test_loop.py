"""The whole loop on real clips, image folders and a simulated camera, with random weights."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from engines import EngineConfig
from realtime.loop import RunConfig, run
from realtime.pipeline import PipelineConfig, build_pipeline
from realtime.present import PresentConfig
from realtime.sinks import PROVENANCE
from realtime.sources import CameraSource, SimulatedCamera
from realtime.stats import STAGES
from realtime.tracking import TrackerConfig
from realtime.types import SinkContext


@pytest.fixture(scope="session")
def engine_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("engine-cache")


def random_engines(cache_dir: Path) -> EngineConfig:
    """Deterministic random weights, exported once per session into ``cache_dir``."""
    return EngineConfig(cache_dir=cache_dir, random_weights=True)


def _probe(path: Path) -> dict:
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        frames = sum(1 for _ in c.decode(video=0))
        audio = [s.codec_context.name for s in c.streams.audio]
        return {"frames": frames, "size": (v.width, v.height), "rate": v.average_rate,
                "audio": audio, "comment": {k.lower(): x for k, x in c.metadata.items()}.get(
                    "comment")}


@pytest.mark.parametrize("clip_name", ["hamilton_clip_640x360.mp4", "masked_webcam_256.mp4"])
def test_real_clip_keeps_frames_size_rate_and_audio(shared_data: Path, tmp_path: Path,
                                                     engine_cache: Path, clip_name: str,
                                                     runners: dict[str, str]) -> None:
    clip = shared_data / "videos" / clip_name
    out = tmp_path / "out.mp4"
    stats_path = tmp_path / "stats.json"
    summary = run(RunConfig(source=str(clip), output=str(out), stats_json=str(stats_path),
                            engines=random_engines(engine_cache), progress=False),
                  log=lambda _: None)
    src, dst = _probe(clip), _probe(out)
    assert dst["frames"] == src["frames"] == summary["frames"]
    assert dst["size"] == src["size"]
    assert dst["rate"] == src["rate"]
    assert dst["audio"] == src["audio"]  # copied as is (AAC for hamilton, none for the webcam)
    assert dst["comment"] == PROVENANCE
    assert summary["frames_with_faces"] > 0.8 * summary["frames"]
    stats = json.loads(stats_path.read_text())
    assert set(stats["latency_ms"]) == set(STAGES)
    assert all(stats["latency_ms"][s]["n"] > 0 for s in STAGES)
    assert stats["fps"] > 0 and stats["backend"] == runners["auto"]
    assert not list(tmp_path.glob(".*partial*"))  # no temporary file left behind


def test_faces_are_changed_and_the_background_is_not(hamilton_clip: Path, tmp_path: Path,
                                                    engine_cache: Path) -> None:
    out = tmp_path / "frames"
    # Random weights mark noise, which the covering check rightly refuses to paint; this test
    # is about the plumbing, so it paints whatever is marked.
    run(RunConfig(source=str(hamilton_clip), output=str(out), save_masks=True, max_frames=5,
                  engines=random_engines(engine_cache), pipeline=PipelineConfig(covering=None),
                  present=PresentConfig(label=False), progress=False), log=lambda _: None)
    with av.open(str(hamilton_clip)) as c:
        first = next(c.decode(video=0)).to_ndarray(format="bgr24")
    result = cv2.imread(str(out / "frame_000000.png"))
    mask = cv2.imread(str(out / "masks" / "frame_000000.png"), cv2.IMREAD_GRAYSCALE)
    assert set(np.unique(mask)) <= {0, 255} and mask.any()
    diff = np.abs(result.astype(int) - first.astype(int)).max(axis=2)
    far = cv2.dilate(mask, np.ones((15, 15), np.uint8)) == 0
    assert diff[mask == 255].mean() > 5  # painted (noise, with random weights)
    assert np.percentile(diff[far], 99) <= 3  # elsewhere only the codec's rounding


def test_image_folder_with_masks(shared_data: Path, tmp_path: Path, engine_cache: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    names = sorted(p.name for p in (shared_data / "masked_real").glob("*.png"))[:3]
    for name in names:
        shutil.copy(shared_data / "masked_real" / name, photos / name)
    blank = np.full((90, 120, 3), 128, np.uint8)
    cv2.imwrite(str(photos / "no_face.jpg"), blank)
    out = tmp_path / "out"
    summary = run(RunConfig(source=str(photos), output=str(out), save_masks=True,
                            engines=random_engines(engine_cache), progress=False),
                  log=lambda _: None)
    assert summary["frames"] == 4
    assert sorted(p.name for p in out.iterdir() if p.is_file()) == sorted([*names, "no_face.jpg"])
    for name in [*names, "no_face.jpg"]:
        src = cv2.imread(str(photos / name))
        mask = cv2.imread(str(out / "masks" / f"{Path(name).stem}.png"), cv2.IMREAD_UNCHANGED)
        assert mask.shape == src.shape[:2] and set(np.unique(mask)) <= {0, 255}
    assert not cv2.imread(str(out / "masks" / "no_face.png")).any()
    from PIL import Image

    assert Image.open(out / names[0]).info.get("Comment") == PROVENANCE


TIGHT = ("train_1104.png", "train_1308.png", "train_1352.png")
"""Tight crops (a face and little else) in which the detector finds no face without a border
and the product paints the covering with one."""


@pytest.mark.slow
def test_tight_photos_in_a_folder_are_found_and_painted(shared_data: Path,
                                                        tmp_path: Path) -> None:
    """Image inputs go through ``realtime.picture``: tight crops, which the detector misses
    without a border, are found and painted, at their own size."""
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in TIGHT:
        shutil.copy(shared_data / "masked_real" / name, photos / name)
    out = tmp_path / "out"
    summary = run(RunConfig(source=str(photos), output=str(out), save_masks=True,
                            progress=False, present=PresentConfig(label=False)),
                  log=lambda _: None)
    assert summary["frames_with_faces"] >= 2  # of 3: one may go on another MediaPipe build
    painted = 0
    for name in TIGHT:
        src = cv2.imread(str(photos / name))
        result = cv2.imread(str(out / name))
        mask = cv2.imread(str(out / "masks" / name), cv2.IMREAD_UNCHANGED)
        assert result.shape == src.shape and mask.shape == src.shape[:2]
        changed = np.abs(result.astype(int) - src.astype(int)).max(axis=2) > 0
        painted += bool((mask == 255).mean() > 0.05 and changed[mask == 255].mean() > 0.5)
    assert painted >= 2


class SlowSink(SinkContext):
    """A viewer that takes two camera periods over each frame, and notes which frames came."""

    def __init__(self, seconds_per_frame: float) -> None:
        self.seconds_per_frame, self.indices = seconds_per_frame, []

    def write(self, frame, out_bgr, mask_full_hw) -> None:
        self.indices.append(frame.index)
        time.sleep(self.seconds_per_frame)

    def close(self) -> None: ...

    def abort(self) -> None: ...


def test_simulated_camera_drops_what_a_slow_consumer_misses_and_counts_it(
        hamilton_clip: Path, tmp_path: Path, engine_cache: Path) -> None:
    # 30 frames; the clip loops, so a machine busy enough to outlast it still gets them all.
    fps, frames = 30.0, 30
    slow = SlowSink(2 / fps)
    config = RunConfig(source=0, output=str(tmp_path / "live.mp4"), display=False,
                       max_frames=frames, engines=random_engines(engine_cache), progress=False,
                       extra_sinks=(slow,))
    pipeline = build_pipeline(config.pipeline, engines=config.engines, tracker=config.tracker,
                              log=lambda _: None)
    summary = run(config, log=lambda _: None, pipeline=pipeline,
                  source=SimulatedCamera(hamilton_clip, fps=fps, loop=True))
    assert summary["frames"] == frames == len(slow.indices)
    latency = summary["capture_to_output_ms"]
    assert latency is not None and latency["n"] == frames and 0 < latency["p50"] < 2000
    # The camera numbers every frame it captures; each gap is a frame dropped while the loop
    # was busy, counted before the next one was handed over.
    assert slow.indices == sorted(set(slow.indices))
    skipped = slow.indices[-1] + 1 - frames
    assert skipped > frames / 2  # at least a frame lost for most frames shown
    # Frames captured while the last one is written and the run closes drop too (< 2 s).
    assert skipped <= summary["frames_dropped"] <= skipped + 2 * fps
    assert _probe(tmp_path / "live.mp4")["frames"] == frames


class FakeCapture:
    """A camera that delivers a moving face picture."""

    def __init__(self, frames: list[np.ndarray]) -> None:
        self.frames, self.i = frames, 0

    def isOpened(self) -> bool:  # OpenCV's name
        return True

    def read(self):
        if self.i >= len(self.frames):
            return False, None
        self.i += 1
        return True, self.frames[self.i - 1].copy()

    def get(self, prop: int) -> float:
        return 30.0 if prop == cv2.CAP_PROP_FPS else 0.0

    def set(self, prop: int, value: float) -> bool:
        return True

    def release(self) -> None:
        pass


def test_camera_path_with_a_fake_capture(masked_clip: Path, engine_cache: Path) -> None:
    with av.open(str(masked_clip)) as c:
        decoded = zip(range(20), c.decode(video=0), strict=False)
        frames = [f.to_ndarray(format="bgr24") for _, f in decoded]
    source = CameraSource(0, capture_factory=lambda index: FakeCapture(frames))
    config = RunConfig(source=0, display=False, engines=random_engines(engine_cache),
                       progress=False)
    summary = run(config, log=lambda _: None, source=source)
    assert 1 <= summary["frames"] <= 20  # a live source may drop stale frames
    assert summary["frames"] + summary["frames_dropped"] >= 19
    assert summary["capture_to_output_ms"] is not None


@pytest.mark.parametrize("kwargs,match", [
    ({"save_masks": True}, "--save-masks needs --output"),
    ({"max_frames": 0}, "--max-frames must be at least 1, got 0"),
    ({"segment_seconds": 5}, "--segment-seconds needs --output"),
])
def test_run_config_validation(kwargs, match) -> None:
    """The run's own checks; those of its parts are the parts' (test_select, test_pipeline,
    test_tracking)."""
    with pytest.raises(ValueError, match=match):
        RunConfig(source="x.mp4", **kwargs)


@pytest.mark.parametrize("wants", [{"save_masks": True},
                                   {"present": PresentConfig(show_mask=True)}])
def test_masks_are_asked_of_the_pipeline_where_the_run_needs_them(wants) -> None:
    config = RunConfig(source="x.mp4", output="out/", **wants)
    assert config.pipeline.want_mask
    assert not RunConfig(source="x.mp4", output="out/").pipeline.want_mask


@pytest.mark.parametrize("engines,match", [
    (EngineConfig(crop_size=256), r"crop size \(128\) must be the engines' \(256\)"),
    (EngineConfig(max_batch=2), "--max-faces 4 is more than the engines' largest batch"),
])
def test_build_pipeline_refuses_parts_that_disagree(engines: EngineConfig, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        build_pipeline(PipelineConfig(), engines=engines, tracker=TrackerConfig())
