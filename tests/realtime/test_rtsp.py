"""A live RTSP stream from a real server (GStreamer's), cut mid-way and restarted.

pytest tests/realtime/test_rtsp.py

The server (``rtsp_server.py``) runs on Debian's own Python, which has the GObject bindings;
where they are absent the tests skip and say which packages to install. Each served frame
carries its number as a row of black and white blocks along the top (away from the face, so
painting cannot touch it), read back from what the loop handed over and from the written
file: which frames arrived, in which order, and whether each one was written.
"""

from __future__ import annotations

import logging
import math
import select
import socket
import subprocess
import threading
import time
from itertools import pairwise
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from numbered import draw_number, read_number
from standins import tracked_pipeline

from realtime.loop import RunConfig, run
from realtime.network import StreamSource
from realtime.pipeline import Pipeline
from realtime.sources import open_source
from realtime.types import Frame

SERVER = Path(__file__).with_name("rtsp_server.py")
INSTALL = ("apt-get install -y --no-install-recommends gir1.2-gst-rtsp-server-1.0 python3-gi "
           "gstreamer1.0-plugins-good")
SIZE_WH, FPS, SECONDS = (320, 240), 10, 20
KILL_AT, AFTER = 8, 10  # frames the loop sees before the server dies, and after it is back
STALL_S = 0.5  # how long the loop stalls just before the server dies
RESTART_S = 1.0  # how long the server stays down
QUEUE = 512  # the live queue outlasts the run, so nothing is dropped: every gap is a loss


def _server_python() -> str:
    """/usr/bin/python3 where it can run the server; skips, saying what to install, if not."""
    probe = ("import gi; gi.require_version('Gst', '1.0'); "
             "gi.require_version('GstRtspServer', '1.0'); from gi.repository import GstRtspServer")
    for python in ("/usr/bin/python3", "python3"):
        try:
            found = subprocess.run([python, "-c", probe], capture_output=True, timeout=30)
        except OSError:
            continue
        if found.returncode == 0:
            return python
    pytest.skip(f"GStreamer's RTSP server is not installed for the system Python; as root: "
                f"{INSTALL}")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _numbered_clip(path: Path, face_bgr: np.ndarray) -> Path:
    """H.264 MP4, SECONDS long at FPS: a face swinging left and right, its number on top."""
    width, height = SIZE_WH
    face = cv2.resize(face_bgr, (112, 112))
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=FPS,
                                      options={"preset": "superfast", "g": str(FPS), "bf": "0"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(SECONDS * FPS):
            image = np.full((height, width, 3), 120, np.uint8)
            x = (width - 112) // 2 + round(70 * math.sin(i / 12))
            image[80:192, x:x + 112] = face
            draw_number(image, i)
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


class Server:
    """``rtsp_server.py`` as a subprocess that can be killed and started again on its port.

    ``prepare`` spawns the next server process ahead of time, so that ``start`` puts it on
    the port at once: loading GStreamer takes seconds on a busy machine.
    """

    def __init__(self, python: str, clip: Path):
        self._command = [python, str(SERVER), str(clip)]
        self.port = _free_port()
        self.url = f"rtsp://127.0.0.1:{self.port}/clip"
        self._running: subprocess.Popen | None = None
        self._next: subprocess.Popen | None = None

    def prepare(self) -> None:
        if self._next is None:
            self._next = subprocess.Popen(
                [*self._command, str(self.port), "--on-cue"], stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def start(self) -> None:
        self.prepare()
        proc, self._next = self._next, None
        self._running = proc
        proc.stdin.write("listen\n")
        proc.stdin.flush()
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        line = proc.stdout.readline() if ready else ""
        if line.strip() != "ready":
            proc.kill()
            raise RuntimeError(f"RTSP server did not start: {proc.communicate()[1]}")

    def kill(self) -> None:
        """SIGKILL: the connection breaks mid-stream, with no RTSP TEARDOWN."""
        if self._running is not None:
            self._running.kill()
            self._running.communicate()
            self._running = None

    def close(self) -> None:
        self.kill()
        if self._next is not None:
            self._next.kill()
            self._next.communicate()
            self._next = None


class Recorder:
    """An extra sink that reads each frame's number, kills the server at the KILL_AT-th, calls
    ``after_kill`` then, and asks the loop to stop AFTER frames into the next connection.

    Just before the kill it stalls for STALL_S, as a loaded CPU may, while the stream goes on:
    frames are still queued when the connection breaks, and those must not be lost either.
    """

    def __init__(self, server: Server, after_kill=None):
        self.numbers: list[int] = []
        """The number drawn on each frame handed over: the server's count since it connected."""
        self.indices: list[int] = []
        """``Frame.index``: the source's count of the frames it read, across reconnections."""
        self.t_capture: list[float] = []
        self.t_kill: float | None = None
        self.quit_requested = False
        self._server, self._after_kill = server, after_kill
        self._since_restart = 0

    def write(self, frame, out_bgr: np.ndarray, mask_full_hw) -> None:
        number = read_number(out_bgr)
        if (self.numbers and number < self.numbers[-1]) or self._since_restart:
            self._since_restart += 1  # numbers start again: a new connection
            self.quit_requested = self._since_restart >= AFTER
        self.numbers.append(number)
        self.indices.append(frame.index)
        self.t_capture.append(frame.t_capture)
        if len(self.numbers) == KILL_AT:
            time.sleep(STALL_S)
            self.t_kill = time.perf_counter()
            self._server.kill()
            if self._after_kill is not None:
                self._after_kill()

    def close(self) -> None: ...

    def abort(self) -> None: ...


@pytest.fixture(scope="module")
def clip(tmp_path_factory, face_frame_bgr: np.ndarray) -> Path:
    return _numbered_clip(tmp_path_factory.mktemp("rtsp") / "served.mp4", face_frame_bgr)


@pytest.fixture
def server(clip: Path):
    served = Server(_server_python(), clip)
    try:
        served.start()
        yield served
    finally:
        served.close()


def _written(path: Path) -> tuple[list[int], list[float]]:
    """Frame numbers and presentation times (s) of every frame in ``path``."""
    with av.open(str(path)) as container:
        assert container.streams.video[0].codec_context.name == "h264"
        frames = [(read_number(f.to_ndarray(format="bgr24")), float(f.time))
                  for f in container.decode(video=0)]
    return [n for n, _ in frames], [t for _, t in frames]


@pytest.fixture(scope="module")
def pipeline(clip: Path) -> Pipeline:
    """The real tracker with stand-in nets (the nets play no part in what is tested here),
    its graphs loaded on the clip's first frames before any stream starts."""
    built = tracked_pipeline()
    with av.open(str(clip)) as container:
        for i, frame in zip(range(3), container.decode(video=0), strict=False):
            built.process(Frame(i, time.perf_counter(), frame.to_ndarray(format="bgr24")))
    return built


def _run(server: Server, out: Path, pipeline: Pipeline, recorder: Recorder,
         reconnect: bool | None) -> dict:
    config = RunConfig(source=server.url, output=str(out), display=False, progress=False,
                       reconnect=reconnect, max_frames=SECONDS * FPS, extra_sinks=(recorder,))
    pipeline.reset()
    source = open_source(server.url, live_queue=QUEUE, reconnect=reconnect)
    assert isinstance(source, StreamSource) and source.info.live
    summary = run(config, log=lambda _: None, pipeline=pipeline, source=source)
    assert source.dropped == 0  # so any missing number was lost, not dropped for latency
    return summary


def test_a_stream_cut_mid_way_continues_after_the_gap_with_every_frame_before_it(
        server: Server, pipeline: Pipeline, tmp_path: Path, caplog) -> None:
    restarted: list[BaseException | None] = []

    def restart() -> None:
        try:
            server.start()  # on the same port, while the source backs off
            restarted.append(None)
        except (OSError, RuntimeError) as exc:
            restarted.append(exc)

    server.prepare()
    # Down for RESTART_S: the source's first attempt, half a second after the drop, finds
    # nothing listening (as a rule) and it backs off further.
    restarter = threading.Timer(RESTART_S, restart)
    recorder = Recorder(server, after_kill=restarter.start)
    out = tmp_path / "out.mp4"
    try:
        with caplog.at_level(logging.WARNING, logger="realtime.network"):
            summary = _run(server, out, pipeline, recorder, reconnect=None)
    finally:
        if restarter.ident is not None:
            restarter.join()  # so the fixture stops whatever it started
    assert restarted == [None]
    assert any("reconnected" in r.getMessage() for r in caplog.records)
    assert summary["interrupted"] and summary["frames"] == len(recorder.numbers)
    # Every frame the source read reached the loop (none dropped, none lost in a reconnect).
    assert recorder.indices == list(range(len(recorder.indices)))

    cut = next((i for i in range(1, len(recorder.numbers))
                if recorder.numbers[i] < recorder.numbers[i - 1]), None)
    assert cut is not None, f"no second connection in {recorder.numbers}"
    before, after = recorder.numbers[:cut], recorder.numbers[cut:]
    # Every frame of the first connection, from its first, none lost or repeated, including
    # those still queued when the server died; then the new connection, from its first.
    assert len(before) >= KILL_AT and before == list(range(len(before)))
    assert any(t < recorder.t_kill for t in recorder.t_capture[KILL_AT:cut])  # queued at the cut
    assert after == list(range(len(after))) and len(after) == AFTER

    numbers, times_s = _written(out)
    assert numbers == recorder.numbers  # everything the loop was handed is in the file
    # The file's clock follows capture, one frame apart at least (a burst on connecting runs
    # it ahead): the outage is a gap in it, after which it is back on the capture clock.
    assert all(b > a for a, b in pairwise(times_s))
    assert times_s[cut] - times_s[cut - 1] >= 0.5  # at least the first back-off
    captured_s = recorder.t_capture[cut] - recorder.t_capture[0]
    assert times_s[cut] == pytest.approx(captured_s, abs=1 / FPS)


def test_no_reconnect_ends_the_run_at_the_cut_with_every_frame_before_it(
        server: Server, pipeline: Pipeline, tmp_path: Path, caplog) -> None:
    recorder = Recorder(server)
    out = tmp_path / "out.mp4"
    with caplog.at_level(logging.WARNING, logger="realtime.network"):
        summary = _run(server, out, pipeline, recorder, reconnect=False)
    assert any("not reconnecting" in r.getMessage() for r in caplog.records)
    assert not summary["interrupted"]  # the source ended by itself
    assert recorder.indices == list(range(len(recorder.indices)))
    numbers = recorder.numbers
    assert len(numbers) >= KILL_AT and numbers == list(range(len(numbers)))
    assert any(t < recorder.t_kill for t in recorder.t_capture[KILL_AT:])  # queued at the cut
    assert _written(out)[0] == numbers
