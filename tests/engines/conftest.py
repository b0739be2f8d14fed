"""Shared fixtures: one ONNX cache per test session, so each model is exported only once."""

from __future__ import annotations

from pathlib import Path

import pytest

from engines import EngineConfig, Engines, load_engines

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


@pytest.fixture(scope="session")
def cpu_engines(onnx_cache: Path) -> Engines:
    """Both models on onnxruntime-cpu, exported (with parity at batch 1 and 3) into the cache."""
    return load_engines(EngineConfig(backend="onnx", max_batch=MAX_BATCH, cache_dir=onnx_cache,
                                     random_weights=True),
                        log=lambda line: None)
