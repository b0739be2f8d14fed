"""Stand-in nets with known outputs, for tests of the stages around the real ones."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np


def lower_half_segmenter(batch: np.ndarray) -> np.ndarray:
    """Logits: the occluder covers the crop from just above the nose tip down (the lower 60%),
    as a face covering does: over the mouth and the nose."""
    logits = np.full((batch.shape[0], 1, *batch.shape[2:]), -8.0, np.float32)
    logits[:, :, int(batch.shape[2] * 0.4):] = 8.0
    return logits


def white_generator(batch: np.ndarray) -> np.ndarray:
    """Paints the masked region white and leaves the rest as it came."""
    rgb, mask = batch[:, :3], batch[:, 3:4]
    return rgb * (1 - mask) + 1.0 * mask


@dataclass
class StandinEngines:
    """What ``engines.load_engines`` returns (``realtime.pipeline.Nets``), with stand-in nets."""

    segmenter: Callable[[np.ndarray], np.ndarray]
    generator: Callable[[np.ndarray], np.ndarray]
    generator_band: bool = False
    generator_guide: bool = False
    backend: str = "standin"
    warmup_ms: float = 0.0

    def telemetry(self) -> dict[str, Any]:
        return {"backend": self.backend}


def standin_engines(segmenter=lower_half_segmenter, generator=white_generator, *,
                    generator_band: bool = False, generator_guide: bool = False,
                    ) -> StandinEngines:
    """Stand-in nets with known outputs behind the engines' interface."""
    return StandinEngines(segmenter, generator, generator_band, generator_guide)


def tracked_pipeline():
    """The real pipeline and face tracker (MediaPipe) with the stand-in nets: for tests of
    the loop around it, without exporting random weights to ONNX (a minute on a busy CPU)."""
    from realtime.pipeline import PipelineConfig, build_pipeline
    from realtime.tracking import TrackerConfig

    return build_pipeline(PipelineConfig(), engines=standin_engines(), tracker=TrackerConfig())
