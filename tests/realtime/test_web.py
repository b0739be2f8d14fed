"""The browser demo: its handlers with stand-in nets, then the real page in headless Chromium.

The browser test needs Debian's Chromium and Playwright's Python package (never its
downloaded browsers): ``apt-get install -y chromium`` and ``pip install playwright``. Where
either is missing, or Chromium cannot start, it is skipped and says why.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import av
import cv2
import gradio as gr
import numpy as np
import pytest
from PIL import Image
from standins import standin_engines

from realtime.cli import build_web_parser
from realtime.sinks import PROVENANCE
from realtime.web import Settings, WebApp, WebConfig

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-dev-shm-usage",  # containers have a tiny /dev/shm
                 "--use-fake-device-for-media-stream",  # a synthetic camera...
                 "--use-fake-ui-for-media-stream"]  # ...that the page may use without asking
SERVER_LIFETIME_S = 300  # the server stops by itself after this, whatever happens here
FACE = "train_1711.png"  # a 128 px tight crop of a face in a surgical mask


@pytest.fixture
def app() -> Iterator[WebApp]:
    engines = standin_engines()
    web_app = WebApp(WebConfig(max_video_s=5.0), engines=engines)
    yield web_app
    web_app.close()


@pytest.fixture
def face(shared_data: Path) -> Path:
    return shared_data / "masked_real" / FACE


def test_image_result_is_painted_and_says_so(app: WebApp, face: Path, tmp_path: Path) -> None:
    upload = tmp_path / "a name that must not matter.png"
    shutil.copy(face, upload)
    untagged = Settings(label=False)
    shown, download, session = app.unmask_image(None, {"path": str(upload)}, untagged)
    assert shown == download
    out = Path(shown)
    assert out.name == "unmasked.png" and out.is_relative_to(app.root)
    with Image.open(out) as image:
        assert image.info["Comment"] == PROVENANCE
        out_rgb = np.asarray(image.convert("RGB"), np.float32)
    in_rgb = np.asarray(Image.open(face).convert("RGB"), np.float32)
    assert out_rgb.shape == in_rgb.shape
    # The stand-in paints the lower 60% of the aligned crop, from just above the nose down.
    changed_rows = np.flatnonzero(np.abs(out_rgb - in_rgb).max(axis=(1, 2)) > 0)
    assert np.abs(out_rgb - in_rgb)[116:, 8:120].mean() > 20
    assert 40 < changed_rows.min() < 90  # below the eyes, above the mouth: nothing higher
    # The next picture replaces this request's folder; closing the session removes the rest.
    app.unmask_image(session, str(face), Settings())
    assert not out.exists()
    session.close()
    assert not session.root.exists()


@pytest.mark.parametrize(("name", "content", "message"), [
    ("blank.png", "grey", "No face found"),
    ("broken.png", b"\x89PNG\r\n\x1a\n not really", "could not be read as a picture"),
    ("empty.jpg", b"", "could not be read as a picture"),
    ("notes.txt", b"hello", "could not be read as a picture"),
    ("anim.gif", "gif", "Unsupported picture type (GIF)"),
    ("missing.png", None, "did not arrive"),
])
def test_bad_pictures_get_a_message(app: WebApp, tmp_path: Path, name: str, content,
                                    message: str) -> None:
    path = tmp_path / name
    if content == "grey":
        cv2.imwrite(str(path), np.full((240, 320, 3), 128, np.uint8))
    elif content == "gif":
        Image.new("RGB", (64, 64)).save(path)
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(gr.Error, match=message.replace("(", r"\(").replace(")", r"\)")):
        app.unmask_image(None, str(path), Settings())


def test_no_upload_clears_the_result(app: WebApp) -> None:
    assert app.unmask_image(None, None, Settings())[:2] == (None, None)
    with pytest.raises(gr.Error, match="Upload a video"):
        app.unmask_video(None, None, Settings())


@pytest.mark.parametrize(("source", "message"), [
    ("clip.gif", r"Upload a video \(avi, mkv, mov, mp4, webm\)"),
    ("broken.mp4", "the uploaded file is not a video file or is corrupt"),  # no server path
    ("masked", "the limit is 5 s"),  # the 15 s clip against max_video_s=5
])
def test_bad_videos_get_a_message(app: WebApp, masked_clip: Path, tmp_path: Path, source: str,
                                  message: str) -> None:
    path = masked_clip if source == "masked" else tmp_path / source
    if source != "masked":
        path.write_bytes(b"\x00\x00\x00\x18ftypmp42 truncated")
    with pytest.raises(gr.Error, match=message):
        app.unmask_video(None, str(path), Settings())


def test_sessions_never_share_a_tracker(app: WebApp) -> None:
    first, second = app.new_session(), app.new_session()
    try:
        a, b = first.pipeline("webcam", Settings()), second.pipeline("webcam", Settings())
        assert a is not b and a.tracker is not b.tracker
        assert a.engines is b.engines  # the nets are shared, the per-face state is not
        assert first.pipeline("webcam", Settings(label=False)) is a  # the tag is not the nets'
        assert first.pipeline("image", Settings()) is not a
        changed = first.pipeline("webcam", Settings(max_faces=2))
        assert changed is not a and changed.tracker.config.max_faces == 2
    finally:
        first.close()
        second.close()


def test_webcam_frame_comes_back_with_its_speed(app: WebApp, face: Path) -> None:
    frame_rgb = cv2.cvtColor(cv2.imread(str(face)), cv2.COLOR_BGR2RGB)
    frame_rgb = cv2.copyMakeBorder(frame_rgb, 64, 64, 64, 64, cv2.BORDER_REPLICATE)
    session = None
    for _ in range(3):
        out_rgb, speed, session = app.unmask_webcam(session, frame_rgb, Settings())
    assert out_rgb.shape == frame_rgb.shape and out_rgb.dtype == np.uint8
    assert "FPS" in speed and "1 face" in speed
    session.close()


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"port": 0}, "--port"),
    ({"max_faces": 17}, "--max-faces"),
    ({"backend": "cuda"}, "--backend"),
    ({"max_video_s": 0}, "limits"),
    ({"webcam_streams": -1}, "limits"),
])
def test_web_config_says_what_is_wrong(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        WebConfig(**kwargs)


def test_web_command_is_private_unless_asked() -> None:
    args = build_web_parser().parse_args([])
    assert (args.host, args.port, args.share) == ("127.0.0.1", 7860, False)
    args = build_web_parser().parse_args(["--host", "0.0.0.0", "--share", "--max-faces", "2"])
    assert (args.host, args.share, args.max_faces) == ("0.0.0.0", True, 2)


# The real page in a real browser.


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
        deadline = time.monotonic() + 90
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the web server did not start:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.5)
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
    if not CHROMIUM.is_file():
        pytest.skip(f"browser test skipped: {CHROMIUM} not found (apt-get install -y chromium)")
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="browser test skipped: pip install playwright")
    with sync_api.sync_playwright() as playwright:
        try:
            context = playwright.chromium.launch_persistent_context(
                str(tmp / "chromium-profile"), executable_path=str(CHROMIUM), headless=True,
                args=CHROMIUM_ARGS, viewport={"width": 1280, "height": 900})
        except sync_api.Error as exc:
            pytest.skip(f"browser test skipped: Chromium did not start: {exc}")
        try:
            yield context.new_page()
        finally:
            context.close()


def _fetch(page, url: str, base: str) -> bytes:
    response = page.request.get(url if url.startswith("http") else base.rstrip("/") + url)
    assert response.ok, f"{url}: HTTP {response.status}"
    return response.body()


def _check_image_tab(page, url: str, face: Path, tmp: Path) -> None:
    page.set_input_files("#image-input input[type=file]", str(face))
    src = page.wait_for_selector("#image-output img", timeout=90_000).get_attribute("src")
    shown = _fetch(page, src, url)
    with Image.open(io.BytesIO(shown)) as image:
        assert image.info.get("Comment") == PROVENANCE
        out_rgb = np.asarray(image.convert("RGB"), np.float32)
    in_rgb = np.asarray(Image.open(face).convert("RGB"), np.float32)
    assert out_rgb.shape == in_rgb.shape
    # Inside the mask (the lower middle of these crops, above the corner tag) it changed.
    assert np.abs(out_rgb - in_rgb)[70:104, 32:96].mean() > 3.0
    link = page.wait_for_selector("#image-file a[download]").get_attribute("href")
    assert _fetch(page, link, url) == shown
    page.screenshot(path=ARTIFACTS / "web_image.png", full_page=True)
    broken = tmp / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n this is no picture")
    page.set_input_files("#image-input input[type=file]", str(broken))
    page.get_by_text("could not be read as a picture").first.wait_for(timeout=30_000)
    time.sleep(1)  # the toast slides in; a full-page capture would leave it out
    page.screenshot(path=ARTIFACTS / "web_image_error.png")


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


def _check_video_tab(page, url: str, clip: Path, tmp: Path) -> None:
    page.get_by_role("tab", name="Video").click()
    page.set_input_files("#video-input input[type=file]", str(clip))
    page.wait_for_selector("#video-input video", timeout=30_000)
    page.click("#video-button")
    src = page.wait_for_selector("#video-output video", timeout=120_000).get_attribute("src")
    result = tmp / "result.mp4"
    result.write_bytes(_fetch(page, src, url))
    with av.open(str(result)) as container:
        assert container.metadata.get("comment") == PROVENANCE
        assert container.streams.audio, "the input's sound was lost"
        frames = sum(1 for _ in container.decode(video=0))
    assert frames > 0
    page.screenshot(path=ARTIFACTS / "web_video.png", full_page=True)


def _check_webcam_tab(page) -> None:
    page.get_by_role("tab", name="Webcam").click()
    page.get_by_text("Click to Access Webcam").click()
    page.click("#webcam-input button[aria-label='capture photo']")  # starts the stream
    page.wait_for_selector("#webcam-output img", timeout=60_000)
    page.wait_for_function(
        "() => /FPS/.test(document.querySelector('#webcam-speed').innerText)", timeout=30_000)
    time.sleep(3)  # a few seconds of streaming, for the frame rate in the screenshot
    page.screenshot(path=ARTIFACTS / "web_webcam.png", full_page=True)


@pytest.mark.slow
def test_page_in_a_real_browser(shared_data: Path, masked_clip: Path, tmp_path: Path) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    clip = _short_clip(masked_clip, tmp_path / "clip.mp4")
    with _browser(tmp_path) as page:
        with _server(tmp_path) as url:
            page.goto(url)
            page.wait_for_selector("#image-input", timeout=60_000)
            _check_image_tab(page, url, shared_data / "masked_real" / FACE, tmp_path)
            _check_video_tab(page, url, clip, tmp_path)
            _check_webcam_tab(page)
            page.get_by_role("tab", name="Settings").click()
            page.screenshot(path=ARTIFACTS / "web_settings.png", full_page=True)
        assert not list(tmp_path.glob("realtime-unmask-web-*")), "temporary files were left"
