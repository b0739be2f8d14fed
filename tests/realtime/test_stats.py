"""Per-stage timings summarised for --stats-json."""

from __future__ import annotations

import pytest

from realtime.stats import STAGES, RunStats, percentiles


@pytest.mark.parametrize(("values", "expected"), [
    ([], {"p50": 0.0, "p95": 0.0, "mean": 0.0, "n": 0}),
    ([4.0], {"p50": 4.0, "p95": 4.0, "mean": 4.0, "n": 1}),
    ([1.0, 2.0, 3.0, 4.0, 100.0], {"p50": 3.0, "p95": 80.8, "mean": 22.0, "n": 5}),
])
def test_percentiles(values: list[float], expected: dict) -> None:
    assert percentiles(values) == expected


def test_summary_counts_frames_faces_and_every_stage() -> None:
    stats = RunStats()
    stats.add_frame(0, {"decode": 1.0, "detect": 2.0})
    stats.add_frame(2, {"decode": 3.0, "detect": 4.0, "segment": 5.0})
    stats.add("encode", 6.0)
    stats.finish()
    summary = stats.summary()
    assert summary["frames"] == 2 and summary["frames_with_faces"] == 1
    assert summary["faces_per_frame"] == {"mean": 1.0, "max": 2}
    assert list(summary["latency_ms"]) == list(STAGES)  # every stage, in pipeline order
    assert summary["latency_ms"]["detect"]["n"] == 2
    assert summary["latency_ms"]["composite"]["n"] == 0  # a stage that never ran reads zero
    assert summary["capture_to_output_ms"] is None  # no live source
    assert summary["fps"] > 0


def test_an_empty_run_summarises_to_zeros() -> None:
    summary = RunStats().summary()
    assert summary["frames"] == 0 and summary["faces_per_frame"] == {"mean": 0.0, "max": 0}
