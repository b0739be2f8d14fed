"""Inference engines for the segmenter and the generator, behind one ``Engine`` protocol.

    from engines import EngineConfig, load_engines
    engines = load_engines(EngineConfig(backend="auto", max_batch=4))
    logits = engines.segmenter(crops)          # float32 NCHW in, float32 NCHW out

Backends: Torch-TensorRT, ONNX Runtime (CUDA / TensorRT EP / CPU) and PyTorch. Heavy packages
(torch, torch_tensorrt, onnxruntime, pynvml) are imported only inside the functions that use
them, so ``--backend onnx`` runs from a cached model where torch is not installed.

The bottom layer: the networks (``engines.models``) and their checkpoint format
(``engines.checkpoint``) live here too, and nothing here imports realtime, training or
benchmarks (``tests/test_layers.py``).
"""

from __future__ import annotations

from engines.base import CHANNELS, BackendUnavailable, Engine, EngineError
from engines.cache import ArtefactCache, ArtefactError, CacheKey
from engines.compile import compile_models
from engines.config import Backend, EngineConfig, Precision, default_cache_dir
from engines.export import export_onnx, rewrite_upsampling
from engines.load import Engines, load_engines

__all__ = [
    "CHANNELS",
    "ArtefactCache",
    "ArtefactError",
    "Backend",
    "BackendUnavailable",
    "CacheKey",
    "Engine",
    "EngineConfig",
    "EngineError",
    "Engines",
    "Precision",
    "compile_models",
    "default_cache_dir",
    "export_onnx",
    "load_engines",
    "rewrite_upsampling",
]
