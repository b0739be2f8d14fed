"""``realtime-unmask bench --quick`` end to end on the real clips: valid JSON, markdown and
PNGs, with figures that hang together."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

from benchmarks.bench import MOSAICS, REAL_CLIP, TARGET_CLIP, main
from benchmarks.report import PLOTS
from realtime.stats import STAGES

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def quick_run(shared_data: Path, tmp_path_factory) -> tuple[Path, dict, list[str]]:
    out = tmp_path_factory.mktemp("bench") / "report"
    lines: list[str] = []
    assert main(["--quick", "--out", str(out), "--data", str(shared_data)],
                log=lines.append) == 0
    return out, json.loads((out / "bench.json").read_text()), lines


@pytest.mark.slow
def test_writes_json_markdown_and_plots_and_nothing_half_written(quick_run) -> None:
    out, _, _ = quick_run
    assert sorted(p.name for p in out.iterdir()) == sorted(["bench.json", "report.md", *PLOTS])
    for name in PLOTS:
        data = (out / name).read_bytes()
        assert data.startswith(PNG_SIGNATURE)
        image = cv2.imread(str(out / name))
        assert image is not None and min(image.shape[:2]) > 200


@pytest.mark.slow
def test_json_holds_machine_versions_and_every_section(quick_run, runners) -> None:
    _, r, _ = quick_run
    assert r["machine"]["cores"] >= 1 and r["machine"]["cpu"]
    assert r["versions"]["torch"] and r["versions"]["onnxruntime"]
    assert r["settings"]["quick"] is True
    assert runners["onnx"] in r["backends"]["available"]
    # No GPU here: TensorRT is reported as skipped with its reason, not silently dropped.
    if r["machine"]["gpu"] is None:
        assert any(s.startswith("tensorrt skipped: ") for s in r["backends"]["skipped"])
    assert set(r["io_ceiling"]) == {*MOSAICS, REAL_CLIP}
    for c in r["io_ceiling"].values():
        assert c["decode_fps"] > c["transcode_fps"] > 0


@pytest.mark.slow
def test_speed_rows_cover_the_grid_with_consistent_figures(quick_run, runners) -> None:
    _, r, _ = quick_run
    primary = r["backends"]["available"][0]
    default = {row["clip"]: row for row in r["speed"]
               if row["backend"] == primary and not row["variant"]}
    assert set(default) == {*MOSAICS, REAL_CLIP}
    for name, (faces, _, _) in MOSAICS.items():
        row = default[name]
        ceiling = r["io_ceiling"][name]["transcode_fps"]
        assert row["share_of_ceiling"] == pytest.approx(row["fps"] / ceiling, abs=1e-3)
        assert 0 < row["fps"] < r["io_ceiling"][name]["decode_fps"]
        assert faces - 1 < row["faces_per_frame"] <= faces  # a mosaic face may be missed
        assert set(row["stages_ms"]) == set(STAGES)
        for stage in ("decode", "detect", "align", "segment", "inpaint", "composite",
                      "encode"):
            assert row["stages_ms"][stage]["p95"] >= row["stages_ms"][stage]["p50"] > 0
    # More pixels cost more time; more faces cost more net time.
    assert default["1 face 1080p"]["fps"] < default["1 face 360p"]["fps"]
    assert (default["4 faces 360p"]["stages_ms"]["segment"]["p50"]
            > default["1 face 360p"]["stages_ms"]["segment"]["p50"])
    variants = {row["variant"] for row in r["speed"] if row["clip"] == TARGET_CLIP}
    assert {"telea", "smoothing off"} <= variants
    assert any(row["backend"] == runners["torch"] for row in r["speed"])  # eager PyTorch


@pytest.mark.slow
def test_live_warmup_quality_and_targets(quick_run) -> None:
    _, r, lines = quick_run
    live = r["live"][0]
    assert live["camera_fps"] == 30 and live["frames"] > 0
    assert live["capture_to_output_ms"]["p95"] >= live["capture_to_output_ms"]["p50"] > 0
    assert 0 < live["fps"] <= 31
    for w in r["warmup"].values():
        assert w["first_load_s"] > 0 and w["first_frame_ms"] > 0
    flicker = {row["variant"]: row for row in r["quality"]["flicker"]}
    assert set(flicker) == {"gan, smoothing on", "gan, smoothing off", "telea, smoothing on"}
    for row in flicker.values():
        assert row["flicker"] > 0 and row["coverage"] > 0.8  # a masked face in every frame
    assert r["quality"]["evaluation"]["faces"] == 64
    assert 0.5 < r["quality"]["evaluation"]["results"]["segmenter"]["all"]["iou"] <= 1
    false_paints = r["quality"]["false_paints"]
    assert [row["scale"] for row in false_paints] == [1.0, 0.5]
    assert all(row["faces_per_frame"] > 1 and 0 <= row["frames_painted"] <= 1
               for row in false_paints)  # the real clip has two faces most of the time
    assert len(r["targets"]) == 5
    assert all(t["met"] in (True, False) and t["value"] >= 0 for t in r["targets"])
    assert any(line.endswith("report.md") or "report:" in line for line in lines)


@pytest.mark.slow
def test_markdown_report_has_each_section_and_links_the_plots(quick_run) -> None:
    out, r, _ = quick_run
    text = (out / "report.md").read_text()
    for heading in ("## Targets", "## Speed", "## Live", "## Warm-up",
                    "## Temporal stability", "## False paints", "## Image quality",
                    "## Plots"):
        assert heading in text
    for name in PLOTS:
        assert f"]({name})" in text
    for name in (*MOSAICS, REAL_CLIP):
        assert f"| {name} |" in text
    assert r["machine"]["cpu"] in text


def test_missing_data_is_one_line_error(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "realtime.cli", "bench", "--quick",
                           "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("realtime-unmask: error:")]
    assert len(errors) == 1 and "benchmark data not found" in errors[0], proc.stderr
    assert not (tmp_path / "o").exists()


def test_help_explains_the_benchmark() -> None:
    proc = subprocess.run([sys.executable, "-m", "realtime.cli", "bench", "--help"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0
    text = " ".join(proc.stdout.split())
    for needle in ("--quick", "--out", "--data", "--backends", "I/O ceiling", "flicker"):
        assert needle in text
