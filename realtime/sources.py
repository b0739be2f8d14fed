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
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import av
import cv2
import numpy as np

from realtime.types import Closing, Frame, SourceError, StreamInfo

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp"})
NETWORK_SCHEMES = ("rtsp://", "rtmp://", "http://", "https://")
_DEFAULT_FPS = 30.0
_END = object()  # the producer thread's "no more frames" marker


@runtime_checkable
class Source(Protocol):
    """Anything the loop can read frames from."""

    info: StreamInfo

    def __iter__(self) -> Iterator[Frame]: ...

    def close(self) -> None: ...

    def __enter__(self) -> Source: ...

    def __exit__(self, *exc_info: object) -> None: ...


def open_source(spec: str | int, *, live_queue: int = 1, reconnect_attempts: int = 5) -> Source:
    """Opens a camera index, a network URL, an image file or folder, or a video file."""
    if live_queue < 1:
        raise SourceError(f"live_queue must be at least 1, got {live_queue}")
    if isinstance(spec, int) or spec.strip().isdigit():
        return CameraSource(int(spec), live_queue=live_queue)
    if spec.lower().startswith(NETWORK_SCHEMES):
        return StreamSource(spec, live_queue=live_queue, reconnect_attempts=reconnect_attempts)
    path = Path(spec)
    if not path.exists():
        raise SourceError(f"input not found: {spec}")
    if path.is_dir() or path.suffix.lower() in IMAGE_EXTENSIONS:
        return ImageSource(path)
    return VideoFileSource(path)


class _ThreadedSource(Closing):
    """A producer thread that fills a bounded queue; subclasses say how frames are made.

    With ``drop_oldest`` a full queue loses its oldest frame (live capture must never wait
    for a slow consumer); without it the producer waits, so files keep every frame.
    """

    def __init__(self, info: StreamInfo, *, queue_size: int, drop_oldest: bool, name: str):
        self.info = info
        self.dropped = 0
        """Frames thrown away because the consumer was slower than the source."""
        self._name = name
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
        self._drop_oldest = drop_oldest
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._released = False
        self._release_lock = threading.Lock()

    def _produce(self) -> Iterator[Frame]:
        raise NotImplementedError

    def _release(self) -> None:
        """Frees the underlying reader; called exactly once, from whichever thread is last."""

    def __iter__(self) -> Iterator[Frame]:
        if self._thread is not None:
            raise SourceError(f"{self._name} can be read only once; open it again")
        self._thread = threading.Thread(target=self._run, name=f"source {self._name}", daemon=True)
        self._thread.start()
        return self._consume()

    def _consume(self) -> Iterator[Frame]:
        assert self._thread is not None
        while True:
            try:
                item = self._queue.get(timeout=0.5)
            except queue.Empty:
                if self._thread.is_alive():
                    continue
                return
            if item is _END:
                return
            if isinstance(item, SourceError):
                raise item
            yield item

    def _run(self) -> None:
        try:
            for frame in self._produce():
                if self._stop.is_set():
                    return
                self._put(frame)
            self._put(_END, may_drop=False)
        except SourceError as exc:
            self._put(exc, may_drop=False)
        # The thread must hand every failure to the consumer instead of dying with a
        # traceback nobody sees; readers (OpenCV, FFmpeg, user callables) raise anything.
        except Exception as exc:
            error = SourceError(f"{self._name} failed: {exc}")
            error.__cause__ = exc
            self._put(error, may_drop=False)
        finally:
            self._release_once()

    def _put(self, item: object, *, may_drop: bool = True) -> None:
        # The end marker and errors wait for room: dropping the last frame for them would
        # lose the newest picture, the one a live consumer wants.
        while not self._stop.is_set():
            if not (self._drop_oldest and may_drop):
                try:
                    self._queue.put(item, timeout=0.1)
                    return
                except queue.Full:
                    continue
            try:
                self._queue.put_nowait(item)
                return
            except queue.Full:
                try:
                    self._queue.get_nowait()
                    self.dropped += 1
                except queue.Empty:
                    pass  # the consumer took it meanwhile; there is room now

    def _release_once(self) -> None:
        with self._release_lock:
            if self._released:
                return
            self._released = True
        self._release()

    def close(self) -> None:
        """Stops the producer and frees the reader; safe to call more than once."""
        self._stop.set()
        if self._thread is not None and self._thread.is_alive():
            # A reader blocked in I/O (a stalled stream) releases itself when it returns.
            self._thread.join(timeout=5.0)
        if self._thread is None or not self._thread.is_alive():
            self._release_once()


def _as_bgr(image: np.ndarray) -> np.ndarray:
    """Any 8-bit grey, BGR or BGRA picture as contiguous H x W x 3 BGR."""
    if image.dtype != np.uint8:
        raise SourceError(f"expected 8-bit pixels, got {image.dtype}")
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if image.ndim != 3 or image.shape[2] != 3:
        raise SourceError(f"expected an H x W x 3 picture, got shape {image.shape}")
    return np.ascontiguousarray(image)


def _video_fps(stream: av.video.stream.VideoStream) -> float:
    rate = stream.average_rate or stream.guessed_rate
    # Containers with a millisecond clock (mkv, flv) sometimes report 1000 fps.
    if rate is None or not 0 < float(rate) <= 240:
        return _DEFAULT_FPS
    return float(rate)


def _frame_count(container: av.container.InputContainer, fps: float) -> int | None:
    stream = container.streams.video[0]
    if stream.frames > 0:
        return int(stream.frames)
    if stream.duration is not None and stream.time_base is not None:
        return round(float(stream.duration * stream.time_base) * fps) or None
    if container.duration is not None:
        return round(container.duration / av.time_base * fps) or None
    return None


class VideoFileSource(_ThreadedSource):
    """A video file (mp4, mkv, avi, mov, webm, GIF...) decoded by PyAV on its own thread.

    Opening decodes the first frame, so unreadable and empty files fail here, not later.
    """

    def __init__(self, path: str | Path, *, queue_size: int = 8):
        self.path = Path(path)
        self._container = _open_video(self.path)
        try:
            stream = self._container.streams.video[0]
            stream.thread_type = "AUTO"  # frame and slice threads: several times faster
            self._decoded = self._container.decode(stream)
            self._first = self._decode_next()
            if self._first is None:
                raise SourceError(f"{self.path} contains no video frames")
            fps = _video_fps(stream)
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

    def _decode_next(self) -> tuple[np.ndarray, float] | None:
        """The next picture as BGR and the milliseconds it took, or None at the end."""
        t0 = time.perf_counter()
        try:
            frame = next(self._decoded, None)
            if frame is None:
                return None
            frame_bgr = frame.to_ndarray(format="bgr24")
        except (av.FFmpegError, ValueError) as exc:
            raise SourceError(f"{self.path} could not be decoded: {exc}") from exc
        return np.ascontiguousarray(frame_bgr), (time.perf_counter() - t0) * 1000.0

    def _produce(self) -> Iterator[Frame]:
        decoded, self._first = self._first, None
        index = 0
        while decoded is not None:
            frame_bgr, decode_ms = decoded
            yield Frame(index, time.perf_counter(), frame_bgr, timings_ms={"decode": decode_ms})
            index += 1
            decoded = self._decode_next()

    def _release(self) -> None:
        self._container.close()


def _open_video(path: Path) -> av.container.InputContainer:
    try:
        container = av.open(str(path))
    except av.FFmpegError as exc:
        raise SourceError(f"{path} is not a video file or is corrupt ({exc.strerror})") from exc
    except OSError as exc:
        raise SourceError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if not container.streams.video:
        container.close()
        raise SourceError(f"{path} has no video stream")
    return container


class LiveSource(_ThreadedSource):
    """Any ``read() -> picture | None`` run on a capture thread, keeping only the newest frames.

    ``read`` returning None ends the source. ``timings_ms["decode"]`` is the time spent in
    ``read`` (for a camera that includes waiting for the next exposure), less ``paced_s``, the
    time a reader says it deliberately waited (a simulated camera's frame pacing).
    """

    def __init__(
        self,
        read: Callable[[], np.ndarray | None],
        info: StreamInfo,
        *,
        queue_size: int = 1,
        release: Callable[[], None] | None = None,
        name: str = "live source",
    ):
        if queue_size < 1:
            raise SourceError(f"a live queue needs room for at least 1 frame, got {queue_size}")
        super().__init__(info, queue_size=queue_size, drop_oldest=True, name=name)
        self._read = read
        self._release_reader = release
        self.paced_s = 0.0

    def _produce(self) -> Iterator[Frame]:
        index = 0
        while not self._stop.is_set():
            t0 = time.perf_counter()
            image = self._read()
            t_capture = time.perf_counter()
            if image is None:
                return
            timings_ms = {"decode": (t_capture - t0 - self.paced_s) * 1000.0}
            self.paced_s = 0.0
            yield Frame(index, t_capture, _as_bgr(image), timings_ms=timings_ms)
            index += 1

    def _release(self) -> None:
        if self._release_reader is not None:
            self._release_reader()


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
            fps=fps if 0 < fps <= 240 else _DEFAULT_FPS,
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


class StreamSource(LiveSource):
    """A network stream (RTSP, RTMP, HTTP) that reconnects with backoff when it drops."""

    def __init__(
        self,
        url: str,
        *,
        live_queue: int = 1,
        reconnect_attempts: int = 5,
        timeout_s: float = 10.0,
        backoff_s: float = 0.5,
    ):
        self.url = url
        self._attempts = reconnect_attempts
        self._timeout_s = timeout_s
        self._backoff_s = backoff_s
        self._container, self._decoded = self._connect()
        try:
            first = self._next_picture()
        except (av.FFmpegError, OSError) as exc:
            self._container.close()
            raise SourceError(f"stream {url} could not be decoded: {exc}") from exc
        if first is None:
            self._container.close()
            raise SourceError(f"stream {url} opened but delivered no picture")
        self._pending: np.ndarray | None = first
        fps = _video_fps(self._container.streams.video[0])
        info = StreamInfo((first.shape[1], first.shape[0]), fps, live=True, kind="stream")
        super().__init__(self._read_stream, info, queue_size=live_queue, name=f"stream {url}")

    def _connect(self) -> tuple[av.container.InputContainer, Iterator[av.VideoFrame]]:
        # TCP avoids the smeared frames of lost UDP packets; low_delay stops the decoder from
        # holding frames back. Not fflags=nobuffer: it throws away the packets read while
        # probing, and with them the first keyframe (a short stream then yields nothing).
        options = {"flags": "low_delay"}
        if self.url.lower().startswith("rtsp://"):
            options["rtsp_transport"] = "tcp"
        try:
            container = av.open(self.url, options=options, timeout=self._timeout_s)
        except (av.FFmpegError, OSError) as exc:
            raise SourceError(f"cannot open stream {self.url}: {exc}") from exc
        if not container.streams.video:
            container.close()
            raise SourceError(f"stream {self.url} has no video")
        return container, container.decode(video=0)

    def _next_picture(self) -> np.ndarray | None:
        frame = next(self._decoded, None)
        return None if frame is None else frame.to_ndarray(format="bgr24")

    def _read_stream(self) -> np.ndarray | None:
        if self._pending is not None:
            image, self._pending = self._pending, None
            return image
        while not self._stop.is_set():
            try:
                image = self._next_picture()
                reason = "it ended"
            except (av.FFmpegError, OSError) as exc:
                image, reason = None, str(exc)
            if image is not None:
                return image
            self._reconnect(reason)
        return None

    def _reconnect(self, reason: str) -> None:
        self._container.close()
        for attempt in range(self._attempts):
            if self._stop.wait(min(self._backoff_s * 2**attempt, 8.0)):
                return
            try:
                self._container, self._decoded = self._connect()
                log.warning("stream %s dropped (%s); reconnected", self.url, reason)
                return
            except SourceError as exc:
                log.warning("reconnect %d/%d failed: %s", attempt + 1, self._attempts, exc)
        raise SourceError(
            f"stream {self.url} dropped ({reason}) and {self._attempts} reconnect attempts failed"
        )

    def _release(self) -> None:
        self._container.close()


class ImageSource(Closing):
    """One image file, or every image directly inside a folder in sorted name order."""

    def __init__(self, path: str | Path):
        path = Path(path)
        if path.is_dir():
            self.paths = sorted(
                p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
            )
            if not self.paths:
                exts = ", ".join(sorted(e[1:] for e in IMAGE_EXTENSIONS))
                raise SourceError(f"folder {path} holds no images ({exts})")
        elif path.is_file():
            self.paths = [path]
        else:
            raise SourceError(f"input not found: {path}")
        first_bgr = _read_image(self.paths[0])
        self.info = StreamInfo(
            size_wh=(first_bgr.shape[1], first_bgr.shape[0]),
            fps=1.0,
            live=False,
            frame_count=len(self.paths),
            kind="images",
        )

    def __iter__(self) -> Iterator[Frame]:
        for index, path in enumerate(self.paths):
            t0 = time.perf_counter()
            image_bgr = _read_image(path)
            t_capture = time.perf_counter()
            timings_ms = {"decode": (t_capture - t0) * 1000.0}
            yield Frame(index, t_capture, image_bgr, name=path.name, timings_ms=timings_ms)

    def close(self) -> None:
        """Nothing stays open between images."""


def _read_image(path: Path) -> np.ndarray:
    # imdecode on bytes instead of imread: imread cannot open non-ASCII paths on Windows.
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise SourceError(f"cannot read image {path}: {exc.strerror or exc}") from exc
    image_bgr = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image_bgr is None:
        raise SourceError(f"image {path} could not be decoded (corrupt or not an image)")
    return np.ascontiguousarray(image_bgr)


class SimulatedCamera(LiveSource):
    """A video file played back in real time as if it were a camera (tests, benchmarks)."""

    def __init__(
        self,
        path: str | Path,
        fps: float = _DEFAULT_FPS,
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
        self._video.close()
