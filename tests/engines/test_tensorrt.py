"""Torch-TensorRT engines on an NVIDIA GPU: fp16 compile, parity with PyTorch, cache reuse."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from engines.cache import ArtefactCache
from engines.export import parity_inputs
from engines.tensorrt import FP16_TOLERANCE, load_tensorrt_engine
from engines.weights import resolve_weights

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def gpu() -> None:
    if not torch.cuda.is_available():
        pytest.skip(f"no NVIDIA GPU: torch {torch.__version__} sees no CUDA device")
    try:
        import torch_tensorrt  # noqa: F401
    except ImportError:
        pytest.skip("no NVIDIA GPU stack: torch_tensorrt is not installed")


@pytest.mark.parametrize("kind", ["segmenter", "generator"])
def test_fp16_engine_matches_pytorch_and_is_cached(gpu: None, tmp_path: Path, kind: str) -> None:
    cache = ArtefactCache(tmp_path, log=lambda s: None)
    source = resolve_weights(kind, None, crop_size=128)
    engine, info = load_tensorrt_engine(cache, source, crop_size=128, max_batch=4,
                                        precision="fp16", log=lambda s: None)
    assert engine.name == "torch-tensorrt" and not info["cached"]
    assert set(info["max_abs_diff"]) == {"1", "4"}
    model = source.build()
    for n in (1, 3, 4):
        batch = parity_inputs(kind, n, 128, seed=7 + n)
        with torch.inference_mode():
            expected = model(torch.from_numpy(batch)).numpy()
        got = engine(batch)
        assert got.shape == expected.shape and got.dtype == np.float32
        limit = FP16_TOLERANCE * max(1.0, float(np.abs(expected).max()))
        assert float(np.abs(got - expected).max()) <= limit
    again, info = load_tensorrt_engine(cache, source, crop_size=128, max_batch=4,
                                       precision="fp16", log=lambda s: None)
    assert info["cached"]
    batch = parity_inputs(kind, 2, 128)
    np.testing.assert_allclose(again(batch), engine(batch), rtol=0, atol=1e-3)
