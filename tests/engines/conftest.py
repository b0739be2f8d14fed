"""Shared fixtures: one ONNX cache per test session, so each model is exported only once, and
a machine without a GPU for tests about the CPU backends and the fallbacks."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from engines import BackendUnavailable, EngineConfig, Engines, load_engines, onnxrt

MAX_BATCH = 3


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread() -> None:
    """Eager references in one thread: two OpenMP threads on a busy two-core box stall ~100x."""
    import torch

    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def onnx_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache folder holding both random-init models exported for ONNX Runtime on the CPU."""
    return tmp_path_factory.mktemp("engine-cache")


def _hide_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    """Makes torch and ONNX Runtime see no NVIDIA GPU, whatever this machine has."""
    import torch

    def cpu_only_onnxruntime(ort: object, *, precision: str) -> None:
        raise BackendUnavailable("CUDAExecutionProvider not available (GPUs hidden by the test)")

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(onnxrt, "gpu_providers", cpu_only_onnxruntime)


@pytest.fixture
def no_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """This machine as one without an NVIDIA GPU, for the CPU fallbacks and their reasons."""
    _hide_gpus(monkeypatch)


@pytest.fixture(scope="session")
def cpu_engines(onnx_cache: Path) -> Iterator[Engines]:
    """Both models on onnxruntime-cpu, exported (with parity at batch 1 and 3) into the cache;
    on the CPU also where a GPU is present (a session's device is chosen when it is built)."""
    with pytest.MonkeyPatch.context() as patch:
        _hide_gpus(patch)
        engines = load_engines(EngineConfig(backend="onnx", max_batch=MAX_BATCH,
                                            cache_dir=onnx_cache, random_weights=True),
                               log=lambda line: None)
    yield engines
