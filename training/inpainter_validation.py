"""Validation of the generator during ``training.train_inpainter``, and the score by which
the best checkpoint is kept.

    metrics = validate(gen, val, config, lpips, grid_path, arcface)   # {"val_lpips_hole": ...}
    criterion, score = selection_score(metrics, config)               # lower is better
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from training.band import generator_inputs
from training.common import save_grid
from training.data import OcclusionDataset
from training.eval_metrics import generate, image_metrics, lpips_hole
from training.identity_loss import embed
from training.losses import real_pixels, reconstruction_loss

if TYPE_CHECKING:
    from training.inpainter_config import InpainterConfig


@torch.no_grad()
def validate(gen: torch.nn.Module, val: OcclusionDataset, config: InpainterConfig,
             lpips: torch.nn.Module | None, grid_path: Path | None = None,
             arcface: torch.nn.Module | None = None) -> dict:
    """Reconstruction loss, PSNR/SSIM over the crop and inside the mask, LPIPS in the mask's
    box and the ArcFace cosine to the clean face (when those nets are given), on fixed
    samples; pixels of the crop that are padding (``valid`` 0) count as the clean crop's, so
    only what a photo shows is scored."""
    gen.eval()
    sums: dict[str, float] = {}
    for start in range(0, len(val), config.batch_size):
        ks = range(start, min(start + config.batch_size, len(val)))
        batch = val.collate([val.sample(k) for k in ks])
        channel, source = generator_inputs(batch, config.band,
                                           np.random.default_rng([config.seed, 3, start]),
                                           gate=config.gate, grown=config.grown)
        raw = generate(gen, source, channel, batch["guide"])
        clean, valid = batch["clean"], batch["valid"]
        out, hole = real_pixels(raw, clean, valid), batch["mask"] * valid  # padding: no score
        values = image_metrics((out + 1) / 2, (clean + 1) / 2, hole)
        values["rec"] = reconstruction_loss(raw, clean, valid).expand(len(ks))
        if lpips is not None:
            values["lpips_hole"] = lpips_hole(lpips, [out], clean, hole)[0]
        if arcface is not None:
            values["arcface"] = (embed(arcface, out) * embed(arcface, clean)).sum(1)
        for name, v in values.items():
            sums[name] = sums.get(name, 0.0) + float(v.sum())
        if start == 0 and grid_path is not None:
            save_grid(grid_path, [batch["masked"], channel, raw, clean])
    gen.train()
    return {f"val_{k}": v / len(val) for k, v in sums.items() if not k.startswith("mse")}


IDENTITY_SELECT = 0.25
"""With the identity loss on, the best checkpoint minimises LPIPS + this x (1 - ArcFace
cosine): 0.01 of cosine is worth 0.0025 of LPIPS, about the step-to-step noise of either on
128 validation faces."""


def selection_score(metrics: dict, config: InpainterConfig) -> tuple[str, float]:
    """(criterion, score; lower is better) by which the best checkpoint is chosen: validation
    LPIPS in the hole's box (minus hole PSNR without VGG16), plus the identity term when the
    run trains with ``--identity-weight``."""
    if "val_lpips_hole" in metrics:
        kind, score = "lpips", metrics["val_lpips_hole"]
    else:
        kind, score = "psnr", -metrics.get("val_psnr_mask", 0.0)
    if config.identity_weight > 0 and "val_arcface" in metrics:
        kind, score = kind + "+arcface", score + IDENTITY_SELECT * (1 - metrics["val_arcface"])
    return kind, score
