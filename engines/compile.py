"""Ahead-of-time export and compilation, for ``realtime-unmask compile``.

    report = compile_models(EngineConfig(precision="fp16", max_batch=4), log=print)
    report["onnx-cpu"]["generator"]["max_abs_diff"]   # {"1": 9.5e-07, "4": 1.1e-06}
    report["onnx-cuda"]      # {"skipped": "CUDAExecutionProvider not available ..."}
    report["tensorrt"]       # {"skipped": "no CUDA GPU visible to torch ..."}

Exports both models to ONNX (graph check plus parity with PyTorch) for ONNX Runtime on the CPU,
and on the GPU where ONNX Runtime has CUDA, and builds TensorRT engines where an NVIDIA GPU and
torch_tensorrt are present. Everything lands in the same cache load_engines reads, so the first
real run starts without exporting.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from engines import onnxrt
from engines.base import BackendUnavailable, EngineError
from engines.cache import ArtefactCache
from engines.config import EngineConfig, default_cache_dir
from engines.load import DEFAULT_ORT_THREADS, KINDS
from engines.tensorrt import load_tensorrt_engine
from engines.weights import resolve_weights

Progress = Callable[[int, int, str], None]
"""progress(step, total, label), called before each model is built."""
SECTIONS = ("onnx-cpu", "onnx-cuda", "tensorrt")


def compile_models(
    config: EngineConfig,
    log: Callable[[str], None] = print,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Build every artefact this machine can use; return what was built where, or why not.

    Raises EngineError if an export fails its checks (nothing half-built is left in the cache).
    """
    cache_dir = config.cache_dir or default_cache_dir()
    cache = ArtefactCache(cache_dir, log)
    sources = {kind: resolve_weights(kind, config.segmenter_checkpoint if kind == "segmenter"
                                     else config.generator_checkpoint,
                                     crop_size=config.crop_size,
                                     random=config.random_weights) for kind in KINDS}
    targets = [("onnx", "cpu"), ("onnx", "cuda"), ("tensorrt", "cuda")]  # order of SECTIONS
    total, step = len(targets) * len(KINDS), 0
    report: dict[str, Any] = {"cache_dir": str(cache_dir), "crop_size": config.crop_size,
                              "max_batch": config.max_batch, "precision": config.precision,
                              "weights": {k: s.description for k, s in sources.items()}}
    common = {"crop_size": config.crop_size, "max_batch": config.max_batch,
              "precision": config.precision, "log": log}
    for backend, device in targets:
        section = f"{backend}-{device}" if backend == "onnx" else backend
        results: dict[str, Any] = {}
        for kind in KINDS:
            step += 1
            if progress is not None:
                progress(step, total, f"{section} {kind}")
            if "skipped" in results:
                continue
            try:
                if backend == "onnx":
                    _, results[kind] = onnxrt.load_onnx_engine(
                        cache, sources[kind], device=device,
                        threads=config.threads or DEFAULT_ORT_THREADS, **common)
                else:
                    _, results[kind] = load_tensorrt_engine(cache, sources[kind], **common)
            except BackendUnavailable as why:
                results = {"skipped": str(why)}
                log(f"{section} skipped: {why}")
        report[section] = results
    reasons = [f"{s}: {report[s]['skipped']}" for s in SECTIONS if "skipped" in report[s]]
    if len(reasons) == len(SECTIONS):
        raise EngineError(f"nothing could be compiled here ({'; '.join(reasons)})")
    return report
