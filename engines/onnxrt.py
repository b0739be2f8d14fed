"""ONNX Runtime engines: CPU, CUDA, and CUDA with the TensorRT execution provider.

    engine = load_onnx_engine(cache, source, device="cpu", crop_size=128, max_batch=4,
                              precision="fp32", threads=1, log=print)
    masks = engine(crops)

CPU sessions use every graph optimisation (level ALL: BatchNorm/activation fusion and the NCHWc
layout for AVX2/AVX-512), one intra-op thread by default, sequential execution and no spinning:
the pipeline runs MediaPipe and a video encoder on the other cores, and spinning threads on a
busy two-core machine doubled latency in our measurements. The optimised graph is saved into the
cache entry (``optimized_model_filepath``) and later sessions open it with optimisations off, so
warm loads skip the optimiser. ORT warns that such a model is tied to the CPU it was optimised
on, so CPU cache keys include the CPU model and its ISA flags.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from engines import probe, telemetry
from engines.base import BackendUnavailable, run_batched
from engines.cache import ArtefactCache, ArtefactError, CacheKey, package_versions
from engines.export import (
    DEFAULT_EXPORTER,
    INPUT_NAME,
    OUTPUT_NAME,
    check_parity,
    export_onnx,
    single_torch_thread,
)
from engines.weights import ModelSource

ONNX_FILE, OPTIMIZED_FILE = "model.onnx", "model.optimized.onnx"
# On the CPU, four batch-1 runs beat one batch-4 run by 15-30% (measured on a 2-core Xeon with
# AVX-512: a face's activations stay in cache), so CPU engines run faces one at a time.
CPU_CHUNK = 1


class OnnxRuntimeEngine:
    """One InferenceSession behind the Engine protocol."""

    def __init__(self, session: Any, *, name: str, kind: str, crop_size: int,
                 max_batch: int, chunk: int, channels: tuple[int, int]) -> None:
        self.name = name
        self.kind = kind
        self.channels = channels
        self.crop_size = crop_size
        self.max_batch = max_batch
        self.chunk = chunk
        self.session = session

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return run_batched(batch, self._run, kind=self.kind, crop_size=self.crop_size,
                           chunk=self.chunk, channels=self.channels)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run([OUTPUT_NAME], {INPUT_NAME: batch})[0]


def cpu_session_options(ort: Any, threads: int) -> Any:
    """SessionOptions tuned for low-latency single-face inference next to other busy threads."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    options.log_severity_level = 3  # keep ORT's "optimised model is hardware specific" note quiet
    return options


def load_onnx_engine(
    cache: ArtefactCache,
    source: ModelSource,
    *,
    device: str,
    crop_size: int,
    max_batch: int,
    precision: str,
    threads: int,
    log: Callable[[str], None],
) -> tuple[OnnxRuntimeEngine, dict[str, Any]]:
    """A cached (or freshly exported) ONNX model in a session on ``device`` ("cpu" or "cuda").

    Returns the engine and what happened (cache hit, entry path, parity numbers).
    """
    ort = probe.import_onnxruntime()
    providers, name = ([], "onnxruntime-cpu") if device == "cpu" else gpu_providers(
        ort, precision=precision)

    def open_session(entry: Path) -> Any:
        return _open_cpu(ort, entry, threads) if device == "cpu" else _open_gpu(ort, entry,
                                                                                 providers)

    key = onnx_cache_key(source, device=device, crop_size=crop_size, precision=precision)

    def build(folder: Path) -> dict[str, Any]:
        try:
            model = source.build()
        except BackendUnavailable as err:
            raise BackendUnavailable(f"no cached ONNX {source.kind} for these weights, and "
                                     f"exporting one needs torch ({err})") from err
        log(f"exporting {source.kind} to ONNX ({source.description}) ...")
        report = export_onnx(model, folder / ONNX_FILE, kind=source.kind, crop_size=crop_size,
                             max_batch=max_batch, cpu_upsampling=device == "cpu")
        report["producer"] = package_versions(["torch", "onnx", "onnxruntime"])
        if device == "cpu":
            with single_torch_thread():
                report["optimized_max_abs_diff"] = _optimise_cpu(
                    ort, folder, model, source.kind, crop_size, max_batch, threads)
        return report

    session, entry, hit = cache.get_or_build(key, build, open_session)
    engine = OnnxRuntimeEngine(session, name=name, kind=source.kind, crop_size=crop_size,
                               max_batch=max_batch, chunk=CPU_CHUNK if device == "cpu" else
                               max_batch, channels=source.channels)
    return engine, {"entry": str(entry), "cached": hit, **cache.manifest(entry)["info"]}


def onnx_cache_key(source: ModelSource, *, device: str, crop_size: int,
                   precision: str) -> CacheKey:
    """Key for an ONNX artefact.

    The batch axis is dynamic, so max_batch is not part of it. Versions are those the artefact
    runs under (onnxruntime); the exporter's versions (torch, onnx) are recorded in the manifest
    instead, so that a cached model loads where torch is not installed.
    """
    fields = {"kind": source.kind, "weights": source.digest, "arch": source.arch_json,
              "input": f"Nx{'3' if source.kind == 'segmenter' else '4'}x{crop_size}x{crop_size}",
              "precision": "fp32" if device == "cpu" else precision,
              "variant": "cpu-zero-insert-upsampling" if device == "cpu" else "gpu",
              "exporter": DEFAULT_EXPORTER,
              "device": telemetry.cpu_signature() if device == "cpu" else telemetry.gpu_name(),
              **package_versions(["onnxruntime"])}
    return CacheKey(f"{source.kind}-onnx-{device}", fields)


def gpu_providers(ort: Any, *, precision: str) -> tuple[list[Any], str]:
    """ORT providers for an NVIDIA GPU (TensorRT EP first if present) and the engine name."""
    available = ort.get_available_providers()
    if "CUDAExecutionProvider" not in available:
        raise BackendUnavailable("CUDAExecutionProvider not available (CPU-only onnxruntime; "
                                 "install onnxruntime-gpu with CUDA 12)")
    cuda = ("CUDAExecutionProvider", {"device_id": 0, "cudnn_conv_algo_search": "EXHAUSTIVE"})
    if "TensorrtExecutionProvider" not in available:
        return [cuda, "CPUExecutionProvider"], "onnxruntime-cuda"
    trt = ("TensorrtExecutionProvider", {"device_id": 0,
                                         "trt_fp16_enable": precision == "fp16",
                                         "trt_engine_cache_enable": True})
    return [trt, cuda, "CPUExecutionProvider"], "onnxruntime-tensorrt"


def _optimise_cpu(ort: Any, folder: Path, model: Any, kind: str, crop_size: int,
                  max_batch: int, threads: int) -> dict[str, float]:
    """Save ORT's optimised graph next to the export and check it against PyTorch too."""
    options = cpu_session_options(ort, threads)
    options.optimized_model_filepath = str(folder / OPTIMIZED_FILE)
    ort.InferenceSession(str(folder / ONNX_FILE), options, providers=["CPUExecutionProvider"])
    session = _open_cpu(ort, folder, threads)
    return check_parity(lambda x: session.run([OUTPUT_NAME], {INPUT_NAME: x})[0], model,
                        kind=kind, crop_size=crop_size, batches=sorted({1, max_batch}),
                        tolerance=1e-3, label=f"optimised ONNX Runtime graph ({kind})")


def _open_cpu(ort: Any, entry: Path, threads: int) -> Any:
    options = cpu_session_options(ort, threads)
    # The saved graph is already optimised; running the optimisers again only slows loading.
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return _session(ort, entry / OPTIMIZED_FILE, options, ["CPUExecutionProvider"])


def _open_gpu(ort: Any, entry: Path, providers: list[Any]) -> Any:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    providers = [_with_trt_cache(p, entry) for p in providers]
    session = _session(ort, entry / ONNX_FILE, options, providers)
    wanted = providers[0][0] if isinstance(providers[0], tuple) else providers[0]
    if session.get_providers()[0] != wanted:
        raise BackendUnavailable(f"{wanted} could not be initialised (CUDA/cuDNN/TensorRT "
                                 f"libraries missing?); the session fell back to "
                                 f"{session.get_providers()[0]}")
    return session


def _with_trt_cache(provider: Any, entry: Path) -> Any:
    """TensorRT EP engines live in the entry's folder, so they go when the entry goes."""
    if isinstance(provider, tuple) and provider[0] == "TensorrtExecutionProvider":
        return (provider[0], {**provider[1], "trt_engine_cache_path": str(entry / "trt")})
    return provider


def _session(ort: Any, path: Path, options: Any, providers: list[Any]) -> Any:
    from onnxruntime.capi import onnxruntime_pybind11_state as state

    failures = (state.Fail, state.InvalidArgument, state.InvalidGraph, state.InvalidProtobuf,
                state.NoSuchFile, state.NotImplemented, state.RuntimeException, state.EPFail,
                RuntimeError, ValueError, OSError)
    try:
        return ort.InferenceSession(str(path), options, providers=providers)
    except failures as err:
        raise ArtefactError(f"ONNX Runtime cannot open {path.name}: "
                            f"{str(err).splitlines()[0] if str(err) else type(err).__name__}"
                            ) from err


def describe(info: dict[str, Any]) -> str:
    """One log line about an ONNX artefact."""
    diffs = info.get("optimized_max_abs_diff") or info.get("max_abs_diff") or {}
    return (f"{'cached' if info.get('cached') else 'exported'} {Path(info['entry']).name}, "
            f"max |ORT - PyTorch| {json.dumps(diffs)}")

