"""A differentiable ArcFace for the generator's identity loss (training only).

The evaluation scores identity with ``w600k_mbf.onnx`` on onnxruntime (``training.identity``);
training needs gradients, so this module runs the same ONNX graph with torch operators. The
graph is small and plain (Conv, PRelu, Add, Flatten, Gemm, BatchNormalization): each node
becomes one torch call, and the initialisers become frozen buffers. Nothing is converted to a
file; the model stays the research-only ONNX in the user cache.

    arcface = TorchArcFace.from_onnx(find_arcface(None))
    loss = identity_loss(arcface, fake_rgb, clean_rgb)   # canonical NCHW crops in [-1, 1]

Crops are warped from the canonical layout to ArcFace's 112 px one with the same similarity as
the evaluation (``canonical_to_arcface_matrix``), by ``grid_sample`` so gradients flow.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from training.identity import ARCFACE_SIZE, canonical_to_arcface_matrix
from training.losses import real_pixels

SUPPORTED_OPS = frozenset({"Conv", "PRelu", "Add", "Flatten", "Gemm", "BatchNormalization"})


class TorchArcFace(nn.Module):
    """The ONNX graph of w600k_mbf, node by node: (N, 3, 112, 112) in [-1, 1] -> (N, 512)."""

    def __init__(self, nodes: list[tuple[str, list[str], list[str], dict]],
                 weights: dict[str, np.ndarray], input_name: str, output_name: str) -> None:
        super().__init__()
        self.nodes, self.input_name, self.output_name = nodes, input_name, output_name
        self.names = {name: f"w{i}" for i, name in enumerate(weights)}
        for name, array in weights.items():
            self.register_buffer(self.names[name], torch.from_numpy(array.copy()))
        self.eval()

    @classmethod
    def from_onnx(cls, path: Path) -> TorchArcFace:
        import onnx
        from onnx import numpy_helper

        model = onnx.load(str(path))
        graph = model.graph
        weights = {t.name: numpy_helper.to_array(t).astype(np.float32) for t in graph.initializer}
        nodes = []
        for node in graph.node:
            if node.op_type not in SUPPORTED_OPS:
                raise ValueError(f"{path}: operator {node.op_type} is not supported; expected "
                                 f"the w600k_mbf graph ({', '.join(sorted(SUPPORTED_OPS))})")
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            nodes.append((node.op_type, list(node.input), list(node.output), attrs))
        inputs = [i.name for i in graph.input if i.name not in weights]
        return cls(nodes, weights, inputs[0], graph.output[0].name)

    def _value(self, values: dict[str, torch.Tensor], name: str) -> torch.Tensor:
        if name in values:
            return values[name]
        return getattr(self, self.names[name])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        values = {self.input_name: x}
        for op, inputs, outputs, attrs in self.nodes:
            args = [self._value(values, name) for name in inputs if name]
            values[outputs[0]] = OPS[op](args, attrs)
        return values[self.output_name]


def _conv(args: list[torch.Tensor], attrs: dict) -> torch.Tensor:
    x, w, *b = args
    pads = list(attrs.get("pads", [0, 0, 0, 0]))
    if pads[:2] != pads[2:]:
        raise ValueError(f"asymmetric Conv padding {pads} is not supported")
    return F.conv2d(x, w, b[0] if b else None, stride=tuple(attrs.get("strides", (1, 1))),
                    padding=tuple(pads[:2]), dilation=tuple(attrs.get("dilations", (1, 1))),
                    groups=attrs.get("group", 1))


def _prelu(args: list[torch.Tensor], attrs: dict) -> torch.Tensor:
    x, slope = args
    return torch.where(x >= 0, x, x * slope)  # ONNX broadcasts the slope, e.g. (C, 1, 1)


def _gemm(args: list[torch.Tensor], attrs: dict) -> torch.Tensor:
    a, b, *c = args
    a = a.transpose(0, 1) if attrs.get("transA", 0) else a
    b = b.transpose(0, 1) if attrs.get("transB", 0) else b
    out = attrs.get("alpha", 1.0) * (a @ b)
    return out + attrs.get("beta", 1.0) * c[0] if c else out


def _batch_norm(args: list[torch.Tensor], attrs: dict) -> torch.Tensor:
    x, scale, bias, mean, var = args
    return F.batch_norm(x, mean, var, scale, bias, training=False,
                        eps=attrs.get("epsilon", 1e-5))


OPS: dict[str, Callable[[list[torch.Tensor], dict], torch.Tensor]] = {
    "Conv": _conv,
    "PRelu": _prelu,
    "Add": lambda args, attrs: args[0] + args[1],
    "Flatten": lambda args, attrs: torch.flatten(args[0], attrs.get("axis", 1)),
    "Gemm": _gemm,
    "BatchNormalization": _batch_norm,
}


def canonical_to_arcface_theta(crop_size: int, batch: int) -> torch.Tensor:
    """(batch, 2, 3) ``affine_grid`` matrices: ArcFace output -> canonical input, in the
    normalised coordinates of ``align_corners=False`` (pixel centres as cv2.warpAffine)."""
    m = np.vstack([canonical_to_arcface_matrix(crop_size), [0, 0, 1]]).astype(np.float64)
    inv = np.linalg.inv(m)                                   # ArcFace px -> canonical px
    s_out, s_in = ARCFACE_SIZE, crop_size
    norm_to_px = np.array([[s_out / 2, 0, (s_out - 1) / 2], [0, s_out / 2, (s_out - 1) / 2],
                           [0, 0, 1]])
    px_to_norm = np.array([[2 / s_in, 0, 1 / s_in - 1], [0, 2 / s_in, 1 / s_in - 1], [0, 0, 1]])
    theta = (px_to_norm @ inv @ norm_to_px)[:2]
    return torch.tensor(theta, dtype=torch.float32).expand(batch, 2, 3)


def jitter_theta(theta: torch.Tensor, jitter: float, generator: torch.Generator | None = None,
                 ) -> torch.Tensor:
    """``theta`` (N, 2, 3) composed with a random similarity per sample: a shift of up to
    ``jitter`` ArcFace pixels, a rotation of up to ``jitter`` degrees and a scale change of up to
    ``jitter`` percent (uniform, each independent)."""
    n = theta.shape[0]

    def uniform(*shape: int) -> torch.Tensor:
        return (torch.rand(*shape, generator=generator) * 2 - 1).to(theta)
    angle = uniform(n) * jitter * np.pi / 180
    scale = 1 + uniform(n) * jitter / 100
    shift = uniform(n, 2) * jitter * 2 / ARCFACE_SIZE          # pixels -> normalised units
    cos, sin = torch.cos(angle) * scale, torch.sin(angle) * scale
    rot = torch.stack([torch.stack([cos, -sin], 1), torch.stack([sin, cos], 1)], 1)
    linear = theta[:, :, :2] @ rot
    offset = theta[:, :, 2:] + theta[:, :, :2] @ shift[:, :, None]
    return torch.cat([linear, offset], dim=2)


def to_arcface_layout(crops: torch.Tensor, theta: torch.Tensor | None = None) -> torch.Tensor:
    """(N, 3, S, S) canonical crops -> (N, 3, 112, 112), differentiably (border replicated);
    ``theta``: the ``affine_grid`` matrices to use instead of the evaluation's warp."""
    n, _, h, w = crops.shape
    if h != w:
        raise ValueError(f"canonical crops are square, got {h} x {w}")
    if theta is None:
        theta = canonical_to_arcface_theta(h, n).to(crops)
    grid = F.affine_grid(theta, [n, 3, ARCFACE_SIZE, ARCFACE_SIZE], align_corners=False)
    return F.grid_sample(crops.contiguous(), grid, mode="bilinear", padding_mode="border",
                         align_corners=False)


def embed(arcface: TorchArcFace, crops: torch.Tensor,
          theta: torch.Tensor | None = None) -> torch.Tensor:
    """(N, 512) unit ArcFace embeddings of canonical RGB crops in [-1, 1] (ArcFace's own
    (x - 127.5) / 127.5 scaling of 0-255 RGB is exactly this range)."""
    return F.normalize(arcface(to_arcface_layout(crops, theta)), dim=1)


def identity_loss(arcface: TorchArcFace, fake: torch.Tensor, clean: torch.Tensor, *,
                  jitter: float = 0.0, valid: torch.Tensor | None = None) -> torch.Tensor:
    """Mean of 1 - cosine between the ArcFace embeddings of ``fake`` and ``clean`` crops.

    ``jitter`` > 0 warps each pair by the same random similarity (``jitter_theta``): the
    generator is then rewarded for identity that survives small misalignments, not for
    pixel patterns aimed at one exact warp of one network (which painted speckled mouths).
    ``valid`` (N, 1, H, W): where it is 0 (padding) ``fake`` is replaced by ``clean``."""
    if valid is not None:  # padding: the clean crop's, so it carries no loss
        fake = real_pixels(fake, clean, valid)
    theta = None
    if jitter > 0:
        theta = jitter_theta(canonical_to_arcface_theta(fake.shape[-1], fake.shape[0]).to(fake),
                             jitter)
    with torch.no_grad():
        target = embed(arcface, clean, theta)
    return (1 - (embed(arcface, fake, theta) * target).sum(dim=1)).mean()
