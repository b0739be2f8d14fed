"""A long live run: does memory grow, does the frame rate drift, are frames dropped?

    realtime-unmask bench --soak 30            # 30 minutes of a simulated 30 FPS camera

One pipeline (tracker, smoothers, engines) serves the whole run, as in a day-long camera
session; the clip loops as a camera at ``CAMERA_FPS``. The run is cut into windows (about 30
per run, 5 s to 60 s each), each opening the camera anew as a reconnect would; after each,
the process's resident memory (RSS) is read. Memory
growth is measured from the end of the warm-up (the first tenth of the run, at least one
window: allocators, MediaPipe and ONNX Runtime settle there) to the end. Target: under 5%
growth over 30 minutes. Writes ``soak.json`` into the output folder.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

SOAK_GROWTH_TARGET = 0.05
"""RSS may grow at most this share after warm-up."""
CAMERA_FPS = 30.0


def rss_bytes(pid: int | None = None) -> int | None:
    """Resident memory now of process ``pid`` (default: this one) from Linux /proc; elsewhere,
    or once the process is gone, None: not measured."""
    try:
        with open(f"/proc/{pid or os.getpid()}/statm") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError, AttributeError):
        return None


def window_seconds(minutes: float) -> float:
    """Length of one sampling window: about 30 windows a run, 5 s to 60 s each."""
    return min(60.0, max(5.0, minutes * 60.0 / 30.0))


def summarise(windows: list[dict[str, Any]], warmup: int) -> dict[str, Any]:
    """Growth of RSS after ``warmup`` windows, FPS drift (last window vs the first after
    warm-up) and dropped frames, from per-window samples."""
    after = windows[warmup - 1:] if 0 < warmup <= len(windows) else windows
    base, last = after[0], after[-1]
    growth = (None if base["rss_mb"] is None or last["rss_mb"] is None
              else round(last["rss_mb"] / base["rss_mb"] - 1.0, 4))
    frames = sum(w["frames"] for w in windows)
    dropped = sum(w["dropped"] for w in windows)
    drift = (round(last["fps"] / base["fps"] - 1.0, 4) if base["fps"] > 0 else None)
    return {"windows": len(windows), "warmup_windows": warmup, "frames": frames,
            "frames_dropped": dropped,
            "dropped_share": round(dropped / max(1, frames + dropped), 4),
            "rss_mb_after_warmup": base["rss_mb"], "rss_mb_end": last["rss_mb"],
            "rss_mb_peak": max((w["rss_mb"] for w in windows if w["rss_mb"] is not None),
                               default=None),
            "rss_growth": growth, "fps_after_warmup": base["fps"], "fps_end": last["fps"],
            "fps_drift": drift, "growth_target": SOAK_GROWTH_TARGET,
            "met": None if growth is None else growth < SOAK_GROWTH_TARGET}


def soak(clip: Path, minutes: float, out: Path, *, cache_dir: Path,
         log: Callable[[str], None] = print) -> dict[str, Any]:
    """Runs the soak and writes ``out/soak.json``; returns its contents."""
    from benchmarks.speed import Variant, load_backend, make_pipeline
    from realtime.loop import RunConfig, run
    from realtime.sources import SimulatedCamera

    if minutes <= 0:
        raise ValueError(f"--soak takes a positive number of minutes, got {minutes:g}")
    out.mkdir(parents=True, exist_ok=True)
    engines, load = load_backend("onnx", cache_dir)
    pipeline = make_pipeline(engines, Variant())
    span_s = window_seconds(minutes)
    n_windows = max(1, round(minutes * 60.0 / span_s))
    warmup = max(1, round(n_windows / 10))
    windows: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    try:
        for i in range(n_windows):
            config = RunConfig(source=str(clip), display=False, progress=False,
                               max_frames=max(1, round(CAMERA_FPS * span_s)))
            summary = run(config, log=_ignore, pipeline=pipeline,
                          source=SimulatedCamera(clip, fps=CAMERA_FPS, loop=True))
            rss = rss_bytes()
            windows.append({"t_s": round(time.perf_counter() - t0, 1),
                            "frames": summary["frames"],
                            "dropped": summary["frames_dropped"], "fps": summary["fps"],
                            "rss_mb": None if rss is None else round(rss / 2**20, 1)})
            log(f"soak {i + 1}/{n_windows}: {summary['fps']:.1f} FPS, "
                f"{summary['frames_dropped']} dropped, RSS {windows[-1]['rss_mb']} MB")
    finally:
        pipeline.close()
    result = {"clip": clip.name, "minutes": minutes, "camera_fps": CAMERA_FPS,
              "window_s": span_s, "backend": load["backend"],
              **summarise(windows, warmup), "samples": windows}
    tmp = out / "soak.json.tmp"
    tmp.write_text(json.dumps(result, indent=1) + "\n")
    tmp.replace(out / "soak.json")
    return result


def report_lines(result: dict[str, Any]) -> list[str]:
    growth = result["rss_growth"]
    met = {True: "met", False: "NOT met", None: "n/a"}[result["met"]]
    drift = result["fps_drift"]
    return [
        f"soak: {result['minutes']:g} min of a {result['camera_fps']:g} FPS camera "
        f"({result['clip']}), {result['frames']} frames, {result['frames_dropped']} dropped "
        f"({100 * result['dropped_share']:.1f}%)",
        f"memory: {result['rss_mb_after_warmup']} MB after warm-up, {result['rss_mb_end']} MB "
        f"at the end, growth "
        f"{'n/a' if growth is None else f'{100 * growth:+.1f}%'} (target < "
        f"{100 * SOAK_GROWTH_TARGET:.0f}%: {met})",
        f"frame rate: {result['fps_after_warmup']} FPS after warm-up, {result['fps_end']} at "
        f"the end ({'n/a' if drift is None else f'{100 * drift:+.1f}%'})",
    ]


def _ignore(_message: str) -> None:
    pass


if __name__ == "__main__":  # pragma: no cover - use `realtime-unmask bench --soak`
    sys.exit("use: realtime-unmask bench --soak MINUTES")
