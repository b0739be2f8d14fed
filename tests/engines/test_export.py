"""ONNX export: valid graphs with a dynamic batch, equal to PyTorch at batch 1 and 3."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from engines import EngineError, Engines, export_onnx, rewrite_upsampling
from engines.base import BAND_LEVEL, CHANNELS
from engines.checkpoint import random_model
from engines.export import check_parity, parity_inputs
from engines.models import build_generator, build_segmenter

TINY = {"segmenter": {"width": 4, "depth": 3}, "generator": {"width": 4, "depth": 2,
                                                            "dilation_rates": (2,)}}


@pytest.mark.parametrize("kind", ["segmenter", "generator"])
def test_cached_onnx_models_match_pytorch_at_batch_1_and_3(cpu_engines: Engines,
                                                            kind: str) -> None:
    details = cpu_engines.details[kind]
    assert set(details["max_abs_diff"]) == set(details["optimized_max_abs_diff"]) == {"1", "3"}
    assert max(details["optimized_max_abs_diff"].values()) < 1e-4
    model, _ = random_model(kind)
    engine = getattr(cpu_engines, kind)
    for n in (1, 3):
        batch = parity_inputs(kind, n, 128, seed=100 + n)  # not the inputs the export used
        with torch.inference_mode():
            expected = model(torch.from_numpy(batch)).numpy()
        np.testing.assert_allclose(engine(batch), expected, rtol=0, atol=1e-4)


def _batch_axis_and_ops(path: Path) -> tuple[str, set[str]]:
    graph = onnx.load(str(path)).graph
    dim = graph.input[0].type.tensor_type.shape.dim[0]
    assert not dim.dim_value  # symbolic, not a fixed size
    return dim.dim_param, {node.op_type for node in graph.node}


@pytest.mark.parametrize("kind", ["segmenter", "generator"])
def test_cpu_export_has_dynamic_batch_and_no_conv_transpose(cpu_engines: Engines,
                                                            kind: str) -> None:
    entry = Path(cpu_engines.details[kind]["entry"])
    for name in ("model.onnx", "model.optimized.onnx"):
        batch, ops = _batch_axis_and_ops(entry / name)
        assert batch and "ConvTranspose" not in ops


def test_dynamo_export_without_rewrite_keeps_conv_transpose(tmp_path: Path) -> None:
    """The GPU variant, through the torch.export based exporter (the default's successor), of a
    first-generation net (transposed convs; today's nets resize instead)."""
    model, _ = random_model("segmenter", crop_size=32, upsample="transposed",
                            **TINY["segmenter"])
    path = tmp_path / "model.onnx"
    report = export_onnx(model, path, kind="segmenter", crop_size=32, max_batch=3,
                         cpu_upsampling=False, exporter="dynamo")
    assert set(report["max_abs_diff"]) == {"1", "3"}
    assert max(report["max_abs_diff"].values()) < 1e-4
    batch, ops = _batch_axis_and_ops(path)
    assert batch and "ConvTranspose" in ops


@pytest.mark.parametrize("kind", ["segmenter", "generator"])
def test_upsampling_rewrite_is_exact(kind: str) -> None:
    """For checkpoints of the first generation, which upsample with transposed convs."""
    build = build_segmenter if kind == "segmenter" else build_generator
    model = build(upsample="transposed").eval()
    for module in model.modules():  # non-trivial BatchNorm so every path carries signal
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    rewritten = rewrite_upsampling(model)
    assert not any(isinstance(m, torch.nn.ConvTranspose2d) for m in rewritten.modules())
    assert any(isinstance(m, torch.nn.ConvTranspose2d) for m in model.modules())
    x = torch.from_numpy(parity_inputs(kind, 2, 64))
    with torch.inference_mode():
        torch.testing.assert_close(rewritten(x), model(x), rtol=0, atol=1e-5)


def test_parity_check_fails_on_a_wrong_model() -> None:
    model, _ = random_model("segmenter", crop_size=32, **TINY["segmenter"])

    def off_by_a_bit(batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model(torch.from_numpy(batch)).numpy() + 0.01

    with pytest.raises(EngineError, match="differs from PyTorch"):
        check_parity(off_by_a_bit, model, kind="segmenter", crop_size=32, batches=[1],
                     tolerance=1e-3, label="test")


def test_parity_inputs_look_like_real_inputs() -> None:
    batch = parity_inputs("generator", 2, 32)
    assert batch.shape == (2, CHANNELS["generator"][0], 32, 32)
    mask = batch[:, 3:]
    assert set(np.unique(mask)) == {0.0, BAND_LEVEL, 1.0}  # a band generator's ring too
    assert np.all(batch[:, :3][np.broadcast_to(mask, (2, 3, 32, 32)) == 1] == 0)
    assert np.any(batch[:, :3][np.broadcast_to(mask, (2, 3, 32, 32)) == BAND_LEVEL] != 0)


def test_band_generator_exports_equal_to_pytorch(tmp_path: Path) -> None:
    model, _ = random_model("generator", crop_size=32, band=True, **TINY["generator"])
    report = export_onnx(model, tmp_path / "band.onnx", kind="generator", crop_size=32,
                         max_batch=3, cpu_upsampling=True)
    assert max(report["max_abs_diff"].values()) < 1e-4


def test_gated_generator_exports_equal_to_pytorch(tmp_path: Path) -> None:
    model, _ = random_model("generator", crop_size=32, band=True, gate=True,
                            **TINY["generator"])
    report = export_onnx(model, tmp_path / "gated.onnx", kind="generator", crop_size=32,
                         max_batch=3, cpu_upsampling=True)
    assert max(report["max_abs_diff"].values()) < 1e-4


def test_guided_generator_exports_with_its_fifth_channel(tmp_path: Path) -> None:
    model, _ = random_model("generator", crop_size=32, guide=True, **TINY["generator"])
    with torch.no_grad():  # a random stem ignores no channel; make the guide's weight count
        model.coarse.stem.weight[:, 4].normal_()
    path = tmp_path / "guided.onnx"
    report = export_onnx(model, path, kind="generator", crop_size=32, max_batch=3,
                         cpu_upsampling=True)
    assert max(report["max_abs_diff"].values()) < 1e-4
    dims = onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim
    assert dims[1].dim_value == 5
    batch = parity_inputs("generator", 2, 32, guide=True)
    assert batch.shape[1] == 5 and 0 <= batch[:, 4].min() and batch[:, 4].max() <= 1
    blank = batch.copy()
    blank[:, 4] = 0
    with torch.inference_mode():  # the guide reaches the output
        assert not torch.equal(model(torch.from_numpy(batch)), model(torch.from_numpy(blank)))
