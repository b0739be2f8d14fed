"""Losses: SSIM with a Gaussian window, L1 + (1 - SSIM) reconstruction (optionally weighted
per pixel), Dice, the vanilla GAN loss. The perceptual loss and LPIPS live in ``training.vgg``.

    rec = reconstruction_loss(out_rgb, clean_rgb, weight=valid)   # images in [-1, 1]
    dice = dice_loss(logits, mask)                                 # mask in {0, 1}
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

SSIM_C1, SSIM_C2 = 0.01**2, 0.03**2
"""Stabilizers of Wang et al. (2004) for a data range of 1."""


def gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """(1, 1, size, size) normalized 2-D Gaussian."""
    x = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :])[None, None]


def ssim_map(a: torch.Tensor, b: torch.Tensor, *, window_size: int = 11,
             sigma: float = 1.5) -> torch.Tensor:
    """Per-pixel SSIM (N, C, H, W) of images in [0, 1]; reflect-padded so the map has the
    input's size (a border pixel still compares a full window)."""
    if a.shape != b.shape or a.ndim != 4:
        raise ValueError(f"ssim needs two N x C x H x W tensors of one shape, got "
                         f"{tuple(a.shape)} and {tuple(b.shape)}")
    channels = a.shape[1]
    window = gaussian_window(window_size, sigma).to(a).expand(channels, 1, -1, -1)
    pad = window_size // 2

    def blur(x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(x, (pad,) * 4, mode="reflect"), window, groups=channels)

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    return ((2 * mu_a * mu_b + SSIM_C1) * (2 * cov + SSIM_C2)) / (
        (mu_a**2 + mu_b**2 + SSIM_C1) * (var_a + var_b + SSIM_C2))


def ssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean SSIM of images in [0, 1] (a scalar; differentiable)."""
    return ssim_map(a, b).mean()


def reconstruction_loss(out_rgb: torch.Tensor, target_rgb: torch.Tensor,
                        weight: torch.Tensor | None = None) -> torch.Tensor:
    """L1 + (1 - SSIM) of images in [-1, 1], over the whole crop or weighted per pixel by
    ``weight`` (N, 1, H, W), e.g. the validity mask: padding then carries no loss."""
    l1_hw = (out_rgb - target_rgb).abs().mean(1, keepdim=True)
    dssim_hw = 1 - ssim_map((out_rgb + 1) / 2, (target_rgb + 1) / 2).mean(1, keepdim=True)
    if weight is None:
        return l1_hw.mean() + dssim_hw.mean()
    total = weight.sum().clamp(min=1.0)
    return ((l1_hw + dssim_hw) * weight).sum() / total


def real_pixels(images: torch.Tensor, clean: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """``images`` where the crop has a real pixel (``valid`` 1), ``clean`` where it is padding
    (the canonical crop's replicated border): what a loss or score over a whole crop should
    see, so that a guess painted into pixels no photo has tells it nothing."""
    return torch.where(valid > 0.5, images, clean)


def dice_loss(logits: torch.Tensor, mask: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """1 - soft Dice per image, averaged; ``eps`` keeps an empty mask from dividing by zero."""
    prob = torch.sigmoid(logits).flatten(1)
    target = mask.flatten(1)
    overlap = (prob * target).sum(1)
    return (1 - (2 * overlap + eps) / (prob.sum(1) + target.sum(1) + eps)).mean()


def gan_loss(logits: torch.Tensor, real: bool) -> torch.Tensor:
    """Vanilla GAN loss: BCE of PatchGAN logits against all-real or all-fake."""
    target = torch.ones_like(logits) if real else torch.zeros_like(logits)
    return F.binary_cross_entropy_with_logits(logits, target)
