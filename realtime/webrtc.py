"""The browser webcam over WebRTC (aiortc), served by the same process as the Gradio page.

    rtc = RtcServer(WebApp(WebConfig()))
    demo.launch(app_kwargs={"routes": rtc.routes()})   # POST /webrtc/offer, GET /webrtc/stats

Why aiortc beside Gradio rather than ``fastrtc`` or ``gradio-webrtc``: both (0.0.34 and 0.0.31)
require gradio<6, and the rest of the page (the before/after slider, ``launch(css=...)``) is
written for Gradio 6; two plain routes on Gradio's own FastAPI app cost less than pinning the
whole web stack to an older major release for a 0.0.x component.

The page (``webrtc_client.js``) posts an SDP offer with the Settings tab's values. Each peer
gets its own ``Session`` (MediaPipe tracker and smoothers; the engines are shared, as for the
other tabs) and a one-thread executor where its frames are processed, so the event loop, which
also serves Gradio, is never blocked by inference. A reader task takes every decoded frame from
the browser and keeps only the newest; a processing task unmasks that one and leaves the result
in a one-frame slot, which the outgoing track's ``recv`` takes for aiortc to encode (on a thread
of its own, so encoding one frame overlaps unmasking the next). When processing is slower than
the camera the stale frames are dropped (and counted): latency stays at about one frame's work
instead of growing. A peer is closed when its connection fails or
closes, or after ``WebConfig.webcam_time_limit_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import json
import logging
import statistics
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import astuple, dataclass
from typing import Any

import av
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from engines import EngineError
from realtime.present import present
from realtime.types import Frame, UnmaskError
from realtime.web import Session, Settings, WebApp

log = logging.getLogger(__name__)

RTP_HZ = 90_000
VIDEO_TIME_BASE = fractions.Fraction(1, RTP_HZ)
"""The clock of video timestamps in RTP."""
STATS_EVERY_S = 1.0
"""How often each peer's counters go to the page over its data channel."""


def ice_server(url: str) -> dict[str, str]:
    """``stun:host:port`` or ``turn:USER:PASSWORD@host:port`` -> the browser's RTCIceServer
    fields (``urls``, and ``username``/``credential`` when given)."""
    scheme, sep, rest = url.partition(":")
    if not sep or scheme not in ("stun", "stuns", "turn", "turns") or not rest:
        raise ValueError(f"--ice-server must look like stun:HOST:PORT or "
                         f"turn:USER:PASSWORD@HOST:PORT, got {url!r}")
    credentials, at, host = rest.rpartition("@")
    if not at:
        return {"urls": url}
    username, colon, credential = credentials.partition(":")
    if not colon:
        raise ValueError(f"--ice-server {url!r}: write the credentials as USER:PASSWORD@")
    return {"urls": f"{scheme}:{host}", "username": username, "credential": credential}


@dataclass
class PeerStats:
    """One peer's counters, sent to its page and summed by ``/webrtc/stats``."""

    received: int = 0
    """Frames decoded from the browser."""
    processed: int = 0
    """Frames unmasked and sent back."""
    dropped: int = 0
    """Frames replaced by a newer one before processing could take them."""
    unsent: int = 0
    """Results replaced by a newer one before the encoder took them."""
    with_faces: int = 0
    """Processed frames in which a face was found."""
    painted: int = 0
    """Processed frames in which a face was painted (judged to wear a covering)."""
    faces: int = 0
    """Faces in the latest processed frame."""
    size: str = ""
    """The latest frame's width x height."""

    def as_dict(self, busy_ms: deque[float]) -> dict[str, Any]:
        busy = statistics.median(busy_ms) if busy_ms else None
        return {**self.__dict__, "busy_ms_p50": None if busy is None else round(busy, 1)}


class _NewestFrame:
    """A one-frame slot: ``put`` replaces what was not taken yet, ``get`` waits for a frame."""

    def __init__(self) -> None:
        self._frame: av.VideoFrame | None = None
        self._ready = asyncio.Event()
        self._ended = False

    def put(self, frame: av.VideoFrame) -> bool:
        """Whether an untaken frame was replaced (dropped)."""
        replaced = self._frame is not None
        self._frame = frame
        self._ready.set()
        return replaced

    def end(self) -> None:
        self._ended = True
        self._ready.set()

    async def get(self) -> av.VideoFrame | None:
        """The newest frame not yet taken; None once the slot has ended."""
        while self._frame is None and not self._ended:
            self._ready.clear()
            await self._ready.wait()
        frame, self._frame = self._frame, None
        return frame


class _UnmaskedTrack(MediaStreamTrack):
    """What the browser receives: the newest unmasked frame not sent yet."""

    kind = "video"

    def __init__(self, results: _NewestFrame) -> None:
        super().__init__()
        self._results = results

    async def recv(self) -> av.VideoFrame:
        frame = await self._results.get()
        if frame is None:
            self.stop()
            raise MediaStreamError
        return frame


class Peer:
    """One browser connection: its pipeline, its thread, its tracks and counters."""

    def __init__(self, session: Session, settings: Settings, ice: list[dict[str, str]],
                 on_closed: Callable[[Peer], None]) -> None:
        self.session, self.settings, self._on_closed = session, settings, on_closed
        self.stats = PeerStats()
        self.busy_ms: deque[float] = deque(maxlen=60)
        self.newest, self.results = _NewestFrame(), _NewestFrame()
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="webrtc-peer")
        servers = [RTCIceServer(**server) for server in ice]
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=servers))
        self._tasks: list[asyncio.Task] = []
        self._channel: Any = None
        self._closed = False
        self._pipeline: Any = None
        self._reading = False

    async def answer(self, sdp: str, kind: str, time_limit_s: float) -> RTCSessionDescription:
        """Builds the pipeline (off the loop: the first one loads the nets) and answers."""
        loop = asyncio.get_running_loop()
        self._pipeline = await loop.run_in_executor(
            self.executor, self.session.pipeline, "webcam", self.settings)
        self.pc.on("track", self._on_track)
        self.pc.on("datachannel", self._on_datachannel)
        self.pc.on("connectionstatechange", self._on_state)
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type=kind))
        if not any(t.sender.track for t in self.pc.getTransceivers()):
            raise ValueError("the offer has no video track to unmask")
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        self._reporter = asyncio.create_task(self._report())
        self._tasks.append(self._reporter)
        self._tasks.append(asyncio.create_task(self._expire(time_limit_s)))
        return self.pc.localDescription

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind == "video" and not self._reading:
            self._reading = True
            self.pc.addTrack(_UnmaskedTrack(self.results))
            self._tasks.append(asyncio.create_task(self._read(track)))
            self._tasks.append(asyncio.create_task(self._unmask()))

    def _on_datachannel(self, channel: Any) -> None:
        self._channel = channel

    async def _on_state(self) -> None:
        if self.pc.connectionState in ("failed", "closed"):
            await self.close()

    async def _read(self, track: MediaStreamTrack) -> None:
        """Takes every frame the browser sends, keeping only the newest for processing."""
        try:
            while True:
                self.stats.dropped += self.newest.put(await track.recv())
                self.stats.received += 1
        except MediaStreamError:
            self.newest.end()

    async def _unmask(self) -> None:
        """Processes the newest frame on the peer's thread while the previous result is
        being encoded (aiortc encodes on another thread), so the two overlap."""
        loop = asyncio.get_running_loop()
        while (frame := await self.newest.get()) is not None:
            out = await loop.run_in_executor(self.executor, self.process, frame)
            self.stats.unsent += self.results.put(out)
        self.results.end()

    def process(self, frame: av.VideoFrame) -> av.VideoFrame:
        """One frame through the pipeline, on the peer's thread. The result is timestamped
        when it is ready, not when it was captured: the browser's jitter buffer compares
        timestamps with arrival times, and would take the varying processing time (and the
        skipped frames) for network jitter and hold every frame longer to smooth it."""
        started = time.perf_counter()
        image_bgr = frame.to_ndarray(format="bgr24")
        result = self._pipeline.process(Frame(self.stats.processed, started, image_bgr))
        out_bgr = present(image_bgr, result.out_bgr, result.mask_full_hw, self.settings.view(),
                          in_place=True)  # the pipeline's frame is not needed after this
        out = av.VideoFrame.from_ndarray(out_bgr, format="bgr24")
        out.pts, out.time_base = round(time.monotonic() * RTP_HZ), VIDEO_TIME_BASE
        stats = self.stats
        stats.processed += 1
        stats.faces = len(result.faces)
        stats.with_faces += bool(result.faces)
        stats.painted += any(result.covered)
        stats.size = f"{frame.width}x{frame.height}"
        self.busy_ms.append((time.perf_counter() - started) * 1000.0)
        return out

    async def _report(self) -> None:
        while True:
            await asyncio.sleep(STATS_EVERY_S)
            if self._channel is not None and self._channel.readyState == "open":
                self._channel.send(json.dumps(self.stats.as_dict(self.busy_ms)))

    async def _expire(self, time_limit_s: float) -> None:
        await asyncio.sleep(time_limit_s)
        self._reporter.cancel()  # the reason is the last message
        if self._channel is not None and self._channel.readyState == "open":
            self._channel.send(json.dumps({"ended": f"The stream stops after "
                                                    f"{time_limit_s:g} s; start it again."}))
            await asyncio.sleep(0.5)  # for the message to leave before the connection closes
        await self.close()

    async def close(self) -> None:
        """Idempotent: stops the tasks, closes the connection, then the pipeline (on its own
        thread, after any frame in flight)."""
        if self._closed:
            return
        self._closed = True
        current = asyncio.current_task()
        for task in self._tasks:
            if task is not current:
                task.cancel()
        await self.pc.close()
        self.newest.end()
        self.results.end()
        self.executor.submit(self.session.close)
        self.executor.shutdown(wait=False)
        self._on_closed(self)


class RtcServer:
    """The routes that connect browsers to per-peer pipelines built by ``app``."""

    def __init__(self, app: WebApp) -> None:
        self.app = app
        self.ice = [ice_server(url) for url in app.config.ice_servers]
        self.peers: set[Peer] = set()
        self.totals = PeerStats()  # of the peers already gone
        self.served = 0

    def routes(self) -> list[Route]:
        return [Route("/webrtc/offer", self.offer, methods=["POST"]),
                Route("/webrtc/stats", self.stats, methods=["GET"])]

    async def offer(self, request: Request) -> JSONResponse:
        """``{"sdp", "type", "settings": [the Settings tab's values]}`` -> the SDP answer, or
        ``{"error": a sentence for the page}`` with 400 (a bad offer), 503 (busy), 500."""
        try:
            body = await request.json()
            sdp, kind = str(body["sdp"]), str(body["type"])
            settings = Settings.from_page(*body.get("settings") or astuple(Settings()))
        except (ValueError, KeyError, TypeError) as exc:
            return _error(400, f"This is not a WebRTC offer from the page: {exc}")
        limit = self.app.config.webcam_streams
        if len(self.peers) >= limit:
            return _error(503, f"The server already runs {limit} webcam streams; try again "
                               f"in a while.")
        peer = Peer(self.app.new_session(), settings, self.ice, self._forget)
        self.peers.add(peer)
        try:
            answer = await peer.answer(sdp, kind, self.app.config.webcam_time_limit_s)
        except ValueError as exc:
            await peer.close()
            return _error(400, str(exc))
        except (UnmaskError, EngineError) as exc:  # the nets did not load: the page says why
            await peer.close()
            return _error(500, str(exc))
        self.served += 1
        return JSONResponse({"sdp": answer.sdp, "type": answer.type})

    async def stats(self, _request: Request) -> JSONResponse:
        """Counters of all peers, live and gone: what tests and the benchmark check."""
        live = [peer.stats for peer in self.peers]
        summed = {key: sum(getattr(s, key) for s in [self.totals, *live])
                  for key in COUNTERS}
        return JSONResponse({"peers": len(live), "served": self.served, **summed})

    def _forget(self, peer: Peer) -> None:
        self.peers.discard(peer)
        for key in COUNTERS:
            setattr(self.totals, key, getattr(self.totals, key) + getattr(peer.stats, key))

    async def close(self) -> None:
        """Closes every peer (the server is stopping)."""
        for peer in list(self.peers):
            await peer.close()

    @contextlib.asynccontextmanager
    async def lifespan(self, _app: Any):
        """For the FastAPI app: peers are closed when the server stops."""
        yield
        await self.close()


COUNTERS = ("received", "processed", "dropped", "unsent", "with_faces", "painted")


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)
