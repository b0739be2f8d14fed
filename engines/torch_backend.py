"""The PyTorch backend: eager execution on CUDA or the CPU, the fallback that always works.

    engine = load_torch_engine(source, crop_size=128, max_batch=4, precision="fp16")
    out = engine(batch)       # "torch-cuda" (fp16 if asked) or "torch-cpu" (fp32)

Models run in eval mode under ``torch.inference_mode`` with channels_last tensors, the layout
cuDNN's fastest convolution kernels use.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from engines import probe
from engines.base import run_batched
from engines.weights import ModelSource

DEFAULT_CPU_THREADS = 1


class TorchEngine:
    """An eager PyTorch module behind the Engine protocol."""

    def __init__(self, module: Any, *, torch: Any, device: str, dtype: Any, kind: str,
                 crop_size: int, max_batch: int, channels: tuple[int, int]) -> None:
        self.name = f"torch-{device}"
        self.kind = kind
        self.channels = channels
        self.crop_size = crop_size
        self.max_batch = max_batch
        self.module = module
        self._torch = torch
        self._device = device
        self._dtype = dtype

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return run_batched(batch, self._run, kind=self.kind, crop_size=self.crop_size,
                           chunk=self.max_batch, channels=self.channels)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        torch = self._torch
        with torch.inference_mode():
            x = torch.from_numpy(batch).to(self._device, self._dtype,
                                           memory_format=torch.channels_last)
            return self.module(x).float().contiguous().cpu().numpy()


def load_torch_engine(source: ModelSource, *, crop_size: int, max_batch: int, precision: str,
                      threads: int | None = None) -> TorchEngine:
    """The model on CUDA when torch sees a GPU, else on the CPU (always fp32 there).

    On the CPU, torch's process-wide intra-op thread count is set to ``threads`` (default 1).
    With one thread per core and another busy process on the machine, OpenMP's barriers stall:
    on two cores with one taken, a batch-1 segmenter call took 460-690 ms with 2 threads and
    5-6 ms with 1.
    """
    torch = probe.import_torch()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.float16 if device == "cuda" and precision == "fp16" else torch.float32
    if device == "cpu" or threads is not None:
        torch.set_num_threads(threads or DEFAULT_CPU_THREADS)
    module = source.build().to(device, dtype, memory_format=torch.channels_last).eval()
    return TorchEngine(module, torch=torch, device=device, dtype=dtype, kind=source.kind,
                       crop_size=crop_size, max_batch=max_batch, channels=source.channels)
