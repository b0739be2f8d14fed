"""Network streams (RTSP, RTMP, HTTP, HLS): live ones reconnect with back-off when they drop.

    from realtime.network import StreamSource

    with StreamSource("rtsp://camera.local/stream") as source:
        for frame in source: ...
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import av
import numpy as np

from realtime.capture import LiveSource, video_fps
from realtime.types import SourceError, StreamInfo

log = logging.getLogger(__name__)


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
        fps = video_fps(self._container.streams.video[0])
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

