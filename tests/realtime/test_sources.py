"""Sources: files keep every frame in order, live sources keep only the newest, errors are clear.

pytest tests/realtime/test_sources.py
"""

from __future__ import annotations

import itertools
import re
import shutil
import time
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from realtime.sources import (
    CameraSource,
    ImageSource,
    LiveSource,
    SimulatedCamera,
    Source,
    StreamSource,
    VideoFileSource,
    open_source,
)
from realtime.types import SourceError, StreamInfo
from realtime.video_writer import VideoFileSink

CODECS = {"mp4": "libx264", "mkv": "libx264", "mov": "libx264", "avi": "mpeg4",
          "webm": "libvpx-vp9", "gif": "gif"}  # fmt: skip


def write_clip(path: Path, n_frames: int = 8, size_wh: tuple[int, int] = (64, 48), fps: int = 10):
    """A tiny clip whose frame i is flat grey 20 * i, so order can be read back from pixels."""
    codec = CODECS[path.suffix[1:]]
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = size_wh
        stream.pix_fmt = "rgb8" if codec == "gif" else "yuv420p"
        for i in range(n_frames):
            pixels = np.full((size_wh[1], size_wh[0], 3), 20 * i, np.uint8)
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def grey_levels(frames) -> list[int]:
    return [round(float(f.bgr.mean()) / 20) for f in frames]


def test_video_file_frames_in_order_with_info(hamilton_clip: Path):
    with open_source(str(hamilton_clip)) as source:
        assert isinstance(source, VideoFileSource) and isinstance(source, Source)
        info = source.info
        frames = []
        for frame in source:
            frames.append(frame)
            if len(frames) == 30:
                break
    assert info.size_wh == (640, 360) and info.fps == pytest.approx(29.97)
    assert info.frame_count == 275 and not info.live and info.kind == "video"
    assert info.audio_path == str(hamilton_clip)
    assert [f.index for f in frames] == list(range(30))
    for frame in frames:
        assert frame.bgr.shape == (360, 640, 3) and frame.bgr.dtype == np.uint8
        assert frame.bgr.flags["C_CONTIGUOUS"] and frame.timings_ms["decode"] > 0
    assert all(a.t_capture <= b.t_capture for a, b in itertools.pairwise(frames))


@pytest.mark.parametrize("ext", sorted(CODECS))
def test_every_container_decodes_all_frames_in_order(tmp_path: Path, ext: str):
    clip = write_clip(tmp_path / f"clip.{ext}")
    with open_source(str(clip)) as source:
        frames = list(source)
    assert source.info.size_wh == (64, 48) and source.info.fps == pytest.approx(10.0)
    assert source.info.frame_count == 8 and source.info.audio_path is None
    assert grey_levels(frames) == list(range(8))


def write_phone_clip(path: Path, rotation: int) -> Path:
    """64x48 stored pictures, red on the left, with a display matrix turning them."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.set_display_rotation(rotation)  # degrees counterclockwise, as phones write it
        for i in range(3):
            picture_bgr = np.zeros((48, 64, 3), np.uint8)
            picture_bgr[:, :32] = (0, 0, 255)
            frame = av.VideoFrame.from_ndarray(picture_bgr, format="bgr24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


@pytest.mark.parametrize(("rotation", "size_wh", "red_at"), [
    (0, (64, 48), "left"), (-90, (48, 64), "top"), (90, (48, 64), "bottom"),
    (180, (64, 48), "right"),
])
def test_rotated_phone_video_comes_upright(tmp_path: Path, rotation: int, size_wh, red_at: str):
    clip = write_phone_clip(tmp_path / "phone.mp4", rotation)
    with open_source(str(clip)) as source:
        frames = list(source)
    assert source.info.size_wh == size_wh and len(frames) == 3
    height, width = frames[0].bgr.shape[:2]
    halves = {"left": np.s_[:, : width // 2], "right": np.s_[:, width // 2:],
              "top": np.s_[: height // 2], "bottom": np.s_[height // 2:]}
    assert (width, height) == size_wh
    assert frames[0].bgr[halves[red_at]][..., 2].mean() > 200  # red is where it is displayed
    opposite = {"left": "right", "right": "left", "top": "bottom", "bottom": "top"}[red_at]
    assert frames[0].bgr[halves[opposite]][..., 2].mean() < 40
    with VideoFileSink(tmp_path / "out.mp4", source.info) as sink:  # written upright
        for frame in frames:
            sink.write(frame, frame.bgr, None)
    with av.open(str(tmp_path / "out.mp4")) as result:
        first = next(result.decode(video=0))
        assert (first.width, first.height, first.rotation) == (*size_wh, 0)


def test_masked_webcam_has_no_audio(masked_clip: Path):
    with open_source(str(masked_clip)) as source:
        assert source.info.audio_path is None and source.info.size_wh == (256, 256)
        assert next(iter(source)).bgr.shape == (256, 256, 3)


def _text_file(path: Path) -> None:
    path.write_text("this is a shopping list, not a video\n")


def _empty_file(path: Path) -> None:
    path.write_bytes(b"")


def _zero_frames(path: Path) -> None:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height = 64, 64
        container.start_encoding()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (_text_file, "not a video file or is corrupt"),
        (_empty_file, "not a video file or is corrupt"),
        (_zero_frames, "no video"),  # mp4 drops a track without samples
    ],
)
def test_broken_video_files_raise_source_error(tmp_path: Path, make, message: str):
    path = tmp_path / "broken.mp4"
    make(path)
    with pytest.raises(SourceError, match=message):
        open_source(str(path))


def test_truncated_video_raises_source_error(tmp_path: Path, hamilton_clip: Path):
    path = tmp_path / "truncated.mp4"
    with open(hamilton_clip, "rb") as clip:
        path.write_bytes(clip.read(20_000))  # the index (moov) is at the end: it is lost
    with pytest.raises(SourceError, match=str(path)):
        open_source(str(path))


def test_corruption_mid_file_ends_iteration_with_source_error(tmp_path: Path, masked_clip: Path):
    data = bytearray(masked_clip.read_bytes())
    start, stop = int(len(data) * 0.4), int(len(data) * 0.9)
    noise = np.random.default_rng(0).integers(0, 256, stop - start, dtype=np.uint8)
    data[start:stop] = noise.tobytes()
    path = tmp_path / "damaged.mp4"
    path.write_bytes(bytes(data))
    indices = []
    with open_source(str(path)) as source, pytest.raises(SourceError, match="could not be decoded"):
        for frame in source:
            indices.append(frame.index)
    assert 0 < len(indices) < 153 and indices == list(range(len(indices)))


def test_missing_path_raises_source_error(tmp_path: Path):
    missing = tmp_path / "nope.mp4"
    with pytest.raises(SourceError, match=f"^input not found: {missing}$"):
        open_source(str(missing))


def test_a_source_is_read_once(tmp_path: Path):
    with open_source(str(write_clip(tmp_path / "clip.mp4"))) as source:
        list(source)
        with pytest.raises(SourceError, match="only once"):
            iter(source)


def _write_image(path: Path, value: int, size_wh: tuple[int, int] = (20, 10)) -> None:
    ok, data = cv2.imencode(path.suffix, np.full((size_wh[1], size_wh[0], 3), value, np.uint8))
    assert ok
    path.write_bytes(data.tobytes())


def test_image_folder_is_sorted_and_keeps_names(tmp_path: Path):
    for name, value in [("b.png", 100), ("a.jpg", 50), ("C.PNG", 200), ("d.webp", 20)]:
        _write_image(tmp_path / name, value)
    (tmp_path / "notes.txt").write_text("ignored")
    (tmp_path / "sub").mkdir()
    _write_image(tmp_path / "sub" / "e.png", 0)  # not recursive
    with open_source(str(tmp_path)) as source:
        assert isinstance(source, ImageSource)
        frames = list(source)
    assert [f.name for f in frames] == ["C.PNG", "a.jpg", "b.png", "d.webp"]
    assert [f.index for f in frames] == [0, 1, 2, 3]
    assert [round(float(f.bgr.mean()), -1) for f in frames] == [200, 50, 100, 20]
    info = source.info
    assert (info.kind, info.fps, info.frame_count, info.size_wh) == ("images", 1.0, 4, (20, 10))


def test_single_image_and_real_photos(tmp_path: Path, shared_data: Path):
    photos = sorted((shared_data / "masked_real").glob("*.png"))
    with open_source(str(photos[0])) as source:
        (frame,) = list(source)
    assert frame.name == photos[0].name and source.info.frame_count == 1
    assert frame.bgr.shape[2] == 3 and frame.timings_ms["decode"] > 0
    folder = ImageSource(shared_data / "masked_real")
    assert folder.info.frame_count == len(photos)
    first_three = [f.name for f, _ in zip(folder, range(3), strict=False)]
    assert first_three == [p.name for p in photos[:3]]


@pytest.mark.parametrize("extra", [None, "notes.txt"])
def test_folder_without_images_raises(tmp_path: Path, extra: str | None):
    if extra:
        (tmp_path / extra).write_text("no pictures here")
    with pytest.raises(SourceError, match="holds no images"):
        open_source(str(tmp_path))


def test_live_source_drops_oldest_when_consumer_is_slow():
    produced = iter(range(20))

    def read():
        time.sleep(0.002)
        value = next(produced, None)
        return None if value is None else np.full((4, 4, 3), value, np.uint8)

    info = StreamInfo((4, 4), 30.0, live=True, kind="camera")
    with LiveSource(read, info, queue_size=1) as source:
        delivered = []
        for frame in source:
            delivered.append(int(frame.bgr[0, 0, 0]))
            time.sleep(0.03)  # a consumer far slower than the capture
    assert source.dropped > 0
    assert len(delivered) + source.dropped == 20
    assert delivered == sorted(delivered) and delivered[-1] == 19  # the newest survives


def test_live_source_read_error_surfaces_from_iterator():
    def read():
        raise RuntimeError("usb unplugged")

    source = LiveSource(read, StreamInfo((4, 4), 30.0, live=True), name="cam")
    with source, pytest.raises(SourceError, match="cam failed: usb unplugged"):
        list(source)


class FakeCapture:
    """Stands in for cv2.VideoCapture: a few frames, then a failed read."""

    def __init__(self, opened: bool = True, n_frames: int = 5):
        self.opened, self.released = opened, False
        self.frames = [np.full((48, 64, 3), 10 * i, np.uint8) for i in range(n_frames)]

    def isOpened(self) -> bool:  # OpenCV's spelling
        return self.opened

    def read(self):
        if not self.frames:
            return False, None
        return True, self.frames.pop(0)

    def get(self, prop: int) -> float:
        return 15.0 if prop == cv2.CAP_PROP_FPS else 0.0

    def release(self) -> None:
        self.released = True


def test_camera_source_with_fake_capture():
    fake = FakeCapture()
    with CameraSource(0, live_queue=8, capture_factory=lambda index: fake) as camera:
        frames = list(camera)
    assert camera.info == StreamInfo((64, 48), 15.0, live=True, kind="camera")
    assert [int(f.bgr[0, 0, 0]) for f in frames] == [0, 10, 20, 30, 40]
    assert [f.index for f in frames] == [0, 1, 2, 3, 4] and fake.released


def test_camera_that_does_not_open_raises():
    fake = FakeCapture(opened=False)
    expected = "camera 3 could not be opened (is it connected and free?)"
    with pytest.raises(SourceError, match=re.escape(expected)):
        CameraSource(3, capture_factory=lambda index: fake)
    assert fake.released


def test_simulated_camera_paces_frames(tmp_path: Path):
    clip = write_clip(tmp_path / "clip.mp4", n_frames=10)
    start = time.perf_counter()
    with SimulatedCamera(clip, fps=20.0, live_queue=4) as camera:
        frames = list(camera)
    elapsed = time.perf_counter() - start
    assert camera.info.kind == "camera" and camera.info.live and camera.info.fps == 20.0
    assert len(frames) + camera.dropped == 10
    assert elapsed >= 9 / 20 * 0.9
    gaps = np.diff([f.t_capture for f in frames])
    assert np.median(gaps) == pytest.approx(0.05, abs=0.02)


def test_simulated_camera_loops(tmp_path: Path):
    clip = write_clip(tmp_path / "clip.mp4", n_frames=4)
    with SimulatedCamera(clip, fps=200.0, loop=True, live_queue=16) as camera:
        frames = [f for f, _ in zip(camera, range(10), strict=False)]
    assert len(frames) == 10 and camera.info.frame_count is None


def test_stream_source_gives_up_after_reconnect_attempts(tmp_path: Path):
    clip = write_clip(tmp_path / "clip.mkv", n_frames=6)
    stream = StreamSource(f"file:{clip}", live_queue=16, reconnect_attempts=2, backoff_s=0.01)
    clip.unlink()  # the "server" goes away: every reconnect fails
    with stream, pytest.raises(SourceError, match="2 reconnect attempts failed"):
        list(stream)
    assert stream.info.kind == "stream" and stream.info.live


def test_stream_that_cannot_open_raises(tmp_path: Path):
    with pytest.raises(SourceError, match="cannot open stream"):
        StreamSource(f"file:{tmp_path / 'absent.mkv'}", timeout_s=1.0)


def test_open_source_dispatch(tmp_path: Path):
    clip = write_clip(tmp_path / "clip.avi")
    shutil.copy(clip, tmp_path / "clip.AVI.bin")  # any other file is tried as a video
    _write_image(tmp_path / "photo.JPG", 1)
    assert isinstance(open_source(str(tmp_path / "photo.JPG")), ImageSource)
    assert isinstance(open_source(str(tmp_path / "clip.AVI.bin")), VideoFileSource)
    with pytest.raises(SourceError, match="live_queue must be at least 1"):
        open_source(0, live_queue=0)


def test_a_closed_camera_is_freed_at_once_not_by_the_garbage_collector(masked_clip) -> None:
    """A live source reopened on every reconnect must not hold its decoder until the cyclic
    collector runs: the soak measured 2-3 MB kept per reopening."""
    import gc
    import itertools
    import weakref

    from realtime.sources import SimulatedCamera

    gc.collect()
    gc.disable()
    try:
        camera = SimulatedCamera(masked_clip, fps=500, loop=True)
        with camera:
            assert len(list(itertools.islice(camera, 5))) == 5
        alive = weakref.ref(camera)
        del camera
        assert alive() is None  # freed by reference counting alone
    finally:
        gc.enable()
