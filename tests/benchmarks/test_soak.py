"""The soak benchmark: its summary arithmetic, and a short real run through the CLI entry."""

from __future__ import annotations

import json
import mmap
from pathlib import Path

import pytest

from benchmarks import bench
from benchmarks.soak import report_lines, rss_bytes, summarise, window_seconds


def window(rss_mb, fps=30.0, frames=300, dropped=0):
    return {"t_s": 0.0, "frames": frames, "dropped": dropped, "fps": fps, "rss_mb": rss_mb}


def test_growth_is_measured_after_the_warm_up() -> None:
    # Warm-up allocations (400 -> 500 MB) do not count; 500 -> 520 MB after it is 4%.
    windows = [window(400), window(500), window(505), window(510, fps=27), window(520, fps=27)]
    s = summarise(windows, warmup=2)
    assert s["rss_mb_after_warmup"] == 500 and s["rss_mb_end"] == 520
    assert s["rss_growth"] == pytest.approx(0.04) and s["met"] is True
    assert s["fps_drift"] == pytest.approx(27 / 30 - 1)
    assert s["frames"] == 1500 and s["rss_mb_peak"] == 520
    leaking = summarise([window(400), window(500), window(560)], warmup=2)
    assert leaking["rss_growth"] == pytest.approx(0.12) and leaking["met"] is False
    unknown = summarise([window(None), window(None)], warmup=1)
    assert unknown["rss_growth"] is None and unknown["met"] is None  # not measured, not faked
    dropped = summarise([window(1, frames=90, dropped=10)], warmup=1)
    assert dropped["dropped_share"] == pytest.approx(0.1)
    assert "growth +4.0% (target < 5%: met)" in " ".join(report_lines(
        {**s, "minutes": 1, "camera_fps": 30, "clip": "c.mp4"}))


def test_windows_are_5_to_60_seconds() -> None:
    assert window_seconds(0.1) == 5.0 and window_seconds(10) == 20.0
    assert window_seconds(30) == 60.0 and window_seconds(600) == 60.0


def test_rss_is_read_from_the_process() -> None:
    rss = rss_bytes()
    if rss is None:
        pytest.skip("no /proc on this system: RSS is reported as not measured")
    # Touch 64 MB of fresh pages: RSS must see them. An anonymous map, not a bytearray,
    # whose memory the allocator may take from pages this process already holds (after
    # earlier tests freed them), which would not raise RSS at all.
    blob = mmap.mmap(-1, 64 * 2**20)
    try:
        for offset in range(0, len(blob), mmap.PAGESIZE):
            blob[offset] = 1
        assert rss_bytes() - rss > 32 * 2**20
    finally:
        blob.close()


def test_a_short_soak_writes_its_report(shared_data: Path, tmp_path: Path) -> None:
    lines: list[str] = []
    out = tmp_path / "soak"
    code = bench.main(["--soak", "0.1", "--data", str(shared_data), "--out", str(out)],
                      log=lines.append)
    assert code == 0, lines
    result = json.loads((out / "soak.json").read_text())
    assert result["windows"] == 1 and result["frames"] > 0
    assert result["rss_mb_end"] is None or result["rss_mb_end"] > 100  # models + MediaPipe
    assert any(line.startswith("memory:") for line in lines)
    assert not list(out.glob("*.tmp"))


def test_bad_soak_arguments_are_one_line(tmp_path: Path) -> None:
    lines: list[str] = []
    assert bench.main(["--soak", "0", "--out", str(tmp_path / "o")], log=lines.append) == 2
    assert lines == ["error: --soak takes a positive number of minutes, got 0"]
    lines.clear()
    assert bench.main(["--soak", "1", "--data", str(tmp_path), "--out", str(tmp_path / "o")],
                      log=lines.append) == 1
    assert len(lines) == 1 and "soak clip" in lines[0]
