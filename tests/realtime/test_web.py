"""The browser demo's handlers with stand-in nets, called directly (no browser).

pytest tests/realtime/test_web.py       # the real page in Chromium: test_web_browser.py
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import cv2
import gradio as gr
import numpy as np
import pytest
from PIL import Image
from standins import standin_engines

from realtime.cli import build_web_parser
from realtime.demo_clip import render_demo_clip
from realtime.sinks import PROVENANCE
from realtime.web import Settings, WebApp, WebConfig, progress_line

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
    shown, (before, after), download, session = app.unmask_image(
        None, {"path": str(upload)}, untagged)
    assert shown == download == after
    # The slider's other side is the picture as uploaded, in the same frame as the result.
    in_rgb = np.asarray(Image.open(face).convert("RGB"), np.float32)
    before_rgb = np.asarray(Image.open(before).convert("RGB"), np.float32)
    assert before_rgb.shape == in_rgb.shape
    assert np.abs(before_rgb - in_rgb).mean() < 2  # a JPEG of the same picture
    out = Path(shown)
    assert out.name == "unmasked.png" and out.is_relative_to(app.root)
    with Image.open(out) as image:
        assert image.info["Comment"] == PROVENANCE
        out_rgb = np.asarray(image.convert("RGB"), np.float32)
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
    assert app.unmask_image(None, None, Settings())[:3] == (None, None, None)
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


@pytest.mark.parametrize(("done", "total", "elapsed_s", "line"), [
    (0, 75, 0.0, "Unmasking 0/75 frames"),  # no speed yet, so no guess
    (1, 75, 0.0, "Unmasking 1/75 frames"),
    (25, 75, 5.0, "Unmasking 25/75 frames, about 10 s left"),
    (74, 75, 7.4, "Unmasking 74/75 frames, about 1 s left"),  # rounded up, never "0 s"
    (75, 75, 7.5, "Unmasking 75/75 frames"),
    (10, None, 2.0, "Unmasking 10 frames"),  # a container that does not say its length
])
def test_progress_line_says_frames_and_seconds_left(done: int, total: int | None,
                                                    elapsed_s: float, line: str) -> None:
    assert progress_line(done, total, elapsed_s) == line


def test_video_progress_counts_frames_and_time_left(app: WebApp, tmp_path: Path) -> None:
    clip = render_demo_clip(tmp_path / "sample.mp4", seconds=1.0)  # 25 frames
    calls: list[tuple[object, str]] = []
    def progress(value, desc=None, unit="steps"):
        calls.append((value, desc))
    shown, download, session = app.unmask_video(None, str(clip), Settings(), progress)
    assert shown == download and Path(shown).is_file()
    assert calls[0] == (0.0, "Starting")
    frames = [value for value, _ in calls[1:]]
    assert frames == [(n, 25) for n in range(1, 26)]
    assert any(re.fullmatch(r"Unmasking \d+/25 frames, about \d+ s left", desc)
               for _, desc in calls[1:-1])
    assert calls[-1][1] == "Unmasking 25/25 frames"
    session.close()
