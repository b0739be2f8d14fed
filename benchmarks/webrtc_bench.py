"""The WebRTC webcam in headless Chromium: delivered FPS and glass-to-glass latency in the page.

    realtime-unmask bench --webrtc 30 [--out DIR]    # 30 s measured, after the warm-up

``realtime-unmask web --backend onnx`` runs in a subprocess (``benchmarks.web_soak.web_server``);
Debian's Chromium (driven by Playwright's Python package, never its downloaded browsers) opens
the page with a fake camera that plays ``masked_webcam_256.mp4`` as a 640x480, 30 FPS Y4M (the
10 FPS clip scaled to 480 px, padded at the sides, its in-between frames blended), presses
Start on the Webcam tab and lets it stream. The numbers are the page's own
(``realtime/webrtc_client.js``): each result frame's display time and, from the capture-time
stamp it carries back, its glass-to-glass latency. Delivered FPS is result frames shown per
second over the measured window. Writes ``webrtc.json`` and a screenshot ``webrtc_page.png``.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

from benchmarks.web_soak import ServerDidNotStart, percentile, web_server

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-dev-shm-usage",  # containers have a tiny /dev/shm
                 "--use-fake-device-for-media-stream",  # a synthetic camera...
                 "--use-fake-ui-for-media-stream"]  # ...that the page may use without asking
"""How the browser tests and this benchmark start Chromium (headless, no sandbox in a
container, a fake camera the page may use without asking)."""
SIZE_WH = (640, 480)
CAMERA_FPS = 30
FIRST_FRAME_S = 240.0
"""Longest wait for the first result frame: the first stream loads the nets."""
FPS_TARGET = 20.0


class BrowserUnavailable(RuntimeError):
    """Chromium or Playwright is missing, or Chromium did not start."""


def write_y4m(clip: Path, out: Path, *, size_wh: tuple[int, int] = SIZE_WH,
              fps: int = CAMERA_FPS, seconds: float | None = None) -> Path:
    """``clip`` as an uncompressed Y4M for ``--use-file-for-fake-video-capture``: scaled to
    the height of ``size_wh``, padded (black) to its width, and brought up to ``fps`` by
    blending neighbouring frames, so a 10 FPS clip still moves at every camera frame."""
    width, height = size_wh
    with av.open(str(clip)) as container:
        src_fps = float(container.streams.video[0].average_rate)
        frames_rgb = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    n_out = round(len(frames_rgb) * fps / src_fps)
    if seconds is not None:
        n_out = min(n_out, round(seconds * fps))
    with out.open("wb") as y4m:
        y4m.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for index in range(n_out):
            position = index * src_fps / fps
            a = frames_rgb[min(int(position), len(frames_rgb) - 1)]
            b = frames_rgb[min(int(position) + 1, len(frames_rgb) - 1)]
            weight = position - int(position)
            blended = cv2.addWeighted(a, 1.0 - weight, b, weight, 0.0)
            y4m.write(b"FRAME\n" + _fit(blended, width, height).tobytes())
    return out


def _fit(frame_rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    """Scaled to fit, centred on black; returned as I420 planes (what Y4M C420 holds)."""
    scale = min(width / frame_rgb.shape[1], height / frame_rgb.shape[0])
    w, h = round(frame_rgb.shape[1] * scale) // 2 * 2, round(frame_rgb.shape[0] * scale) // 2 * 2
    canvas = np.zeros((height, width, 3), np.uint8)
    x0, y0 = (width - w) // 2 // 2 * 2, (height - h) // 2 // 2 * 2
    canvas[y0:y0 + h, x0:x0 + w] = cv2.resize(frame_rgb, (w, h), interpolation=cv2.INTER_CUBIC)
    return cv2.cvtColor(canvas, cv2.COLOR_RGB2YUV_I420)


@contextlib.contextmanager
def chromium_page(profile: Path, extra_args: tuple[str, ...] = ()) -> Iterator[Any]:
    """A Playwright page in Debian's headless Chromium; ``BrowserUnavailable`` says why not."""
    if not CHROMIUM.is_file():
        raise BrowserUnavailable(f"{CHROMIUM} not found (apt-get install -y chromium)")
    try:
        from playwright import sync_api
    except ImportError as exc:
        raise BrowserUnavailable("Playwright is not installed (pip install playwright)") from exc
    with sync_api.sync_playwright() as playwright:
        try:
            context = playwright.chromium.launch_persistent_context(
                str(profile), executable_path=str(CHROMIUM), headless=True,
                args=[*CHROMIUM_ARGS, *extra_args], viewport={"width": 1280, "height": 900})
        except sync_api.Error as exc:
            raise BrowserUnavailable(f"Chromium did not start: {exc}") from exc
        try:
            yield context.new_page()
        finally:
            context.close()


def start_stream(page: Any, url: str) -> None:
    """Opens the page's Webcam tab, presses Start and waits for the first result frame."""
    page.goto(url)
    page.get_by_role("tab", name="Webcam").click()
    page.click("#rtc-start")
    page.wait_for_function(
        "() => { const s = window.realtimeUnmask.samples(); return s && s.shown.length > 0; }",
        timeout=FIRST_FRAME_S * 1000)


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time so far of these processes (Linux /proc; gone ones count 0)."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


def chromium_pids(profile: Path) -> list[int]:
    """The processes of the Chromium that uses ``profile`` (its renderers name no profile,
    so: the browser and all its descendants)."""
    parents: dict[int, int] = {}
    roots = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            pid, ppid = int(stat.parent.name), int(stat.read_text().rpartition(")")[2].split()[1])
            parents[pid] = ppid
            if str(profile) in (stat.parent / "cmdline").read_text():
                roots.append(pid)
    found, frontier = set(roots), list(roots)
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent and pid not in found]
        found.update(children)
        frontier.extend(children)
    return sorted(found)


def measure_window(page: Any, seconds: float, pids: dict[str, list[int]]) -> dict[str, Any]:
    """Streams for ``seconds`` more and summarises the frames shown in that window, with the
    CPU time each side spent per frame shown (what the machine's load does not change much)."""
    cpu0 = {side: cpu_seconds(p) for side, p in pids.items()}
    t0 = page.evaluate("() => performance.now()")
    time.sleep(seconds)
    samples = page.evaluate("() => window.realtimeUnmask.samples()")
    cpu = {side: cpu_seconds(p) - cpu0[side] for side, p in pids.items()}
    shown = [(at, ms) for at, ms in samples["shown"] if at >= t0]
    latencies = [ms for _, ms in shown if ms is not None]
    span_s = (samples["now"] - t0) / 1000.0
    return {"seconds": round(span_s, 1), "frames_shown": len(shown),
            "fps": round(len(shown) / span_s, 1) if span_s > 0 else None,
            "latency_ms_p50": percentile(latencies, 0.5),
            "latency_ms_p95": percentile(latencies, 0.95),
            "latency_ms_max": max(latencies, default=None),
            "stamps_read": len(latencies), "size": f"{samples['width']}x{samples['height']}",
            **{f"{side}_cpu_ms_per_frame": round(1000 * c / max(1, len(shown)), 1)
               for side, c in cpu.items()}}


def webrtc_bench(seconds: float, out: Path, *, clip: Path, work: Path, warmup_s: float = 10.0,
                 log: Callable[[str], None] = print) -> dict[str, Any]:
    """Runs the measurement in ``work`` (a scratch folder); writes ``out/webrtc.json``."""
    out.mkdir(parents=True, exist_ok=True)
    folders = {name: work / name for name in ("tmp", "gradio", "engines", "profile")}
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    camera = write_y4m(clip, work / "camera.y4m")
    fake = (f"--use-file-for-fake-video-capture={camera}",)
    with web_server(folders, out / "webrtc_server.log") as (server, url), \
            chromium_page(folders["profile"], fake) as page:
        request = page.request
        start_stream(page, url)
        log(f"webrtc: first result frame shown; {warmup_s:g} s of warm-up, then {seconds:g} s")
        time.sleep(warmup_s)
        pids = {"server": [server.pid], "browser": chromium_pids(folders["profile"])}
        result = measure_window(page, seconds, pids)
        page.screenshot(path=str(out / "webrtc_page.png"), full_page=True)
        result["readout"] = page.inner_text("#rtc-readout")
        result["browser_rtp"] = page.evaluate("() => window.realtimeUnmask.rtpStats()")
        result["server"] = request.get(url + "webrtc/stats").json()
    result.update(camera=f"{camera.name} from {clip.name}, {SIZE_WH[0]}x{SIZE_WH[1]} "
                         f"{CAMERA_FPS} FPS", load_average=list(os.getloadavg()),
                  cpus=os.cpu_count(), fps_target=FPS_TARGET,
                  fps_target_met=bool(result["fps"] and result["fps"] >= FPS_TARGET))
    (out / "webrtc.json").write_text(json.dumps(result, indent=1) + "\n")
    return result


def report_lines(result: dict[str, Any]) -> list[str]:
    met = "met" if result["fps_target_met"] else "NOT met"
    return [f"webrtc: {result['fps']} FPS delivered at {result['size']} (target >= "
            f"{FPS_TARGET:g}: {met}); glass-to-glass p50 {result['latency_ms_p50']} ms, p95 "
            f"{result['latency_ms_p95']} ms ({result['stamps_read']} of "
            f"{result['frames_shown']} frames stamped); server: {result['server']}"]


def command(seconds: float, data: Path, out: Path, log: Callable[[str], None]) -> int:
    """``realtime-unmask bench --webrtc SECONDS``: one line a problem, exit status 1 or 2."""
    clip = data / "videos" / "masked_webcam_256.mp4"
    if seconds <= 0:
        log(f"error: --webrtc takes a positive number of seconds, got {seconds:g}")
        return 2
    if not clip.is_file():
        log(f"error: the camera clip {clip} is not there; pass --data DIR")
        return 2
    try:
        with tempfile.TemporaryDirectory(prefix="webrtc-") as tmp:
            result = webrtc_bench(seconds, out, clip=clip, work=Path(tmp), log=log)
    except (ServerDidNotStart, BrowserUnavailable) as exc:
        log(f"error: {exc}")
        return 1
    for line in report_lines(result):
        log(line)
    log(f"wrote {out / 'webrtc.json'}")
    return 0
