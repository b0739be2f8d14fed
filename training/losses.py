"""Losses: SSIM with a Gaussian window, L1 + (1 - SSIM) reconstruction, Dice, and an optional
perceptual loss on a small VGG-like feature network whose weights the user supplies.

    rec = reconstruction_loss(out_rgb, clean_rgb)          # images in [-1, 1]
    dice = dice_loss(logits, mask)                          # mask in {0, 1}
    features = load_feature_net(Path("vgg16_relu3_3.safetensors"))
    perc = perceptual_loss(features, out_rgb, clean_rgb)

Nothing is downloaded: the feature network exists only when its weights file is given.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

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


def reconstruction_loss(out_rgb: torch.Tensor, target_rgb: torch.Tensor) -> torch.Tensor:
    """L1 + (1 - SSIM) of images in [-1, 1], over the whole crop."""
    l1 = (out_rgb - target_rgb).abs().mean()
    return l1 + (1 - ssim((out_rgb + 1) / 2, (target_rgb + 1) / 2))


def dice_loss(logits: torch.Tensor, mask: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """1 - soft Dice per image, averaged; ``eps`` keeps an empty mask from dividing by zero."""
    prob = torch.sigmoid(logits).flatten(1)
    target = mask.flatten(1)
    overlap = (prob * target).sum(1)
    return (1 - (2 * overlap + eps) / (prob.sum(1) + target.sum(1) + eps)).mean()


# ---------------------------------------------------------------------------------------------
# Perceptual loss (optional)

VGG16_RELU3_3 = (64, 64, "M", 128, 128, "M", 256, 256, 256)
"""VGG16's ``features`` up to relu3_3 (16 modules): the keys ``features.{0,2,5,7,10,12,14}``
of torchvision's VGG16 state dict, so its first layers saved as safetensors load as they are."""
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class FeatureNet(nn.Module):
    """Frozen VGG-like feature extractor; input RGB in [-1, 1], ImageNet-normalized inside."""

    def __init__(self, layout: tuple = VGG16_RELU3_3) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 3
        for item in layout:
            if item == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(c_in, int(item), 3, padding=1), nn.ReLU(inplace=False)]
                c_in = int(item)
        self.features = nn.Sequential(*layers)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def forward(self, rgb: torch.Tensor) -> list[torch.Tensor]:
        """Activations after each ReLU that precedes a pooling, and the last one."""
        x = ((rgb + 1) / 2 - self.mean) / self.std
        taps = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            last = i == len(self.features) - 1
            if isinstance(layer, nn.ReLU) and (last or isinstance(self.features[i + 1],
                                                                  nn.MaxPool2d)):
                taps.append(x)
        return taps


def load_feature_net(path: Path) -> FeatureNet:
    """A frozen FeatureNet from a safetensors file with keys ``features.N.weight/bias``."""
    from safetensors.torch import load_file

    if not path.is_file():
        raise FileNotFoundError(f"perceptual weights not found: {path}")
    net = FeatureNet()
    state = {k: v for k, v in load_file(str(path)).items() if k.startswith("features.")}
    expected = {k for k in net.state_dict() if k.startswith("features.")}
    missing = expected - state.keys()
    if missing:
        raise ValueError(f"{path} lacks {sorted(missing)[:3]}...: expected VGG16 features up "
                         "to relu3_3 (torchvision key names)")
    net.load_state_dict({k: state[k] for k in expected}, strict=False)
    return net.eval().requires_grad_(False)


def perceptual_loss(net: FeatureNet, out_rgb: torch.Tensor,
                    target_rgb: torch.Tensor) -> torch.Tensor:
    """Mean L1 distance between feature maps, summed over the tapped layers."""
    with torch.no_grad():
        target_feats = net(target_rgb)
    return sum((a - b).abs().mean() for a, b in zip(net(out_rgb), target_feats, strict=True))
