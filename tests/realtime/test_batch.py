"""realtime-unmask batch on six short real clips: local workers, a killed worker, resume,
a broken input, and the same job on a local Ray runtime.

The clips are 1 s cuts of the shared clips at low resolution, made in a temporary folder, and
the nets run with random weights: this is about the job, not the painting.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import av
import pytest
from batch_faults import dies_on_some_inputs

from engines import EngineConfig
from realtime.batch.job import BatchConfig, run_batch
from realtime.batch.manifest import MANIFEST_NAME
from realtime.loop import RunConfig

CLIPS = {  # name: (shared clip, start s, size)
    "street0.mp4": ("hamilton_clip_640x360.mp4", 0, (320, 180)),
    "street1.mp4": ("hamilton_clip_640x360.mp4", 3, (320, 180)),
    "street2.mp4": ("hamilton_clip_640x360.mp4", 6, (256, 144)),
    "street3.mkv": ("hamilton_clip_640x360.mp4", 8, (256, 144)),
    "webcam0.mp4": ("masked_webcam_256.mp4", 0, (128, 128)),
    "webcam1.mp4": ("masked_webcam_256.mp4", 7, (128, 128)),
}


def _cut(source: Path, out: Path, start_s: float, size_wh: tuple[int, int]) -> int:
    """One second of ``source`` from ``start_s``, resized; returns the frames written."""
    with av.open(str(source)) as src, av.open(str(out), "w") as dst:
        rate = src.streams.video[0].average_rate
        stream = dst.add_stream("libx264", rate=rate)
        stream.width, stream.height = size_wh
        stream.pix_fmt = "yuv420p"
        first, count, written = round(start_s * rate), round(rate), 0
        for i, frame in enumerate(src.decode(video=0)):
            if written == count:
                break
            if i >= first:
                picture = av.VideoFrame.from_image(frame.to_image().resize(size_wh))
                dst.mux(stream.encode(picture))
                written += 1
        dst.mux(stream.encode(None))
    return written


def pictures(path: Path) -> list[bytes]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="bgr24").tobytes() for f in c.decode(video=0)]


def decoded_frames(path: Path) -> int:
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


@pytest.fixture(scope="module")
def clips(tmp_path_factory, shared_data: Path) -> dict[str, int]:
    """The six clips in their own folder -> frames in each."""
    folder = tmp_path_factory.mktemp("batch-in")
    return {str(folder / name): _cut(shared_data / "videos" / src, folder / name, start, size)
            for name, (src, start, size) in CLIPS.items()}


@pytest.fixture(scope="module")
def engine_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("batch-engines")


def batch_cli(*args: str, cache: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "realtime.cli", "batch", *args, "--random-weights",
         "--cache-dir", str(cache)], capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})


def read_manifest(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / MANIFEST_NAME).read_text().splitlines()]


@pytest.fixture(scope="module")
def local_job(clips: dict[str, int], engine_cache: Path, tmp_path_factory):
    """The six clips and one broken file through the command line, two local workers."""
    root = tmp_path_factory.mktemp("batch-local")
    broken = root / "broken.mp4"
    broken.write_bytes(b"not a video at all\n" * 20)
    listing = root / "inputs.txt"
    listing.write_text("# the clips' folder, and a broken file\n"
                       f"{Path(next(iter(clips))).parent}\nbroken.mp4\n")
    out = root / "out"
    proc = batch_cli(str(listing), "--out", str(out), "--workers", "2", cache=engine_cache)
    return listing, out, proc


def test_every_clip_is_written_whole_and_the_broken_one_is_reported(local_job, clips) -> None:
    _, out, proc = local_job
    assert proc.returncode == 3, proc.stderr  # done, but some inputs failed
    assert "Traceback" not in proc.stderr
    failed = [ln for ln in proc.stderr.splitlines() if ln.startswith("failed:")]
    assert len(failed) == 1 and "broken.mp4" in failed[0]
    assert "batch: 6 done, 1 failed" in proc.stderr and "2 local workers" in proc.stderr
    for clip, frames in clips.items():
        assert decoded_frames(out / Path(clip).name) == frames
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [MANIFEST_NAME, *(Path(c).name for c in clips)])  # no partial or broken output
    records = {Path(r["input"]).name: r for r in read_manifest(out)}
    assert records["broken.mp4"]["status"] == "failed"
    assert "not a video" in records["broken.mp4"]["error"]
    for clip, frames in clips.items():
        record = records[Path(clip).name]
        assert (record["status"], record["frames"], record["error"]) == ("done", frames, None)
        assert record["seconds"] > 0 and record["output"] == str(out / Path(clip).name)


def test_a_second_run_skips_what_is_done_and_retries_what_failed(local_job, clips,
                                                                 engine_cache) -> None:
    listing, out, _ = local_job
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.suffix != ".jsonl"}
    lines_before = len(read_manifest(out))
    proc = batch_cli(str(listing), "--out", str(out), cache=engine_cache)
    assert proc.returncode == 3, proc.stderr
    assert "batch: 0 done, 1 failed, 6 already done before" in proc.stderr
    assert "1 local worker" in proc.stderr  # no more workers than inputs to do
    after = {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.suffix != ".jsonl"}
    assert after == before  # finished outputs untouched
    added = read_manifest(out)[lines_before:]
    assert [Path(r["input"]).name for r in added] == ["broken.mp4"]


def test_a_killed_worker_is_replaced_and_its_input_retried_once(clips, engine_cache,
                                                              tmp_path: Path) -> None:
    names = sorted(clips)
    inputs = tmp_path / "in"
    inputs.mkdir()
    for prefix, clip in zip(("once_", "always_", ""), (names[0], names[4], names[5]),
                            strict=True):
        shutil.copy(clip, inputs / f"{prefix}{Path(clip).name}")
    out = tmp_path / "out"
    config = BatchConfig(inputs=(str(inputs),), out_dir=out, workers=2, progress=False,
                         run=RunConfig(source="", engines=EngineConfig(random_weights=True,
                                                          cache_dir=engine_cache)))
    lines: list[str] = []
    result = run_batch(config, log=lines.append, process=dies_on_some_inputs)
    by_name = {Path(o.input).name: o for o in result.outcomes}
    once, always, plain = (by_name[f"once_{Path(names[0]).name}"],
                           by_name[f"always_{Path(names[4]).name}"], by_name[Path(names[5]).name])
    assert (once.status, once.attempts, once.frames) == ("done", 2, clips[names[0]])
    assert decoded_frames(Path(once.output)) == clips[names[0]]
    assert (always.status, always.attempts) == ("failed", 2)
    assert "worker died (exited with status 7), on each of 2 attempts" in always.error
    assert not Path(always.output).exists()
    assert plain.status == "done" and decoded_frames(Path(plain.output)) == clips[names[5]]
    assert any("retrying" in ln and "killed by SIGKILL" in ln for ln in lines), lines
    assert [r["status"] for r in read_manifest(out)] == [o.status for o in result.outcomes]


@pytest.fixture
def live_stream(masked_clip: Path, tmp_path: Path):
    """A live HTTP stream: the masked clip as MPEG-TS, sent at its own pace with no
    Content-Length, as a camera's encoder would; yields the URL."""
    ts = tmp_path / "live.ts"
    with av.open(str(masked_clip)) as src, av.open(str(ts), "w", format="mpegts") as dst:
        stream = dst.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(src.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                dst.mux(packet)
    payload, seconds = ts.read_bytes(), 15.0

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "video/mp2t")
            self.end_headers()
            chunk = 188 * 64
            with contextlib.suppress(OSError):  # the recorder hung up: fine
                for start in range(0, len(payload), chunk):
                    self.wfile.write(payload[start:start + chunk])
                    time.sleep(seconds * chunk / len(payload))

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/cam/live"
    finally:
        server.shutdown()
        server.server_close()


def test_a_live_stream_records_on_its_own_worker_until_the_job_stops(
        live_stream: str, clips, engine_cache, tmp_path: Path) -> None:
    clip = next(iter(clips))
    out = tmp_path / "out"
    manifest = out / MANIFEST_NAME
    done_at: list[float] = []

    def stop_soon_after_the_file() -> bool:  # what a Ctrl-C does, without a signal
        if not done_at and manifest.exists() and '"done"' in manifest.read_text():
            done_at.append(time.monotonic())
        return bool(done_at) and time.monotonic() - done_at[0] > 2.0

    result = run_batch(BatchConfig(inputs=(live_stream, clip), out_dir=out, workers=1,
                                   progress=False, run=RunConfig(source="", engines=EngineConfig(
                                       random_weights=True, cache_dir=engine_cache))),
                       log=lambda _line: None, should_stop=stop_soon_after_the_file)
    assert result.workers.startswith("2 local workers")  # one for files, one for the stream
    by_input = {o.input: o for o in result.outcomes}
    assert by_input[clip].status == "done"
    live = by_input[live_stream]
    assert live.status == "stopped" and live.frames > 0
    assert Path(live.output).name.startswith("127.0.0.1_cam_live_")
    assert decoded_frames(Path(live.output)) == live.frames  # finished, playable, kept


def test_the_same_job_on_a_local_ray_runtime_gives_the_same_outputs(local_job, clips,
                                                                   engine_cache,
                                                                   tmp_path: Path) -> None:
    ray = pytest.importorskip("ray", reason="Ray is not installed (the ray extra): "
                              "pip install -e '.[ray]' to run this test")
    _, local_out, _ = local_job
    ray.init(address="local", include_dashboard=False, num_cpus=2, log_to_driver=False)
    try:
        # One node, this machine. (Ray 2.60 turns 127.0.0.1 into the machine's own address,
        # services.resolve_ip_for_localhost, so it cannot be held to the loopback.)
        assert [n["NodeManagerHostname"] for n in ray.nodes()] == [socket.gethostname()]
        result = run_batch(BatchConfig(
            inputs=tuple(clips), out_dir=tmp_path, ray="local", workers=2, progress=False,
            run=RunConfig(source="", engines=EngineConfig(random_weights=True,
                                                          cache_dir=engine_cache))),
            log=lambda _line: None)
    finally:
        ray.shutdown()
    assert result.count("done") == 6 and "2 Ray actors" in result.workers
    for clip, frames in clips.items():
        name = Path(clip).name
        assert decoded_frames(tmp_path / name) == frames
        # Same engines, threads and encoder settings: the very same pictures (the bytes
        # differ only where Matroska stamps each file with its own id and date).
        assert pictures(tmp_path / name) == pictures(local_out / name), name


def test_ray_without_the_extra_is_one_line(tmp_path: Path, clips) -> None:
    # Ray hidden (a None in sys.modules makes `import ray` fail), as where it is not installed.
    hide_ray = ("import sys; sys.modules['ray'] = None; from realtime.cli import main; "
                "sys.exit(main())")
    proc = subprocess.run([sys.executable, "-c", hide_ray, "batch", next(iter(clips)),
                           "--out", str(tmp_path / "out"), "--ray", "local"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "realtime-unmask: error: --ray needs Ray, which is not installed here: "
        "pip install 'realtime-unmask[ray]'"]
    assert not (tmp_path / "out").exists()
