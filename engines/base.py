"""What every inference engine looks like, and the checks they share.

    engine = engines.segmenter            # any backend
    logits = engine(crops)                # (N, 3, S, S) float32 in [-1, 1] -> (N, 1, S, S)

An engine takes and returns float32 NCHW C-contiguous numpy arrays. Batches larger than a
backend takes in one call are run in chunks and an empty batch returns an empty result, so
callers never need to know a backend's limits.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np

# Input and output channels per model kind (a guided generator reads one more: ``channels``).
CHANNELS = {"segmenter": (3, 1), "generator": (4, 3)}


def channels(kind: str, guide: bool = False) -> tuple[int, int]:
    """(input, output) channels of a model of ``kind``; ``guide``: a guided generator, whose
    fifth input channel is the landmark guide (``realtime.face.guide``)."""
    c_in, c_out = CHANNELS[kind]
    return (c_in + 1 if guide and kind == "generator" else c_in), c_out

BAND_LEVEL = 0.5
"""A band generator's mask channel on the edge ring it sees and repaints
(``engines.models.MaskInpainter``); 1 marks the sure covering, 0 the rest."""
BAND_INNER_PX = 1
"""The ring reaches this far inside the segmented edge (the outer width is the grow)."""


def generator_mask(segmented_hw: np.ndarray, paint_hw: np.ndarray) -> np.ndarray:
    """A band generator's mask channel (N x S x S float32) from the segmented coverings and
    the region to repaint (the segmentation grown, ``paint_hw`` >= ``segmented_hw``): 1 on the
    segmentation shrunk by ``BAND_INNER_PX``, ``BAND_LEVEL`` on the rest of the region.
    Segmenters stop a pixel or two off a real edge, either way; on the ring the net sees the
    pixels and decides, so a missed rim is painted and real skin is kept."""
    import cv2

    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * BAND_INNER_PX + 1,) * 2)
    core = np.stack([cv2.erode(m.astype(np.float32), kernel) for m in segmented_hw]) \
        if len(segmented_hw) else np.zeros_like(paint_hw, np.float32)
    paint = (paint_hw > 0.5).astype(np.float32)
    core = np.minimum(core, paint)
    return (core + BAND_LEVEL * (paint - core)).astype(np.float32)


class EngineError(Exception):
    """An engine cannot be built or loaded; the message says what to do about it."""


class BackendUnavailable(Exception):
    """A backend cannot run on this machine; the message says why (it becomes a 'skipped' line)."""


class Engine(Protocol):
    """One model behind one backend."""

    name: str
    """The backend that runs, e.g. "onnxruntime-cpu", "torch-tensorrt", "torch-cuda"."""
    max_batch: int
    """The batch size the engine was built and warmed up for (--max-faces)."""
    channels: tuple[int, int]
    """(input, output) channels (``channels``)."""

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """(N, C_in, S, S) float32 -> (N, C_out, S, S) float32."""
        ...


def run_batched(
    batch: np.ndarray,
    run: Callable[[np.ndarray], np.ndarray],
    *,
    kind: str,
    crop_size: int,
    chunk: int,
    channels: tuple[int, int],
) -> np.ndarray:
    """Validate ``batch`` against the (input, output) ``channels``, run it through ``run`` in
    chunks of at most ``chunk``, join outputs."""
    c_in, c_out = channels
    if batch.ndim != 4 or batch.shape[1:] != (c_in, crop_size, crop_size):
        raise ValueError(f"the {kind} expects a batch of shape (N, {c_in}, {crop_size}, "
                         f"{crop_size}), got {batch.shape}")
    batch = np.ascontiguousarray(batch, dtype=np.float32)
    n = batch.shape[0]
    if n == 0:
        return np.empty((0, c_out, crop_size, crop_size), np.float32)
    if n <= chunk:
        return np.ascontiguousarray(run(batch), dtype=np.float32)
    parts = [run(batch[i:i + chunk]) for i in range(0, n, chunk)]
    return np.ascontiguousarray(np.concatenate(parts), dtype=np.float32)
