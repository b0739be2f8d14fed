"""The GAN's discriminator: a PatchGAN, used only while training the generator.

    >>> disc = build_discriminator(in_channels=3, width=32)
    >>> logits = disc(torch.zeros(1, 3, 128, 128))             # (1, 1, 15, 15) patch logits

It lives here rather than beside the generator in ``engines.models`` because inference never
builds it.
"""

from __future__ import annotations

import torch
from torch import nn


class PatchDiscriminator(nn.Module):
    """PatchGAN: a grid of real/fake logits, one per overlapping patch."""

    def __init__(self, *, in_channels: int = 3, width: int = 32, layers: int = 3) -> None:
        super().__init__()
        mods: list[nn.Module] = [nn.Conv2d(in_channels, width, 4, 2, 1),
                                 nn.LeakyReLU(0.2, inplace=True)]
        c = width
        for i in range(1, layers):
            c_next = min(width * 2**i, width * 8)
            mods += [nn.Conv2d(c, c_next, 4, 2, 1, bias=False),
                     nn.InstanceNorm2d(c_next, affine=True), nn.LeakyReLU(0.2, inplace=True)]
            c = c_next
        mods.append(nn.Conv2d(c, 1, 4, 1, 1))
        self.body = nn.Sequential(*mods)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(logits, the activations after each LeakyReLU) for feature matching."""
        feats = []
        for layer in self.body:
            x = layer(x)
            if isinstance(layer, nn.LeakyReLU):
                feats.append(x)
        return x, feats


def build_discriminator(*, in_channels: int = 3, width: int = 32, layers: int = 3) -> nn.Module:
    """A PatchGAN discriminator (whole-face or mask-region)."""
    return PatchDiscriminator(in_channels=in_channels, width=width, layers=layers)
