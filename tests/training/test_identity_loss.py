"""The differentiable ArcFace: the ONNX graph run in torch matches onnxruntime, the warp matches
the evaluation's cv2 warp, and the identity loss trains a generator.

A tiny graph with every supported operator runs everywhere; the real w600k_mbf checks skip
where it is not in the user cache (``python -m training.identity fetch``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from training.identity import ARCFACE_SIZE, canonical_to_arcface  # noqa: E402
from training.identity_loss import (  # noqa: E402
    TorchArcFace,
    embed,
    identity_loss,
    to_arcface_layout,
)


def tiny_graph(path: Path, op_extra: str | None = None) -> Path:
    """(N, 3, 112, 112) -> (N, 8): Conv (grouped, strided, padded), PRelu, Add, Flatten, Gemm,
    BatchNormalization, with random weights."""
    rng = np.random.default_rng(0)

    def init(name: str, *shape: int) -> onnx.TensorProto:
        return numpy_helper.from_array(rng.normal(0, 0.3, shape).astype(np.float32), name)

    inits = [init("w1", 6, 3, 3, 3), init("b1", 6), init("slope", 6, 1, 1),
             init("w2", 6, 1, 3, 3), init("gw", 8, 6 * 14 * 14), init("gb", 8),
             init("bn_s", 8), init("bn_b", 8), init("bn_m", 8),
             numpy_helper.from_array(rng.uniform(0.5, 2, 8).astype(np.float32), "bn_v")]
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], kernel_shape=[3, 3],
                         pads=[1, 1, 1, 1], strides=[4, 4]),
        helper.make_node("PRelu", ["c1", "slope"], ["p1"]),
        helper.make_node("Conv", ["p1", "w2"], ["c2"], kernel_shape=[3, 3], group=6,
                         pads=[1, 1, 1, 1], strides=[2, 2], dilations=[1, 1]),
        helper.make_node("Add", ["c2", "c2"], ["a"]),
        helper.make_node("Flatten", ["a"], ["f"], axis=1),
        helper.make_node("Gemm", ["f", "gw", "gb"], ["g"], transB=1),
        helper.make_node("BatchNormalization", ["g", "bn_s", "bn_b", "bn_m", "bn_v"], ["y"],
                         epsilon=1e-5),
    ]
    if op_extra is not None:
        nodes.append(helper.make_node(op_extra, ["y"], ["z"]))
    graph = helper.make_graph(
        nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                      ["N", 3, ARCFACE_SIZE, ARCFACE_SIZE])],
        [helper.make_tensor_value_info("z" if op_extra else "y", TensorProto.FLOAT, ["N", 8])],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)])
    model.ir_version = 7
    onnx.save(model, str(path))
    return path


def test_every_operator_matches_onnxruntime(tmp_path: Path) -> None:
    import onnxruntime as ort

    path = tiny_graph(tmp_path / "tiny.onnx")
    x = np.random.default_rng(1).uniform(-1, 1, (3, 3, ARCFACE_SIZE, ARCFACE_SIZE))
    x = x.astype(np.float32)
    expected = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(
        None, {"x": x})[0]
    with torch.no_grad():
        got = TorchArcFace.from_onnx(path)(torch.from_numpy(x)).numpy()
    assert got.shape == (3, 8)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_an_unknown_operator_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="operator Relu is not supported"):
        TorchArcFace.from_onnx(tiny_graph(tmp_path / "relu.onnx", op_extra="Relu"))


def test_the_warp_matches_the_evaluations_cv2_warp() -> None:
    rng = np.random.default_rng(2)
    # Smooth content, so bilinear sampling differences stay small and mistakes (a flipped
    # axis, a half-pixel shift, the wrong scale) show as large ones.
    low = rng.integers(0, 256, (2, 8, 8, 3)).astype(np.float32)
    crops = np.stack([np.clip(np.kron(im, np.ones((16, 16, 1))), 0, 255) for im in low])
    crops = np.stack([__import__("cv2").GaussianBlur(c, (0, 0), 4) for c in crops])
    crops = crops.round().astype(np.uint8)
    expected = canonical_to_arcface(crops).astype(np.float32)
    x = torch.from_numpy(crops).permute(0, 3, 1, 2).float()
    got = to_arcface_layout(x).permute(0, 2, 3, 1).numpy()
    assert got.shape == expected.shape == (2, ARCFACE_SIZE, ARCFACE_SIZE, 3)
    assert np.abs(got - expected).mean() < 1.0
    shifted = to_arcface_layout(torch.roll(x, 3, dims=3)).permute(0, 2, 3, 1).numpy()
    assert np.abs(shifted - expected).mean() > 3.0  # the comparison can tell 3 px apart


def test_the_loss_is_zero_for_the_truth_and_its_gradient_reaches_the_pixels(
    tmp_path: Path
) -> None:
    arcface = TorchArcFace.from_onnx(tiny_graph(tmp_path / "tiny.onnx"))
    clean = torch.rand(2, 3, 128, 128) * 2 - 1
    assert identity_loss(arcface, clean, clean).item() == pytest.approx(0, abs=1e-5)
    fake = (clean + 0.5 * torch.randn_like(clean)).requires_grad_(True)
    loss = identity_loss(arcface, fake, clean)
    loss.backward()
    assert loss.item() > 1e-3 and float(fake.grad.abs().sum()) > 0
    assert all(b.grad is None for b in arcface.buffers())  # the metric net is never trained
    with torch.no_grad():
        cos = (embed(arcface, fake) * embed(arcface, clean)).sum(1)
    assert loss.item() == pytest.approx(float((1 - cos).mean()), abs=1e-5)


def real_arcface() -> Path:
    from training.identity import default_arcface_path

    path = default_arcface_path()
    if not path.is_file():
        pytest.skip(f"ArcFace model not in the cache ({path}); run "
                    "`python -m training.identity fetch`")
    return path


def test_the_real_model_agrees_with_onnxruntime(faces) -> None:
    from training.identity import ArcFace

    path = real_arcface()
    crops = faces.crops_rgb[:4]
    expected = ArcFace(path).embed(canonical_to_arcface(crops))
    x = torch.from_numpy(crops).permute(0, 3, 1, 2).float() / 127.5 - 1
    with torch.no_grad():
        got = embed(TorchArcFace.from_onnx(path), x).numpy()
    assert ((got * expected).sum(1) > 0.999).all()  # the same embedding, up to the warp
    assert ((got[0] * expected[1:]).sum(1) < 0.9).all()  # and different people stay apart


def test_the_trainer_fine_tunes_with_the_identity_loss(face_dir: Path, masks_root: Path,
                                                      tmp_path: Path) -> None:
    import json

    from training import train_inpainter

    out = tmp_path / "gen"
    args = ["--data", str(face_dir), "--masks", str(masks_root), "--cache",
            str(tmp_path / "cache"), "--out", str(out), "--batch-size", "2", "--width", "8",
            "--val-every", "2", "--val-samples", "2", "--no-progress", "--disc-width", "8",
            "--perceptual-weight", "0", "--steps", "2", "--identity-weight", "5",
            "--arcface", str(tiny_graph(tmp_path / "tiny.onnx"))]
    assert train_inpainter.main(args) == 0
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    losses = [r for r in rows if "id" in r]
    assert len(losses) == 2 and all(r["id"] > 0 for r in losses)  # the term is computed
    assert all(-1 <= r["val_arcface"] <= 1 for r in rows if "val_psnr" in r)
    missing = [*args[:-1], str(tmp_path / "none.onnx")]
    assert train_inpainter.main(missing) == 1  # a clear message, not a traceback


def test_with_the_identity_loss_the_best_checkpoint_weighs_identity_too() -> None:
    from types import SimpleNamespace

    from training.inpainter_validation import selection_score

    plain, with_id = SimpleNamespace(identity_weight=0.0), SimpleNamespace(identity_weight=5.0)
    a = {"val_lpips_hole": 0.280, "val_arcface": 0.58, "val_psnr_mask": 18}
    b = {"val_lpips_hole": 0.282, "val_arcface": 0.62, "val_psnr_mask": 18}
    assert selection_score(a, plain) < selection_score(b, plain)  # LPIPS alone: a
    assert selection_score(b, with_id)[1] < selection_score(a, with_id)[1]  # +0.04 cosine: b
    assert selection_score(a, with_id)[0] == "lpips+arcface"
    assert selection_score({"val_psnr_mask": 20}, plain) == ("psnr", -20)


def test_jitter_warps_each_pair_alike_and_zero_jitter_is_the_evaluation_warp(
        tmp_path: Path) -> None:
    from training.identity_loss import canonical_to_arcface_theta, jitter_theta

    theta = canonical_to_arcface_theta(128, 4)
    torch.testing.assert_close(jitter_theta(theta, 0.0), theta)
    moved = jitter_theta(theta, 3.0, torch.Generator().manual_seed(0))
    assert not torch.allclose(moved, theta)
    # a bright square moves by at most ~3 px (plus rotation and scale about the centre)
    square = torch.zeros(1, 3, 128, 128)
    square[..., 60:68, 60:68] = 1

    def centre(img: torch.Tensor) -> torch.Tensor:
        ys, xs = torch.nonzero(img[0, 0] > 0.5, as_tuple=True)
        return torch.stack([xs.float().mean(), ys.float().mean()])
    for seed in range(5):
        th = jitter_theta(theta[:1], 3.0, torch.Generator().manual_seed(seed))
        shift = (centre(to_arcface_layout(square, th)) - centre(to_arcface_layout(square)))
        assert shift.norm() < 3 * 1.5 + 4
    arcface = TorchArcFace.from_onnx(tiny_graph(tmp_path / "tiny.onnx"))
    clean = torch.rand(2, 3, 128, 128) * 2 - 1
    assert identity_loss(arcface, clean, clean, jitter=3.0).item() == pytest.approx(0, abs=1e-5)


def test_padding_carries_no_identity_loss(tmp_path: Path) -> None:
    arcface = TorchArcFace.from_onnx(tiny_graph(tmp_path / "tiny.onnx"))
    clean = torch.rand(2, 3, 128, 128) * 2 - 1
    valid = torch.ones(2, 1, 128, 128)
    valid[..., 70:, :] = 0  # a photo cut below the nose (ArcFace sees rows up to ~83)
    fake = torch.where(valid > 0.5, clean, -clean)  # wrong only where there is no photo
    assert identity_loss(arcface, fake, clean).item() > 1e-3  # the tiny net sees those rows
    assert identity_loss(arcface, fake, clean, valid=valid).item() == pytest.approx(0, abs=1e-5)


class _Painter(torch.nn.Module):
    """A generator that returns its input with ``fill`` added where ``where`` is 1."""

    def __init__(self, where: torch.Tensor, fill: float) -> None:
        super().__init__()
        self.where, self.fill = where, fill

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x[:, :3] + self.fill * self.where).clamp(-1, 1)


def test_validation_scores_only_the_pixels_a_photo_has(faces, occluders, tmp_path: Path) -> None:
    from dataclasses import replace
    from types import SimpleNamespace

    from training.data import MIXES, OcclusionDataset
    from training.inpainter_validation import validate

    config = replace(MIXES["generator"], template_p=1.0, rectangle_p=0.0, freeform_p=0.0,
                     cut_p=1.0)  # every sample cut: holes reach into padding
    val = OcclusionDataset(faces, occluders, config, seed=1, shuffle=False)
    batch = val.collate([val.sample(k) for k in range(len(val))])
    hole, valid = batch["mask"], batch["valid"]
    assert (hole * (1 - valid)).sum() > 100 and (hole * valid).sum() > 100
    settings = SimpleNamespace(batch_size=len(val), band=False, seed=0, gate=False,
                               grown=False)
    arcface = TorchArcFace.from_onnx(tiny_graph(tmp_path / "tiny.onnx"))

    def scores(where: torch.Tensor) -> dict:
        return validate(_Painter(where, 0.8), val, settings, None, None, arcface)

    base = validate(_Painter(hole, 0.0), val, settings, None, None, arcface)
    in_padding, in_photo = scores(hole * (1 - valid)), scores(hole * valid)
    for name in ("val_psnr", "val_psnr_mask", "val_ssim_mask", "val_arcface"):
        assert in_padding[name] == pytest.approx(base[name], abs=1e-4), name
    assert in_photo["val_psnr_mask"] < base["val_psnr_mask"] - 0.5
    assert in_photo["val_arcface"] != pytest.approx(base["val_arcface"], abs=1e-4)
