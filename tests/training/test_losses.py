"""SSIM against scikit-image, the reconstruction and Dice losses, the optional perceptual loss."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from training.losses import (
    FeatureNet,
    dice_loss,
    load_feature_net,
    perceptual_loss,
    reconstruction_loss,
    ssim,
    ssim_map,
)


def test_ssim_matches_scikit_image_away_from_the_border() -> None:
    rng = np.random.default_rng(0)
    a = rng.random((48, 40)).astype(np.float64)
    b = np.clip(a + rng.normal(0, 0.1, a.shape), 0, 1)
    _, expected = structural_similarity(a, b, data_range=1.0, gaussian_weights=True, sigma=1.5,
                                        use_sample_covariance=False, full=True)
    got = ssim_map(torch.from_numpy(a)[None, None].float(),
                   torch.from_numpy(b)[None, None].float())[0, 0].numpy()
    np.testing.assert_allclose(got[5:-5, 5:-5], expected[5:-5, 5:-5], atol=2e-4)


def test_ssim_is_one_for_identical_images_and_differentiable() -> None:
    torch.manual_seed(0)
    a = torch.rand(2, 3, 32, 32)
    assert ssim(a, a).item() == pytest.approx(1.0, abs=1e-5)
    b = (a + 0.2 * torch.randn_like(a)).clamp(0, 1).requires_grad_(True)
    value = ssim(a, b)
    assert value.item() < 0.9
    value.backward()
    assert b.grad is not None and torch.isfinite(b.grad).all() and b.grad.abs().sum() > 0


def test_ssim_rejects_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match="one shape"):
        ssim(torch.zeros(1, 3, 16, 16), torch.zeros(1, 3, 16, 8))


def test_reconstruction_loss_is_l1_plus_one_minus_ssim() -> None:
    torch.manual_seed(1)
    target = torch.rand(2, 3, 32, 32) * 2 - 1
    assert reconstruction_loss(target, target).item() == pytest.approx(0.0, abs=1e-5)
    out = (target + 0.3 * torch.randn_like(target)).clamp(-1, 1)
    expected = (out - target).abs().mean() + 1 - ssim((out + 1) / 2, (target + 1) / 2)
    assert reconstruction_loss(out, target).item() == pytest.approx(expected.item(), rel=1e-6)


@pytest.mark.parametrize(
    ("logit_sign", "mask_value", "expected"),
    [(1, 1.0, 0.0), (-1, 1.0, 1.0), (-1, 0.0, 0.0), (1, 0.0, 1.0)],
)
def test_dice_loss_on_known_cases(logit_sign: int, mask_value: float, expected: float) -> None:
    mask = torch.full((2, 1, 16, 16), mask_value)
    logits = torch.full_like(mask, 50.0 * logit_sign)
    assert dice_loss(logits, mask).item() == pytest.approx(expected, abs=0.01)


def test_perceptual_loss_from_a_weights_file(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    torch.manual_seed(0)
    net = FeatureNet()
    path = tmp_path / "vgg.safetensors"
    save_file({k: v for k, v in net.state_dict().items() if k.startswith("features.")},
              str(path))
    loaded = load_feature_net(path)
    assert not any(p.requires_grad for p in loaded.parameters())
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    assert perceptual_loss(loaded, x, x).item() == 0.0
    y = x.flip(-1).requires_grad_(True)
    loss = perceptual_loss(loaded, y, x)
    loss.backward()
    assert loss.item() > 0 and y.grad is not None and y.grad.abs().sum() > 0


def test_perceptual_weights_must_match_the_documented_layout(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    path = tmp_path / "other.safetensors"
    save_file({"features.0.weight": torch.zeros(64, 3, 3, 3)}, str(path))
    with pytest.raises(ValueError, match="relu3_3"):
        load_feature_net(path)
    with pytest.raises(FileNotFoundError):
        load_feature_net(tmp_path / "missing.safetensors")
