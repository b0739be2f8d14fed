"""The video file sink: pictures encoded on their own thread into files a crash cannot spoil;
and ``write_clip`` for short clips made whole in memory (the demo's sample, benchmark clips).

    from realtime.video_writer import VideoFileSink, write_clip

    with VideoFileSink("out.mp4", source.info) as sink:            # or segment_seconds=600:
        for frame in source:                                       # out_000.mp4, out_001.mp4...
            sink.write(frame, out_bgr, None)
    write_clip("sample.mp4", frames_bgr, fps=25)                   # whole, or not at all

How each file is written while recording (``out.recording.mp4``, playable after a SIGKILL or
a power loss) and finished on a clean stop: ``realtime.recording``. The sink adds the thread,
the timing of live frames, and the cutting of long recordings into segments.
"""

from __future__ import annotations

import logging
import os
import queue
import re
import threading
import time
from fractions import Fraction
from itertools import count
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from realtime.audio_track import AudioTrack
from realtime.image_io import ensure_folder, remove_folders
from realtime.recording import RecordingFile, describe, recording_path
from realtime.types import Frame, SinkContext, SinkError, StreamInfo

log = logging.getLogger(__name__)

VIDEO_EXTENSIONS = frozenset({".mp4", ".mkv", ".mov", ".avi", ".webm"})
_STOP = object()  # tells the encoder thread that no more frames will come


class VideoFileSink(SinkContext):
    """H.264 (VP9 for .webm) at the input's frame rate and size, encoded on its own thread.

    The input's audio (``info.audio_path``) is copied, re-timed so that it stays in sync with
    the first picture (re-encoded where the container cannot carry it: ``realtime.
    audio_track``). yuv420p needs even sizes: an odd width or height gains one column or row
    that repeats the last one.

    ``segment_seconds`` cuts the recording into files of that many seconds, each complete on
    its own and starting with a keyframe: ``out_000.mp4``, ``out_001.mp4``... (at least three
    digits). Cuts fall on multiples of it from the first picture; the sound is cut at the
    audio packet (about 20 ms) nearest before. Numbering continues after segments already in
    the folder, so a restarted recording never overwrites an earlier one.
    """

    def __init__(self, path: str | Path, info: StreamInfo, *,
                 segment_seconds: float | None = None, queue_size: int = 8):
        self.path = Path(path)
        self.info = info
        self.encode_ms: list[float] = []
        """Milliseconds the encoder thread spent on each frame."""
        self.written: list[Path] = []
        """The finished files, in order (one, or each segment)."""
        self._check(segment_seconds)
        self._created = ensure_folder(self.path.parent, self.path)
        # Fractions keep NTSC rates exact (2997/100, 30000/1001) so average_rate round-trips.
        self._rate = Fraction(info.fps).limit_denominator(1001)
        width, height = info.size_wh
        self._size_wh = (width + width % 2, height + height % 2)
        self._segment_pts = (Fraction(str(segment_seconds)) * self._rate  # 0.1 is 1/10
                             if segment_seconds is not None else None)
        if self._segment_pts is None:
            _keep_leftover(self.path)
        self._index = self._first_index()
        self._part_end: Fraction | None = None
        self._audio: AudioTrack | None = None
        self._part: RecordingFile | None = None
        self._publisher: threading.Thread | None = None  # set before _discard can run
        try:
            self._audio = AudioTrack.open(info.audio_path, self.path.suffix)
            self._part = self._new_part(0)
        except BaseException:
            self._discard()
            raise
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
        self._error: BaseException | None = None
        self._aborting = False
        self._state = "open"
        self._next_pts = 0
        self._t0: float | None = None
        self._thread = threading.Thread(target=self._run, name=f"encode {self.path}", daemon=True)
        self._thread.start()

    def _check(self, segment_seconds: float | None) -> None:
        if self.path.suffix.lower() not in VIDEO_EXTENSIONS:
            raise SinkError(f"cannot write video {self.path}: unknown extension")
        if not self.info.fps > 0:
            raise SinkError(f"cannot write video {self.path}: frame rate {self.info.fps} is "
                            "not > 0")
        if segment_seconds is not None and not segment_seconds > 0:
            raise SinkError(f"--segment-seconds must be > 0, got {segment_seconds:g}")
        if self.info.audio_path and Path(self.info.audio_path).resolve() in (
                self.path.resolve(), recording_path(self.path).resolve()):
            raise SinkError(f"output {self.path} would overwrite the input")

    def _first_index(self) -> int:
        """0, or one past the highest segment (finished or cut short) already there."""
        if self._segment_pts is None:
            return 0
        pattern = re.compile(rf"{re.escape(self.path.stem)}_(\d+)(\.recording)?"
                             rf"{re.escape(self.path.suffix)}")
        found = [int(m.group(1)) for p in self.path.parent.iterdir()
                 if (m := pattern.fullmatch(p.name))]
        if not found:
            return 0
        log.warning("%s: segments up to %s exist already; this recording starts at %s",
                    self.path, self._part_path(max(found)).name,
                    self._part_path(max(found) + 1).name)
        return max(found) + 1

    def _part_path(self, index: int) -> Path:
        if self._segment_pts is None:
            return self.path
        return self.path.with_name(f"{self.path.stem}_{index:03d}{self.path.suffix}")

    def _new_part(self, pts: int) -> RecordingFile:
        part = RecordingFile(self._part_path(self._index), rate=self._rate,
                             size_wh=self._size_wh, audio=self._audio, start_pts=pts)
        if self._segment_pts is not None:
            self._part_end = (pts // self._segment_pts + 1) * self._segment_pts
        return part

    def write(self, frame: Frame, out_bgr: np.ndarray, mask_full_hw: np.ndarray | None) -> None:
        """Queues one picture; blocks while the encoder is ``queue_size`` frames behind."""
        self._raise_if_failed()
        if self._state != "open":
            raise SinkError(f"cannot write to {self.path}: the sink is already {self._state}")
        width, height = self.info.size_wh
        if out_bgr.shape != (height, width, 3) or out_bgr.dtype != np.uint8:
            raise SinkError(
                f"frame {frame.index} is {out_bgr.shape} {out_bgr.dtype}, but {self.path} "
                f"takes {height}x{width}x3 uint8"
            )
        pad_w, pad_h = self._size_wh[0] - width, self._size_wh[1] - height
        # A private copy: the caller may reuse its buffer before the encoder gets to it.
        image_bgr = cv2.copyMakeBorder(out_bgr, 0, pad_h, 0, pad_w, cv2.BORDER_REPLICATE)
        self._queue.put((image_bgr, self._pts_for(frame)))

    def _pts_for(self, frame: Frame) -> int:
        """The frame's tick at the output rate: its time where it has one, but never on or
        before the previous frame's tick, so that no frame is dropped or shown twice."""
        pts = self._next_pts
        t_s = self._time_s(frame)
        if t_s is not None:
            pts = max(pts, round(t_s * self._rate))
        self._next_pts = pts + 1
        return pts

    def _time_s(self, frame: Frame) -> float | None:
        """Seconds since the first picture on the clock that times the output, or None: one
        frame after another at the nominal rate."""
        if self.info.live:
            # Live sources drop frames; timing by capture keeps the video at real speed.
            self._t0 = frame.t_capture if self._t0 is None else self._t0
            return frame.t_capture - self._t0
        # A file's own timestamps: a variable frame rate keeps its timing, and the sound
        # (copied with its timestamps) stays with the pictures.
        return frame.t_media_s

    def _run(self) -> None:
        while (item := self._queue.get()) is not _STOP:
            # After a failure keep draining, so a writer blocked on a full queue wakes up.
            if self._error is not None or self._aborting:
                continue
            try:
                self._encode(*item)
            # Whatever the encoder raises must reach the caller's thread as a SinkError.
            except Exception as exc:
                self._error = exc

    def _encode(self, image_bgr: np.ndarray, pts: int) -> None:
        t0 = time.perf_counter()
        if self._part_end is not None and pts >= self._part_end:
            self._next_segment(pts)
        assert self._part is not None
        self._part.encode(image_bgr, pts)
        self.encode_ms.append((time.perf_counter() - t0) * 1000.0)

    def _next_segment(self, pts: int) -> None:
        """Ends the current file at ``pts`` and starts the next; the new file's encoder
        starts with a keyframe. The finished one is remuxed while recording goes on."""
        assert self._part is not None
        self._part.end(pts)
        finished, self._part = self._part, None
        self._join_publisher()
        self._publisher = threading.Thread(target=self._publish, args=(finished,),
                                           name=f"finish {finished.path}", daemon=True)
        self._publisher.start()
        self._index += 1
        self._part = self._new_part(pts)

    def _publish(self, part: RecordingFile) -> None:
        try:
            part.publish()
            self.written.append(part.path)
        except Exception as exc:  # raised in the caller's thread by the next write or close
            self._error = self._error or exc

    def _join_publisher(self) -> None:
        if self._publisher is not None:
            self._publisher.join()
            self._publisher = None

    def _raise_if_failed(self) -> None:
        error = self._error
        if error is None:
            return
        if isinstance(error, SinkError):
            raise SinkError(str(error)) from error
        if isinstance(error, OSError):  # the disk is full, or gone
            raise SinkError(f"cannot write {self.path}: {describe(error)}; the unfinished "
                            "file is removed") from error
        raise SinkError(f"encoding {self.path} failed: {describe(error)}") from error

    def _stop_thread(self) -> None:
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join()

    def close(self) -> None:
        """Flushes the encoder, finishes the file and puts it in place."""
        if self._state != "open":
            return
        self._stop_thread()
        try:
            self._raise_if_failed()
            self._finish()
            self._raise_if_failed()  # the previous segment's remux may have failed
        except BaseException:
            self._discard()
            self._state = "failed"
            raise
        self._state = "closed"

    def _finish(self) -> None:
        assert self._part is not None
        if self._part.frames == 0:
            if not self.encode_ms:
                log.warning("no frames arrived; %s was not written", self.path)
            self._discard()
            return
        try:
            self._part.end(self._next_pts)
        except (OSError, ValueError) as exc:  # av.FFmpegError is an OSError or a ValueError
            raise SinkError(f"cannot finish {self._part.path}: {describe(exc)}") from exc
        last, self._part = self._part, None
        self._join_publisher()
        last.publish()
        self.written.append(last.path)
        if self._audio is not None:
            self._audio.close()
            self._audio = None

    def abort(self) -> None:
        """Stops encoding and removes the unfinished file; finished files (segments) stay."""
        if self._state != "open":
            return
        self._aborting = True
        self._stop_thread()
        self._discard()
        self._state = "aborted"

    def _discard(self) -> None:
        if self._part is not None:
            self._part.discard()
            self._part = None
        self._join_publisher()  # a finished segment being remuxed: let it finish
        if self._audio is not None:
            self._audio.close()
            self._audio = None
        if not self.written:
            remove_folders(self._created)


def _keep_leftover(path: Path) -> None:
    """Moves a recording that a killed run left for ``path`` aside, so it is not overwritten."""
    left = recording_path(path)
    if not left.exists():
        return
    for n in count(1):
        kept = path.with_name(f"{path.stem}.recovered{'' if n == 1 else f'-{n}'}{path.suffix}")
        if not kept.exists():
            break
    os.replace(left, kept)
    log.warning("%s was left by a run that was cut short; it is kept as %s", left, kept.name)


def write_clip(path: str | Path, frames_bgr, *, fps: float, crf: int = 18) -> Path:
    """Encodes BGR frames (an iterable of H x W x 3 uint8 of one size) as H.264 yuv420p at
    ``fps`` into ``path``, through a hidden temporary file renamed at the end, so ``path`` is
    whole or absent; returns ``path``. Raises SinkError when it cannot be written."""
    import av

    path = Path(path)
    tmp = path.with_name(f".{path.stem}.partial{path.suffix}")
    try:
        with av.open(str(tmp), mode="w") as container:
            stream = None
            for frame_bgr in frames_bgr:
                if stream is None:
                    stream = container.add_stream("libx264",
                                                  rate=Fraction(fps).limit_denominator(1001))
                    stream.height, stream.width = frame_bgr.shape[:2]
                    stream.pix_fmt = "yuv420p"
                    stream.options = {"crf": str(crf), "preset": "veryfast"}
                container.mux(stream.encode(av.VideoFrame.from_ndarray(frame_bgr,
                                                                       format="bgr24")))
            if stream is None:
                raise SinkError(f"no frames to write to {path}")
            container.mux(stream.encode(None))  # flush the frames the encoder holds back
        tmp.replace(path)
    except (av.FFmpegError, OSError) as error:
        raise SinkError(f"could not write {path}: {describe(error)}") from error
    finally:
        tmp.unlink(missing_ok=True)
    return path
