"""Network inputs: a finite HTTP file ends with every frame, a live HTTP stream is treated as live.

pytest tests/realtime/test_network.py
"""

from __future__ import annotations

import http.server
import itertools
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import av
import pytest

from realtime.network import StreamSource, connect, is_finite
from realtime.sources import VideoFileSource, open_source


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_until_listening(port: int, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            assert time.monotonic() < deadline, f"nothing listens on port {port}"
            time.sleep(0.1)


def _remux_to_ts(clip: Path, out: Path) -> Path:
    """The same pictures as MPEG-TS: no duration in its header, the issue's example."""
    with av.open(str(clip)) as src, av.open(str(out), "w", format="mpegts") as dst:
        stream = dst.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(src.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                dst.mux(packet)
    return out


def _count_frames(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


@pytest.fixture(scope="module")
def served(masked_clip: Path, tmp_path_factory) -> Iterator[tuple[str, Path]]:
    """``python -m http.server`` on a free port, serving the real clip (read, not copied) and
    a TS remux of it; yields the base URL and the folder."""
    folder = tmp_path_factory.mktemp("served")
    (folder / "clip.mp4").symlink_to(masked_clip)
    _remux_to_ts(masked_clip, folder / "clip.ts")
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
         "--directory", str(folder)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_until_listening(port)
        yield f"http://127.0.0.1:{port}", folder
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture
def live_http() -> Iterator[http.server.ThreadingHTTPServer]:
    """An HTTP server that streams the TS without a Content-Length, as live encoders do."""
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "video/mp2t")
            self.end_headers()
            self.wfile.write(self.server.payload)  # type: ignore[attr-defined]

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server  # type: ignore[misc]
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("name", ["clip.mp4", "clip.ts"])
def test_a_finite_http_file_ends_with_every_frame(served: tuple[str, Path], name: str):
    base, folder = served
    expected = _count_frames(folder / name)
    with open_source(f"{base}/{name}") as source:
        assert isinstance(source, VideoFileSource) and not source.info.live
        # Twice the frames at most: replaying the clip (the old behaviour) shows as too many.
        frames = list(itertools.islice(source, 2 * expected))
    assert len(frames) == expected == 153
    assert [f.index for f in frames] == list(range(expected))


def test_reconnect_true_treats_a_finite_file_as_live(served: tuple[str, Path]):
    base, _ = served
    with open_source(f"{base}/clip.ts", reconnect=True) as source:
        assert isinstance(source, StreamSource) and source.info.live


def test_an_http_stream_without_length_is_live(live_http, served: tuple[str, Path]):
    _, folder = served
    live_http.payload = (folder / "clip.ts").read_bytes()
    url = f"http://127.0.0.1:{live_http.server_address[1]}/live.ts"
    container = connect(url, timeout_s=10.0)
    try:
        assert container.duration is None and container.size <= 0
        assert not is_finite(url, container)
    finally:
        container.close()
    with open_source(url, reconnect=False, live_queue=200) as source:
        assert isinstance(source, StreamSource) and source.info.live
        frames = list(itertools.islice(source, 400))
    assert 0 < len(frames) <= 153  # ended at the drop instead of reconnecting


@pytest.mark.parametrize("url,finite", [
    ("rtsp://camera.local/stream", False), ("rtmp://host/live", False),
])
def test_rtsp_and_rtmp_are_always_live(url: str, finite: bool):
    assert is_finite(url, container=None) is finite  # decided by the scheme alone


def test_cli_records_a_finite_http_file_completely(served: tuple[str, Path], tmp_path: Path,
                                                  tmp_path_factory):
    base, folder = served
    out = tmp_path / "out.mp4"
    cache = tmp_path_factory.mktemp("network-cli-cache")
    proc = subprocess.run(
        [sys.executable, "-m", "realtime.cli", "--input", f"{base}/clip.ts", "--output", str(out),
         "--random-weights", "--no-display", "--cache-dir", str(cache)],
        capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    assert "reconnected" not in proc.stderr
    assert _count_frames(out) == _count_frames(folder / "clip.ts") == 153
