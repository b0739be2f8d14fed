"""The WebRTC webcam in the real page: headless Chromium, its fake camera playing a masked face.

pytest tests/realtime/test_webrtc_browser.py    # screenshot: test-artifacts/webrtc_webcam.png

Needs Debian's Chromium and Playwright's Python package (``apt-get install -y chromium``,
``pip install playwright``); skipped, saying why, where either is missing or Chromium does not
start. The server runs the real nets (``--backend onnx``) in a subprocess. What is checked is
behaviour (frames come back unmasked, the page measures and shows its numbers), not speed:
``realtime-unmask bench --webrtc`` measures that.
"""

from __future__ import annotations

import contextlib
import re
import time
from pathlib import Path

import pytest

pytest.importorskip("aiortc", reason="WebRTC browser test skipped: pip install aiortc")

from benchmarks.web_soak import web_server
from benchmarks.webrtc_bench import (
    BrowserUnavailable,
    chromium_page,
    measure_window,
    start_stream,
    write_y4m,
)

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
READOUT = re.compile(r"[\d.]+ FPS delivered · glass-to-glass \d+ ms \(p95 \d+\) · 640x480 · "
                     r"server [\d.]+ ms a frame, 1 face")


BLUE_SHARE = """() => [document.getElementById('rtc-camera'), document.getElementById('rtc-output')]
    .map((video) => {
        const canvas = document.createElement('canvas');
        canvas.width = 640; canvas.height = 480;
        const ctx = canvas.getContext('2d');
        ctx.drawImage(video, 0, 0, 640, 480);
        const data = ctx.getImageData(160, 160, 320, 320).data;  // the face's lower half
        let blue = 0;
        for (let i = 0; i < data.length; i += 4) blue += data[i + 2] > data[i] + 40;
        return blue / (data.length / 4);
    })"""
"""Share of clearly blue pixels (the surgical mask) in the lower middle of the camera's
picture and of the result."""


@pytest.mark.slow
def test_webcam_over_webrtc_in_a_real_browser(masked_clip: Path, tmp_path: Path) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    folders = {name: tmp_path / name for name in ("tmp", "gradio", "engines", "profile")}
    for folder in folders.values():
        folder.mkdir()
    camera = write_y4m(masked_clip, tmp_path / "camera.y4m", seconds=4.0)
    fake = (f"--use-file-for-fake-video-capture={camera}",)
    with contextlib.ExitStack() as stack:
        try:
            page = stack.enter_context(chromium_page(folders["profile"], fake))
        except BrowserUnavailable as exc:
            pytest.skip(f"WebRTC browser test skipped: {exc}")
        _, url = stack.enter_context(web_server(folders, tmp_path / "server.log"))
        start_stream(page, url)
        window = measure_window(page, 4.0, {})
        page.wait_for_function(  # the readout has all its parts once the server's counters came
            "re => new RegExp(re).test(document.querySelector('#rtc-readout').innerText)",
            arg=READOUT.pattern, timeout=60_000)
        blue_in, blue_out = page.evaluate(BLUE_SHARE)
        stats = page.request.get(url + "webrtc/stats").json()
        page.screenshot(path=ARTIFACTS / "webrtc_webcam.png", full_page=True)
        output = page.locator("#rtc-output").bounding_box()
        page.click("#rtc-stop")
        page.wait_for_function("() => document.querySelector('#rtc-readout')"
                               ".innerText.startsWith('Stopped')", timeout=30_000)
        time.sleep(3)  # the server notices that the peer has gone
        after = page.request.get(url + "webrtc/stats").json()
    assert window["frames_shown"] > 0 and window["size"] == "640x480", window
    assert window["stamps_read"] > 0.5 * window["frames_shown"], window  # latency measured
    assert stats["peers"] == 1 and stats["processed"] > 0
    assert stats["painted"] > 0.5 * stats["processed"], stats  # the masked face was painted
    assert blue_in > 0.05 and blue_out < 0.3 * blue_in, (blue_in, blue_out)  # and looks so
    assert output is not None and output["height"] >= 300  # shown large
    assert after["peers"] == 0, after
