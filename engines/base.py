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

# Input and output channels per model kind.
CHANNELS = {"segmenter": (3, 1), "generator": (4, 3)}


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
) -> np.ndarray:
    """Validate ``batch``, run it through ``run`` in chunks of at most ``chunk``, join outputs."""
    c_in, c_out = CHANNELS[kind]
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
