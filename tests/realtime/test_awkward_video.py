"""Video files that must just work: a variable frame rate, 10-bit pixels.

pytest tests/realtime/test_awkward_video.py

Each clip is made here with PyAV, numbered frame by frame (``numbered``) and with a face in
it, and goes through the whole loop (real tracker, stand-in nets) into an MP4.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from numbered import draw_number, read_number
from standins import tracked_pipeline

from realtime.loop import RunConfig, run
from realtime.pipeline import Pipeline
from realtime.sources import VideoFileSource

SIZE_WH = (320, 240)
# A screen recording's or a phone's kind of timing: 25 fps, a picture held for a second and
# a bit, then 10 fps. Milliseconds.
VFR_MS = [40 * i for i in range(20)] + [1800] + [1800 + 100 * i for i in range(1, 21)]
PATCHES_BGR = {(20, 165): (40, 40, 200), (90, 165): (40, 180, 40), (160, 165): (200, 60, 40),
               (230, 165): (230, 230, 230)}
"""Top-left corner (x, y) of a 40 px square -> its colour: below the face, above the tag."""


@pytest.fixture(scope="module")
def pipeline() -> Pipeline:
    return tracked_pipeline()


def _picture(face_bgr: np.ndarray, number: int) -> np.ndarray:
    width, height = SIZE_WH
    image = np.full((height, width, 3), 120, np.uint8)
    x = 60 + 4 * number % 120
    image[40:152, x:x + 112] = cv2.resize(face_bgr, (112, 112))
    for (px, py), colour in PATCHES_BGR.items():
        image[py:py + 40, px:px + 40] = colour
    draw_number(image, number)
    return image


def _write(path: Path, face_bgr: np.ndarray, times_ms: list[int], *, codec: str = "libx264",
           pix_fmt: str = "yuv420p") -> Path:
    """A clip whose frame i is shown at ``times_ms[i]``, on a millisecond clock."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=25, options={"preset": "superfast", "bf": "0"}
                                      if codec == "libx264" else {"preset": "superfast"})
        stream.width, stream.height = SIZE_WH
        stream.pix_fmt = pix_fmt
        stream.codec_context.time_base = stream.time_base = Fraction(1, 1000)
        for number, t_ms in enumerate(times_ms):
            frame = av.VideoFrame.from_ndarray(_picture(face_bgr, number), format="bgr24")
            frame.pts, frame.time_base = t_ms, Fraction(1, 1000)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def _run(clip: Path, out: Path, pipeline: Pipeline) -> dict:
    pipeline.reset()
    config = RunConfig(source=str(clip), output=str(out), display=False, progress=False)
    return run(config, log=lambda _: None, pipeline=pipeline)


def _decoded(path: Path) -> list[tuple[int, float, np.ndarray]]:
    """(number, presentation time in s, BGR picture) of every frame in ``path``."""
    with av.open(str(path)) as container:
        return [(read_number(image := f.to_ndarray(format="bgr24")), float(f.time), image)
                for f in container.decode(video=0)]


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_a_variable_frame_rate_file_keeps_every_frame_at_its_own_time(
        suffix: str, tmp_path: Path, face_frame_bgr: np.ndarray, pipeline: Pipeline) -> None:
    clip = _write(tmp_path / f"vfr{suffix}", face_frame_bgr, VFR_MS)
    summary = _run(clip, tmp_path / "out.mp4", pipeline)
    assert summary["frames"] == len(VFR_MS)
    written = _decoded(tmp_path / "out.mp4")
    assert [n for n, _, _ in written] == list(range(len(VFR_MS)))  # none dropped or repeated
    times_s = np.array([t for _, t, _ in written])
    # Each within half of the shortest interval (40 ms) of its time in the input: the held
    # picture stays held, the 25 fps part is not slowed to the average rate, nor the 10 fps
    # part sped up to the fastest.
    np.testing.assert_allclose(times_s, np.array(VFR_MS) / 1000, atol=0.02)


def test_file_frames_carry_their_own_times(tmp_path: Path, face_frame_bgr: np.ndarray) -> None:
    clip = _write(tmp_path / "vfr.mkv", face_frame_bgr, [t + 500 for t in VFR_MS])
    with VideoFileSource(clip) as source:
        times_s = [frame.t_media_s for frame in source]
    # Seconds since the first picture: a clip that starts at 0.5 s still starts at 0.
    np.testing.assert_allclose(times_s, np.array(VFR_MS) / 1000, atol=1e-3)


@pytest.mark.parametrize("codec", ["libx264", "libx265"])
def test_ten_bit_video_is_decoded_processed_and_written_as_8_bit_h264(
        codec: str, tmp_path: Path, face_frame_bgr: np.ndarray, pipeline: Pipeline) -> None:
    times_ms = [40 * i for i in range(12)]
    clip = _write(tmp_path / "ten_bit.mp4", face_frame_bgr, times_ms, codec=codec,
                  pix_fmt="yuv420p10le")
    with av.open(str(clip)) as container:  # the clip really is 10-bit
        assert container.streams.video[0].codec_context.pix_fmt == "yuv420p10le"
    summary = _run(clip, tmp_path / "out.mp4", pipeline)
    assert summary["frames"] == len(times_ms) and summary["frames_with_faces"] > 0
    with av.open(str(tmp_path / "out.mp4")) as container:
        video = container.streams.video[0].codec_context
        assert (video.name, video.pix_fmt) == ("h264", "yuv420p")  # what every player opens
    written = _decoded(tmp_path / "out.mp4")
    assert [n for n, _, _ in written] == list(range(len(times_ms)))
    for _, _, image in written:  # colours survive: 10 bits read as 10 bits, not as garbage
        for (px, py), colour in PATCHES_BGR.items():
            middle = image[py + 10:py + 30, px + 10:px + 30].reshape(-1, 3).mean(axis=0)
            np.testing.assert_allclose(middle, colour, atol=12)
