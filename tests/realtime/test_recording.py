"""Recording: a killed run leaves a playable file, segments, a full disk, awkward audio.

pytest tests/realtime/test_recording.py
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from engines import EngineConfig
from realtime import recording
from realtime.loop import RunConfig, run
from realtime.recording import RecordingFile
from realtime.sinks import PROVENANCE, VideoFileSink, open_sink
from realtime.sources import open_source
from realtime.types import Frame, SinkError, StreamInfo

REPO = Path(__file__).resolve().parents[2]

# A recorder that never closes: it writes the clip, prints how many pictures the encoder has
# muxed after each one, then waits to be killed with the file still open.
RECORDER = """
import sys, time
from realtime.sinks import VideoFileSink
from realtime.sources import open_source
with open_source(sys.argv[1]) as source:
    sink = VideoFileSink(sys.argv[2], source.info)
    for frame in source:
        sink.write(frame, frame.bgr, None)
        print(len(sink.encode_ms), flush=True)
print("all", flush=True)
time.sleep(600)
"""


def decodable_frames(path: Path) -> int:
    """Pictures a player gets out of ``path`` before its end (a cut file may end mid-packet)."""
    frames = 0
    with av.open(str(path)) as container:
        try:
            for _ in container.decode(video=0):
                frames += 1
        except (av.FFmpegError, EOFError):
            pass  # the torn last packet of a killed recording
    return frames


def top_level_boxes(path: Path) -> list[str]:
    data, boxes, offset = path.read_bytes(), [], 0
    while offset + 8 <= len(data):
        size = int.from_bytes(data[offset:offset + 4], "big")
        boxes.append(data[offset + 4:offset + 8].decode("latin-1"))
        if size == 1:
            size = int.from_bytes(data[offset + 8:offset + 16], "big")
        if size < 8:
            break
        offset += size
    return boxes


def synthetic_frames(n: int, size_wh: tuple[int, int] = (64, 48)) -> list[Frame]:
    rng = np.random.default_rng(0)
    return [Frame(i, float(i), rng.integers(0, 256, (size_wh[1], size_wh[0], 3), np.uint8))
            for i in range(n)]


@pytest.mark.parametrize("ext", ["mp4", "mov", "mkv", "webm", "avi"])
def test_sigkill_leaves_a_playable_recording(tmp_path: Path, hamilton_clip: Path, ext: str):
    out = tmp_path / f"out.{ext}"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", RECORDER, str(hamilton_clip), str(out)],
                            stdout=subprocess.PIPE, text=True, env=env)
    encoded = 0
    try:
        deadline = time.monotonic() + 120
        for line in proc.stdout:  # 90 pictures are 3 s of the 29.97 fps clip
            assert time.monotonic() < deadline, "the recorder is stuck"
            if line.strip() == "all" or int(line) >= 90:
                encoded = int(line) if line.strip() != "all" else 300
                break
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert not out.exists()
    left = tmp_path / f"out.recording.{ext}"
    frames = decodable_frames(left)
    # What a kill loses: the fragment or cluster under way (up to 1 s) and the queue (8).
    assert frames > 0
    assert encoded - frames <= 30 + 8 + 3, (encoded, frames)


def test_a_later_run_keeps_what_a_killed_one_left(tmp_path: Path):
    (tmp_path / "out.recording.mp4").write_bytes(b"footage of a killed run")
    (tmp_path / "out.recovered.mp4").write_bytes(b"an earlier rescue")
    with VideoFileSink(tmp_path / "out.mp4", StreamInfo((64, 48), 10.0, live=False)) as sink:
        for frame in synthetic_frames(3):
            sink.write(frame, frame.bgr, None)
    assert (tmp_path / "out.recovered-2.mp4").read_bytes() == b"footage of a killed run"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "out.mp4", "out.recovered-2.mp4", "out.recovered.mp4"]


@pytest.mark.parametrize("ext", ["mp4", "mov"])
def test_finished_mp4_is_regular_with_the_index_first(tmp_path: Path, ext: str):
    out = tmp_path / f"out.{ext}"
    with VideoFileSink(out, StreamInfo((64, 48), 10.0, live=False)) as sink:
        for frame in synthetic_frames(25):
            sink.write(frame, frame.bgr, None)
    boxes = top_level_boxes(out)
    assert "moof" not in boxes and boxes.index("moov") < boxes.index("mdat")
    with av.open(str(out)) as result:
        assert result.metadata["comment"] == PROVENANCE
        assert [float(f.time) for f in result.decode(video=0)][:2] == [0.0, 0.1]


def clip_of(seconds: float, source_clip: Path, out: Path) -> Path:
    """The first ``seconds`` of ``source_clip`` (pictures and sound), written by the sink."""
    with open_source(str(source_clip)) as source, VideoFileSink(out, source.info) as sink:
        for frame in source:
            if frame.index >= round(seconds * source.info.fps):
                break
            sink.write(frame, frame.bgr, None)
    return out


def durations_s(path: Path) -> tuple[float, float, bool]:
    """Video and audio seconds of ``path``, and whether its first picture is a keyframe."""
    with av.open(str(path)) as container:
        rate = container.streams.video[0].average_rate
        frames = list(container.decode(video=0))
        keyframe = frames[0].key_frame
    with av.open(str(path)) as container:
        packets = [p for p in container.demux(audio=0) if p.size]
    audio_s = float(sum(p.duration for p in packets) * packets[0].time_base) if packets else 0
    return len(frames) / float(rate), audio_s, keyframe


@pytest.mark.parametrize("ext", ["mp4", "mkv"])
def test_segments_are_complete_files_that_add_up(tmp_path: Path, hamilton_clip: Path,
                                                 ext: str):
    clip = clip_of(3.5, hamilton_clip, tmp_path / "clip.mp4")
    total_video_s, total_audio_s, _ = durations_s(clip)
    out = tmp_path / "out" / f"rec.{ext}"
    with open_source(str(clip)) as source, open_sink(str(out), source.info, save_masks=False,
                                                     segment_seconds=1) as sink:
        for frame in source:
            sink.write(frame, frame.bgr, None)
    names = [f"rec_{i:03d}.{ext}" for i in range(4)]  # 1 + 1 + 1 + 0.5 s
    assert sorted(p.name for p in out.parent.iterdir()) == names
    assert sink.written == [out.parent / name for name in names]
    parts = [durations_s(out.parent / name) for name in names]
    assert all(keyframe for _, _, keyframe in parts)
    assert [round(v * 29.97) for v, _, _ in parts] == [30, 30, 30, 15]
    assert sum(v for v, _, _ in parts) == pytest.approx(total_video_s, abs=1e-6)
    for video_s, audio_s, _ in parts:  # cut at the audio packet nearest the picture
        assert audio_s == pytest.approx(video_s, abs=0.05)
    assert sum(a for _, a, _ in parts) == pytest.approx(total_audio_s, abs=0.05)


def test_segments_continue_numbering_after_earlier_ones(tmp_path: Path):
    for name in ("cam_000.mkv", "cam_001.recording.mkv", "cam_7.mkv", "other_009.mkv"):
        (tmp_path / name).write_bytes(b"earlier")
    info = StreamInfo((64, 48), 10.0, live=True, kind="camera")
    with VideoFileSink(tmp_path / "cam.mkv", info, segment_seconds=0.5) as sink:
        for frame, t in zip(synthetic_frames(4), [0.0, 0.1, 0.6, 2.3], strict=True):
            frame.t_capture = t  # a gap of 1.7 s: one new file, not three empty ones
            sink.write(frame, frame.bgr, None)
    assert [p.name for p in sink.written] == ["cam_008.mkv", "cam_009.mkv", "cam_010.mkv"]
    assert [decodable_frames(p) for p in sink.written] == [2, 1, 1]
    assert (tmp_path / "cam_000.mkv").read_bytes() == b"earlier"


def test_segments_shorter_than_a_frame_give_one_file_a_frame(tmp_path: Path):
    with VideoFileSink(tmp_path / "t.mkv", StreamInfo((64, 48), 10.0, live=False),
                       segment_seconds=1e-4) as sink:
        for frame in synthetic_frames(3):
            sink.write(frame, frame.bgr, None)
    assert [decodable_frames(p) for p in sink.written] == [1, 1, 1]


@pytest.mark.parametrize("seconds", [0, -1.5])
def test_segment_seconds_must_be_positive(tmp_path: Path, seconds: float):
    with pytest.raises(SinkError, match=f"--segment-seconds must be > 0, got {seconds}"):
        VideoFileSink(tmp_path / "out.mp4", StreamInfo((64, 48), 10.0, live=False),
                      segment_seconds=seconds)
    with pytest.raises(ValueError, match=f"--segment-seconds must be > 0, got {seconds}"):
        RunConfig(source="clip.mp4", output="out.mp4", segment_seconds=seconds)
    assert list(tmp_path.iterdir()) == []


def full_disk_after(frames: int, monkeypatch) -> None:
    encode = RecordingFile.encode

    def encode_until_full(self, image_bgr, pts):
        if pts >= frames:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        encode(self, image_bgr, pts)

    monkeypatch.setattr(RecordingFile, "encode", encode_until_full)


@pytest.mark.parametrize(("segment_seconds", "kept"), [(None, []), (1.0, ["out_000.mkv"])])
def test_a_full_disk_is_one_clear_error_and_leaves_no_half_file(
        tmp_path: Path, monkeypatch, segment_seconds, kept):
    full_disk_after(15, monkeypatch)
    out = tmp_path / "out.mkv"
    with pytest.raises(SinkError) as caught:  # on a later write, or else on close
        with VideoFileSink(out, StreamInfo((64, 48), 10.0, live=False),
                           segment_seconds=segment_seconds) as sink:
            for frame in synthetic_frames(40):
                sink.write(frame, frame.bgr, None)
                time.sleep(0.002)
    message = str(caught.value)
    assert message == (f"cannot write {out}: the disk is full (No space left on device); "
                       "the unfinished file is removed")
    assert sorted(p.name for p in tmp_path.iterdir()) == kept  # finished segments stay


def test_a_full_disk_while_finishing_keeps_the_complete_recording(tmp_path: Path, monkeypatch):
    def no_space(source, target):
        target.write_bytes(b"half")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(recording, "_remux_faststart", no_space)
    sink = VideoFileSink(tmp_path / "out.mp4", StreamInfo((64, 48), 10.0, live=False))
    for frame in synthetic_frames(12):
        sink.write(frame, frame.bgr, None)
    with pytest.raises(SinkError, match=r"cannot finish \S+out.mp4: the disk is full .*; the "
                                        r"recording is kept, playable, as \S+out.recording.mp4"):
        sink.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.recording.mp4"]
    assert decodable_frames(tmp_path / "out.recording.mp4") == 12


def write_pcm_mkv(path: Path, seconds: float = 2.0) -> Path:
    """An H.264 + PCM Matroska file, as cameras and screen recorders write them."""
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=10)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        audio = container.add_stream("pcm_s16le", rate=48000)
        audio.layout = "stereo"
        for i in range(round(seconds * 10)):
            frame = av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), format="bgr24")
            frame.pts, frame.time_base = i, Fraction(1, 10)
            container.mux(video.encode(frame))
        tone = (np.sin(np.arange(round(seconds * 48000)) / 10) * 8000).astype(np.int16)
        for start in range(0, tone.size, 960):
            chunk = np.repeat(tone[start:start + 960], 2)[None]  # interleaved stereo
            sound = av.AudioFrame.from_ndarray(chunk, format="s16", layout="stereo")
            sound.sample_rate, sound.pts = 48000, start
            container.mux(audio.encode(sound))
        container.mux(video.encode(None))
        container.mux(audio.encode(None))
    return path


@pytest.mark.parametrize(("ext", "codec"), [("mp4", "aac"), ("mov", "pcm_s16le"),
                                            ("mkv", "pcm_s16le"), ("webm", "opus")])
def test_pcm_audio_is_copied_where_it_can_go_and_re_encoded_elsewhere(
        tmp_path: Path, ext: str, codec: str, caplog):
    clip = write_pcm_mkv(tmp_path / "camera.mkv")
    out = tmp_path / f"out.{ext}"
    with open_source(str(clip)) as source, VideoFileSink(out, source.info) as sink:
        for frame in source:
            sink.write(frame, frame.bgr, None)
    video_s, audio_s, _ = durations_s(out)
    assert video_s == pytest.approx(2.0) and audio_s == pytest.approx(2.0, abs=0.05)
    with av.open(str(out)) as result:
        assert result.streams.audio[0].codec_context.name == codec
    re_encoded = [r.getMessage() for r in caplog.records if "re-encoded" in r.getMessage()]
    assert len(re_encoded) == (codec != "pcm_s16le")


def test_the_loop_writes_segments_and_says_so(tmp_path: Path, hamilton_clip: Path) -> None:
    clip = clip_of(2.5, hamilton_clip, tmp_path / "clip.mp4")
    lines: list[str] = []
    summary = run(RunConfig(source=str(clip), output=str(tmp_path / "seg.mp4"),
                            segment_seconds=1, progress=False,
                            engines=EngineConfig(cache_dir=tmp_path / "cache",
                                                 random_weights=True)), log=lines.append)
    names = ["seg_000.mp4", "seg_001.mp4", "seg_002.mp4"]
    assert summary["outputs"] == [str(tmp_path / n) for n in names]
    assert sum(decodable_frames(tmp_path / n) for n in names) == summary["frames"] == 75
    assert f"wrote 3 files, {tmp_path / names[0]} to {names[-1]}" in lines[-1]
