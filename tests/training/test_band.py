"""Band training masks: a segmenter's misplaced edge, with the ring the generator sees."""

from __future__ import annotations

import numpy as np
import torch

from engines.base import BAND_LEVEL
from training.band import EXACT_P, band_masks, gate_loss, generator_inputs, misplaced


def _coverings(n: int = 64, size: int = 64) -> torch.Tensor:
    m = torch.zeros(n, 1, size, size)
    m[:, :, 30:56, 12:52] = 1
    return m


def test_band_masks_have_three_levels_near_the_covering() -> None:
    mask = _coverings()
    channel = band_masks(mask, np.random.default_rng(0))
    assert channel.shape == mask.shape
    assert set(torch.unique(channel).tolist()) == {0.0, BAND_LEVEL, 1.0}
    exact = [bool(torch.equal(c, m)) for c, m in zip(channel, mask, strict=True)]
    assert 0 < sum(exact) < len(exact)  # some are the true mask alone, most are not
    far = torch.ones_like(mask)
    far[:, :, 30 - 6:56 + 6, 12 - 6:52 + 6] = 0
    assert not (channel * far).any()  # never more than a few px off the covering
    assert torch.equal(band_masks(mask, np.random.default_rng(0)), channel)  # reproducible


def test_misplaced_edges_go_both_ways() -> None:
    m = _coverings(1)[0, 0].numpy()
    areas = {misplaced(m, np.random.default_rng(seed)).sum() - m.sum() for seed in range(40)}
    assert min(areas) < 0 < max(areas)


def test_band_training_shows_the_masked_crop_plain_training_the_clean_one() -> None:
    batch = {"mask": _coverings(4), "clean": torch.zeros(4, 3, 64, 64),
             "masked": torch.ones(4, 3, 64, 64)}
    channel, rgb = generator_inputs(batch, False, np.random.default_rng(0))
    assert channel is batch["mask"] and rgb is batch["clean"]
    channel, rgb = generator_inputs(batch, True, np.random.default_rng(0))
    assert rgb is batch["masked"] and (channel == BAND_LEVEL).any()


def test_grown_training_paints_the_pipelines_region_on_the_masked_crop() -> None:
    batch = {"mask": _coverings(64), "clean": torch.zeros(64, 3, 64, 64),
             "masked": torch.ones(64, 3, 64, 64)}
    channel, rgb = generator_inputs(batch, False, np.random.default_rng(0), grown=True)
    assert rgb is batch["masked"]
    assert set(torch.unique(channel).tolist()) == {0.0, 1.0}  # a plain generator's channel
    ring = band_masks(batch["mask"], np.random.default_rng(0))
    assert torch.equal(channel, (ring > 0).float())  # the band's painted region, no ring level
    assert channel.sum() > batch["mask"].sum()  # grown as the pipeline grows, on the whole


def test_gate_training_grows_further() -> None:
    mask = _coverings(256)
    narrow = band_masks(mask, np.random.default_rng(0))
    wide = band_masks(mask, np.random.default_rng(0), (4,))
    assert (wide > 0).sum() > (narrow > 0).sum()
    batch = {"mask": mask, "clean": torch.zeros(256, 3, 64, 64),
             "masked": torch.ones(256, 3, 64, 64)}
    gated, _ = generator_inputs(batch, True, np.random.default_rng(0), gate=True)
    plain, _ = generator_inputs(batch, True, np.random.default_rng(0))
    assert (gated > 0).sum() > (plain > 0).sum()
    assert 0 < EXACT_P < 0.5


def test_gate_loss_rewards_painting_the_covering_and_keeping_the_skin_on_the_ring() -> None:
    mask = _coverings(2)
    channel = band_masks(mask, np.random.default_rng(3), (3,))
    valid = torch.ones_like(mask)
    right = (mask * 2 - 1) * 20  # sure: paint the covering, keep the skin
    assert gate_loss(right, channel, mask, valid) < 1e-3
    assert gate_loss(-right, channel, mask, valid) > 10
    off_ring = right.clone()
    off_ring[(channel == 0) | (channel == 1)] *= -1  # wrong only where the gate does not act
    assert torch.equal(gate_loss(off_ring, channel, mask, valid),
                       gate_loss(right, channel, mask, valid))
    assert gate_loss(-right, channel, mask, torch.zeros_like(mask)) == 0  # padding: no loss
