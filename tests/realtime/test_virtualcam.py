"""--virtual-camera: the sink against a stand-in pyvirtualcam, and on a real v4l2loopback device
where one exists."""

from __future__ import annotations

import enum
import importlib.util
import sys
import time
import types
from pathlib import Path

import numpy as np
import pytest

from realtime.cli import main
from realtime.types import Frame, SinkError, StreamInfo
from realtime.virtualcam import VirtualCameraSink

FILE = StreamInfo(size_wh=(32, 24), fps=25.0, live=False)
LIVE = StreamInfo(size_wh=(32, 24), fps=30.0, live=True, kind="camera")


class FakeCamera:
    """Records what pyvirtualcam.Camera would have been given."""

    opened: list[FakeCamera] = []  # noqa: RUF012 - a record shared by the test, on purpose
    refuse: str | None = None

    def __init__(self, width: int, height: int, fps: float, *, fmt, device=None) -> None:
        if FakeCamera.refuse:
            raise RuntimeError(FakeCamera.refuse)
        self.width, self.height, self.fps, self.fmt = width, height, fps, fmt
        self.device = device or "/dev/video7"
        self.backend = "fake"
        self.frames: list[np.ndarray] = []
        self.sleeps = 0
        self.closed = False
        FakeCamera.opened.append(self)

    def send(self, frame: np.ndarray) -> None:
        assert not self.closed
        self.frames.append(frame.copy())

    def sleep_until_next_frame(self) -> None:
        self.sleeps += 1

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def fake_pyvirtualcam(monkeypatch: pytest.MonkeyPatch) -> type[FakeCamera]:
    module = types.ModuleType("pyvirtualcam")
    module.Camera = FakeCamera
    module.PixelFormat = enum.Enum("PixelFormat", ["RGB", "BGR"])
    monkeypatch.setitem(sys.modules, "pyvirtualcam", module)
    monkeypatch.setattr(FakeCamera, "opened", [])
    monkeypatch.setattr(FakeCamera, "refuse", None)
    return FakeCamera


def _frame(index: int) -> tuple[Frame, np.ndarray]:
    out_bgr = np.zeros((24, 32, 3), np.uint8)
    out_bgr[..., 0], out_bgr[..., 2] = 200, index  # blue, and red counting the frames
    return Frame(index, time.perf_counter(), out_bgr), out_bgr


@pytest.mark.parametrize(("info", "paced"), [(FILE, True), (LIVE, False)], ids=["file", "live"])
def test_frames_go_out_as_rgb_at_the_input_size_and_rate(fake_pyvirtualcam, info: StreamInfo,
                                                          paced: bool) -> None:
    with VirtualCameraSink(info) as sink:
        for i in range(3):
            sink.write(*_frame(i), None)
    (camera,) = fake_pyvirtualcam.opened
    assert (camera.width, camera.height, camera.fps) == (32, 24, info.fps)
    assert camera.fmt.name == "RGB" and camera.device == "/dev/video7"
    assert [f[0, 0].tolist() for f in camera.frames] == [[i, 0, 200] for i in range(3)]
    assert camera.sleeps == (3 if paced else 0)  # live input already arrives in real time
    assert camera.closed


def test_named_device_and_abort(fake_pyvirtualcam) -> None:
    with pytest.raises(KeyError), VirtualCameraSink(FILE, device="/dev/video10") as sink:
        raise KeyError("a failure mid-run")
    (camera,) = fake_pyvirtualcam.opened
    assert camera.device == "/dev/video10" and camera.closed
    with pytest.raises(SinkError, match="already closed"):
        sink.write(*_frame(0), None)


@pytest.mark.parametrize("shape", [(24, 31, 3), (24, 32)])
def test_a_frame_of_another_size_is_refused(fake_pyvirtualcam, shape: tuple) -> None:
    with VirtualCameraSink(FILE) as sink, pytest.raises(SinkError, match="24x32x3 uint8"):
        sink.write(Frame(0, 0.0, np.zeros(shape, np.uint8)), np.zeros(shape, np.uint8), None)


def test_image_folders_are_refused(fake_pyvirtualcam) -> None:
    with pytest.raises(SinkError, match="needs a video, a camera or a stream"):
        VirtualCameraSink(StreamInfo(size_wh=(32, 24), fps=30.0, live=False, kind="images"))


def test_without_pyvirtualcam_it_says_how_to_get_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyvirtualcam", None)  # import fails as if not installed
    with pytest.raises(SinkError, match=r'pip install "realtime-unmask\[virtualcam\]"'):
        VirtualCameraSink(FILE)


def test_without_a_device_it_says_how_to_get_one(fake_pyvirtualcam) -> None:
    fake_pyvirtualcam.refuse = ("'v4l2loopback' backend: No v4l2 loopback device found at "
                                "/dev/video[0-99].\n'obs' backend: not available")
    with pytest.raises(SinkError) as caught:
        VirtualCameraSink(FILE)
    message = str(caught.value)
    assert "\n" not in message and "No v4l2 loopback device found" in message
    assert "sudo modprobe v4l2loopback devices=1" in message and "OBS" in message


def _run_cli(clip: Path, tmp_path: Path, *extra: str) -> int:
    return main(["--input", str(clip), "--max-frames", "4", "--random-weights", "--no-progress",
                 "--cache-dir", str(tmp_path / "cache"), *extra])


def test_cli_sends_the_tagged_output(fake_pyvirtualcam, masked_clip: Path,
                                     tmp_path: Path) -> None:
    assert _run_cli(masked_clip, tmp_path, "--virtual-camera", "/dev/video3") == 0
    (camera,) = fake_pyvirtualcam.opened
    assert (camera.width, camera.height, camera.fps, camera.device) == (256, 256, 10.0,
                                                                        "/dev/video3")
    assert len(camera.frames) == 4 and camera.sleeps == 4 and camera.closed
    assert _run_cli(masked_clip, tmp_path, "--virtual-camera", "--no-label") == 0
    untagged = fake_pyvirtualcam.opened[1].frames[0]
    ys, xs = np.nonzero((camera.frames[0] != untagged).any(axis=2))
    assert ys.size and ys.min() > 200 and xs.max() < 128  # only the tag, bottom left


def test_cli_without_a_device_exits_1_in_one_line(fake_pyvirtualcam, masked_clip: Path,
                                                  tmp_path: Path, capsys) -> None:
    fake_pyvirtualcam.refuse = "'v4l2loopback' backend: No v4l2 loopback device found"
    assert _run_cli(masked_clip, tmp_path, "--virtual-camera") == 1
    lines = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(lines) == 1 and "modprobe v4l2loopback" in lines[0]


def _loopback_device() -> str | None:
    for name_file in sorted(Path("/sys/class/video4linux").glob("video*/name")):
        if "loopback" in name_file.read_text().lower() or "dummy" in name_file.read_text().lower():
            return f"/dev/{name_file.parent.name}"
    return None


def test_real_v4l2loopback_device(hamilton_clip: Path, tmp_path: Path) -> None:
    if importlib.util.find_spec("pyvirtualcam") is None:
        pytest.skip('pyvirtualcam is not installed (pip install "realtime-unmask[virtualcam]")')
    device = _loopback_device()
    if device is None:
        pytest.skip("no v4l2loopback device (sudo modprobe v4l2loopback devices=1)")
    assert _run_cli(hamilton_clip, tmp_path, "--virtual-camera", device) == 0
