"""Export a model to ONNX, check the graph, and prove ONNX Runtime computes what PyTorch does.

    report = export_onnx(model, Path("seg.onnx"), kind="segmenter", crop_size=128,
                         max_batch=4, cpu_upsampling=True)
    report["max_abs_diff"]    # {"1": 2.4e-07, "4": 3.1e-07}

The graph has a dynamic batch axis ("batch") and a fixed crop size, opset 18. Two exporters:

- "torchscript" (default): ``torch.onnx.export(dynamo=False)`` followed by the onnxscript
  optimizer (constant folding, shape-arithmetic removal; the same pass the dynamo exporter runs).
  0.6-1.8 s per model on two busy cores.
- "dynamo": the torch.export based exporter. Same ORT speed and parity (measured within noise:
  3.34 vs 3.30 ms segmenter, 3.42 vs 3.40 ms generator at batch 1), but 4-8 s per model here,
  which would be most of a cold start and of the test suite. torch warns that the TorchScript
  exporter will be removed; torch is pinned (2.13.0); when that changes, flip DEFAULT_EXPORTER.

Without the optimizer pass the TorchScript graph is 15-20% slower in ORT (its reshape targets
are computed at run time from Shape/Gather chains).

``cpu_upsampling=True`` replaces every depthwise ``ConvTranspose2d(k=4, s=2, p=1)`` with the
same computation written as zero-insertion followed by a depthwise 4x4 convolution: ORT's CPU
ConvTranspose runs one small GEMM plus col2im per channel group and spends ~60% of both models'
time there; the rewrite roughly halves end-to-end latency. The parity check below compares the
rewritten graph against the original PyTorch module, so the rewrite is verified on every export.
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from engines import probe
from engines.base import BAND_LEVEL, EngineError, channels

if TYPE_CHECKING:
    from torch import nn

OPSET = 18
Exporter = Literal["torchscript", "dynamo"]
DEFAULT_EXPORTER: Exporter = "torchscript"
FP32_TOLERANCE = 1e-3
INPUT_NAME, OUTPUT_NAME = "input", "output"


def export_onnx(
    model: nn.Module,
    path: Path,
    *,
    kind: str,
    crop_size: int,
    max_batch: int,
    cpu_upsampling: bool,
    exporter: Exporter = DEFAULT_EXPORTER,
    tolerance: float = FP32_TOLERANCE,
) -> dict[str, Any]:
    """Write ``model`` as ONNX to ``path``, check it, compare ORT with PyTorch; return a report."""
    torch = probe.import_torch()
    ort = probe.import_onnxruntime()
    import onnx

    reference = model.eval()
    exported = rewrite_upsampling(reference) if cpu_upsampling else reference
    c_in, _ = channels(kind, bool(getattr(model, "guide", False)))
    example = torch.zeros(2, c_in, crop_size, crop_size)  # batch 2: torch.export specialises 1
    with single_torch_thread(), _quiet_exporter():
        if exporter == "dynamo":
            torch.onnx.export(exported, (example,), str(path), input_names=[INPUT_NAME],
                              output_names=[OUTPUT_NAME], opset_version=OPSET, dynamo=True,
                              dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=64)},),
                              external_data=False)
        else:
            _export_torchscript(torch, onnx, exported, example, path)
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except onnx.checker.ValidationError as err:
        raise EngineError(f"the exported {kind} ONNX graph is invalid: {err}") from err
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # parity only; spinning threads would slow a busy box
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    with single_torch_thread():
        diffs = check_parity(lambda x: session.run([OUTPUT_NAME], {INPUT_NAME: x})[0], reference,
                             kind=kind, crop_size=crop_size, batches=sorted({1, max_batch}),
                             tolerance=tolerance, label=f"ONNX Runtime ({kind})")
    return {"exporter": f"{exporter} opset {OPSET}", "cpu_upsampling": cpu_upsampling,
            "max_abs_diff": diffs}


def _export_torchscript(torch: Any, onnx: Any, model: Any, example: Any, path: Path) -> None:
    from onnxscript import optimizer

    axes = {INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}}
    torch.onnx.export(model, (example,), str(path), input_names=[INPUT_NAME],
                      output_names=[OUTPUT_NAME], dynamic_axes=axes, opset_version=OPSET,
                      dynamo=False)
    onnx.save(optimizer.optimize(onnx.load(str(path))), str(path))


def check_parity(
    run: Callable[[np.ndarray], np.ndarray],
    model: nn.Module,
    *,
    kind: str,
    crop_size: int,
    batches: list[int],
    tolerance: float,
    label: str,
    seed: int = 0,
) -> dict[str, float]:
    """Max abs difference between ``run`` and the fp32 PyTorch model per batch size.

    Raises EngineError when a difference exceeds ``tolerance`` times max(1, max |reference|).
    """
    torch = probe.import_torch()
    diffs = {}
    for n in batches:
        batch = parity_inputs(kind, n, crop_size, seed=seed + n,
                              guide=bool(getattr(model, "guide", False)))
        device = next(model.parameters()).device
        with torch.inference_mode():
            expected = model(torch.from_numpy(batch).to(device)).float().cpu().numpy()
        got = np.asarray(run(batch), dtype=np.float32)
        if got.shape != expected.shape:
            raise EngineError(f"{label} returned shape {got.shape} for batch {n}, "
                              f"expected {expected.shape}")
        diff = float(np.max(np.abs(got - expected)))
        limit = tolerance * max(1.0, float(np.max(np.abs(expected))))
        if not diff <= limit:  # also catches NaN
            raise EngineError(f"{label} differs from PyTorch by {diff:.3g} at batch {n} "
                              f"(allowed {limit:.3g}); the exported model is not trustworthy")
        diffs[str(n)] = diff
    return diffs


def parity_inputs(kind: str, n: int, crop_size: int, *, seed: int = 0,
                  guide: bool = False) -> np.ndarray:
    """Random inputs shaped like real ones: RGB in [-1, 1], plus for the generator a mask of
    0, 1 and the band ring's level (``engines.base.generator_mask``), RGB zero where it is 1,
    and with ``guide`` a guide channel in [0, 1]."""
    rng = np.random.default_rng(seed)
    c_in, _ = channels(kind, guide)
    batch = rng.uniform(-1, 1, (n, c_in, crop_size, crop_size)).astype(np.float32)
    if kind == "generator":
        mask = rng.choice(np.float32([0, BAND_LEVEL, 1]), (n, 1, crop_size, crop_size),
                          p=(0.45, 0.1, 0.45))
        batch[:, :3] *= mask < 1
        batch[:, 3:4] = mask
        batch[:, 4:] = (batch[:, 4:] + 1) / 2
    return batch


def rewrite_upsampling(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with depthwise 4x4/2 transposed convs written as zero-insert + conv."""
    from torch import nn

    model = copy.deepcopy(model)
    for parent in model.modules():
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.ConvTranspose2d) and _is_depthwise_up2(child):
                setattr(parent, name, _zero_insert_upsample(child))
    return model


def _is_depthwise_up2(conv: Any) -> bool:
    c = conv.in_channels
    return (conv.out_channels == c and conv.groups == c and conv.kernel_size == (4, 4)
            and conv.stride == (2, 2) and conv.padding == (1, 1)
            and conv.output_padding == (0, 0) and conv.dilation == (1, 1))


def _zero_insert_upsample(conv: Any) -> nn.Module:
    """ConvTranspose2d(C, C, 4, stride=2, padding=1, groups=C) as an ordinary depthwise conv.

    A transposed conv with stride 2 equals: put a zero after every input pixel in both
    directions (x at even positions of a 2H x 2W grid), pad by k-1-p = 2 before and 1 after
    (the trailing inserted zero supplies the rest), and correlate with the flipped kernel.
    """
    import torch
    import torch.nn.functional as F
    from torch import nn

    class ZeroInsertUpsample(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            c = conv.in_channels
            self.channels = c
            self.conv = nn.Conv2d(c, c, 4, groups=c, bias=conv.bias is not None)
            self.conv.weight.data = conv.weight.detach().flip(-1, -2).clone()
            if conv.bias is not None:
                self.conv.bias.data = conv.bias.detach().clone()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h, w, c = int(x.shape[2]), int(x.shape[3]), self.channels
            cols = torch.stack([x, torch.zeros_like(x)], dim=-1).reshape(-1, c, h, 1, 2 * w)
            grid = torch.cat([cols, torch.zeros_like(cols)], dim=3).reshape(-1, c, 2 * h, 2 * w)
            return self.conv(F.pad(grid, (2, 1, 2, 1)))

    return ZeroInsertUpsample()


@contextlib.contextmanager
def single_torch_thread() -> Iterator[None]:
    """Run torch on one CPU thread for the duration, then restore the previous count.

    Exports and parity runs are short and mostly Python-bound; with torch's default of one
    thread per core, a core taken by another process stalls OpenMP's barriers: a cold export of
    both models took 14.2 s with the default and 3.2 s with one thread on a busy two-core box.
    """
    torch = probe.import_torch()
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Hide the exporter's progress prints and its notes about torchvision ops we do not use."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)
