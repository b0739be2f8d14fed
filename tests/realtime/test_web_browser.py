"""The real page in headless Chromium: examples, large results, the slider, the note, progress.

pytest tests/realtime/test_web_browser.py     # screenshots: test-artifacts/web_*.png

It needs Debian's Chromium and Playwright's Python package (never its downloaded browsers):
``apt-get install -y chromium`` and ``pip install playwright``. Where either is missing, or
Chromium cannot start, it is skipped and says why. The server runs the real nets (``--backend
onnx``) in a subprocess; the handlers' own tests, with stand-ins, are test_web.py.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from benchmarks.web_soak import wait_until_listening
from benchmarks.webrtc_bench import BrowserUnavailable, chromium_page
from realtime.sinks import PROVENANCE
from realtime.web_page import NOTE

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
SERVER_LIFETIME_S = 900  # the server stops by itself after this, whatever happens here
SERVER_START_S = 180  # a loaded 2-core machine takes over a minute to import Gradio alone
FACE = "train_1711.png"  # a 128 px tight crop of a face in a surgical mask
LARGE_PX = 300  # what "shown large" means: every picture and video at least this tall
NOTE_TEXT = NOTE.replace("**", "")
ETA = re.compile(r"Unmasking \d+/\d+ frames, about \d+ s left")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def _server(tmp: Path) -> Iterator[str]:
    """``realtime-unmask web`` in a subprocess, with its temporary files under ``tmp``."""
    port = _free_port()
    env = {**os.environ, "TMPDIR": str(tmp), "GRADIO_TEMP_DIR": str(tmp / "gradio"),
           "GRADIO_ANALYTICS_ENABLED": "False", "GLOG_minloglevel": "2"}
    command = [sys.executable, str(Path(__file__).with_name("web_server.py")),
               str(SERVER_LIFETIME_S), "web", "--port", str(port), "--backend", "onnx",
               "--cache-dir", str(tmp / "engines")]
    log_path = tmp / "server.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        if not wait_until_listening(process, port, SERVER_START_S):
            pytest.fail(f"the web server did not start:\n{log_path.read_text()[-3000:]}")
        yield f"http://127.0.0.1:{port}/"
    finally:
        process.send_signal(signal.SIGINT)  # as Ctrl-C: the server removes its files
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def _browser(tmp: Path) -> Iterator:
    try:
        with chromium_page(tmp / "chromium-profile") as page:
            yield page
    except BrowserUnavailable as exc:
        pytest.skip(f"browser test skipped: {exc}")


def _short_clip(masked_clip: Path, out: Path, seconds: float = 2.0) -> Path:
    """The first seconds of the masked webcam clip, with a 440 Hz tone as its sound."""
    with av.open(str(masked_clip)) as src, av.open(str(out), "w") as dst:
        fps = src.streams.video[0].average_rate
        video = dst.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = 256, 256, "yuv420p"
        audio = dst.add_stream("aac", rate=44100)
        audio.layout = "mono"
        for index, frame in enumerate(src.decode(video=0)):
            if index >= seconds * fps:
                break
            picture = av.VideoFrame.from_ndarray(frame.to_ndarray(format="rgb24"), "rgb24")
            picture.pts = index
            dst.mux(video.encode(picture))
        dst.mux(video.encode(None))
        tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(int(44100 * seconds)) / 44100))
        for start in range(0, tone.size, 1024):
            chunk = av.AudioFrame.from_ndarray(tone[None, start:start + 1024].astype(np.float32),
                                               format="flt", layout="mono")
            chunk.sample_rate, chunk.pts = 44100, start
            dst.mux(audio.encode(chunk))
        dst.mux(audio.encode(None))
    return out


def _fetch(page, url: str, base: str) -> bytes:
    response = page.request.get(url if url.startswith("http") else base.rstrip("/") + url)
    assert response.ok, f"{url}: HTTP {response.status}"
    return response.body()


def _picture(data: bytes) -> tuple[np.ndarray, dict]:
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"), np.float32), dict(image.info)


def _box(page, selector: str) -> dict:
    box = page.locator(selector).first.bounding_box()
    assert box is not None, f"{selector} is not shown"
    return box


def _assert_large(page, selector: str) -> None:
    """Shown, at least LARGE_PX tall, and (a picture) really loaded: a broken <img> can be
    stretched as tall as a good one."""
    height = _box(page, selector)["height"]
    assert height >= LARGE_PX, f"{selector} is {height:.0f} px tall, not >= {LARGE_PX}"
    page.wait_for_function(  # a stream swaps pictures: wait for one that is whole
        "sel => { const e = document.querySelector(sel);"
        " return e.tagName !== 'IMG' || (e.complete && e.naturalWidth > 0); }",
        arg=selector, timeout=30_000)


def _assert_note_beside(page, result: str, note: str) -> None:
    """The provenance note is right under the result, in its column, and readable."""
    assert page.locator(note).inner_text().strip() == NOTE_TEXT
    result_box, note_box = _box(page, result), _box(page, note)
    gap = note_box["y"] - (result_box["y"] + result_box["height"])
    assert 0 <= gap <= 60, f"{note} is {gap:.0f} px below {result}"
    overlap = (min(result_box["x"] + result_box["width"], note_box["x"] + note_box["width"])
               - max(result_box["x"], note_box["x"]))
    assert overlap >= 0.8 * note_box["width"], f"{note} is not in {result}'s column"


def _wait_new_src(page, selector: str, old: str | None, timeout_ms: int = 90_000) -> str:
    page.wait_for_function(
        "([sel, old]) => { const e = document.querySelector(sel);"
        " return e && e.getAttribute('src') && e.getAttribute('src') !== old; }",
        arg=[selector, old], timeout=timeout_ms)
    return page.get_attribute(selector, "src")


def _check_image_example(page, url: str) -> None:
    """One click on the built-in sample: a large result, the slider, the note beside."""
    page.locator("#image-examples button").first.click()  # the 512 px sample photo
    src = _wait_new_src(page, "#image-output img", None)
    result_rgb, info = _picture(_fetch(page, src, url))
    assert info.get("Comment") == PROVENANCE and result_rgb.shape == (512, 512, 3)
    input_rgb, _ = _picture(_fetch(page, page.get_attribute("#image-input img", "src"), url))
    assert np.abs(result_rgb - input_rgb)[120:180, 185:265].mean() > 10  # over the drawn mask
    _assert_large(page, "#image-input img")
    _assert_large(page, "#image-output img")
    _assert_note_beside(page, "#image-output", "#image-note")
    sides = page.locator("#image-slider img")
    page.wait_for_function("() => document.querySelectorAll('#image-slider img').length == 2")
    before, after = (_fetch(page, sides.nth(i).get_attribute("src"), url) for i in (0, 1))
    assert _picture(after)[0].tolist() == result_rgb.tolist()  # after: the result itself
    assert np.abs(_picture(before)[0] - input_rgb).mean() < 2  # before: the input (a JPEG)
    _assert_large(page, "#image-slider img")
    page.screenshot(path=ARTIFACTS / "web_image_example.png", full_page=True)


def _check_image_upload(page, url: str, face: Path, tmp: Path) -> None:
    """A small upload is shown as large as any; the tint box repaints it; errors are said."""
    old = page.get_attribute("#image-output img", "src")
    page.set_input_files("#image-input input[type=file]", str(face))
    src = _wait_new_src(page, "#image-output img", old)
    shown = _fetch(page, src, url)
    out_rgb, info = _picture(shown)
    assert info.get("Comment") == PROVENANCE
    in_rgb = np.asarray(Image.open(face).convert("RGB"), np.float32)
    assert out_rgb.shape == in_rgb.shape
    # Inside the mask (the lower middle of these crops, above the corner tag) it changed.
    assert np.abs(out_rgb - in_rgb)[70:104, 32:96].mean() > 3.0
    _assert_large(page, "#image-output img")  # 128 px upscaled, not a 128 px thumbnail
    _assert_large(page, "#image-input img")
    link = page.wait_for_selector("#image-file a[download]").get_attribute("href")
    assert _fetch(page, link, url) == shown
    page.screenshot(path=ARTIFACTS / "web_image.png", full_page=True)
    page.locator("#image-overlay input").check()
    tinted_rgb, _ = _picture(_fetch(page, _wait_new_src(page, "#image-output img", src), url))
    assert np.abs(tinted_rgb - out_rgb)[70:104, 32:96].mean() > 3.0  # the painted part tinted
    assert np.abs(tinted_rgb - out_rgb)[:40].mean() < 1.0  # the eyes and above untouched
    page.screenshot(path=ARTIFACTS / "web_image_overlay.png", full_page=True)
    broken = tmp / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n this is no picture")
    page.set_input_files("#image-input input[type=file]", str(broken))
    page.get_by_text("could not be read as a picture").first.wait_for(timeout=30_000)
    time.sleep(1)  # the toast slides in; a full-page capture would leave it out
    page.screenshot(path=ARTIFACTS / "web_image_error.png")


_WATCH_PROGRESS = """() => {
    window.progressSeen = [];
    new MutationObserver(() => {
        const found = document.body.innerText.match(/Unmasking[^\\n]*/g) || [];
        for (const line of found) {
            if (!window.progressSeen.includes(line)) window.progressSeen.push(line);
        }
    }).observe(document.body, {subtree: true, childList: true, characterData: true});
}"""


def _check_video_example(page, url: str) -> None:
    """One click on the sample clip runs it, with frames done/total and the seconds left."""
    page.get_by_role("tab", name="Video").click()
    overlay = page.locator("#video-overlay input")
    assert overlay.is_checked()  # ticked on the Image tab: the boxes follow each other
    overlay.uncheck()
    page.evaluate(_WATCH_PROGRESS)
    page.locator("#video-examples button").first.click()
    page.wait_for_function("() => window.progressSeen.some(l => / s left/.test(l))",
                           timeout=120_000)
    page.screenshot(path=ARTIFACTS / "web_video_progress.png")  # as it is at that moment
    src = page.wait_for_selector("#video-output video", timeout=120_000).get_attribute("src")
    seen = page.evaluate("() => window.progressSeen")
    assert any(ETA.search(line) for line in seen), seen
    result = _fetch(page, src, url)
    assert len(result) > 10_000
    _assert_large(page, "#video-input video")
    _assert_large(page, "#video-output video")
    _assert_note_beside(page, "#video-output", "#video-note")
    page.screenshot(path=ARTIFACTS / "web_video_example.png", full_page=True)


def _check_video_upload(page, url: str, clip: Path, tmp: Path) -> None:
    old = page.get_attribute("#video-output video", "src")
    page.locator("#video-input button[aria-label='Clear']").click()  # the example's clip
    page.set_input_files("#video-input input[type=file]", str(clip))
    page.wait_for_selector("#video-input video", timeout=30_000)
    page.click("#video-button")
    src = _wait_new_src(page, "#video-output video", old, timeout_ms=120_000)
    result = tmp / "result.mp4"
    result.write_bytes(_fetch(page, src, url))
    with av.open(str(result)) as container:
        assert container.metadata.get("comment") == PROVENANCE
        assert container.streams.audio, "the input's sound was lost"
        frames = sum(1 for _ in container.decode(video=0))
    assert frames > 0
    page.screenshot(path=ARTIFACTS / "web_video.png", full_page=True)


def _check_webcam_tab(page) -> None:
    # Streaming starves a loaded 2-core machine's Chromium: its clicks and captures take
    # tens of seconds there, hence the long timeouts.
    page.get_by_role("tab", name="Webcam").click()
    page.get_by_text("No video above?").click()  # opens the image-polling fallback
    page.get_by_text("Click to Access Webcam").click()
    page.click("#webcam-input button[aria-label='capture photo']",  # starts the stream
               timeout=120_000)
    page.wait_for_selector("#webcam-output img", timeout=120_000)
    page.wait_for_function(
        "() => /FPS/.test(document.querySelector('#webcam-speed').innerText)", timeout=30_000)
    time.sleep(3)  # a few seconds of streaming, for the frame rate in the screenshot
    _assert_large(page, "#webcam-output img")
    _assert_note_beside(page, "#webcam-output", "#webcam-note")
    page.screenshot(path=ARTIFACTS / "web_webcam.png", full_page=True, timeout=120_000)


@pytest.mark.slow
def test_page_in_a_real_browser(shared_data: Path, masked_clip: Path, tmp_path: Path) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    clip = _short_clip(masked_clip, tmp_path / "clip.mp4")
    with _browser(tmp_path) as page:
        with _server(tmp_path) as url:
            page.goto(url)
            page.wait_for_selector("#image-examples", timeout=60_000)
            _check_image_example(page, url)
            _check_image_upload(page, url, shared_data / "masked_real" / FACE, tmp_path)
            _check_video_example(page, url)
            _check_video_upload(page, url, clip, tmp_path)
            _check_webcam_tab(page)
            page.get_by_role("tab", name="Settings").click(timeout=120_000)  # still streaming
            tint = page.get_by_label("Tint the painted region").last  # the Settings tab's box
            assert tint.is_visible() and not tint.is_checked()  # unticked on the Video tab
            page.screenshot(path=ARTIFACTS / "web_settings.png", full_page=True)
        assert not list(tmp_path.glob("realtime-unmask-web-*")), "temporary files were left"
