"""The web demo under load: errors, the server's memory, temporary files.

    realtime-unmask bench --web-soak 10 --sessions 4    # ten minutes, four browser sessions

``realtime-unmask web --backend onnx`` runs in a subprocess on 127.0.0.1 (a free port), its
temporary folder (TMPDIR: the app's per-session result folders) and Gradio's cache
(GRADIO_TEMP_DIR: uploads and the copies of results it serves) each in a folder of its own, so
that both can be counted. N sessions (``benchmarks.web_clients``, one thread each) use the
page's built-in examples (pictures, the sample clip, frames of it for the webcam) until the
time is up. Before the clock starts every session has had a picture, webcam frames and a video
back (the first answer loads the nets; each tab's pipeline then exists). The run is cut into
windows like the camera soak's (about 30, 5 s to 60 s each); after each: requests, errors,
p50/p95 latency, the server's RSS (/proc/PID/statm), files and MB in both folders. Memory
growth is measured from the end of the warm-up (the first tenth, at least one window) to the
end; target under 5%. Then the sessions close (their heartbeats end), the folders are counted
again after ``grace_s`` (target: near the level after warm-up, see ``temp_slack``), and once
more after the server stopped (target: none of the app's own left). A closed session's folder
stays until Gradio drops its state, an hour after the tab closed
(``SessionState.STATE_TTL_WHEN_CLOSED``), so ``session_dirs`` stays at N once the sessions end.
Writes ``web_soak.json`` and the server's log ``web_soak_server.log``.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from benchmarks.soak import SOAK_GROWTH_TARGET, rss_bytes, window_seconds
from benchmarks.web_clients import (
    WARMUP,
    Record,
    SoakInputs,
    Tally,
    error_counts,
    session_loop,
)

SERVER_START_S = 240.0
"""Longest wait for the server to listen: importing Gradio alone takes a minute when busy."""
MAX_SESSIONS = 32
WAIT_S = 300.0
"""Longest wait for the first answers, and for a session to end its request in flight."""
WEBCAM_FRAMES_KEPT = 8
"""Frames of the sample clip that the sessions send as their webcam."""
SERVER = ("import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
          "from realtime.cli import main; sys.exit(main(sys.argv[1:]))")
"""``realtime-unmask web`` as the console script runs it; a process started in the background
inherits SIGINT ignored, and the stop below must reach the server's shutdown path."""


class ServerDidNotStart(RuntimeError):
    """The web server exited or did not listen in time; the message ends with its log."""


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (``q`` in [0, 1]) of ``values``; None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def folder_usage(root: Path) -> dict[str, Any]:
    """Files and MB under ``root`` (0 if it is gone), and the app's session folders in it."""
    files, size, sessions = 0, 0, 0
    for folder, dirs, names in os.walk(root):
        sessions += sum(name.startswith("session-") for name in dirs)
        for name in names:
            with contextlib.suppress(OSError):  # removed while walking: not there any more
                size += os.stat(os.path.join(folder, name)).st_size
                files += 1
    return {"files": files, "mb": round(size / 2**20, 2), "session_dirs": sessions}


def latency_stats(records: list[Record]) -> dict[str, Any]:
    """Requests, errors and p50/p95 latency (ms, successful requests only) of ``records``."""
    ok_ms = [1000.0 * r.latency_s for r in records if r.error is None]
    p50, p95 = percentile(ok_ms, 0.5), percentile(ok_ms, 0.95)
    return {"requests": len(records), "errors": sum(r.error is not None for r in records),
            "p50_ms": None if p50 is None else round(p50, 1),
            "p95_ms": None if p95 is None else round(p95, 1)}


def temp_slack(inputs: SoakInputs) -> int:
    """Files the folders may gain after warm-up and keep once the sessions ended: Gradio
    caches each distinct file once, by content, so every distinct input may add its upload
    and its results once (a picture: upload, result, upright input; a frame or the clip:
    upload and result). More than that means files pile up request after request."""
    return 3 * len(inputs.photos) + 2 * sum(len(own) for own in inputs.frames) + 2


def summarise(records: list[Record], windows: list[dict[str, Any]], warmup: int,
              after_sessions: dict[str, Any], after_stop: dict[str, Any], *,
              sessions: int, t_clock: float, slack_files: int) -> dict[str, Any]:
    """Requests and errors over every record, latency over those after ``t_clock`` (when the
    windows began: the warm-up's first answers load the nets), RSS growth after ``warmup``
    windows, and the temporary files after warm-up, at their peak, once the sessions ended
    (target: at most ``slack_files`` more than after warm-up) and once the server stopped
    (target: none of the app's own left; Gradio's cache is reported)."""
    after = windows[warmup - 1:] if 0 < warmup <= len(windows) else windows
    base, last = after[0], after[-1]
    growth = (None if base["rss_mb"] is None or last["rss_mb"] is None
              else round(last["rss_mb"] / base["rss_mb"] - 1.0, 4))
    kinds = sorted({r.kind for r in records})
    temp = {"after_warmup": _temp(base), "peak": max((_temp(w) for w in windows),
                                                     key=lambda t: t["files"]),
            "end_of_load": _temp(last), "after_sessions_end": after_sessions,
            "after_server_stop": after_stop}
    temp_met = (after_sessions["files"] <= temp["after_warmup"]["files"] + slack_files
                and after_stop["app_files"] == 0)
    measured = [r for r in records if r.t_s >= t_clock]
    totals = {**latency_stats(measured), "requests": len(records),
              "errors": sum(r.error is not None for r in records)}
    by_kind = {k: {**latency_stats([r for r in measured if r.kind == k]),
                   "requests": sum(r.kind == k for r in records),
                   "errors": sum(r.kind == k and r.error is not None for r in records)}
               for k in kinds}
    return {"windows": len(windows), "warmup_windows": warmup, **totals, "by_kind": by_kind,
            "requests_by_session": [sum(r.session == s for r in records)
                                    for s in range(sessions)],
            "error_messages": error_counts(records),
            "rss_mb_after_warmup": base["rss_mb"], "rss_mb_end": last["rss_mb"],
            "rss_mb_peak": max((w["rss_mb"] for w in windows if w["rss_mb"] is not None),
                               default=None),
            "rss_growth": growth, "growth_target": SOAK_GROWTH_TARGET, "temp": temp,
            "temp_slack_files": slack_files,
            "met": {"memory": None if growth is None else growth < SOAK_GROWTH_TARGET,
                    "errors": totals["errors"] == 0, "temp": temp_met}}


TEMP_KEYS = ("files", "mb", "app_files", "app_mb", "other_tmp_files", "gradio_files",
             "gradio_mb", "session_dirs")
"""What ``temp_usage`` counts, and so every window holds."""


def temp_usage(folders: dict[str, Path]) -> dict[str, Any]:
    """The server's temporary files: in total, the app's own (its ``realtime-unmask-web-*``
    root under TMPDIR, with the per-session folders), the rest of TMPDIR (other libraries':
    ONNX Runtime leaves a small ``.ses`` file) and Gradio's cache."""
    tmp, cache = folder_usage(folders["tmp"]), folder_usage(folders["gradio"])
    app = {"files": 0, "mb": 0.0, "session_dirs": 0}
    for root in folders["tmp"].glob("realtime-unmask-web-*"):
        usage = folder_usage(root)
        app = {k: v + usage[k] for k, v in app.items()}
    return {"files": tmp["files"] + cache["files"], "mb": round(tmp["mb"] + cache["mb"], 2),
            "app_files": app["files"], "app_mb": round(app["mb"], 2),
            "other_tmp_files": tmp["files"] - app["files"], "gradio_files": cache["files"],
            "gradio_mb": cache["mb"], "session_dirs": app["session_dirs"]}


def _temp(window: dict[str, Any]) -> dict[str, Any]:
    return {key: window[key] for key in TEMP_KEYS}


def web_soak(minutes: float, out: Path, *, sessions: int, work: Path, grace_s: float = 20.0,
             log: Callable[[str], None] = print) -> dict[str, Any]:
    """Runs the web soak in ``work`` (a scratch folder) and writes ``out/web_soak.json``;
    returns its contents. ``grace_s``: wait after the sessions closed (the server notices a
    closed tab at its next heartbeat, every 15 s)."""
    if minutes <= 0:
        raise ValueError(f"--web-soak takes a positive number of minutes, got {minutes:g}")
    if not 1 <= sessions <= MAX_SESSIONS:
        raise ValueError(f"--sessions must be between 1 and {MAX_SESSIONS}, got {sessions}")
    out.mkdir(parents=True, exist_ok=True)
    folders = {name: work / name for name in ("tmp", "gradio", "engines", "client")}
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    inputs = make_inputs(folders["client"], sessions)
    span_s = window_seconds(minutes)
    n_windows = max(1, round(minutes * 60.0 / span_s))
    warmup = max(1, round(n_windows / 10))
    log_path = out / "web_soak_server.log"
    t_start = time.perf_counter()
    with web_server(folders, log_path) as (process, url):
        server_start_s = time.perf_counter() - t_start
        log(f"web soak: server {url} (pid {process.pid}) listening after {server_start_s:.0f} "
            f"s; {sessions} sessions")
        tally, stop = Tally(), threading.Event()
        threads = [threading.Thread(target=session_loop, name=f"web-session-{i}", daemon=True,
                                    args=(i, url, inputs, folders["client"] / f"s{i}", stop,
                                          tally))
                   for i in range(sessions)]
        for thread in threads:
            thread.start()
        warmup_s = _wait_for_warmup(tally, threads, process)
        log(f"web soak: warm-up done in {warmup_s:.0f} s (every session had a picture, "
            "webcam frames and a video back)")
        t_clock = time.perf_counter()
        windows = _windows(tally, n_windows, span_s, process.pid, folders, log)
        stop.set()
        for thread in threads:  # each ends its request in flight, then closes its session
            thread.join(timeout=WAIT_S)
        time.sleep(grace_s)
        after_sessions = temp_usage(folders)
    after_stop = {**temp_usage(folders), "left": _left(folders)}
    result = {"minutes": minutes, "sessions": sessions, "window_s": span_s, "backend": "onnx",
              "server_start_s": round(server_start_s, 1), "warmup_s": round(warmup_s, 1),
              "grace_s": grace_s,
              "threads_still_running": sum(t.is_alive() for t in threads),
              **summarise(tally.since(0), windows, warmup, after_sessions, after_stop,
                          sessions=sessions, t_clock=t_clock, slack_files=temp_slack(inputs)),
              "server_log": log_path.name, "samples": windows}
    tmp = out / "web_soak.json.tmp"
    tmp.write_text(json.dumps(result, indent=1) + "\n")
    tmp.replace(out / "web_soak.json")
    return result


def make_inputs(folder: Path, sessions: int) -> SoakInputs:
    """The page's examples (``realtime.web_examples``) and, for each session, a few frames of
    its clip made a little brighter per session (a camera of its own)."""
    import cv2

    from realtime.web_examples import write_examples

    examples = write_examples(folder / "examples")
    capture = cv2.VideoCapture(str(examples.clip))
    frames: list[list[Path]] = [[] for _ in range(sessions)]
    try:
        for index in itertools.count():
            ok, frame_bgr = capture.read()
            if not ok or len(frames[0]) == WEBCAM_FRAMES_KEPT:
                break
            if index % 6:  # every 6th: the face moves between them
                continue
            for session, own in enumerate(frames):
                own.append(folder / f"webcam_s{session}_{index:03d}.jpg")
                frame = cv2.convertScaleAbs(frame_bgr, alpha=1.0, beta=2 * session)
                cv2.imwrite(str(own[-1]), frame, [cv2.IMWRITE_JPEG_QUALITY, 90])
    finally:
        capture.release()
    if not frames[0]:
        raise RuntimeError(f"no frame could be read from the sample clip {examples.clip}")
    return SoakInputs(photos=list(examples.photos), clip=examples.clip, frames=frames)


def _left(folders: dict[str, Path], most: int = 20) -> list[str]:
    """What is still in the two folders (relative paths, the first ``most``)."""
    found = sorted(str(path.relative_to(folders["tmp"].parent))
                   for name in ("tmp", "gradio") for path in folders[name].rglob("*")
                   if path.is_file())
    return found[:most]


def _wait_for_warmup(tally: Tally, threads: list[threading.Thread],
                     process: subprocess.Popen[bytes]) -> float:
    """Seconds until every session has had an answer of every kind in ``WARMUP`` (or ended:
    one that could not open has said why in ``tally``)."""
    t0 = time.perf_counter()
    while True:
        answered = {(r.session, r.kind) for r in tally.since(0)}
        if all(not thread.is_alive() or all((i, kind) in answered for kind in WARMUP)
               for i, thread in enumerate(threads)):
            break
        if process.poll() is not None:
            raise ServerDidNotStart(f"the web server exited with code {process.returncode}")
        if time.perf_counter() - t0 > WAIT_S:
            break  # the windows go on; silent sessions show as no requests
        time.sleep(0.2)
    return time.perf_counter() - t0


def _windows(tally: Tally, n_windows: int, span_s: float, pid: int,
             folders: dict[str, Path], log: Callable[[str], None]) -> list[dict[str, Any]]:
    windows: list[dict[str, Any]] = []
    start, t0 = len(tally.since(0)), time.perf_counter()
    for i in range(n_windows):
        time.sleep(max(0.0, t0 + (i + 1) * span_s - time.perf_counter()))
        records = tally.since(start)
        start += len(records)
        rss = rss_bytes(pid)
        windows.append({"t_s": round(time.perf_counter() - t0, 1), **latency_stats(records),
                        "rss_mb": None if rss is None else round(rss / 2**20, 1),
                        **temp_usage(folders)})
        w = windows[-1]
        log(f"web soak {i + 1}/{n_windows}: {w['requests']} requests, {w['errors']} errors, "
            f"p50 {w['p50_ms']} ms, server RSS {w['rss_mb']} MB, temp {w['files']} files "
            f"({w['mb']} MB)")
    return windows


def wait_until_listening(process: subprocess.Popen, port: int, timeout_s: float) -> bool:
    """Whether ``process`` accepts connections on 127.0.0.1:``port`` within ``timeout_s``
    (False as soon as it exits)."""
    deadline = time.monotonic() + timeout_s
    while True:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return True
        if process.poll() is not None or time.monotonic() > deadline:
            return False
        time.sleep(0.5)


@contextlib.contextmanager
def web_server(folders: dict[str, Path], log_path: Path
            ) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """``realtime-unmask web`` in a subprocess; stopped as Ctrl-C would stop it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "TMPDIR": str(folders["tmp"]), "GRADIO_TEMP_DIR": str(folders["gradio"]),
           "GRADIO_ANALYTICS_ENABLED": "False", "GLOG_minloglevel": "2"}
    command = [sys.executable, "-c", SERVER, "web", "--port", str(port), "--backend", "onnx",
               "--cache-dir", str(folders["engines"])]
    with log_path.open("w") as server_log:
        process = subprocess.Popen(command, env=env, stdout=server_log,
                                   stderr=subprocess.STDOUT, cwd=Path(__file__).parents[1])
    try:
        if not wait_until_listening(process, port, SERVER_START_S):
            raise ServerDidNotStart(f"the web server did not start; its log:\n"
                                    f"{log_path.read_text()[-3000:]}")
        yield process, f"http://127.0.0.1:{port}/"
    finally:
        process.send_signal(signal.SIGINT)  # the server removes its files on the way out
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def report_lines(result: dict[str, Any]) -> list[str]:
    met = {True: "met", False: "NOT met", None: "n/a"}
    growth, temp = result["rss_growth"], result["temp"]
    kinds = ", ".join(f"{k} p50 {v['p50_ms']} / p95 {v['p95_ms']} ms"
                      for k, v in result["by_kind"].items())
    lines = [
        f"web soak: {result['minutes']:g} min, {result['sessions']} sessions, "
        f"{result['requests']} requests ("
        + ", ".join(f"{v['requests']} {k}" for k, v in result["by_kind"].items())
        + f"), {result['errors']} errors ({met[result['met']['errors']]})",
        f"latency: {kinds}",
        f"memory: server {result['rss_mb_after_warmup']} MB after warm-up, "
        f"{result['rss_mb_end']} MB at the end, growth "
        f"{'n/a' if growth is None else f'{100 * growth:+.1f}%'} (target < "
        f"{100 * SOAK_GROWTH_TARGET:.0f}%: {met[result['met']['memory']]})",
        f"temp files: {temp['after_warmup']['files']} ({temp['after_warmup']['mb']} MB) after "
        f"warm-up, peak {temp['peak']['files']}, {temp['after_sessions_end']['files']} once the "
        f"sessions ended (target <= {temp['after_warmup']['files'] + result['temp_slack_files']}"
        f"), {temp['after_server_stop']['app_files']} of the app's own after the server "
        f"stopped (target 0): {met[result['met']['temp']]}"]
    lines += [f"error x{e['count']}: {e['message']}" for e in result["error_messages"][:5]]
    return lines


if __name__ == "__main__":  # pragma: no cover - use `realtime-unmask bench --web-soak`
    sys.exit("use: realtime-unmask bench --web-soak MINUTES [--sessions N]")
