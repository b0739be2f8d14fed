"""The web soak: its summary arithmetic, and a short real run against ``realtime-unmask web``.

    pytest tests/benchmarks/test_web_soak.py              # the real run is marked slow (~2 min)
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from benchmarks import bench
from benchmarks.soak import rss_bytes
from benchmarks.web_clients import Record, SoakInputs
from benchmarks.web_soak import (
    TEMP_KEYS,
    folder_usage,
    make_inputs,
    percentile,
    report_lines,
    summarise,
    temp_slack,
    temp_usage,
    web_soak,
)


def window(rss_mb, files=30, requests=10, errors=0):
    temp = dict.fromkeys(TEMP_KEYS, 0)
    return {"t_s": 0.0, "requests": requests, "errors": errors, "p50_ms": 1.0, "p95_ms": 2.0,
            "rss_mb": rss_mb, **temp, "files": files, "app_files": files}


def usage(files, app_files=0):
    return {**dict.fromkeys(TEMP_KEYS, 0), "files": files, "app_files": app_files}


@pytest.mark.parametrize(("values", "q", "expected"), [
    ([], 0.5, None), ([7.0], 0.95, 7.0), ([3.0, 1.0, 2.0], 0.5, 2.0),
    (list(range(1, 101)), 0.95, 95), (list(range(1, 101)), 0.5, 50), ([1.0, 9.0], 0.0, 1.0)])
def test_percentile_is_nearest_rank(values, q, expected) -> None:
    assert percentile([float(v) for v in values], q) == expected


def test_the_summary_counts_every_request_and_times_those_after_warm_up() -> None:
    records = [Record(1.0, 0, "image", 30.0, None),  # the warm-up's first answer: nets loading
               Record(11.0, 0, "image", 0.5, None), Record(12.0, 1, "webcam", 0.1, None),
               Record(13.0, 1, "video", 4.0, "AppError: No face found"),
               Record(14.0, 1, "video", 3.0, "AppError: No face found")]
    windows = [window(400), window(500, files=30), window(510, files=34), window(520)]
    s = summarise(records, windows, 2, usage(35), usage(3), sessions=3, t_clock=10.0,
                  slack_files=5)
    assert s["requests"] == 5 and s["errors"] == 2 and s["requests_by_session"] == [2, 3, 0]
    assert s["by_kind"]["image"] == {"requests": 2, "errors": 0, "p50_ms": 500.0,
                                     "p95_ms": 500.0}  # 30 s of loading is not latency
    assert s["by_kind"]["video"]["errors"] == 2 and s["by_kind"]["video"]["p50_ms"] is None
    assert s["error_messages"] == [{"message": "AppError: No face found", "count": 2}]
    assert s["rss_mb_after_warmup"] == 500 and s["rss_growth"] == pytest.approx(0.04)
    assert s["met"] == {"memory": True, "errors": False, "temp": True}
    assert s["temp"]["after_warmup"]["files"] == 30 and s["temp"]["peak"]["files"] == 34
    lines = report_lines({**s, "minutes": 1, "sessions": 3})
    assert "2 errors (NOT met)" in lines[0] and "growth +4.0% (target < 5%: met)" in lines[2]
    assert lines[-1] == "error x2: AppError: No face found"


@pytest.mark.parametrize(("after_sessions", "app_left", "met"), [
    (35, 0, True),    # 5 more than after warm-up: within the slack
    (36, 0, False),   # files piling up
    (20, 1, False),   # the app left a file behind after the server stopped
])
def test_temp_files_must_come_back_and_go(after_sessions, app_left, met) -> None:
    windows = [window(500, files=30), window(500, files=33)]
    s = summarise([Record(1.0, 0, "image", 0.1, None)], windows, 1, usage(after_sessions),
                  usage(app_left + 3, app_left), sessions=1, t_clock=0.0, slack_files=5)
    assert s["met"]["temp"] is met


def test_memory_growth_and_its_absence() -> None:
    leaking = summarise([], [window(500), window(560)], 1, usage(0), usage(0), sessions=1,
                        t_clock=0.0, slack_files=0)
    assert leaking["rss_growth"] == pytest.approx(0.12) and leaking["met"]["memory"] is False
    unknown = summarise([], [window(None)], 1, usage(0), usage(0), sessions=1, t_clock=0.0,
                        slack_files=0)
    assert unknown["rss_growth"] is None and unknown["met"]["memory"] is None
    assert unknown["requests_by_session"] == [0] and unknown["met"]["errors"] is True


def test_temp_usage_tells_the_apps_files_from_the_rest(tmp_path: Path) -> None:
    folders = {"tmp": tmp_path / "tmp", "gradio": tmp_path / "gradio"}
    session = folders["tmp"] / "realtime-unmask-web-x" / "session-a" / "image-b"
    session.mkdir(parents=True)
    (session / "unmasked.png").write_bytes(b"x" * 2**20)
    (folders["tmp"] / ".ses").write_text("id")  # ONNX Runtime's, not the app's
    (folders["gradio"] / "abc").mkdir(parents=True)
    (folders["gradio"] / "abc" / "input.jpg").write_bytes(b"y" * 100)
    u = temp_usage(folders)
    assert (u["files"], u["app_files"], u["other_tmp_files"], u["gradio_files"]) == (3, 1, 1, 1)
    assert u["session_dirs"] == 1 and u["app_mb"] == 1.0
    assert folder_usage(tmp_path / "gone") == {"files": 0, "mb": 0.0, "session_dirs": 0}
    inputs = SoakInputs(photos=[Path("a"), Path("b")], clip=Path("c"),
                        frames=[[Path("f")] * 8] * 4)  # four sessions' cameras
    assert temp_slack(inputs) == 3 * 2 + 2 * 8 * 4 + 2


def test_rss_of_another_process() -> None:
    if rss_bytes() is None:
        pytest.skip("no /proc on this system: RSS is reported as not measured")
    assert rss_bytes(os.getppid()) is not None and rss_bytes(2**22 + 12345) is None


@pytest.mark.parametrize(("argv", "line"), [
    (["--web-soak", "0"], "error: --web-soak takes a positive number of minutes, got 0"),
    (["--web-soak", "1", "--sessions", "0"], "error: --sessions must be between 1 and 32, got 0"),
])
def test_bad_web_soak_arguments_are_one_line(tmp_path: Path, argv, line) -> None:
    lines: list[str] = []
    assert bench.main([*argv, "--out", str(tmp_path / "o")], log=lines.append) == 2
    assert lines == [line]


@pytest.mark.slow
def test_a_short_web_soak_against_the_real_server(tmp_path: Path) -> None:
    # Two sessions against `realtime-unmask web` in a subprocess (real nets, --backend onnx):
    # the warm-up (every session: a picture, webcam frames, the sample video) and 12 s more.
    lines: list[str] = []
    out = tmp_path / "out"
    result = web_soak(0.2, out, sessions=2, work=tmp_path / "work", grace_s=1.0,
                      log=lines.append)
    assert result["errors"] == 0, result["error_messages"]
    assert all(n >= 7 for n in result["requests_by_session"])  # 1 + 5 frames + 1 video each
    assert {"image", "webcam", "video"} <= set(result["by_kind"])
    assert result["threads_still_running"] == 0 and result["windows"] == 2
    assert result["rss_mb_end"] is None or result["rss_mb_end"] > 300  # the nets, MediaPipe
    temp = result["temp"]
    assert temp["after_warmup"]["session_dirs"] == 2  # one folder per browser session
    assert temp["after_server_stop"]["app_files"] == 0, temp["after_server_stop"]["left"]
    assert json.loads((out / "web_soak.json").read_text())["requests"] == result["requests"]
    assert (out / "web_soak_server.log").is_file() and not list(out.glob("*.tmp"))
    assert any(line.startswith("web soak 2/2:") for line in lines)


def test_every_session_films_with_a_camera_of_its_own(tmp_path: Path) -> None:
    # Byte-identical webcam results from two sessions at once collide in Gradio's cache.
    inputs = make_inputs(tmp_path, sessions=2)
    assert len(inputs.photos) == 2 and inputs.clip.is_file()
    assert [len(own) for own in inputs.frames] == [8, 8]
    first, second = (own[0].read_bytes() for own in inputs.frames)
    assert first != second and len(set(inputs.frames[0])) == 8
