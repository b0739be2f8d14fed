"""The benchmark's parts on small inputs: clip making, the I/O ceiling, the flicker measure,
and configuration checks."""

from __future__ import annotations

import itertools
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from benchmarks.bench import BenchConfig
from benchmarks.clips import (
    BACKGROUND_BGR,
    io_ceiling,
    mosaic,
    mosaic_clip,
    ping_pong,
    read_frames,
)
from benchmarks.quality import temporal_stability
from realtime.pipeline import FrameResult


@pytest.mark.parametrize(("n", "start", "count", "expected"), [
    (1, 0, 3, [0, 0, 0]),
    (3, 0, 6, [0, 1, 2, 1, 0, 1]),
    (3, 2, 4, [2, 1, 0, 1]),
    (4, 5, 3, [1, 0, 1]),
])
def test_ping_pong_loops_without_jumps(n, start, count, expected) -> None:
    indices = ping_pong(n, start, count)
    assert indices == expected
    assert all(abs(a - b) <= 1 for a, b in itertools.pairwise(indices))


@pytest.mark.parametrize(("faces", "size_wh", "tile"), [
    (1, (640, 360), 360), (2, (640, 360), 320), (4, (640, 360), 180), (1, (1920, 1080), 1080),
])
def test_mosaic_tiles_are_square_centred_and_distinct(faces, size_wh, tile) -> None:
    tiles = [np.full((50, 50, 3), 10 * (k + 1), np.uint8) for k in range(faces)]
    frame = mosaic(tiles, size_wh)
    assert frame.shape == (size_wh[1], size_wh[0], 3)
    covered = np.any(frame != BACKGROUND_BGR, axis=2)
    assert covered.sum() == faces * tile * tile
    _, xs = np.nonzero(covered)
    assert abs((xs.min() + xs.max()) / 2 - size_wh[0] / 2) <= 1  # centred
    assert len(np.unique(frame[covered][:, 0])) == faces


def test_mosaic_clip_has_the_frames_size_and_rejects_odd_counts(masked_clip, tmp_path) -> None:
    source = read_frames(masked_clip, limit=10)
    path = mosaic_clip(source, tmp_path / "m.mp4", faces=2, size_wh=(640, 360), frames=25)
    frames = read_frames(path)
    assert len(frames) == 25 and frames[0].shape == (360, 640, 3)
    with pytest.raises(ValueError, match="faces per frame"):
        mosaic_clip(source, tmp_path / "x.mp4", faces=3, size_wh=(640, 360), frames=5)


def test_io_ceiling_counts_frames_and_cleans_up(hamilton_clip, tmp_path) -> None:
    result = io_ceiling(hamilton_clip, tmp_path, frames=30)
    assert result["frames"] == 30
    assert result["decode_fps"] > result["transcode_fps"] > 0
    assert list(tmp_path.iterdir()) == []


class _FixedMask:
    """A stand-in pipeline: paints a fixed square, with ``noise`` added inside it."""

    def __init__(self, noise: float, painted: bool = True) -> None:
        self.noise, self.painted = noise, painted
        self.rng = np.random.default_rng(0)

    def process(self, frame) -> FrameResult:
        mask_hw = np.zeros(frame.bgr.shape[:2], np.float32)
        if self.painted:
            mask_hw[60:180, 60:180] = 1.0
        out = frame.bgr.astype(np.float32)
        out[mask_hw > 0] += self.rng.normal(0, self.noise, out[mask_hw > 0].shape)
        return FrameResult(np.clip(out, 0, 255).astype(np.uint8), mask_hw, [])


@pytest.mark.parametrize(("noise", "low", "high"), [(0.0, 1.0, 1.0), (20.0, 1.3, 100.0)])
def test_flicker_is_one_for_the_input_and_grows_with_shimmer(masked_clip, noise, low,
                                                             high) -> None:
    result = temporal_stability(_FixedMask(noise), masked_clip, frames=20)
    assert result["frames"] == 20 and result["coverage"] == 1.0
    assert low <= result["flicker"] <= high
    assert result["painted_share_of_frame"] == pytest.approx(120 * 120 / 256**2, abs=1e-3)


def test_nothing_painted_gives_no_flicker_and_zero_coverage(masked_clip) -> None:
    result = temporal_stability(_FixedMask(0.0, painted=False), masked_clip, frames=5)
    assert result["flicker"] is None and result["coverage"] == 0.0


@pytest.mark.parametrize(("fields", "message"), [
    ({"frames": 1}, "--frames must be at least 2"),
    ({"eval_faces": 0}, "--eval-faces must be at least 2"),
    ({"live_seconds": 0.0}, "--live-seconds"),
    ({"backends": ("cuda",)}, "--backends takes some of"),
    ({"backends": ()}, "--backends takes some of"),
])
def test_config_rejects_bad_values(shared_data, tmp_path, fields, message) -> None:
    with pytest.raises(ValueError, match=message):
        BenchConfig(out=tmp_path, data=shared_data, **fields)


def test_config_names_the_missing_data(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"hamilton_clip_640x360\.mp4"):
        BenchConfig(out=tmp_path / "o", data=tmp_path)


def test_utilisation_samples_the_gpu_through_nvml(monkeypatch) -> None:
    import time
    from types import SimpleNamespace

    from benchmarks.machine import Utilisation
    from engines import probe

    class Nvml:
        NVMLError = RuntimeError
        shutdowns = 0

        def nvmlInit(self) -> None:
            pass

        def nvmlShutdown(self) -> None:
            Nvml.shutdowns += 1

        def nvmlDeviceGetCount(self) -> int:
            return 1

        def nvmlDeviceGetHandleByIndex(self, index: int) -> str:
            return "gpu0"

        def nvmlDeviceGetUtilizationRates(self, handle: str) -> SimpleNamespace:
            return SimpleNamespace(gpu=37)

    monkeypatch.setattr(probe, "import_pynvml", Nvml)
    with Utilisation() as busy:
        time.sleep(0.35)
    assert busy.result["gpu_utilisation_percent"] == 37.0
    assert Nvml.shutdowns == 1
    assert busy.result["process_cpu_percent"] >= 0


def test_versions_name_the_checked_out_commit() -> None:
    from benchmarks.machine import versions
    from training.revision import git_revision

    full = git_revision()
    recorded = versions()["code_revision"]
    assert full and len(full) == 40
    assert recorded and full.startswith(recorded.removesuffix("-dirty"))


def test_recording_the_machine_and_versions_does_not_import_torch() -> None:
    code = ("import sys; from benchmarks.machine import versions; versions(); "
            "print('torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).parents[2],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["False"]
