"""Timed runs of the real pipeline: engine loading (cold and cached), file runs with per-stage
latency, and live runs from a simulated camera.

    engines, warmup = load_backend("onnx", cache_dir)
    file_run(engines, clip, frames=300, scratch_dir=tmp)          # FPS, p50/p95 per stage
    live_run(engines, clip, fps=30, seconds=10)                    # latency, drops

Every run gets a fresh pipeline (tracker and smoothers) that has already seen a few frames of
its clip, so MediaPipe's and the engines' first-call costs stay out of the figures; they are
measured on their own by ``load_backend`` and ``first_frames``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

from benchmarks.machine import Utilisation
from realtime.pipeline import Pipeline, PipelineConfig, build_pipeline
from realtime.smoothing import SmoothingConfig
from realtime.stats import STAGES
from realtime.types import Inpainter

WARM_FRAMES = 3
"""Frames each fresh pipeline processes before its run is timed."""


@dataclass(frozen=True)
class Variant:
    """How the pipeline is set up for one run."""

    inpainter: Inpainter = "gan"
    smoothing: bool = True
    max_faces: int = 4
    want_mask: bool = False

    @property
    def label(self) -> str:
        parts = [] if self.inpainter == "gan" else [self.inpainter]
        if not self.smoothing:
            parts.append("smoothing off")
        return ", ".join(parts)


def load_backend(backend: str, cache_dir: Path, max_batch: int = 4) -> tuple[Any, dict]:
    """Engines for ``backend`` built into an empty ``cache_dir`` (the first-run cost a new
    user pays), then loaded again from it (every later start). Raises EngineError or
    BackendUnavailable when the backend cannot run here."""
    from engines import EngineConfig, load_engines

    config = EngineConfig(backend=backend, max_batch=max_batch, cache_dir=cache_dir)
    start = time.perf_counter()
    load_engines(config, log=_ignore)
    cold_s = time.perf_counter() - start
    start = time.perf_counter()
    engines = load_engines(config, log=_ignore)
    cached_s = time.perf_counter() - start
    return engines, {"backend": engines.backend, "first_load_s": round(cold_s, 2),
                     "cached_load_s": round(cached_s, 2),
                     "engine_warmup_ms": round(engines.warmup_ms, 1),
                     "skipped": list(engines.skipped)}


def make_pipeline(engines: Any, variant: Variant) -> Pipeline:
    """The product's pipeline (``build_pipeline``) for ``variant`` on already-loaded engines,
    which every variant shares."""
    from realtime.tracking import TrackerConfig

    config = PipelineConfig(inpainter=variant.inpainter, want_mask=variant.want_mask,
                            smoothing=SmoothingConfig() if variant.smoothing else None)
    return build_pipeline(config, engines=engines,
                          tracker=TrackerConfig(max_faces=variant.max_faces))


def first_frames(engines: Any, clip: Path, frames: int = 10) -> dict[str, float]:
    """Milliseconds to build a pipeline (MediaPipe graphs), to process its first frame, and
    per frame once warm: what a user waits for before the first picture."""
    from realtime.sources import VideoFileSource

    start = time.perf_counter()
    pipeline = make_pipeline(engines, Variant())
    build_ms = (time.perf_counter() - start) * 1e3
    per_frame_ms = []
    with pipeline, VideoFileSource(clip) as source:
        for frame in islice(source, frames):
            start = time.perf_counter()
            pipeline.process(frame)
            per_frame_ms.append((time.perf_counter() - start) * 1e3)
    steady = sorted(per_frame_ms[1:]) or per_frame_ms
    return {"pipeline_build_ms": round(build_ms, 1), "first_frame_ms": round(per_frame_ms[0], 1),
            "warm_frame_ms_p50": round(steady[len(steady) // 2], 1)}


def file_run(engines: Any, clip: Path, *, frames: int, scratch_dir: Path,
             variant: Variant = Variant()) -> dict[str, Any]:
    """The whole loop on a video file, writing H.264 as a user's run would."""
    from realtime.loop import RunConfig, run

    output = scratch_dir / f"out_{clip.stem}.mp4"
    config = RunConfig(source=str(clip), output=str(output), display=False, progress=False,
                       max_frames=frames)  # the variant is in the pipeline given
    pipeline = _warm_pipeline(engines, clip, variant)
    try:
        with Utilisation() as busy:
            summary = run(config, log=_ignore, pipeline=pipeline)
    finally:
        pipeline.close()
        output.unlink(missing_ok=True)
    return _record(summary, busy.result)


def live_run(engines: Any, clip: Path, *, fps: float, seconds: float,
             variant: Variant = Variant()) -> dict[str, Any]:
    """The clip played as a camera at ``fps`` (looping), no file written: what a webcam user
    sees. Stale frames are dropped by the source, as with a real camera."""
    from realtime.loop import RunConfig, run
    from realtime.sources import SimulatedCamera

    config = RunConfig(source=str(clip), display=False, progress=False,
                       max_frames=max(1, round(fps * seconds)))
    pipeline = _warm_pipeline(engines, clip, variant)
    try:
        with Utilisation() as busy:
            summary = run(config, log=_ignore, pipeline=pipeline,
                          source=SimulatedCamera(clip, fps=fps, loop=True))
    finally:
        pipeline.close()
    record = _record(summary, busy.result)
    dropped = summary["frames_dropped"]
    record.update({"camera_fps": fps, "frames_dropped": dropped,
                   "dropped_share": round(dropped / max(1, dropped + summary["frames"]), 4),
                   "capture_to_output_ms": summary["capture_to_output_ms"]})
    return record


def _warm_pipeline(engines: Any, clip: Path, variant: Variant) -> Pipeline:
    from realtime.sources import VideoFileSource

    pipeline = make_pipeline(engines, variant)
    with VideoFileSource(clip) as source:
        for frame in islice(source, WARM_FRAMES):
            pipeline.process(frame)
    pipeline.reset()
    return pipeline


def _record(summary: dict, utilisation: dict) -> dict[str, Any]:
    return {"fps": summary["fps"], "frames": summary["frames"],
            "faces_per_frame": summary["faces_per_frame"]["mean"],
            "backend": summary["backend"],
            "stages_ms": {s: {k: summary["latency_ms"][s][k] for k in ("p50", "p95")}
                          for s in STAGES},
            "utilisation": utilisation}


def _ignore(_message: str) -> None:
    pass
