"""Pick the fastest backend that runs here and load both models on it.

    engines = load_engines(EngineConfig(backend="auto"), log=print)
    # tensorrt skipped: no CUDA GPU visible to torch (2.13.0+cpu, a CPU-only build)
    # onnxruntime-cuda skipped: CUDAExecutionProvider not available (CPU-only onnxruntime ...)
    # engines: onnxruntime-cpu (fp32, 1 thread), warm-up 41 ms
    masks = engines.segmenter(crops)

``auto`` tries Torch-TensorRT, then ONNX Runtime on an NVIDIA GPU (with its TensorRT execution
provider where present), then ONNX Runtime on the CPU, then PyTorch. ``onnx`` tries the two ONNX
Runtime options, ``tensorrt`` and ``torch`` only themselves; when nothing in the list can run,
EngineError says why each option could not.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engines import onnxrt, telemetry
from engines.base import BackendUnavailable, Engine, EngineError
from engines.cache import ArtefactCache
from engines.config import EngineConfig, default_cache_dir
from engines.tensorrt import load_tensorrt_engine
from engines.torch_backend import load_torch_engine
from engines.weights import ModelSource, resolve_weights

KINDS = ("segmenter", "generator")
DEFAULT_ORT_THREADS = 1
GPU_BACKENDS = ("torch-tensorrt", "onnxruntime-cuda", "onnxruntime-tensorrt", "torch-cuda")


@dataclass
class Engines:
    """The two loaded models and how they came to be."""

    segmenter: Engine
    """(N, 3, S, S) RGB in [-1, 1] -> (N, 1, S, S) mask logits."""
    generator: Engine
    """(N, 4, S, S) masked RGB + mask -> (N, 3, S, S) RGB in [-1, 1]."""
    backend: str
    """What runs, e.g. "onnxruntime-cpu"."""
    skipped: list[str] = field(default_factory=list)
    """Why each faster backend did not run, one line each."""
    warmup_ms: float = 0.0
    """Time spent on warm-up runs at load (kept out of the pipeline's statistics)."""
    details: dict[str, Any] = field(default_factory=dict)
    """Per model: cache entry, whether it was cached, parity numbers."""
    generator_band: bool = False
    """The generator takes the three-level mask of ``engines.base.generator_mask`` (it sees
    and repaints an edge ring); else a {0, 1} mask of the whole region to paint."""
    generator_guide: bool = False
    """The generator also reads the landmark guide (``realtime.face.guide``)."""

    def telemetry(self) -> dict[str, Any]:
        """GPU name, memory and utilisation on NVIDIA backends; CPU model and cores otherwise."""
        if self.backend in GPU_BACKENDS:
            gpu = telemetry.gpu_telemetry()
            if gpu is not None:
                return {"backend": self.backend, **gpu}
        return {"backend": self.backend, **telemetry.cpu_telemetry()}


@dataclass(frozen=True)
class _Attempt:
    label: str
    load: Callable[[], tuple[dict[str, Engine], dict[str, Any]]]


def load_engines(config: EngineConfig, log: Callable[[str], None] = print) -> Engines:
    """Load the segmenter and generator on the best backend ``config`` allows, warmed up.

    Raises EngineError when no allowed backend can run (one line per reason), and
    engines.checkpoint.CheckpointError for an unreadable or mismatched checkpoint.
    """
    cache = ArtefactCache(config.cache_dir or default_cache_dir(), log)
    sources = {kind: resolve_weights(kind, _checkpoint(config, kind), crop_size=config.crop_size,
                                     random=config.random_weights) for kind in KINDS}
    for source in sources.values():
        log(f"{source.kind}: {source.description}")
    skipped: list[str] = []
    for attempt in _attempts(config, cache, sources, log):
        try:
            models, details = attempt.load()
        except (BackendUnavailable, EngineError) as why:
            line = f"{attempt.label} skipped: {why}"
            skipped.append(line)
            log(line)
            continue
        generator_arch = sources["generator"].metadata["arch"]
        engines = Engines(models["segmenter"], models["generator"],
                          backend=models["segmenter"].name, skipped=skipped, details=details,
                          generator_band=bool(generator_arch.get("band")),
                          generator_guide=bool(generator_arch.get("guide")))
        engines.warmup_ms = warm_up(engines, config.crop_size, config.max_batch)
        log(f"engines: {engines.backend} ({_precision_note(config, engines.backend)}), "
            f"warm-up {engines.warmup_ms:.0f} ms")
        return engines
    raise EngineError(f"--backend {config.backend} cannot run here: {'; '.join(skipped)}")


def warm_up(engines: Engines, crop_size: int, max_batch: int) -> float:
    """Run each model once at batch 1 and once at max_batch; milliseconds spent."""
    start = time.perf_counter()
    for kind in KINDS:
        engine = getattr(engines, kind)
        for n in sorted({1, max_batch}):
            engine(np.zeros((n, engine.channels[0], crop_size, crop_size), np.float32))
    return (time.perf_counter() - start) * 1e3


def _attempts(config: EngineConfig, cache: ArtefactCache, sources: dict[str, ModelSource],
              log: Callable[[str], None]) -> list[_Attempt]:
    common = {"crop_size": config.crop_size, "max_batch": config.max_batch,
              "precision": config.precision}

    def tensorrt() -> tuple[dict[str, Engine], dict[str, Any]]:
        return _both(sources, lambda s: load_tensorrt_engine(cache, s, log=log, **common))

    def onnx_on(device: str) -> Callable[[], tuple[dict[str, Engine], dict[str, Any]]]:
        threads = config.threads or DEFAULT_ORT_THREADS

        def load() -> tuple[dict[str, Engine], dict[str, Any]]:
            models, details = _both(sources, lambda s: onnxrt.load_onnx_engine(
                cache, s, device=device, threads=threads, log=log, **common))
            for kind in KINDS:
                log(f"{kind}: {onnxrt.describe(details[kind])}")
            return models, details
        return load

    def torch() -> tuple[dict[str, Engine], dict[str, Any]]:
        return _both(sources, lambda s: (load_torch_engine(s, threads=config.threads,
                                                           **common), {}))

    attempts = {"tensorrt": _Attempt("tensorrt", tensorrt),
                "onnx-gpu": _Attempt("onnxruntime-cuda", onnx_on("cuda")),
                "onnx-cpu": _Attempt("onnxruntime-cpu", onnx_on("cpu")),
                "torch": _Attempt("torch", torch)}
    order = {"auto": ["tensorrt", "onnx-gpu", "onnx-cpu", "torch"],
             "tensorrt": ["tensorrt"], "onnx": ["onnx-gpu", "onnx-cpu"], "torch": ["torch"]}
    return [attempts[name] for name in order[config.backend]]


def _both(sources: dict[str, ModelSource],
          load: Callable[[ModelSource], tuple[Engine, dict[str, Any]]]
          ) -> tuple[dict[str, Engine], dict[str, Any]]:
    models, details = {}, {}
    for kind in KINDS:
        models[kind], details[kind] = load(sources[kind])
    return models, details


def _checkpoint(config: EngineConfig, kind: str) -> Any:
    return config.segmenter_checkpoint if kind == "segmenter" else config.generator_checkpoint


def _precision_note(config: EngineConfig, backend: str) -> str:
    if backend in ("onnxruntime-cpu", "torch-cpu"):
        threads = config.threads or DEFAULT_ORT_THREADS
        note = "fp32" if config.precision == "fp32" else "fp32; fp16 applies to GPUs only"
        return f"{note}, {threads} thread{'s' if threads != 1 else ''}"
    if backend == "onnxruntime-cuda":
        return "fp32 on the CUDA execution provider"
    return config.precision
