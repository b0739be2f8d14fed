"""Metrics on known cases, the baselines, and a whole evaluation run on a few faces."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from training.evaluate import (
    PSNR_CAP_DB,
    Tally,
    band_of,
    image_metrics,
    main,
    mask_iou,
    mse_per_image,
    psnr_from_mse,
    telea,
)


def test_identical_images_give_capped_psnr_and_ssim_one() -> None:
    torch.manual_seed(0)
    a = torch.rand(3, 3, 32, 32)
    mask = (torch.rand(3, 1, 32, 32) > 0.5).float()
    m = image_metrics(a, a.clone(), mask)
    assert (m["mse"] == 0).all() and (m["mse_mask"] == 0).all()
    assert (m["psnr"] == PSNR_CAP_DB).all() and (m["psnr_mask"] == PSNR_CAP_DB).all()
    assert torch.allclose(m["ssim"], torch.ones(3), atol=1e-5)
    assert torch.allclose(m["ssim_mask"], torch.ones(3), atol=1e-5)


@pytest.mark.parametrize("sigma", [0.01, 0.05, 0.1])
def test_gaussian_noise_psnr_follows_the_formula(sigma: float) -> None:
    gen = torch.Generator().manual_seed(1)
    clean = 0.3 + 0.4 * torch.rand(2, 3, 64, 64, generator=gen)  # no clipping at +-3 sigma
    noisy = clean + sigma * torch.randn(clean.shape, generator=gen)
    m = image_metrics(noisy, clean, torch.ones(2, 1, 64, 64))
    mse = ((noisy - clean) ** 2).flatten(1).mean(1)
    torch.testing.assert_close(m["psnr"], 10 * torch.log10(1 / mse))
    assert m["psnr"].mean().item() == pytest.approx(-20 * math.log10(sigma), abs=0.1)
    torch.testing.assert_close(m["psnr_mask"], m["psnr"])  # a full mask is the whole crop


def test_mask_metrics_only_see_the_mask() -> None:
    clean = torch.full((1, 3, 32, 32), 0.5)
    mask = torch.zeros(1, 1, 32, 32)
    mask[..., 16:, :] = 1
    out = clean.clone()
    out[..., :16, :] = 0.0  # wrong only outside the mask
    m = image_metrics(out, clean, mask)
    assert m["psnr_mask"].item() == PSNR_CAP_DB and m["mse_mask"].item() == 0
    assert m["mse"].item() == pytest.approx(0.125)  # half the pixels off by 0.5
    assert mse_per_image(out, clean, torch.zeros_like(mask)).item() == 0  # empty mask: no NaN


def test_psnr_cap_and_iou_edge_cases() -> None:
    assert psnr_from_mse(torch.tensor([0.0, 1e-12, 1.0])).tolist() == [100.0, 100.0, 0.0]
    a = torch.zeros(3, 1, 4, 4)
    b = torch.zeros(3, 1, 4, 4)
    a[1, :, :2] = 1
    b[1, :, :1] = 1  # half of a
    a[2, :, :2] = 1
    b[2, :, 2:] = 1  # disjoint
    assert mask_iou(a, b).tolist() == [1.0, 0.5, 0.0]


@pytest.mark.parametrize(("ratio", "band"), [(0.05, "0%-10%"), (0.1, "10%-15%"),
                                             (0.149, "10%-15%"), (0.17, "15%-20%"),
                                             (0.25, "20%-30%"), (0.3, ">30%"), (1.0, ">30%")])
def test_ratio_bands(ratio: float, band: str) -> None:
    assert band_of(ratio) == band


def test_telea_fills_only_the_mask() -> None:
    image = np.full((32, 32, 3), 120, np.uint8)
    masked = image.copy()
    masked[10:20, 10:20] = 0
    mask_hw = np.zeros((32, 32), np.float32)
    mask_hw[10:20, 10:20] = 1
    filled = telea(masked, mask_hw)
    np.testing.assert_array_equal(filled[mask_hw == 0], image[mask_hw == 0])
    assert np.abs(filled[10:20, 10:20].astype(int) - 120).max() <= 2


def test_tally_groups_by_band_and_overall() -> None:
    tally = Tally()
    tally.add("m", ["10%-15%", "20%-30%", "10%-15%"], {"psnr": torch.tensor([10.0, 20.0, 30.0])})
    summary = tally.summary()["m"]
    assert summary["10%-15%"] == {"psnr": 20.0, "count": 2}
    assert summary["all"]["psnr"] == 20.0 and summary["all"]["count"] == 3


def test_evaluation_run_writes_tables(face_dir: Path, masks_root: Path, tmp_path: Path) -> None:
    from training.checkpoint import random_model, save_checkpoint

    paths = {}
    for kind in ("generator", "segmenter"):
        model, meta = random_model(kind, width=8)
        paths[kind] = tmp_path / f"{kind}.safetensors"
        save_checkpoint(paths[kind], model, kind=kind, arch=meta["arch"], crop_size=128,
                        meta={"step": 0})
    out = tmp_path / "eval"
    rc = main(["--out", str(out), "--data", str(face_dir), "--masks", str(masks_root),
               "--cache", str(tmp_path / "cache"), "--generator", str(paths["generator"]),
               "--segmenter", str(paths["segmenter"]), "--batch-size", "4"])
    assert rc == 0
    result = json.loads((out / "eval.json").read_text())
    assert result["faces"] == 2  # the two validation_* faces
    methods = set(result["results"])
    assert methods == {"masked input", "telea (true mask)", "generator (true mask)",
                       "segmenter", "generator (segmenter mask)"}
    overall = result["results"]["telea (true mask)"]["all"]
    assert overall["count"] == 2 and 0 < overall["psnr"] < PSNR_CAP_DB
    # Telea beats leaving the occluder in place, inside the mask.
    assert overall["psnr_mask"] > result["results"]["masked input"]["all"]["psnr_mask"]
    assert 0 <= result["results"]["segmenter"]["all"]["iou"] <= 1
    table = (out / "eval.md").read_text()
    assert "### psnr_mask" in table and "| generator (true mask) |" in table


def test_evaluation_reports_a_missing_checkpoint(tmp_path: Path, face_dir: Path) -> None:
    rc = main(["--out", str(tmp_path), "--data", str(face_dir),
               "--generator", str(tmp_path / "nope.safetensors")])
    assert rc == 1
