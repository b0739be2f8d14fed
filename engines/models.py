"""Network architectures: depthwise-separable (DWSC) U-Nets for segmenting and painting masks.

Architectures only; nothing here loads data or trains. The engines build these to export ONNX
and to run the PyTorch backend, and the trainers build them to train (the GAN's discriminator,
which inference never runs, is ``training.discriminator``).

    >>> seg = build_segmenter(width=16)
    >>> gen = build_generator(width=16)
    >>> logits = seg(torch.zeros(1, 3, 128, 128))              # (1, 1, 128, 128)
    >>> out = gen(torch.zeros(1, 4, 128, 128))                 # (1, 3, 128, 128) in [-1, 1]

Tensors are NCHW float32. Images are RGB scaled to [-1, 1]; masks are in [0, 1] with 1 on the
occluder.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

ModelKind = Literal["segmenter", "generator"]
Upsample = Literal["resize", "transposed"]
LEGACY_ARCH = {"upsample": "transposed", "blocks": 0}
"""Values of arguments added after the first checkpoints, for checkpoints that lack them."""


def _separable_body(spatial: nn.Module, activation: nn.Module, c_in: int, c_out: int, *,
                    instance_norm: bool, dropout: float) -> nn.Sequential:
    """Depthwise spatial conv, BN, activation, pointwise 1x1, optional InstanceNorm/dropout."""
    layers: list[nn.Module] = [spatial, nn.BatchNorm2d(c_in), activation,
                               nn.Conv2d(c_in, c_out, 1, bias=not instance_norm)]
    if instance_norm:
        layers.append(nn.InstanceNorm2d(c_out, affine=True))
    if dropout > 0:
        layers.append(nn.Dropout2d(dropout))
    return nn.Sequential(*layers)


class DownBlock(nn.Module):
    """Halves the resolution: depthwise 4x4 stride-2, BN, LeakyReLU, pointwise 1x1."""

    def __init__(self, c_in: int, c_out: int, *, instance_norm: bool, dropout: float) -> None:
        super().__init__()
        self.body = _separable_body(
            nn.Conv2d(c_in, c_in, 4, stride=2, padding=1, groups=c_in, bias=False),
            nn.LeakyReLU(0.2, inplace=True), c_in, c_out,
            instance_norm=instance_norm, dropout=dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class UpBlock(nn.Module):
    """Doubles the resolution, then a separable conv: BN, ReLU, pointwise 1x1.

    ``upsample="resize"``: nearest-neighbour resize and a depthwise 3x3 (no checkerboard);
    ``"transposed"``: a depthwise 4x4 stride-2 transposed conv, the first checkpoints' layer,
    whose uneven overlap painted a grid on every generated face.
    """

    def __init__(self, c_in: int, c_out: int, *, instance_norm: bool, dropout: float,
                 upsample: Upsample = "resize") -> None:
        super().__init__()
        if upsample == "resize":
            spatial: nn.Module = nn.Sequential(
                nn.Upsample(scale_factor=2, mode="nearest"),
                nn.Conv2d(c_in, c_in, 3, padding=1, groups=c_in, bias=False))
        else:
            spatial = nn.ConvTranspose2d(c_in, c_in, 4, stride=2, padding=1, groups=c_in,
                                         bias=False)
        self.body = _separable_body(spatial, nn.ReLU(inplace=True), c_in, c_out,
                                    instance_norm=instance_norm, dropout=dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class InvertedResidual(nn.Module):
    """MobileNetV2's block: pointwise expansion, depthwise 3x3, pointwise projection, plus the
    input (capacity at little cost, since the wide part is depthwise)."""

    def __init__(self, channels: int, expansion: int) -> None:
        super().__init__()
        hidden = channels * expansion
        self.body = nn.Sequential(
            nn.Conv2d(channels, hidden, 1, bias=False), nn.BatchNorm2d(hidden),
            nn.ReLU6(inplace=True),
            nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden), nn.ReLU6(inplace=True),
            nn.Conv2d(hidden, channels, 1, bias=False), nn.BatchNorm2d(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class SqueezeExcite(nn.Module):
    """Channel attention: global pooling, bottleneck MLP, sigmoid gate."""

    def __init__(self, channels: int, reduction: int = 4) -> None:
        super().__init__()
        hidden = max(4, channels // reduction)
        self.gate = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(channels, hidden, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, 1),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x)


class DilatedSeparable(nn.Module):
    """Residual depthwise-separable 3x3 conv with a dilation rate, for context at the bottleneck."""

    def __init__(self, channels: int, rate: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=rate, dilation=rate, groups=channels,
                      bias=False),
            nn.BatchNorm2d(channels),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(channels, channels, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def _widths(width: int, depth: int) -> list[int]:
    """Channels per encoder level: doubling from ``width``, capped at 8x ``width``."""
    return [min(width * 2**i, width * 8) for i in range(depth)]


class DWSCUNet(nn.Module):
    """A U-Net whose convolutions are all depthwise-separable.

    The encoder has ``depth`` down blocks; ``se_levels`` of them (from the top) are followed by
    squeeze-and-excitation, and ``dilation_rates`` adds a residual stack of dilated separable
    convolutions at the bottleneck. The innermost level has neither InstanceNorm (undefined at
    1x1) nor dropout.
    """

    def __init__(
        self,
        *,
        in_channels: int,
        out_channels: int,
        width: int,
        depth: int,
        instance_norm: bool,
        dropout: float,
        se_levels: int = 0,
        dilation_rates: tuple[int, ...] = (),
        upsample: Upsample = "resize",
        blocks: int = 0,
        expansion: int = 3,
    ) -> None:
        super().__init__()

        def extra(c: int) -> nn.Module:
            return nn.Sequential(*(InvertedResidual(c, expansion) for _ in range(blocks)))

        widths = _widths(width, depth)
        self.stem = nn.Conv2d(in_channels, width, 1)  # pointwise lift so depthwise has channels
        downs, c_prev = [], width
        for level, c in enumerate(widths):
            innermost = level == depth - 1
            downs.append(DownBlock(c_prev, c, instance_norm=instance_norm and not innermost,
                                   dropout=0.0 if innermost else dropout))
            c_prev = c
        self.downs = nn.ModuleList(downs)
        self.down_extra = nn.ModuleList(extra(c) for c in widths)
        self.se = nn.ModuleList(SqueezeExcite(widths[i]) for i in range(min(se_levels, depth)))
        self.bottleneck = nn.Sequential(*(DilatedSeparable(widths[-1], r) for r in dilation_rates))
        ups = []
        for level in reversed(range(depth)):
            c_in = widths[level] if level == depth - 1 else widths[level] * 2
            c_out = widths[level - 1] if level > 0 else width
            ups.append(UpBlock(c_in, c_out, instance_norm=instance_norm and level > 0,
                               dropout=dropout if 0 < level < depth - 1 else 0.0,
                               upsample=upsample))
        self.ups = nn.ModuleList(ups)
        # none at full resolution, where an expanded block would cost more than the net
        self.up_extra = nn.ModuleList(extra(widths[level - 1]) if level > 0 else nn.Identity()
                                      for level in reversed(range(depth)))
        self.head = nn.Conv2d(width * 2, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem(x)
        skips = [h]
        for level, (down, extra) in enumerate(zip(self.downs, self.down_extra, strict=True)):
            h = extra(down(h))
            if level < len(self.se):
                h = self.se[level](h)
            skips.append(h)
        h = self.bottleneck(h)
        skips.pop()  # the bottleneck itself is not a skip
        for up, extra in zip(self.ups, self.up_extra, strict=True):
            h = torch.cat([extra(up(h)), skips.pop()], dim=1)
        return self.head(h)


GATE_SCALE = 10.0
"""A gated generator's gate logit is its head's fourth output times this: the row starts at
zero in a net whose other weights are trained, and at the generator's learning rate it would
take thousands of steps to say 'keep' with any confidence."""


class MaskInpainter(nn.Module):
    """Generator wrapper: paints only inside the mask, optionally refined coarse-to-fine.

    Input: (N, 4, S, S) = masked RGB in [-1, 1] and the mask. Output: (N, 3, S, S) in [-1, 1]
    equal to the input outside the mask.

    Without ``band`` the mask is {0, 1} (or a soft blend weight), the RGB is zero inside it.
    With ``band`` the mask has three levels (``engines.base.generator_mask``): 1 where the
    covering surely is (RGB zero there), 0.5 on a thin ring along the segmented edge where the
    RGB is left as seen, 0 outside. Everything above 0 is repainted, so on the ring the net decides:
    real skin is copied, a covering's rim the segmenter missed is painted over.

    With ``guide`` the input has a fifth channel, the landmark guide
    (``realtime.face.guide``), which only the coarse net reads, times ``guide_scale``: the
    stem's guide weights start at zero in a trained net, and unscaled they barely move at the
    generator's learning rate (the gate's problem, ``GATE_SCALE``).

    With ``gate`` (band only) the net's fourth output channel is a per-pixel blend weight on
    the ring: sigmoid(gate) of the paint, the rest the pixel as seen. Keeping real skin is
    then a gate of 0, not a copy the U-Net must redraw through its layers.
    """

    def __init__(self, coarse: DWSCUNet, refine: DWSCUNet | None = None, *,
                 band: bool = False, gate: bool = False, guide: bool = False,
                 guide_scale: float = 1.0) -> None:
        super().__init__()
        if gate and (not band or refine is not None):
            raise ValueError("a gated generator needs band masks and no refine stage")
        self.coarse = coarse
        self.refine = refine
        self.band = band
        self.gate = gate
        self.guide = guide
        self.guide_scale = guide_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.gate:
            return self.forward_gated(x)[0]
        masked_rgb, mask = x[:, :3], x[:, 3:4]
        if self.guide and self.guide_scale != 1.0:
            x = torch.cat([x[:, :4], x[:, 4:] * self.guide_scale], dim=1)
        raw = self.coarse(x)
        paint = (mask > 0).to(x.dtype) if self.band else mask
        out = masked_rgb * (1 - paint) + torch.tanh(raw) * paint
        if self.refine is not None:
            fine = torch.tanh(self.refine(torch.cat([out, mask], dim=1)))
            out = masked_rgb * (1 - paint) + fine * paint
        return out

    def forward_gated(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A gated net's output and its gate logits (N, 1, S, S; they count on the ring only),
        which training also supervises (``training.band.gate_loss``)."""
        masked_rgb, mask = x[:, :3], x[:, 3:4]
        raw = self.coarse(x)
        core = (mask > 0.75).to(x.dtype)  # the band's levels are 0, 0.5 and 1
        logits = GATE_SCALE * raw[:, 3:4]
        paint = core + ((mask > 0).to(x.dtype) - core) * torch.sigmoid(logits)
        return masked_rgb * (1 - paint) + torch.tanh(raw[:, :3]) * paint, logits


def build_segmenter(*, width: int = 16, depth: int = 6, dropout: float = 0.0,
                    upsample: Upsample = "resize", blocks: int = 0) -> DWSCUNet:
    """The mask segmenter: RGB crop in, one-channel mask logits out."""
    return DWSCUNet(in_channels=3, out_channels=1, width=width, depth=depth,
                    instance_norm=False, dropout=dropout, upsample=upsample, blocks=blocks)


def build_generator(
    *,
    width: int = 16,
    depth: int = 4,
    dropout: float = 0.0,
    instance_norm: bool = False,
    dilation_rates: tuple[int, ...] = (2, 4, 8, 16),
    refine: bool = False,
    upsample: Upsample = "resize",
    blocks: int = 0,
    band: bool = False,
    gate: bool = False,
    guide: bool = False,
    guide_scale: float = 1.0,
) -> MaskInpainter:
    """The GAN generator: masked RGB + mask in, RGB out, painted only inside the mask.

    ``blocks`` inverted-residual blocks follow every down and up block (0: the first
    generator's plain U-Net). ``depth=4`` leaves an 8x8 bottleneck at 128 px (16x16 at
    256 px) where the dilated stack sees the whole face; deeper bottlenecks would make the
    dilations mostly padding. ``band``: the mask input has an edge ring whose pixels the net
    sees and repaints (``MaskInpainter``); ``gate``: a fourth output channel blends paint and
    pixel on that ring; ``guide``: a fifth input channel, the landmark guide, read times
    ``guide_scale`` (1 in the first guided checkpoints).
    """
    def unet(out_channels: int = 3, in_channels: int = 4) -> DWSCUNet:
        return DWSCUNet(in_channels=in_channels, out_channels=out_channels, width=width,
                        depth=depth, instance_norm=instance_norm, dropout=dropout, se_levels=3,
                        dilation_rates=tuple(dilation_rates), upsample=upsample,
                        blocks=blocks)
    return MaskInpainter(unet(4 if gate else 3, 5 if guide else 4),
                         unet() if refine else None, band=band, gate=gate, guide=guide,
                         guide_scale=guide_scale)


BUILDERS = {"segmenter": build_segmenter, "generator": build_generator}
"""Checkpoint metadata names its builder by kind; a literal dict, no registry."""
