"""The capture thread every threaded source shares, and live capture on top of it.

    from realtime.capture import LiveSource

    source = LiveSource(read_picture, info, queue_size=1)   # read_picture() -> image | None
    for frame in source: ...

A producer thread fills a bounded queue; live sources drop the oldest frame when the consumer
is slow (latency stays bounded), files wait for room and never drop one.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import av
import cv2
import numpy as np

from realtime.types import Closing, Frame, SourceError, StreamInfo

DEFAULT_FPS = 30.0
_END = object()  # the producer thread's "no more frames" marker


class ThreadedSource(Closing):
    """A producer thread that fills a bounded queue; subclasses say how frames are made.

    With ``drop_oldest`` a full queue loses its oldest frame (live capture must never wait
    for a slow consumer); without it the producer waits, so files keep every frame.
    """

    def __init__(self, info: StreamInfo, *, queue_size: int, drop_oldest: bool, name: str):
        self.info = info
        self.dropped = 0
        """Frames thrown away because the consumer was slower than the source."""
        self.failed = 0
        """Always 0: a broken video or stream raises ``SourceError`` instead of skipping."""
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



def _closed() -> None:
    return None


def as_bgr(image: np.ndarray) -> np.ndarray:
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



def video_fps(stream: av.video.stream.VideoStream) -> float:
    rate = stream.average_rate or stream.guessed_rate
    # Containers with a millisecond clock (mkv, flv) sometimes report 1000 fps.
    if rate is None or not 0 < float(rate) <= 240:
        return DEFAULT_FPS
    return float(rate)



class LiveSource(ThreadedSource):
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
            yield Frame(index, t_capture, as_bgr(image), timings_ms=timings_ms)
            index += 1

    def _release(self) -> None:
        release, self._release_reader = self._release_reader, None
        if release is not None:
            release()
        # ``read`` and ``release`` are often bound methods of a subclass: dropping them breaks
        # the reference cycle, so a closed source (its decoder, its last frames) is freed at
        # once rather than whenever the cyclic garbage collector next runs; a live source
        # reopened on every reconnect otherwise held megabytes per reopening.
        self._read = _closed

