"""Per-stage timings and counters of a run, summarised as p50/p95 for ``--stats-json``.

    stats = RunStats(stages=STAGES)
    stats.add("detect", 3.2)
    stats.summary()["latency_ms"]["detect"]   # {"p50": ..., "p95": ..., "mean": ..., "n": ...}
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

STAGES = ("decode", "detect", "align", "segment", "inpaint", "composite", "encode")
"""The stages reported, in pipeline order."""


def percentiles(values_ms: list[float]) -> dict[str, float]:
    """p50, p95 and mean of a list of milliseconds (zeros when the list is empty)."""
    if not values_ms:
        return {"p50": 0.0, "p95": 0.0, "mean": 0.0, "n": 0}
    a = np.asarray(values_ms, dtype=np.float64)
    return {"p50": round(float(np.percentile(a, 50)), 3),
            "p95": round(float(np.percentile(a, 95)), 3),
            "mean": round(float(a.mean()), 3), "n": int(a.size)}


@dataclass
class RunStats:
    """Counters and per-stage samples for one run."""

    stages: tuple[str, ...] = STAGES
    frames: int = 0
    frames_with_faces: int = 0
    faces_per_frame: list[int] = field(default_factory=list)
    stage_ms: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    latency_ms: list[float] = field(default_factory=list)
    """Capture-to-output latency, for live sources."""
    t_start: float = field(default_factory=time.perf_counter)
    t_end: float | None = None

    def add(self, stage: str, ms: float) -> None:
        self.stage_ms[stage].append(ms)

    def add_frame(self, n_faces: int, timings_ms: dict[str, float]) -> None:
        self.frames += 1
        self.frames_with_faces += n_faces > 0
        self.faces_per_frame.append(n_faces)
        for stage, ms in timings_ms.items():
            self.stage_ms[stage].append(ms)

    def finish(self) -> None:
        self.t_end = time.perf_counter()

    @property
    def elapsed_s(self) -> float:
        return (self.t_end or time.perf_counter()) - self.t_start

    @property
    def fps(self) -> float:
        return self.frames / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def summary(self) -> dict:
        faces = np.asarray(self.faces_per_frame or [0])
        return {
            "frames": self.frames,
            "frames_with_faces": self.frames_with_faces,
            "faces_per_frame": {"mean": round(float(faces.mean()), 3), "max": int(faces.max())},
            "elapsed_s": round(self.elapsed_s, 3),
            "fps": round(self.fps, 2),
            "latency_ms": {s: percentiles(self.stage_ms.get(s, [])) for s in self.stages},
            "capture_to_output_ms": percentiles(self.latency_ms) if self.latency_ms else None,
        }
