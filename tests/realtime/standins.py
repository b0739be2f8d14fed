"""Stand-in nets with known outputs, for tests of the stages around the real ones."""

from __future__ import annotations

from types import SimpleNamespace

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


def standin_engines(segmenter=lower_half_segmenter, generator=white_generator, *,
                    generator_band: bool = False) -> SimpleNamespace:
    """What ``engines.load_engines`` returns, with stand-in nets."""
    return SimpleNamespace(segmenter=segmenter, generator=generator,
                           generator_band=generator_band)


def tracked_pipeline():
    """The real pipeline and face tracker (MediaPipe) with the stand-in nets: for tests of
    the loop around it, without exporting random weights to ONNX (a minute on a busy CPU)."""
    from realtime.pipeline import Pipeline, PipelineConfig
    from realtime.tracking import FaceTracker, TrackerConfig

    return Pipeline(PipelineConfig(), engines=standin_engines(),
                    tracker=FaceTracker(TrackerConfig()))
