"""SSIM against scikit-image, the reconstruction and Dice losses, weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from training.losses import dice_loss, reconstruction_loss, ssim, ssim_map


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


def test_weighted_reconstruction_ignores_pixels_of_weight_zero() -> None:
    torch.manual_seed(0)
    target = torch.rand(2, 3, 32, 32) * 2 - 1
    out = target.clone()
    out[:, :, 20:] = -target[:, :, 20:]  # wrong only in the bottom rows
    weight = torch.ones(2, 1, 32, 32)
    assert reconstruction_loss(out, target).item() > 0.1
    weight[:, :, 14:] = 0  # those rows (and SSIM's reach of them) carry no weight
    assert reconstruction_loss(out, target, weight).item() == pytest.approx(0.0, abs=1e-4)
    weight[:, :, 14:] = 1
    assert reconstruction_loss(out, target, weight).item() == pytest.approx(
        reconstruction_loss(out, target).item(), rel=1e-5)


def test_the_segmenter_loss_weights_the_edge_ring() -> None:
    import torch

    from training.train_segmenter import edge_ring, segmentation_loss

    mask = torch.zeros(1, 1, 16, 16)
    mask[..., 4:12, 4:12] = 1
    ring = edge_ring(mask)
    assert ring.sum() == 10 * 10 - 6 * 6  # 1 px either side of the edge
    assert ring[..., 8, 8] == 0 and ring[..., 0, 0] == 0 and ring[..., 4, 4] == 1
    wrong_edge = torch.where(ring > 0, -mask * 8 + 4, mask * 16 - 8)  # right inside, wrong edge
    wrong_inside = torch.where(ring > 0, mask * 16 - 8, -mask * 8 + 4)
    plain = [segmentation_loss(x, mask, 0.0) for x in (wrong_edge, wrong_inside)]
    weighted = [segmentation_loss(x, mask, 0.0, edge_weight=4.0) for x in (wrong_edge,
                                                                              wrong_inside)]
    assert weighted[0] > plain[0] and torch.isclose(weighted[1], plain[1], rtol=0.2)
    assert weighted[0] / weighted[1] > plain[0] / plain[1]
