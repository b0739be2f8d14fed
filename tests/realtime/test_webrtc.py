"""The WebRTC endpoint with an aiortc client in the same process: stand-in nets, the real tracker.

pytest tests/realtime/test_webrtc.py     # the page's own client in Chromium: test_webrtc_browser.py

The server's routes are called through httpx's ASGI transport and the media flows over real
UDP on this machine, both peers on one event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from standins import standin_engines

aiortc = pytest.importorskip("aiortc", reason="WebRTC tests skipped: pip install aiortc")
httpx = pytest.importorskip("httpx")

from aiortc.mediastreams import MediaStreamError  # noqa: E402
from starlette.applications import Starlette  # noqa: E402

from realtime.web import WebApp, WebConfig  # noqa: E402
from realtime.webrtc import RtcServer, _NewestFrame, ice_server  # noqa: E402

SETTINGS = ["onnx", 2, False, 0.5, False]  # the Settings tab's values, as the page sends them
TIMEOUT_S = 120.0  # a loaded 2-core machine: MediaPipe's first frame alone takes seconds


class _Camera(aiortc.MediaStreamTrack):
    """A 30 FPS camera that shows one picture; remembers when each frame was sent."""

    kind = "video"

    def __init__(self, frame_bgr: np.ndarray) -> None:
        super().__init__()
        self.frame_bgr, self.sent, self._start = frame_bgr, 0, time.perf_counter()

    async def recv(self) -> av.VideoFrame:
        self.sent += 1
        await asyncio.sleep(max(0.0, self._start + self.sent / 30 - time.perf_counter()))
        frame = av.VideoFrame.from_ndarray(self.frame_bgr, format="bgr24")
        frame.pts, frame.time_base = self.sent * 3000, fractions.Fraction(1, 90000)
        return frame


@pytest.fixture
def camera_bgr(face_frame_bgr: np.ndarray) -> np.ndarray:
    return cv2.copyMakeBorder(face_frame_bgr, 20, 20, 60, 60, cv2.BORDER_REPLICATE)  # 320x240


def _app(**config) -> WebApp:
    return WebApp(WebConfig(**config), engines=standin_engines())


@pytest.fixture
def app() -> Iterator[WebApp]:
    web_app = _app()
    yield web_app
    web_app.close()


async def _until(condition: Callable[[], bool], what: str, timeout_s: float = TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def _connect(http: httpx.AsyncClient, camera_bgr: np.ndarray, settings: list | None
                   ) -> tuple[aiortc.RTCPeerConnection, _Camera, list, list]:
    """A peer connected as the page connects: (it, its camera, the results as they come,
    the data channel's messages)."""
    pc, camera, received, messages = aiortc.RTCPeerConnection(), _Camera(camera_bgr), [], []

    async def keep(track) -> None:
        with contextlib.suppress(MediaStreamError):  # the server hung up
            while pc.connectionState != "closed":
                received.append((await track.recv()).to_ndarray(format="bgr24"))

    pc.on("track", lambda track: asyncio.ensure_future(keep(track)))
    pc.addTransceiver(camera, direction="sendrecv")
    pc.createDataChannel("stats").on("message", messages.append)
    await pc.setLocalDescription(await pc.createOffer())
    offer = {"sdp": pc.localDescription.sdp, "type": pc.localDescription.type,
             "settings": settings}
    answer = await http.post("/webrtc/offer", json=offer, timeout=TIMEOUT_S)
    assert answer.status_code == 200, answer.text
    await pc.setRemoteDescription(aiortc.RTCSessionDescription(**answer.json()))
    return pc, camera, received, messages


def _http(rtc: RtcServer) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=Starlette(routes=rtc.routes()))
    return httpx.AsyncClient(transport=transport, base_url="http://page")


async def _stream(app: WebApp, camera_bgr: np.ndarray, n_frames: int,
                  settings: list | None = SETTINGS) -> dict:
    """Connects, waits for ``n_frames`` results, hangs up; returns them with the server's
    counters (while connected and after) and the camera's count."""
    rtc = RtcServer(app)
    async with _http(rtc) as http:
        pc, camera, received, _ = await _connect(http, camera_bgr, settings)
        await _until(lambda: len(received) >= n_frames, f"{n_frames} unmasked frames")
        during = (await http.get("/webrtc/stats")).json()
        session_root = next(iter(rtc.peers)).session.root
        await pc.close()
        await _until(lambda: not rtc.peers, "the server to close the peer", 30.0)
        after = (await http.get("/webrtc/stats")).json()
    return {"frames": received, "during": during, "after": after, "sent": camera.sent,
            "session_root": session_root}


def test_frames_come_back_unmasked_and_the_peer_closes(app: WebApp, camera_bgr: np.ndarray
                                                       ) -> None:
    result = asyncio.run(_stream(app, camera_bgr, n_frames=15))
    last_bgr = result["frames"][-1]
    assert last_bgr.shape == camera_bgr.shape
    # The stand-in paints the lower face white: far brighter there than the camera's picture.
    brighter = cv2.cvtColor(last_bgr, cv2.COLOR_BGR2GRAY).astype(int) - cv2.cvtColor(
        camera_bgr, cv2.COLOR_BGR2GRAY)
    assert (brighter > 60).mean() > 0.01
    assert (np.abs(brighter[:60]) < 30).mean() > 0.95  # the top of the picture is as sent
    during, after = result["during"], result["after"]
    assert during["peers"] == 1 and during["with_faces"] >= 1 and during["painted"] >= 1
    assert after["peers"] == 0 and after["processed"] >= 15 and after["served"] == 1
    assert not Path(result["session_root"]).exists()  # the peer's pipeline and folder went


def test_slow_processing_skips_stale_frames_instead_of_queueing(camera_bgr: np.ndarray) -> None:
    def slow_segmenter(batch: np.ndarray) -> np.ndarray:
        time.sleep(0.15)  # about 6 frames a second against a 30 FPS camera
        return standin_engines().segmenter(batch)

    app = WebApp(WebConfig(), engines=standin_engines(slow_segmenter))
    try:
        result = asyncio.run(_stream(app, camera_bgr, n_frames=12))
    finally:
        app.close()
    counts = result["after"]
    assert counts["dropped"] > counts["processed"] / 2, counts  # most frames skipped...
    # ...and the rest all processed: nothing waits in a queue (a frame or two in flight).
    assert counts["received"] - counts["dropped"] - counts["processed"] <= 2, counts


def test_a_stream_stops_at_its_time_limit_and_says_so(camera_bgr: np.ndarray) -> None:
    async def scenario() -> list:
        rtc = RtcServer(app)
        async with _http(rtc) as http:
            pc, _, received, messages = await _connect(http, camera_bgr, SETTINGS)
            await _until(lambda: received, "a first unmasked frame")
            await _until(lambda: not rtc.peers, "the time limit", 30.0)
            await _until(lambda: messages and "ended" in messages[-1], "the reason", 10.0)
            await pc.close()
        return messages

    app = _app(webcam_time_limit_s=2)
    try:
        messages = asyncio.run(scenario())
    finally:
        app.close()
    assert json.loads(messages[-1]) == {"ended": "The stream stops after 2 s; start it again."}
    assert "processed" in json.loads(messages[0])  # the counters, once a second before that


def test_the_newest_frame_wins() -> None:
    async def scenario() -> tuple:
        slot = _NewestFrame()
        replaced = [slot.put(name) for name in ("a", "b", "c")]
        first = await slot.get()
        slot.end()
        return replaced, first, await slot.get()

    assert asyncio.run(scenario()) == ([False, True, True], "c", None)


@pytest.mark.parametrize(("body", "status", "says"), [
    ("not json", 400, "not a WebRTC offer"),
    ({"type": "offer"}, 400, "not a WebRTC offer"),
    ({"sdp": "v=0", "type": "offer", "settings": ["onnx", 0, False, 0.5, True]}, 400,
     "--max-faces must be between 1 and 16, got 0"),
    ({"sdp": "v=0", "type": "offer"}, 503, "already runs 1 webcam streams"),
])
def test_refusals_say_why(body, status: int, says: str) -> None:
    app = _app(webcam_streams=1)
    rtc = RtcServer(app)
    if status == 503:
        rtc.peers.add(object())  # one stream already runs

    async def post() -> httpx.Response:
        async with _http(rtc) as http:
            if isinstance(body, str):
                return await http.post("/webrtc/offer", content=body)
            return await http.post("/webrtc/offer", json=body)

    try:
        response = asyncio.run(post())
    finally:
        app.close()
    assert response.status_code == status
    assert says in response.json()["error"]


def test_ice_servers() -> None:
    assert ice_server("stun:stun.example.org:3478") == {"urls": "stun:stun.example.org:3478"}
    assert ice_server("turn:alice:s3:cret@turn.example.org:3478") == {
        "urls": "turn:turn.example.org:3478", "username": "alice", "credential": "s3:cret"}
    for bad in ("stun.example.org", "http://x", "turn:alice@host:3478"):
        with pytest.raises(ValueError, match="--ice-server"):
            ice_server(bad)
    with pytest.raises(ValueError, match="--ice-server"):
        WebConfig(ice_servers=("nonsense",))
