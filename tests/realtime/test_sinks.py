"""Sinks: complete outputs that match the input, or no output at all.

pytest tests/realtime/test_sinks.py
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from PIL import Image

from realtime import sinks
from realtime.sinks import (
    PROVENANCE,
    DisplaySink,
    ImageSink,
    SingleImageSink,
    VideoFileSink,
    open_sink,
)
from realtime.sources import open_source
from realtime.types import Frame, SinkError, StreamInfo


def frames_of(source, n: int) -> list[Frame]:
    return [frame for frame, _ in zip(source, range(n), strict=False)]


def synthetic_frames(n: int, size_wh: tuple[int, int]) -> list[Frame]:
    rng = np.random.default_rng(0)
    return [
        Frame(i, float(i), rng.integers(0, 256, (size_wh[1], size_wh[0], 3), dtype=np.uint8))
        for i in range(n)
    ]


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if ".partial" in p.name
                  or ".recording" in p.name)


def audio_duration_s(path: Path) -> float:
    with av.open(str(path)) as container:
        packets = [p for p in container.demux(audio=0) if p.size]
    end = packets[-1].pts + packets[-1].duration
    return float((end - packets[0].pts) * packets[0].time_base)


def test_video_round_trip_keeps_frames_rate_audio_and_provenance(
    tmp_path: Path, hamilton_clip: Path
):
    out = tmp_path / "out.mp4"
    with open_source(str(hamilton_clip)) as source, VideoFileSink(out, source.info) as sink:
        for frame in frames_of(source, 45):
            sink.write(frame, frame.bgr, None)
    assert len(sink.encode_ms) == 45 and leftovers(tmp_path) == []
    with av.open(str(hamilton_clip)) as original:
        rate_in = original.streams.video[0].average_rate
        audio_codec_in = original.streams.audio[0].codec_context.name
    with av.open(str(out)) as result:
        video = result.streams.video[0]
        assert (video.width, video.height) == (640, 360)
        assert video.average_rate == rate_in == Fraction(2997, 100)
        assert result.streams.audio[0].codec_context.name == audio_codec_in
        assert result.metadata["comment"] == PROVENANCE
        assert sum(1 for _ in result.decode(video=0)) == 45
    assert audio_duration_s(out) == pytest.approx(45 / 29.97, abs=0.05)


@pytest.mark.parametrize(("ext", "codec"), [("mkv", "h264"), ("webm", "vp9")])
def test_other_containers(tmp_path: Path, ext: str, codec: str):
    out = tmp_path / f"out.{ext}"
    info = StreamInfo((64, 48), 30000 / 1001, live=False)
    with VideoFileSink(out, info) as sink:
        for frame in synthetic_frames(6, (64, 48)):
            sink.write(frame, frame.bgr, None)
    with av.open(str(out)) as result:
        video = result.streams.video[0]
        assert video.codec_context.name == codec and not result.streams.audio
        assert video.average_rate == Fraction(30000, 1001)
        # Matroska spells its tags in capitals.
        assert {k.lower(): v for k, v in result.metadata.items()}["comment"] == PROVENANCE
        assert sum(1 for _ in result.decode(video=0)) == 6


def test_odd_size_is_padded_by_repeating_the_edge(tmp_path: Path):
    out = tmp_path / "odd.mp4"
    with VideoFileSink(out, StreamInfo((101, 77), 10.0, live=False)) as sink:
        for i in range(5):
            # A horizontal ramp: the padding column must repeat the last one, not be black.
            ramp_bgr = np.repeat(np.linspace(0, 250, 101, dtype=np.uint8)[None, :, None], 77, 0)
            sink.write(Frame(i, 0.0, np.repeat(ramp_bgr, 3, 2)), np.repeat(ramp_bgr, 3, 2), None)
    with av.open(str(out)) as result:
        pictures = [f.to_ndarray(format="bgr24") for f in result.decode(video=0)]
    assert len(pictures) == 5 and pictures[0].shape == (78, 102, 3)
    assert abs(int(pictures[0][:, -1].mean()) - 250) < 8
    assert abs(int(pictures[0][-1].mean()) - int(pictures[0][-2].mean())) < 8


def test_live_frames_are_timed_by_capture(tmp_path: Path):
    out = tmp_path / "live.mkv"
    with VideoFileSink(out, StreamInfo((32, 32), 10.0, live=True, kind="camera")) as sink:
        for frame, t in zip(synthetic_frames(3, (32, 32)), [5.0, 5.1, 5.3], strict=True):
            frame.t_capture = t
            sink.write(frame, frame.bgr, None)
    with av.open(str(out)) as result:
        times_s = [float(f.time) for f in result.decode(video=0)]
    assert times_s == pytest.approx([0.0, 0.1, 0.3], abs=0.002)


def test_abort_leaves_nothing(tmp_path: Path):
    sink = VideoFileSink(tmp_path / "out.mp4", StreamInfo((64, 48), 10.0, live=False))
    for frame in synthetic_frames(5, (64, 48)):
        sink.write(frame, frame.bgr, None)
    sink.abort()
    sink.abort()  # twice is harmless
    assert list(tmp_path.iterdir()) == []


def test_exception_in_with_block_aborts(tmp_path: Path):
    with (
        pytest.raises(KeyError),
        VideoFileSink(tmp_path / "out.mkv", StreamInfo((64, 48), 10.0, live=False)) as sink,
    ):
        frame = synthetic_frames(1, (64, 48))[0]
        sink.write(frame, frame.bgr, None)
        raise KeyError("the loop failed")
    assert list(tmp_path.iterdir()) == []


def test_closing_without_frames_writes_nothing(tmp_path: Path):
    VideoFileSink(tmp_path / "out.mp4", StreamInfo((64, 48), 10.0, live=False)).close()
    assert list(tmp_path.iterdir()) == []


def test_encoder_errors_resurface_as_sink_errors(tmp_path: Path, monkeypatch):
    sink = VideoFileSink(tmp_path / "out.mp4", StreamInfo((64, 48), 10.0, live=False))

    def broken_encoder(image_bgr, pts):
        raise av.error.ExternalError(-542398533, "libx264 exploded")

    monkeypatch.setattr(sink, "_encode", broken_encoder)
    frames = synthetic_frames(20, (64, 48))
    with pytest.raises(SinkError, match=r"encoding .* failed"):
        for frame in frames:  # the error shows on a later write, or else on close
            sink.write(frame, frame.bgr, None)
        sink.close()
    sink.abort()
    assert list(tmp_path.iterdir()) == []


def test_wrong_frame_size_is_refused(tmp_path: Path):
    with VideoFileSink(tmp_path / "out.mp4", StreamInfo((64, 48), 10.0, live=False)) as sink:
        frame = synthetic_frames(1, (48, 64))[0]
        with pytest.raises(SinkError, match="frame 0 is"):
            sink.write(frame, frame.bgr, None)


@pytest.mark.parametrize(
    ("output", "message"),
    [
        ("a_file/out.mp4", r"folder \S*a_file cannot be created \(a file is in the way\)"),
        ("a_file/deeper/out.mp4", r"folder \S*deeper cannot be created"),
        ("out.flv", "unknown extension"),
    ],
)
def test_unwritable_output_raises_at_construction(tmp_path: Path, output: str, message: str):
    (tmp_path / "a_file").write_text("not a folder")
    with pytest.raises(SinkError, match=message):
        VideoFileSink(tmp_path / output, StreamInfo((64, 48), 10.0, live=False))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]


def test_missing_output_folders_are_created_and_removed_again_if_unused(tmp_path: Path):
    info = StreamInfo((64, 48), 10.0, live=False)
    with VideoFileSink(tmp_path / "new" / "deeper" / "out.mkv", info) as sink:
        for frame in synthetic_frames(3, (64, 48)):
            sink.write(frame, frame.bgr, None)
    assert sink.written == [tmp_path / "new" / "deeper" / "out.mkv"]
    VideoFileSink(tmp_path / "unused" / "deeper" / "out.mp4", info).abort()
    VideoFileSink(tmp_path / "empty" / "out.mp4", info).close()  # no frames: nothing written
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new"]


def test_output_may_not_overwrite_its_input(tmp_path: Path, hamilton_clip: Path):
    info = StreamInfo((640, 360), 29.97, live=False, audio_path=str(tmp_path / "in.mp4"))
    with pytest.raises(SinkError, match="would overwrite the input"):
        VideoFileSink(tmp_path / "in.mp4", info)


def test_image_sink_keeps_names_formats_and_writes_masks(tmp_path: Path):
    out_dir = tmp_path / "out"
    names = ["a.png", "b.jpg", "c.webp", "d.bmp", None]
    sink = ImageSink(out_dir, save_masks=True)
    for i, name in enumerate(names):
        frame = Frame(i, 0.0, np.full((30, 40, 3), 60, np.uint8), name=name)
        mask_hw = np.zeros((30, 40), np.float32)
        mask_hw[10:20, 5:15] = 0.8
        sink.write(frame, frame.bgr, mask_hw if name else None)
    sink.close()
    expected = {"a.png": "PNG", "b.jpg": "JPEG", "c.webp": "WEBP", "d.bmp": "BMP"}
    expected["frame_000004.png"] = "PNG"
    for name, image_format in expected.items():
        with Image.open(out_dir / name) as image:
            assert image.format == image_format and image.size == (40, 30)
    with Image.open(out_dir / "a.png") as png:
        assert png.text["Comment"] == PROVENANCE
    with Image.open(out_dir / "b.jpg") as jpeg:
        assert jpeg.info["comment"].decode() == PROVENANCE
    with Image.open(out_dir / "c.webp") as webp:
        assert webp.getexif()[0x010E] == PROVENANCE
    mask = np.asarray(Image.open(out_dir / "masks" / "a.png"))
    assert mask.shape == (30, 40) and mask.dtype == np.uint8
    assert set(np.unique(mask)) == {0, 255} and mask[10:20, 5:15].all() and mask.sum() == 100 * 255
    assert not np.asarray(Image.open(out_dir / "masks" / "frame_000004.png")).any()
    assert len(sink.encode_ms) == 5 and leftovers(tmp_path) == []


def test_image_sink_folder_checks(tmp_path: Path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(SinkError, match="it is a file"):
        ImageSink(tmp_path / "file")
    with pytest.raises(SinkError, match="a file is in the way"):
        ImageSink(tmp_path / "file" / "out")
    ImageSink(tmp_path / "new" / "deeper")  # missing folders are created
    assert (tmp_path / "new" / "deeper").is_dir()
    ImageSink(tmp_path / "unused" / "deeper").abort()  # and removed if nothing was written
    single = SingleImageSink(tmp_path / "photos" / "one.png")
    single.abort()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "new"]


def test_image_sink_rejects_mismatched_mask(tmp_path: Path):
    sink = ImageSink(tmp_path, save_masks=True)
    frame = Frame(0, 0.0, np.zeros((30, 40, 3), np.uint8), name="x.png")
    with pytest.raises(SinkError, match="mask is"):
        sink.write(frame, frame.bgr, np.zeros((10, 10), np.float32))


def test_single_image_sink(tmp_path: Path):
    out = tmp_path / "result.png"
    frame = Frame(0, 0.0, np.full((8, 8, 3), (255, 0, 0), np.uint8), name="photo.jpg")
    with SingleImageSink(out) as sink:
        sink.write(frame, frame.bgr, None)
        with pytest.raises(SinkError, match="second frame"):
            sink.write(frame, frame.bgr, None)
    with Image.open(out) as image:
        assert image.text["Comment"] == PROVENANCE
        assert image.getpixel((0, 0)) == (0, 0, 255)  # BGR blue stays blue
    with pytest.raises(SinkError, match="unsupported extension"):
        SingleImageSink(tmp_path / "result.tiff")


VIDEO_INFO = StreamInfo((64, 48), 25.0, live=False, frame_count=10)
IMAGES_INFO = StreamInfo((64, 48), 1.0, live=False, frame_count=3, kind="images")
PHOTO_INFO = StreamInfo((64, 48), 1.0, live=False, frame_count=1, kind="images")
CAMERA_INFO = StreamInfo((64, 48), 30.0, live=True, kind="camera")


@pytest.mark.parametrize(
    ("output", "info", "save_masks", "expected"),
    [
        (None, VIDEO_INFO, False, type(None)),
        ("out.mp4", VIDEO_INFO, False, VideoFileSink),
        ("out.MKV", CAMERA_INFO, False, VideoFileSink),
        ("frames", VIDEO_INFO, False, ImageSink),
        ("existing.d", VIDEO_INFO, True, ImageSink),
        ("results", IMAGES_INFO, True, ImageSink),
        ("result.png", PHOTO_INFO, False, SingleImageSink),
        ("out.mp4", IMAGES_INFO, False, "cannot turn images into the video"),
        ("out.mp4", VIDEO_INFO, True, "masks are saved as images"),
        ("result.jpg", VIDEO_INFO, False, "cannot write a video into the single image"),
        ("result.jpg", IMAGES_INFO, False, "3 images cannot go into one file"),
        ("notes.txt", VIDEO_INFO, False, "neither a video, an image nor a folder"),
    ],
)
def test_open_sink_picks_the_right_sink(tmp_path: Path, output, info, save_masks, expected):
    (tmp_path / "existing.d").mkdir()
    target = None if output is None else str(tmp_path / output)
    if isinstance(expected, str):
        with pytest.raises(SinkError, match=expected):
            open_sink(target, info, save_masks=save_masks)
        return
    sink = open_sink(target, info, save_masks=save_masks)
    assert type(sink) is expected
    if sink is not None:
        sink.abort()


def test_display_sink_needs_a_display(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr(sinks.sys, "platform", "linux")
    with pytest.raises(SinkError, match="no display"):
        DisplaySink()


def test_display_sink_overlay_and_quit_key(monkeypatch):
    shown = []
    monkeypatch.setenv("DISPLAY", ":99")
    monkeypatch.setattr(cv2, "namedWindow", lambda *args: None)
    monkeypatch.setattr(cv2, "imshow", lambda title, image: shown.append(image))
    monkeypatch.setattr(cv2, "destroyWindow", lambda title: None)
    keys = iter([-1, ord("q")])
    monkeypatch.setattr(cv2, "waitKey", lambda delay: next(keys))
    out_bgr = np.zeros((120, 160, 3), np.uint8)
    with DisplaySink() as window:
        window.write(Frame(0, 0.0, out_bgr), out_bgr, None)
        assert not window.quit_requested
        window.write(Frame(1, 0.0, out_bgr), out_bgr, None)
        assert window.quit_requested
    assert shown[0].any() and not out_bgr.any()  # overlay drawn on a copy only
