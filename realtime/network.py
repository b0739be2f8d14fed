"""Network inputs (RTSP, RTMP, HTTP, HLS): finite ones end, live ones reconnect with back-off.

    from realtime.network import StreamSource

    with StreamSource("rtsp://camera.local/stream") as source:
        for frame in source: ...

``is_finite`` tells a resource that ends (an HTTP file, an HLS VOD playlist) from a live
stream, from what FFmpeg reports once the input is open; ``realtime.sources.open_source``
reads finite ones like a local file (every frame, in order) and live ones here.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import av
import numpy as np

from realtime.capture import LiveSource, video_fps
from realtime.types import SourceError, StreamInfo

log = logging.getLogger(__name__)


def connect(url: str, timeout_s: float) -> av.container.InputContainer:
    """Opens ``url`` with options for low latency; fails with a SourceError saying why."""
    # TCP avoids the smeared frames of lost UDP packets; low_delay stops the decoder from
    # holding frames back. Not fflags=nobuffer: it throws away the packets read while
    # probing, and with them the first keyframe (a short stream then yields nothing).
    options = {"flags": "low_delay"}
    if url.lower().startswith("rtsp://"):
        options["rtsp_transport"] = "tcp"
    try:
        container = av.open(url, options=options, timeout=timeout_s)
    except (av.FFmpegError, OSError) as exc:
        raise SourceError(f"cannot open stream {url}: {exc}") from exc
    if not container.streams.video:
        container.close()
        raise SourceError(f"stream {url} has no video")
    return container


def is_finite(url: str, container: av.container.InputContainer) -> bool:
    """True for a resource that ends (an HTTP file, HLS VOD), False for a live stream.

    RTSP and RTMP are live. An HLS playlist has a duration only when it is complete
    (#EXT-X-ENDLIST). Over HTTP a known duration, or a known byte size (Content-Length: an
    MPEG-TS file has no duration in its header and is not seekable from http.server), marks a
    file; a live HTTP stream has neither.
    """
    if url.lower().startswith(("rtsp://", "rtmp://")):
        return False
    if container.format.name == "hls":  # the size FFmpeg sees is the playlist's, not the video's
        return container.duration is not None
    return container.duration is not None or container.size > 0


class StreamSource(LiveSource):
    """A live network stream (RTSP, RTMP, HTTP, HLS) that reconnects with back-off when it drops.

    With ``reconnect=False`` a drop ends the source instead. ``container`` reuses an input
    already opened by ``connect`` (to probe it), instead of connecting again.
    """

    def __init__(
        self,
        url: str,
        *,
        live_queue: int = 1,
        reconnect: bool = True,
        reconnect_attempts: int = 5,
        timeout_s: float = 10.0,
        backoff_s: float = 0.5,
        container: av.container.InputContainer | None = None,
    ):
        self.url = url
        self._reconnects = reconnect
        self._attempts = reconnect_attempts
        self._timeout_s = timeout_s
        self._backoff_s = backoff_s
        self._container = container if container is not None else connect(url, timeout_s)
        self._decoded = self._container.decode(video=0)
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
        container = connect(self.url, self._timeout_s)
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
            if not self._reconnects:
                log.warning("stream %s ended (%s); not reconnecting (--no-reconnect)",
                            self.url, reason)
                return None
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

