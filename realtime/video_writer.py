"""The video file sink: pictures encoded on their own thread, with the input's audio.

    from realtime.video_writer import VideoFileSink

    with VideoFileSink("out.mp4", source.info) as sink:
        for frame in source:
            sink.write(frame, out_bgr, None)   # closes on success, aborts on error

The file is written under a hidden ``.NAME.partial.EXT`` name beside the target and renamed
into place when complete (``realtime.image_io.partial_path``).
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

from realtime.image_io import PROVENANCE, ensure_folder, partial_path, remove_folders
from realtime.types import Frame, SinkContext, SinkError, StreamInfo

log = logging.getLogger(__name__)

VIDEO_EXTENSIONS = frozenset({".mp4", ".mkv", ".mov", ".avi", ".webm"})
# superfast costs half of veryfast's CPU (measured ~4.5 vs ~8.5 ms per 640x360 frame) for
# ~1.7x the bytes at the same crf: on two cores the encoder shares a core with decoding, so
# its CPU time is frame rate the nets don't get.
_H264 = ("libx264", {"preset": "superfast", "crf": "20"})
# WebM admits only VP8/VP9/AV1; VP9 in realtime mode is the fastest of those that looks good.
_VP9 = ("libvpx-vp9", {"deadline": "realtime", "cpu-used": "8", "crf": "32", "row-mt": "1"})
_STOP = object()  # tells the encoder thread that no more frames will come


class VideoFileSink(SinkContext):
    """H.264 (VP9 for .webm) at the input's frame rate and size, encoded on its own thread.

    The input's audio (``info.audio_path``) is copied without re-encoding, re-timed so that
    it stays in sync with the first picture. yuv420p needs even sizes: an odd width or
    height gains one column or row that repeats the last one.
    """

    def __init__(self, path: str | Path, info: StreamInfo, *, queue_size: int = 8):
        self.path = Path(path)
        self.info = info
        self.encode_ms: list[float] = []
        """Milliseconds the encoder thread spent on each frame."""
        if self.path.suffix.lower() not in VIDEO_EXTENSIONS:
            raise SinkError(f"cannot write video {self.path}: unknown extension")
        if not info.fps > 0:
            raise SinkError(f"cannot write video {self.path}: frame rate {info.fps} is not > 0")
        if info.audio_path and self.path.resolve() == Path(info.audio_path).resolve():
            raise SinkError(f"output {self.path} would overwrite the input")
        self._created = ensure_folder(self.path.parent, self.path)
        self._partial = partial_path(self.path)
        # Fractions keep NTSC rates exact (2997/100, 30000/1001) so average_rate round-trips.
        self._rate = Fraction(info.fps).limit_denominator(1001)
        width, height = info.size_wh
        self._size_wh = (width + width % 2, height + height % 2)
        try:
            self._container, self._video, self._audio = self._open()
        except BaseException:
            remove_folders(self._created)
            raise
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
        self._error: BaseException | None = None
        self._aborting = False
        self._state = "open"
        self._next_pts = 0
        self._t0: float | None = None
        self._thread = threading.Thread(target=self._run, name=f"encode {self.path}", daemon=True)
        self._thread.start()

    def _open(self) -> tuple[Any, Any, _AudioCopy | None]:
        try:
            self._partial.open("wb").close()  # fails now, not after minutes of processing
            options = (
                {"movflags": "+faststart"} if self.path.suffix.lower() in {".mp4", ".mov"} else {}
            )
            container = av.open(str(self._partial), "w", container_options=options)
        except (OSError, av.FFmpegError) as exc:
            self._partial.unlink(missing_ok=True)
            raise SinkError(f"cannot write output {self.path}: {exc}") from exc
        try:
            container.metadata["comment"] = PROVENANCE
            codec, codec_options = _VP9 if self.path.suffix.lower() == ".webm" else _H264
            video = container.add_stream(codec, rate=self._rate, options=codec_options)
            video.width, video.height = self._size_wh
            video.pix_fmt = "yuv420p"
            video.codec_context.time_base = 1 / self._rate
            audio = _AudioCopy.attach(self.info.audio_path, container)
        except BaseException:
            container.close()
            self._partial.unlink(missing_ok=True)
            raise
        return container, video, audio

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
        pts = self._next_pts
        if self.info.live:
            # Live sources drop frames; timing by capture keeps the video at real speed.
            self._t0 = frame.t_capture if self._t0 is None else self._t0
            pts = max(pts, round((frame.t_capture - self._t0) * self._rate))
        self._next_pts = pts + 1
        return pts

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
        video_frame = av.VideoFrame.from_ndarray(image_bgr, format="bgr24")
        video_frame.pts = pts
        self._container.mux(self._video.encode(video_frame))
        self.encode_ms.append((time.perf_counter() - t0) * 1000.0)
        if self._audio is not None:
            self._audio.mux_until(self._container, pts / self._rate)

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise SinkError(f"encoding {self.path} failed: {self._error}") from self._error

    def _stop_thread(self) -> None:
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join()

    def close(self) -> None:
        """Flushes the encoder, finishes the file and renames it into place."""
        if self._state != "open":
            return
        self._stop_thread()
        try:
            self._raise_if_failed()
            self._finish()
        except BaseException:
            self._discard()
            self._state = "failed"
            raise
        self._state = "closed"

    def _finish(self) -> None:
        if self._next_pts == 0:
            log.warning("no frames arrived; %s was not written", self.path)
            self._discard()
            return
        try:
            self._container.mux(self._video.encode(None))
            if self._audio is not None:
                self._audio.mux_until(self._container, self._next_pts / self._rate)
                self._audio.close()
            self._container.close()
            os.replace(self._partial, self.path)
        except (av.FFmpegError, OSError, ValueError) as exc:
            raise SinkError(f"cannot finish {self.path}: {exc}") from exc

    def abort(self) -> None:
        """Stops encoding and removes the partial file; a finished file is kept."""
        if self._state != "open":
            return
        self._aborting = True
        self._stop_thread()
        self._discard()
        self._state = "aborted"

    def _discard(self) -> None:
        try:
            if self._audio is not None:
                self._audio.close()
            self._container.close()
        except (av.FFmpegError, OSError) as exc:
            log.warning("while discarding %s: %s", self._partial, exc)
        self._partial.unlink(missing_ok=True)
        remove_folders(self._created)


class _AudioCopy:
    """The first audio stream of the input, copied packet by packet behind the video."""

    def __init__(self, input_container: Any, stream: Any):
        self._input = input_container
        in_audio = input_container.streams.audio[0]
        self._time_base = in_audio.time_base
        # Output pictures start at 0 where the input's first picture had its own start time;
        # shifting the audio by that keeps lips and voice together.
        video = input_container.streams.video[0] if input_container.streams.video else None
        start_s = video.start_time * video.time_base if video and video.start_time else 0
        self._shift = round(start_s / self._time_base)
        self._packets = input_container.demux(in_audio)
        self._pending: Any = None
        self.stream = stream

    @classmethod
    def attach(cls, audio_path: str | None, container: Any) -> _AudioCopy | None:
        """Adds the audio of ``audio_path`` to ``container``, or says why it cannot."""
        if audio_path is None:
            return None
        try:
            input_container = av.open(audio_path)
        except (av.FFmpegError, OSError) as exc:
            raise SinkError(f"cannot read the audio of {audio_path}: {exc}") from exc
        if not input_container.streams.audio:
            input_container.close()
            return None
        try:
            stream = container.add_stream_from_template(input_container.streams.audio[0])
        except ValueError as exc:  # the muxer refuses this codec (AAC in WebM)
            log.warning("audio not copied: %s", exc)
            input_container.close()
            return None
        return cls(input_container, stream)

    def mux_until(self, container: Any, end_s: Fraction) -> None:
        """Muxes the packets that start before ``end_s`` seconds of output time."""
        while True:
            packet, self._pending = self._pending or next(self._packets, None), None
            if packet is None:
                return
            if packet.pts is None or packet.dts is None:
                continue  # the demuxer's empty end-of-stream packet
            start_s = (packet.pts - self._shift) * self._time_base
            if start_s >= end_s:
                self._pending = packet
                return
            if start_s < 0:
                continue  # sound from before the first picture has nothing to go with
            packet.pts -= self._shift
            packet.dts -= self._shift
            packet.stream = self.stream
            container.mux(packet)

    def close(self) -> None:
        self._input.close()
