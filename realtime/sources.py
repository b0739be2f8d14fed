"""Where frames come from: video files, cameras, network streams, image files and folders.

    from realtime.sources import open_source

    with open_source("clip.mp4") as source:       # or 0, "rtsp://...", "photos/", "a.jpg"
        print(source.info)                        # size, fps, frame count, live or not
        for frame in source:                      # Frame(index, t_capture, bgr, ...)
            ...

Files never drop a frame and keep their order; live sources (cameras, streams) hand over
only the newest frames and count the ones they drop, so latency stays bounded. Every
problem surfaces as a ``SourceError`` with one sentence, most of them already in
``open_source``, before any processing starts.

The capture thread lives in ``realtime.capture``, network streams in ``realtime.network``,
image files in ``realtime.image_io``; every source is importable from here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

# Re-exported: callers import every source from here.
from realtime.capture import DEFAULT_FPS, LiveSource, ThreadedSource, video_fps
from realtime.image_io import IMAGE_EXTENSIONS, ImageSource
from realtime.network import StreamSource, connect, is_finite
from realtime.types import Frame, Source, SourceError, StreamInfo

__all__ = [
    "IMAGE_EXTENSIONS", "NETWORK_SCHEMES", "CameraSource", "ImageSource", "LiveSource",
    "SimulatedCamera", "Source", "StreamSource", "VideoFileSource", "open_source",
]

NETWORK_SCHEMES = ("rtsp://", "rtmp://", "http://", "https://")
# Phones store portrait video sideways, with a display matrix saying how to turn it; the
# decoder hands over the stored picture, so it is turned here (degrees counterclockwise).
_UPRIGHT = {90: cv2.ROTATE_90_COUNTERCLOCKWISE, -90: cv2.ROTATE_90_CLOCKWISE,
            180: cv2.ROTATE_180, -180: cv2.ROTATE_180}
_NETWORK_TIMEOUT_S = 10.0  # to open, and for each read: a stalled server fails, not hangs


def open_source(
    spec: str | int,
    *,
    live_queue: int = 1,
    reconnect: bool | None = None,
    reconnect_attempts: int = 5,
) -> Source:
    """Opens a camera index, a network URL, an image file or folder, or a video file.

    ``reconnect``: None decides from the input (``network.is_finite``): a finite network
    resource is read to its end like a file, a live one reconnects when it drops; True treats
    every URL as live, False never reconnects.
    """
    if live_queue < 1:
        raise SourceError(f"live_queue must be at least 1, got {live_queue}")
    if isinstance(spec, int) or spec.strip().isdigit():
        return CameraSource(int(spec), live_queue=live_queue)
    if spec.lower().startswith(NETWORK_SCHEMES):
        return _open_network(spec, live_queue, reconnect, reconnect_attempts)
    path = Path(spec)
    if not path.exists():
        raise SourceError(f"input not found: {spec}")
    if path.is_dir() or path.suffix.lower() in IMAGE_EXTENSIONS:
        return ImageSource(path)
    return VideoFileSource(path)


def _open_network(url: str, live_queue: int, reconnect: bool | None, attempts: int) -> Source:
    container = connect(url, _NETWORK_TIMEOUT_S)
    if reconnect is None and is_finite(url, container):
        container.close()
        return VideoFileSource(url)
    return StreamSource(url, live_queue=live_queue, reconnect=reconnect is not False,
                        reconnect_attempts=attempts, container=container)


def _frame_count(container: av.container.InputContainer, fps: float) -> int | None:
    stream = container.streams.video[0]
    if stream.frames > 0:
        return int(stream.frames)
    if stream.duration is not None and stream.time_base is not None:
        return round(float(stream.duration * stream.time_base) * fps) or None
    if container.duration is not None:
        return round(container.duration / av.time_base * fps) or None
    return None


class VideoFileSource(ThreadedSource):
    """A video file (mp4, mkv, avi, mov, webm, GIF...) decoded by PyAV on its own thread.

    Opening decodes the first frame, so unreadable and empty files fail here, not later.
    Pictures come upright: a rotation in the display matrix (phone video) is applied, so a
    portrait clip stored as 1920x1080 gives 1080x1920 frames.
    ``path`` may also be the URL of a finite network resource (an HTTP file): it is read the
    same way, every frame in order, with a timeout on each read.
    """

    def __init__(self, path: str | Path, *, queue_size: int = 8):
        remote = isinstance(path, str) and path.lower().startswith(NETWORK_SCHEMES)
        self.path: Path | str = path if remote else Path(path)
        self._container = _open_video(self.path, _NETWORK_TIMEOUT_S if remote else None)
        try:
            stream = self._container.streams.video[0]
            stream.thread_type = "AUTO"  # frame and slice threads: several times faster
            self._decoded = self._container.decode(stream)
            self._first = self._decode_next()
            if self._first is None:
                raise SourceError(f"{self.path} contains no video frames")
            fps = _file_fps(stream)
            height, width = self._first[0].shape[:2]
            info = StreamInfo(
                size_wh=(width, height),
                fps=fps,
                live=False,
                frame_count=_frame_count(self._container, fps),
                audio_path=str(self.path) if self._container.streams.audio else None,
                kind="video",
            )
        except BaseException:
            self._container.close()
            raise
        super().__init__(info, queue_size=queue_size, drop_oldest=False, name=str(self.path))

    def _decode_next(self) -> tuple[np.ndarray, float, float | None] | None:
        """The next picture as BGR, the milliseconds it took and its presentation time in
        seconds (None where the file gives none), or None at the end. 10-bit and 4:4:4 video
        come as 8-bit BGR like any other: FFmpeg's scaler converts them."""
        t0 = time.perf_counter()
        try:
            frame = next(self._decoded, None)
            if frame is None:
                return None
            frame_bgr = frame.to_ndarray(format="bgr24")
            turn = _UPRIGHT.get(round(frame.rotation))
        except (av.FFmpegError, ValueError) as exc:
            raise SourceError(f"{self.path} could not be decoded: {exc}") from exc
        if turn is not None:
            frame_bgr = cv2.rotate(frame_bgr, turn)
        decode_ms = (time.perf_counter() - t0) * 1000.0
        return np.ascontiguousarray(frame_bgr), decode_ms, frame.time

    def _produce(self) -> Iterator[Frame]:
        decoded, self._first = self._first, None
        index, t_first_s = 0, None
        while decoded is not None:
            frame_bgr, decode_ms, time_s = decoded
            if t_first_s is None:
                t_first_s = time_s
            # Seconds since the first picture, as the sound is timed (``audio_track``).
            t_media_s = None if time_s is None or t_first_s is None else time_s - t_first_s
            yield Frame(index, time.perf_counter(), frame_bgr, timings_ms={"decode": decode_ms},
                        t_media_s=t_media_s)
            index += 1
            decoded = self._decode_next()

    def _release(self) -> None:
        self._container.close()


def _file_fps(stream: av.video.stream.VideoStream) -> float:
    """The rate a written copy keeps: FFmpeg's guess, the lowest rate on whose ticks all the
    timestamps it has seen fall (what its own tools write), else the average. The two agree
    for a constant frame rate; for a variable one the average (an MP4 that runs at 25 fps,
    then 10) cannot place the faster frames at their times."""
    guessed, average = stream.guessed_rate, stream.average_rate
    if guessed is not None and 0 < float(guessed) <= 240 and (
            average is None or float(guessed) >= float(average)):
        return float(guessed)
    return video_fps(stream)


def _open_video(path: Path | str, timeout_s: float | None) -> av.container.InputContainer:
    try:
        container = av.open(str(path), timeout=timeout_s)
    except av.FFmpegError as exc:
        raise SourceError(f"{path} is not a video file or is corrupt ({exc.strerror})") from exc
    except OSError as exc:
        raise SourceError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if not container.streams.video:
        container.close()
        raise SourceError(f"{path} has no video stream")
    return container


class CameraSource(LiveSource):
    """A local camera through OpenCV; ``capture_factory`` lets tests pass a fake capture."""

    def __init__(
        self,
        index: int,
        *,
        live_queue: int = 1,
        capture_factory: Callable[[int], Any] = cv2.VideoCapture,
    ):
        capture = capture_factory(index)
        if not capture.isOpened():
            capture.release()
            raise SourceError(f"camera {index} could not be opened (is it connected and free?)")
        ok, first = capture.read()
        if not ok or first is None:
            capture.release()
            raise SourceError(f"camera {index} opened but delivered no picture")
        self._capture = capture
        self._pending: np.ndarray | None = first  # the probe picture is the first frame
        fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
        info = StreamInfo(
            size_wh=(first.shape[1], first.shape[0]),
            fps=fps if 0 < fps <= 240 else DEFAULT_FPS,
            live=True,
            kind="camera",
        )
        super().__init__(
            self._read_camera,
            info,
            queue_size=live_queue,
            release=capture.release,
            name=f"camera {index}",
        )

    def _read_camera(self) -> np.ndarray | None:
        if self._pending is not None:
            image, self._pending = self._pending, None
            return image
        ok, image = self._capture.read()
        return image if ok else None



class SimulatedCamera(LiveSource):
    """A video file played back in real time as if it were a camera (tests, benchmarks)."""

    def __init__(
        self,
        path: str | Path,
        fps: float = DEFAULT_FPS,
        loop: bool = False,
        *,
        live_queue: int = 1,
    ):
        if not fps > 0:
            raise SourceError(f"a simulated camera needs fps > 0, got {fps}")
        self.path = Path(path)
        self._loop = loop
        self._period_s = 1.0 / fps
        self._due: float | None = None
        self._video = VideoFileSource(self.path)
        self._pictures = (f.bgr for f in self._video)
        video_info = self._video.info
        info = StreamInfo(
            size_wh=video_info.size_wh,
            fps=fps,
            live=True,
            frame_count=None if loop else video_info.frame_count,
            kind="camera",
        )
        name = f"simulated camera {self.path}"
        super().__init__(
            self._read_paced, info, queue_size=live_queue, release=self._stop_video, name=name
        )

    def _read_paced(self) -> np.ndarray | None:
        image = next(self._pictures, None)
        if image is None and self._loop:
            self._video.close()
            self._video = VideoFileSource(self.path)
            self._pictures = (f.bgr for f in self._video)
            image = next(self._pictures, None)
        if image is None:
            return None
        now = time.perf_counter()
        self._due = now if self._due is None else self._due
        if self._due > now:
            self._stop.wait(self._due - now)
            self.paced_s = time.perf_counter() - now
        # A real sensor does not catch up after a stall, so schedule from now when late.
        self._due = max(self._due + self._period_s, time.perf_counter())
        return image

    def _stop_video(self) -> None:
        self._pictures.close()  # the suspended generator holds the decoder's last frame
        self._video.close()
