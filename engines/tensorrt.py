"""TensorRT engines through Torch-TensorRT's dynamo frontend, cached as ExportedPrograms.

    engine, info = load_tensorrt_engine(cache, source, crop_size=128, max_batch=4,
                                        precision="fp16", log=print)

Build: ``torch_tensorrt.compile(model, ir="dynamo", inputs=[Input(min/opt/max)])`` with a
dynamic batch from 1 to max_batch (optimised for max_batch // 2), checked against the fp32
PyTorch model on the GPU, then ``torch_tensorrt.save(..., output_format="exported_program",
arg_inputs=inputs, retrace=True)`` so the dynamic batch survives serialisation. Load:
``torch_tensorrt.load(path).module()``; no recompilation.

For fp16 the network itself is cast to half between fp32 casts at its input and output. Newer
TensorRT builds strongly typed networks, which take precision from the graph's dtypes rather
than from ``enabled_precisions``; casting the graph gives fp16 kernels under both weak and
strong typing, and the engine's inputs and outputs stay float32.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from engines import probe, telemetry
from engines.base import EngineError, run_batched
from engines.cache import ArtefactCache, ArtefactError, CacheKey, package_versions
from engines.export import check_parity
from engines.weights import ModelSource

PROGRAM_FILE = "model.ep"
FP16_TOLERANCE = 2e-2  # relative to max(1, max |output|); fp16 carries ~3 decimal digits


class TensorRTEngine:
    """A Torch-TensorRT compiled module behind the Engine protocol (numpy in, numpy out)."""

    def __init__(self, module: Any, *, torch: Any, kind: str, crop_size: int,
                 max_batch: int, channels: tuple[int, int]) -> None:
        self.name = "torch-tensorrt"
        self.kind = kind
        self.channels = channels
        self.crop_size = crop_size
        self.max_batch = max_batch
        self.module = module
        self._torch = torch

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return run_batched(batch, self._run, kind=self.kind, crop_size=self.crop_size,
                           chunk=self.max_batch, channels=self.channels)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        torch = self._torch
        with torch.no_grad():
            out = self.module(torch.from_numpy(batch).to("cuda"))
        if isinstance(out, (tuple, list)):
            out = out[0]
        return out.float().cpu().numpy()


def load_tensorrt_engine(
    cache: ArtefactCache,
    source: ModelSource,
    *,
    crop_size: int,
    max_batch: int,
    precision: str,
    log: Callable[[str], None],
) -> tuple[TensorRTEngine, dict[str, Any]]:
    """A cached (or freshly compiled) TensorRT engine; BackendUnavailable if it cannot run."""
    torch = probe.require_torch_cuda()
    torch_tensorrt = probe.import_torch_tensorrt()
    key = tensorrt_cache_key(source, crop_size=crop_size, max_batch=max_batch,
                             precision=precision)

    def build(folder: Path) -> dict[str, Any]:
        log(f"compiling {source.kind} with TensorRT ({precision}, batch 1-{max_batch}); "
            "this takes a minute the first time ...")
        return _compile(torch, torch_tensorrt, source, folder / PROGRAM_FILE,
                        crop_size=crop_size, max_batch=max_batch, precision=precision)

    def load(entry: Path) -> Any:
        try:
            return torch_tensorrt.load(str(entry / PROGRAM_FILE)).module()
        except (RuntimeError, ValueError, OSError, KeyError) as err:
            raise ArtefactError(f"Torch-TensorRT cannot load {PROGRAM_FILE}: {err}") from err

    module, entry, hit = cache.get_or_build(key, build, load)
    engine = TensorRTEngine(module, torch=torch, kind=source.kind, crop_size=crop_size,
                            max_batch=max_batch, channels=source.channels)
    return engine, {"entry": str(entry), "cached": hit, **cache.manifest(entry)["info"]}


def tensorrt_cache_key(source: ModelSource, *, crop_size: int, max_batch: int,
                       precision: str) -> CacheKey:
    """Key for a TensorRT program: weights, shapes, precision, GPU and the TensorRT stack."""
    c_in, _ = source.channels
    fields = {"kind": source.kind, "weights": source.digest, "arch": source.arch_json,
              "input": f"{c_in}x{crop_size}x{crop_size}",
              "batch": f"1..{max_batch} opt {_opt_batch(max_batch)}", "precision": precision,
              "device": telemetry.gpu_name(),
              **package_versions(["torch", "torch_tensorrt", "tensorrt"])}
    return CacheKey(f"{source.kind}-tensorrt", fields)


def _compile(torch: Any, torch_tensorrt: Any, source: ModelSource, path: Path, *,
             crop_size: int, max_batch: int, precision: str) -> dict[str, Any]:
    c_in, _ = source.channels
    reference = source.build().cuda().eval()
    network = source.build()
    if precision == "fp16":
        network = _half_precision(torch, network)
    network = network.cuda().eval()
    shape = (c_in, crop_size, crop_size)
    inputs = [torch_tensorrt.Input(min_shape=(1, *shape), opt_shape=(_opt_batch(max_batch),
                                   *shape), max_shape=(max_batch, *shape),
                                   dtype=torch.float32, name="x")]
    dtype = torch.float16 if precision == "fp16" else torch.float32
    try:
        compiled = torch_tensorrt.compile(network, ir="dynamo", inputs=inputs,
                                          enabled_precisions={dtype}, min_block_size=1)
    except (RuntimeError, ValueError, AssertionError, TypeError) as err:
        raise EngineError(f"TensorRT could not compile the {source.kind}: {err}") from err

    def run(batch: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            out = compiled(torch.from_numpy(batch).cuda())
        return (out[0] if isinstance(out, (tuple, list)) else out).float().cpu().numpy()

    tolerance = FP16_TOLERANCE if precision == "fp16" else 1e-3
    diffs = check_parity(run, reference, kind=source.kind, crop_size=crop_size,
                         batches=sorted({1, max_batch}), tolerance=tolerance,
                         label=f"TensorRT {precision} ({source.kind})")
    torch_tensorrt.save(compiled, str(path), output_format="exported_program",
                        arg_inputs=inputs, retrace=True)
    return {"compiler": f"torch_tensorrt dynamo {precision}", "max_abs_diff": diffs}


def _opt_batch(max_batch: int) -> int:
    return max(1, max_batch // 2)


def _half_precision(torch: Any, module: Any) -> Any:
    """``module`` computing in fp16 while taking and returning fp32 tensors."""

    class HalfPrecision(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = module.half()

        def forward(self, x: Any) -> Any:
            return self.net(x.half()).float()

    return HalfPrecision()

