"""One output video file, written so that a killed run still leaves a playable recording.

    part = RecordingFile(Path("out.mp4"), rate=Fraction(30), size_wh=(640, 360), audio=None)
    part.encode(image_bgr, pts=0)      # pts: frames since the start of the whole recording
    part.end(end_pts=1)                # flushes the encoders: the recording is complete
    part.publish()                     # -> out.mp4, a regular file
    # or, on an error: part.discard()  # nothing is left

While it is written, the file is ``out.recording.mp4`` beside the target, in a form that is
playable at every moment: fragmented MP4/MOV (one fragment a second), Matroska/WebM with
one-second clusters, AVI packet by packet; each piece goes to the operating system as soon
as it is complete, and the file is synced to the disk about once a second. So a run killed by
SIGKILL, the OOM killer or a power loss leaves ``out.recording.mp4``, playable up to about
its last second. A clean stop remuxes MP4/MOV, without re-encoding, into a regular file with
its index at the front (``+faststart``, what editors and browsers expect) and renames that
into place; the other containers are complete as written and are only renamed.
"""

from __future__ import annotations

import errno
import logging
import os
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from realtime.audio_track import AudioOut, AudioTrack
from realtime.image_io import PROVENANCE, partial_path
from realtime.types import SinkError

log = logging.getLogger(__name__)

# superfast costs half of veryfast's CPU (measured ~4.5 vs ~8.5 ms per 640x360 frame) for
# ~1.7x the bytes at the same crf: on two cores the encoder shares a core with decoding, so
# its CPU time is frame rate the nets don't get. No B-frames: a fragmented MP4 has no edit
# list to hide their reordering delay, so with them every picture would come 2 frames late
# against the sound (and on the real clip the file is no bigger without them).
_H264 = ("libx264", {"preset": "superfast", "crf": "20", "bf": "0"})
# WebM admits only VP8/VP9/AV1; VP9 in realtime mode is the fastest of those that looks good.
# No look-ahead: with libvpx's default 25 frames the first second of a killed recording held
# no complete cluster yet.
_VP9 = ("libvpx-vp9", {"deadline": "realtime", "cpu-used": "8", "crf": "32", "row-mt": "1",
                       "lag-in-frames": "0"})
_FRAGMENTED = {"movflags": "frag_keyframe+empty_moov+default_base_moof",
               "frag_duration": "1000000", "flush_packets": "1"}  # microseconds
_CLUSTERED = {"cluster_time_limit": "1000", "flush_packets": "1"}  # milliseconds
_RECORDING_OPTIONS = {".mp4": _FRAGMENTED, ".mov": _FRAGMENTED, ".mkv": _CLUSTERED,
                      ".webm": _CLUSTERED, ".avi": {"flush_packets": "1"}}
_REMUXED = frozenset({".mp4", ".mov"})
_SYNC_EVERY_S = 1.0


def recording_path(path: Path) -> Path:
    """Where ``path`` is written until it is finished: ``out.mp4`` -> ``out.recording.mp4``.

    Visible, not hidden: after a crash this is the file a user looks for, and the extension
    stays last so that players open it.
    """
    return path.with_name(f"{path.stem}.recording{path.suffix}")


def describe(exc: BaseException) -> str:
    """A short reason for a write error; a full disk says so in words."""
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return "the disk is full (No space left on device)"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc)


class RecordingFile:
    """One video file (a whole recording, or one segment of it) from its first frame on."""

    def __init__(self, path: Path, *, rate: Fraction, size_wh: tuple[int, int],
                 audio: AudioTrack | None, start_pts: int = 0):
        self.path = path
        self.recording = recording_path(path)
        self.start_pts = start_pts
        """The recording's frame number (pts) of this file's first picture."""
        self.frames = 0
        """Pictures encoded so far."""
        self._rate = rate
        self._sync = _DiskSync(self.recording)
        self._container, self._video, self._audio = self._open(size_wh, audio)

    def _open(self, size_wh: tuple[int, int],
              audio: AudioTrack | None) -> tuple[Any, Any, AudioOut | None]:
        suffix = self.path.suffix.lower()
        try:
            self.recording.open("wb").close()  # fails now, not after minutes of processing
            container = av.open(str(self.recording), "w",
                                container_options=_RECORDING_OPTIONS[suffix])
        except (OSError, av.FFmpegError) as exc:
            self.recording.unlink(missing_ok=True)
            raise SinkError(f"cannot write output {self.path}: {describe(exc)}") from exc
        try:
            container.metadata["comment"] = PROVENANCE
            codec, codec_options = _VP9 if suffix == ".webm" else _H264
            video = container.add_stream(codec, rate=self._rate, options=codec_options)
            video.width, video.height = size_wh
            video.pix_fmt = "yuv420p"
            video.codec_context.time_base = 1 / self._rate
            audio_out = audio.attach(container, self.start_pts / self._rate) if audio else None
        except BaseException:
            container.close()
            self.recording.unlink(missing_ok=True)
            raise
        return container, video, audio_out

    def encode(self, image_bgr: np.ndarray, pts: int) -> None:
        """Encodes one BGR picture shown at frame ``pts`` of the recording."""
        video_frame = av.VideoFrame.from_ndarray(image_bgr, format="bgr24")
        video_frame.pts = pts - self.start_pts
        self._container.mux(self._video.encode(video_frame))
        self.frames += 1
        if self._audio is not None:
            self._audio.mux_until(pts / self._rate)
        self._sync.maybe()

    def end(self, end_pts: int) -> None:
        """Flushes the encoders and closes the file, which then ends at frame ``end_pts``."""
        self._container.mux(self._video.encode(None))
        if self._audio is not None:
            self._audio.mux_until(end_pts / self._rate)
            self._audio.finish()
        self._container.close()
        self._sync.close(sync=True)

    def publish(self) -> None:
        """Puts the complete recording at ``path``: remuxed (MP4, MOV) or renamed."""
        if self.path.suffix.lower() not in _REMUXED:
            os.replace(self.recording, self.path)
            return
        partial = partial_path(self.path)
        try:
            _remux_faststart(self.recording, partial)
            os.replace(partial, self.path)
        except (av.FFmpegError, OSError) as exc:
            partial.unlink(missing_ok=True)
            raise SinkError(f"cannot finish {self.path}: {describe(exc)}; the recording is "
                            f"kept, playable, as {self.recording}") from exc
        self.recording.unlink()

    def discard(self) -> None:
        """Closes what is open and removes the unfinished file."""
        try:
            self._container.close()
        except (av.FFmpegError, OSError) as exc:
            log.warning("while discarding %s: %s", self.recording, exc)
        self._sync.close(sync=False)
        self.recording.unlink(missing_ok=True)


def _remux_faststart(source: Path, target: Path) -> None:
    """Copies every packet of ``source`` into a regular MP4/MOV ``target``, index first."""
    with av.open(str(source)) as inp:
        kept = [s for s in inp.streams if s.type in ("video", "audio")]
        with av.open(str(target), "w", container_options={"movflags": "+faststart"}) as out:
            out.metadata["comment"] = PROVENANCE
            streams = {s.index: out.add_stream_from_template(s) for s in kept}
            for packet in inp.demux(*kept):
                if packet.dts is None:
                    continue  # the demuxer's empty end-of-stream packet
                packet.stream = streams[packet.stream.index]
                out.mux(packet)
    _fsync(target)  # the data is on the disk before the name points at it


class _DiskSync:
    """Syncs a file FFmpeg is writing to the disk about once a second (power losses)."""

    def __init__(self, path: Path):
        self._path = path
        self._fd: int | None = None
        self._last_s = time.monotonic()
        self._enabled = True

    def maybe(self) -> None:
        if not self._enabled or time.monotonic() - self._last_s < _SYNC_EVERY_S:
            return
        self._last_s = time.monotonic()
        try:
            if self._fd is None:
                self._fd = os.open(self._path, os.O_RDONLY)
                _fsync(self._path.parent)  # the new name survives a power loss too
            os.fsync(self._fd)
        except OSError as exc:  # Windows cannot sync through a read-only descriptor
            log.debug("not syncing %s: %s", self._path, exc)
            self._enabled = False

    def close(self, *, sync: bool) -> None:
        if self._fd is None:
            return
        try:
            if sync and self._enabled:
                os.fsync(self._fd)
        except OSError as exc:
            log.debug("not syncing %s: %s", self._path, exc)
        finally:
            os.close(self._fd)
            self._fd = None


def _fsync(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:  # a folder cannot be opened on Windows
        log.debug("not syncing %s: %s", path, exc)
        return
    try:
        os.fsync(fd)
    except OSError as exc:
        log.debug("not syncing %s: %s", path, exc)
    finally:
        os.close(fd)
