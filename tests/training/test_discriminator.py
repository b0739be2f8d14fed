"""The PatchGAN discriminator on tiny inputs."""

from __future__ import annotations

import torch

from training.discriminator import build_discriminator


def test_discriminator_gives_patch_logits() -> None:
    disc = build_discriminator(in_channels=3, width=8)
    logits = disc(torch.randn(2, 3, 128, 128))
    assert logits.ndim == 4 and logits.shape[0] == 2 and logits.shape[1] == 1
    assert logits.shape[2] > 1  # a grid of patches, not one score


def test_discriminator_features_for_feature_matching() -> None:
    disc = build_discriminator(in_channels=3, width=8)
    x = torch.randn(2, 3, 64, 64)
    logits, feats = disc.forward_features(x)
    assert torch.equal(logits, disc(x)) and len(feats) == 3
