"""The command line: help, the demo, and one clear line for every kind of bad input."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import pytest
from awkward_images import write_awkward_images
from PIL import Image


def cli(*args: str, cwd: Path | None = None, cache: Path | None = None,
        timeout: float = 300) -> subprocess.CompletedProcess:
    extra = ["--cache-dir", str(cache)] if cache is not None and args[0] != "--help" else []
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", "realtime.cli", *args, *extra], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout, env=env)


def assert_one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("realtime-unmask: error:")]
    assert len(lines) == 1, proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cli-cache")


def test_help_explains_inputs_options_and_commands() -> None:
    proc = cli("--help")
    assert proc.returncode == 0
    text = " ".join(proc.stdout.split())
    for word in ("--camera", "--input", "--output", "--backend", "--save-masks",
                 "--stats-json", "--no-label", "demo", "compile", "plausible guess",
                 "--segment-seconds", "NAME.recording.EXT", "NAME_000.EXT",
                 "exit status", "143 SIGTERM", "129 SIGHUP", "some images"):
        assert word in text


def test_demo_writes_a_side_by_side_clip(tmp_path: Path, cache: Path,
                                         runners: dict[str, str]) -> None:
    proc = cli("demo", "--seconds", "1", cwd=tmp_path, cache=cache)
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "unmask_demo.mp4"
    with av.open(str(out)) as c:
        v = c.streams.video[0]
        assert (v.width, v.height) == (1280, 360)
        assert sum(1 for _ in c.decode(video=0)) == 25
    assert "FPS" in proc.stderr and f"FPS on {runners['auto']}" in proc.stderr


def test_missing_input(tmp_path: Path) -> None:
    proc = cli("--input", str(tmp_path / "nope.mp4"), "--output", str(tmp_path / "o.mp4"))
    assert_one_line_error(proc, "not found", "nope.mp4")
    assert not list(tmp_path.iterdir())


def test_not_a_video(tmp_path: Path) -> None:
    fake = tmp_path / "notes.mp4"
    fake.write_text("this is not a video\n" * 50)
    proc = cli("--input", str(fake), "--output", str(tmp_path / "o.mp4"))
    assert_one_line_error(proc, "notes.mp4")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.mp4"]


def test_truncated_video(tmp_path: Path, hamilton_clip: Path) -> None:
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(hamilton_clip.read_bytes()[:2000])
    proc = cli("--input", str(broken), "--output", str(tmp_path / "o.mp4"))
    assert_one_line_error(proc, "broken.mp4")
    assert not (tmp_path / "o.mp4").exists()


def test_missing_camera() -> None:
    proc = cli("--camera", "9", "--no-display", timeout=120)
    assert_one_line_error(proc, "camera 9")


def test_unwritable_output(tmp_path: Path, hamilton_clip: Path) -> None:
    (tmp_path / "a_file").write_text("not a folder")
    proc = cli("--input", str(hamilton_clip), "--output", str(tmp_path / "a_file" / "o.mp4"))
    assert_one_line_error(proc, "o.mp4", "a file is in the way")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]


def test_wrong_checkpoint(tmp_path: Path, hamilton_clip: Path, cache: Path) -> None:
    bogus = tmp_path / "seg.safetensors"
    bogus.write_bytes(b"\x00" * 64)
    out = tmp_path / "o.mp4"
    proc = cli("--input", str(hamilton_clip), "--output", str(out), "--segmenter", str(bogus),
               cache=cache)
    assert_one_line_error(proc, "seg.safetensors")
    assert not out.exists() and not list(tmp_path.glob(".*"))


@pytest.mark.parametrize("args,needle", [
    (["--max-faces", "0"], "--max-faces must be between 1 and 16, got 0"),
    (["--smoothing", "0"], "--smoothing"),
    (["--segment-seconds", "0"], "--segment-seconds must be > 0, got 0"),
    (["--segment-seconds", "-2", "--output", "x.mp4"], "--segment-seconds must be > 0, got -2"),
    (["--segment-seconds", "5"], "--segment-seconds needs --output"),
])
def test_bad_options(hamilton_clip: Path, args: list[str], needle: str) -> None:
    assert_one_line_error(cli("--input", str(hamilton_clip), *args), needle)


def test_no_input_is_a_usage_error() -> None:
    proc = cli("--output", "x.mp4")
    assert proc.returncode == 2 and "--camera INDEX or --input PATH" in proc.stderr


def test_compile_builds_onnx_and_explains_skipping_tensorrt(tmp_path: Path) -> None:
    proc = cli("compile", cache=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "onnx-cpu segmenter: built" in proc.stderr
    assert "onnx-cpu generator: built" in proc.stderr
    import torch

    if not torch.cuda.is_available():
        assert "tensorrt skipped:" in proc.stderr  # says why, and still succeeds
    assert any(p.name.startswith("segmenter-onnx-cpu") for p in tmp_path.iterdir())
    again = cli("compile", cache=tmp_path)
    assert "onnx-cpu segmenter: cached" in again.stderr


def _wait_for(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@contextlib.contextmanager
def _live_recording(clip: Path, out: Path, log_path: Path, cache: Path
                    ) -> Iterator[subprocess.Popen]:
    """The command line recording a camera-paced replay of ``clip`` (10 fps, so that a signal
    surely lands mid-recording) to ``out``, its stderr in ``log_path``; yields the process
    once its engines are loaded, and kills it on the way out."""
    command = [sys.executable, "-m", "realtime.cli", "--input", str(clip),
               "--output", str(out), "--simulate-live", "10", "--random-weights",
               "--no-display", "--cache-dir", str(cache)]
    with log_path.open("w") as log:
        proc = subprocess.Popen(command, stderr=log, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        try:
            _wait_for(lambda: "engines:" in log_path.read_text(), 120, "the engines to load")
            yield proc
        finally:
            proc.kill()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_stop_signals_finish_a_playable_recording(tmp_path: Path, masked_clip: Path,
                                                  cache: Path, signum: int) -> None:
    out, log_path = tmp_path / "out.mp4", tmp_path / "stderr.txt"
    with _live_recording(masked_clip, out, log_path, cache) as proc:
        time.sleep(1.5)  # about 15 frames recorded
        proc.send_signal(signum)
        returncode = proc.wait(timeout=60)
    stderr = log_path.read_text()
    assert returncode == 128 + signum, stderr
    assert "Traceback" not in stderr and "(stopped early)" in stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4", "stderr.txt"]
    with av.open(str(out)) as container:
        assert sum(1 for _ in container.decode(video=0)) > 0


def test_sigkill_leaves_the_recording_playable(tmp_path: Path, masked_clip: Path,
                                              cache: Path) -> None:
    out, log_path = tmp_path / "rec" / "out.mp4", tmp_path / "stderr.txt"
    left = tmp_path / "rec" / "out.recording.mp4"  # the folder is created by the run
    with _live_recording(masked_clip, out, log_path, cache) as proc:
        # The first one-second fragment is on disk once the file passes its header.
        _wait_for(lambda: left.exists() and left.stat().st_size > 20_000, 60,
                  "the first fragment")
        proc.send_signal(signal.SIGKILL)  # no handler, no clean-up: as an OOM kill
        assert proc.wait(timeout=60) == -signal.SIGKILL
    assert sorted(p.name for p in out.parent.iterdir()) == ["out.recording.mp4"]
    times_s = []
    with av.open(str(left)) as container:
        try:
            times_s.extend(frame.time for frame in container.decode(video=0))
        except av.FFmpegError:
            pass  # a kill mid-write tears the last fragment; what came before plays
    # At least the first one-second fragment plays. Time, not a frame count: a busy machine
    # drops frames of the 10 fps replay, but the fragment still spans its second.
    assert len(times_s) >= 2 and times_s[-1] - times_s[0] >= 0.5, times_s


def test_folder_with_broken_and_awkward_images(tmp_path: Path, cache: Path) -> None:
    folder = write_awkward_images(tmp_path / "in")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg after all")
    (folder / "empty.png").write_bytes(b"")
    out = tmp_path / "not_yet"  # created by the run
    proc = cli("--input", str(folder), "--output", str(out), "--random-weights", cache=cache)
    assert proc.returncode == 3, proc.stderr
    skipped = [ln for ln in proc.stderr.splitlines() if ln.startswith("skipped:")]
    assert len(skipped) == 2 and "broken.jpg" in skipped[0] and "empty.png" in skipped[1]
    assert "2 unreadable image(s) skipped" in proc.stderr and "Traceback" not in proc.stderr
    expected = sorted(p.name for p in folder.iterdir() if p.stat().st_size > 0)
    assert sorted(p.name for p in out.iterdir()) == [n for n in expected if n != "broken.jpg"]
    with Image.open(out / "rotated.jpg") as rotated:  # upright, and no stale orientation tag
        assert rotated.size == (30, 40) and 0x0112 not in rotated.getexif()
        assert np.asarray(rotated)[20, 25, 0] > 200  # the red half is on the right now
