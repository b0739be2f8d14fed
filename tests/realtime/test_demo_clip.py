"""The built-in sample clip: frames, encoding and a mask that is really there.

pytest tests/realtime/test_demo_clip.py
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from realtime.demo_clip import demo_frames, frame_count, render_demo_clip
from realtime.tracking import FaceTracker
from realtime.types import SinkError


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return render_demo_clip(tmp_path_factory.mktemp("demo") / "demo.mp4", seconds=2.0)


@pytest.fixture(scope="module")
def clip_frames_bgr(clip: Path) -> list[np.ndarray]:
    with av.open(str(clip)) as container:
        return [frame.to_ndarray(format="bgr24") for frame in container.decode(video=0)]


def test_clip_format(clip: Path, clip_frames_bgr: list[np.ndarray]) -> None:
    with av.open(str(clip)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert stream.format.name == "yuv420p"
        assert stream.average_rate == 25
    assert len(clip_frames_bgr) == frame_count(2.0, 25.0) == 50
    assert all(frame.shape == (360, 640, 3) for frame in clip_frames_bgr)


def test_mask_is_drawn_on_the_tracked_face(clip_frames_bgr: list[np.ndarray]) -> None:
    with FaceTracker() as tracker:
        results = [tracker.update(frame_bgr) for frame_bgr in clip_frames_bgr]
    assert np.mean([any(face.age == 0 for face in faces) for faces in results]) >= 0.9
    assert {face.track_id for faces in results for face in faces} == {0}  # one steady face

    face = results[0][0]
    nose_xy, mouth_xy = face.keypoints_xy[2], face.keypoints_xy[3]
    side_px = float(face.box_xyxy[2] - face.box_xyxy[0])
    # From just below the nose tip to the chin, the middle of the face should be mask.
    x0, x1 = int(nose_xy[0] - 0.2 * side_px), int(nose_xy[0] + 0.2 * side_px)
    y0, y1 = int(nose_xy[1] + 0.05 * side_px), int(mouth_xy[1] + 0.25 * side_px)
    patch_bgr = clip_frames_bgr[0][y0:y1, x0:x1].reshape(-1, 3).astype(np.int32)
    blue, red = patch_bgr[:, 0], patch_bgr[:, 2]
    light_blue = (blue > red + 30) & (blue > 150)
    assert light_blue.mean() > 0.9


def test_frames_deterministic_and_moving() -> None:
    first = list(demo_frames(seconds=0.4, fps=25.0, size_wh=(320, 240)))
    again = list(demo_frames(seconds=0.4, fps=25.0, size_wh=(320, 240)))
    assert len(first) == 10 and first[0].shape == (240, 320, 3) and first[0].dtype == np.uint8
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    step = np.abs(first[1].astype(np.int16) - first[0]).mean()
    assert 0.5 < step < 20  # the camera moves, smoothly


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"seconds": 0.0}, "seconds must be in"),
        ({"fps": 0.0}, "fps must be in"),
        ({"size_wh": (641, 360)}, "size_wh must be even"),
        ({"size_wh": (8, 8)}, "size_wh must be even"),
    ],
)
def test_bad_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        next(demo_frames(**kwargs))


def test_unwritable_path(tmp_path: Path) -> None:
    with pytest.raises(SinkError, match=r"could not write .*demo\.mp4"):
        render_demo_clip(tmp_path / "missing" / "demo.mp4", seconds=0.2)


def test_a_clip_that_fails_midway_leaves_no_file(tmp_path: Path) -> None:
    from realtime.video_writer import write_clip

    def frames():
        yield np.zeros((64, 64, 3), np.uint8)
        raise RuntimeError("the frames ran out of something")

    with pytest.raises(RuntimeError, match="ran out"):
        write_clip(tmp_path / "clip.mp4", frames(), fps=25)
    assert list(tmp_path.iterdir()) == []  # neither the clip nor its temporary file
    with pytest.raises(SinkError, match="no frames"):
        write_clip(tmp_path / "clip.mp4", iter(()), fps=25)
    assert list(tmp_path.iterdir()) == []
