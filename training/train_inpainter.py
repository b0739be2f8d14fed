"""Train the GAN generator (DWSC U-Net) that paints the face under a mask.

    python -m training.train_inpainter --out runs/gen --minutes 40
    python -m training.train_inpainter --out runs/gen --minutes 40 --resume
    python -m training.train_inpainter --out runs/gen2 --init runs/gen/generator.safetensors \\
        --lr-gen 3e-4 --minutes 20
    python -m training.train_inpainter --out runs/gen --refine \\
        --perceptual-weights vgg16_relu3_3.safetensors

Generator input: the clean crop with the mask region zeroed, plus the mask; output: RGB painted
only inside the mask. Losses: 100 x (L1 + (1 - SSIM)); a whole-image PatchGAN (weight 0.3)
from the start and a mask-region PatchGAN (weight 0.7, input: the composite and the mask) from
40% of the run on, i.e. of ``--steps`` or of ``--minutes``, whichever runs out first;
vanilla (BCE) GAN losses; Adam with two time-scale rates (1e-4 generator, 4e-4
discriminators, betas 0.5/0.999). A perceptual loss is added only when
``--perceptual-weights`` names a file (VGG16 features up to relu3_3, torchvision key names,
safetensors; nothing is downloaded).

Writes ``out/generator.safetensors``, ``out/train_state.*`` (for ``--resume``),
``out/samples/step_*.png`` (input | mask | output | target) and ``out/metrics.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from training.common import (
    Budget,
    TrainConfig,
    add_common_args,
    build_datasets,
    common_kwargs,
    load_train_state,
    run_meta,
    run_trainer,
    save_grid,
    save_train_state,
    setup_torch,
    warm_start,
)
from training.data import OcclusionDataset
from training.evaluate import generate, image_metrics
from training.losses import load_feature_net, perceptual_loss, reconstruction_loss
from training.models import build_discriminator, build_generator


@dataclass(frozen=True)
class InpainterConfig(TrainConfig):
    """Generator training: the shared flags plus these."""

    depth: int = 4
    """Down blocks of the generator U-Net (4: an 8x8 bottleneck at 128 px)."""
    refine: bool = False
    """Add the coarse-to-fine refinement U-Net."""
    lr_gen: float = 1e-4
    lr_disc: float = 4e-4
    rec_weight: float = 100.0
    """Weight of L1 + (1 - SSIM)."""
    adv_whole: float = 0.3
    """Weight of the whole-image adversarial loss."""
    adv_region: float = 0.7
    """Weight of the mask-region adversarial loss (once it has started)."""
    region_start: float = 0.4
    """Fraction of the run after which the mask-region discriminator joins."""
    disc_width: int = 32
    disc_layers: int = 3
    perceptual_weights: Path | None = None
    """Safetensors weights of the feature network; None: no perceptual loss."""
    perceptual_weight: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        checks = [
            (2 <= self.depth <= 6, f"--depth must be 2..6, got {self.depth}"),
            (0 < self.lr_gen < 1 and 0 < self.lr_disc < 1,
             f"learning rates must be in (0, 1), got {self.lr_gen}, {self.lr_disc}"),
            (min(self.rec_weight, self.adv_whole, self.adv_region,
                 self.perceptual_weight) >= 0, "loss weights must be >= 0"),
            (0 <= self.region_start <= 1,
             f"--region-start must be in [0, 1], got {self.region_start}"),
            (self.perceptual_weights is None or self.perceptual_weights.is_file(),
             f"--perceptual-weights file not found: {self.perceptual_weights}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)


def gan_loss(logits: torch.Tensor, real: bool) -> torch.Tensor:
    """Vanilla GAN loss: BCE of PatchGAN logits against all-real or all-fake."""
    target = torch.ones_like(logits) if real else torch.zeros_like(logits)
    return F.binary_cross_entropy_with_logits(logits, target)


@torch.no_grad()
def validate(gen: torch.nn.Module, val: OcclusionDataset, config: InpainterConfig,
             grid_path: Path | None = None) -> dict:
    """Reconstruction loss, PSNR/SSIM over the crop and inside the mask, on fixed samples."""
    gen.eval()
    sums: dict[str, float] = {}
    for start in range(0, len(val), config.batch_size):
        ks = range(start, min(start + config.batch_size, len(val)))
        batch = val.collate([val.sample(k) for k in ks])
        out = generate(gen, batch["clean"], batch["mask"])
        values = image_metrics((out + 1) / 2, (batch["clean"] + 1) / 2, batch["mask"])
        values["rec"] = reconstruction_loss(out, batch["clean"]).expand(len(ks))
        for name, v in values.items():
            sums[name] = sums.get(name, 0.0) + float(v.sum())
        if start == 0 and grid_path is not None:
            save_grid(grid_path, [batch["masked"], batch["mask"], out, batch["clean"]])
    gen.train()
    return {f"val_{k}": v / len(val) for k, v in sums.items() if not k.startswith("mse")}


def build_models(config: InpainterConfig) -> tuple[torch.nn.Module, ...]:
    gen = build_generator(width=config.width, depth=config.depth, refine=config.refine)
    if config.init is not None:
        warm_start(gen, config.init, "generator")
    d_whole = build_discriminator(in_channels=3, width=config.disc_width,
                                  layers=config.disc_layers)
    d_region = build_discriminator(in_channels=4, width=config.disc_width,
                                   layers=config.disc_layers)
    # Depthwise convolutions run ~1.5x faster on CPU in NHWC; batches arrive NHWC already.
    return tuple(m.to(memory_format=torch.channels_last) for m in (gen, d_whole, d_region))


def save_outputs(models: dict, optimizers: dict, config: InpainterConfig, step: int,
                 info: dict, metrics: dict, summary: dict) -> None:
    from training.checkpoint import save_checkpoint

    save_train_state(config.out, step=step, models=models, optimizers=optimizers, info=info)
    save_checkpoint(config.out / "generator.safetensors", models["generator"], kind="generator",
                    arch={"width": config.width, "depth": config.depth,
                          "refine": config.refine},
                    crop_size=config.crop,
                    meta=run_meta(config, summary, metrics, step, info["train_seconds"]))


def train(config: InpainterConfig) -> dict:
    """Runs until ``config.steps`` or the time budget; returns the last validation metrics."""
    setup_torch(config.seed, config.threads)
    train_set, val_set, summary = build_datasets(config)
    gen, d_whole, d_region = build_models(config)
    features = (load_feature_net(config.perceptual_weights)
                if config.perceptual_weights is not None else None)
    betas = (0.5, 0.999)
    opt_g = torch.optim.Adam(gen.parameters(), lr=config.lr_gen, betas=betas)
    opt_dw = torch.optim.Adam(d_whole.parameters(), lr=config.lr_disc, betas=betas)
    opt_dr = torch.optim.Adam(d_region.parameters(), lr=config.lr_disc, betas=betas)
    models = {"generator": gen, "d_whole": d_whole, "d_region": d_region}
    optimizers = {"gen": opt_g, "d_whole": opt_dw, "d_region": opt_dr}
    step, seconds_before, region_step, metrics = 0, 0.0, None, {}
    if config.resume:
        info = load_train_state(config.out, models=models, optimizers=optimizers)
        step, seconds_before = info["step"], info["train_seconds"]
        region_step = info.get("region_step")
        # A new --lr-gen or --lr-disc applies to a resumed run too.
        for opt, lr in ((opt_g, config.lr_gen), (opt_dw, config.lr_disc),
                        (opt_dr, config.lr_disc)):
            for group in opt.param_groups:
                group["lr"] = lr
    budget = Budget(config.minutes)
    config.out.mkdir(parents=True, exist_ok=True)
    log = (config.out / "metrics.jsonl").open("a")
    bar = tqdm(total=config.steps, initial=step, disable=not config.progress, unit="step")

    def checkpoint() -> None:
        info = {"train_seconds": seconds_before + budget.elapsed(), "region_step": region_step}
        save_outputs(models, optimizers, config, step, info, metrics, summary)

    try:
        while step < config.steps and not budget.spent():
            progress = max(step / config.steps, budget.fraction())
            if region_step is None and progress >= config.region_start:
                region_step = step
                bar.write(f"step {step}: the mask-region discriminator joins")
            use_region = region_step is not None
            batch = train_set.batch(step, config.batch_size)
            clean, mask = batch["clean"], batch["mask"]
            fake = generate(gen, clean, mask)

            # Discriminators: real crops vs generated ones (the generator is not updated here).
            loss_dw = 0.5 * (gan_loss(d_whole(clean), True)
                             + gan_loss(d_whole(fake.detach()), False))
            opt_dw.zero_grad(set_to_none=True)
            loss_dw.backward()
            opt_dw.step()
            loss_dr = torch.zeros(())
            if use_region:
                loss_dr = 0.5 * (gan_loss(d_region(torch.cat([clean, mask], 1)), True)
                                 + gan_loss(d_region(torch.cat([fake.detach(), mask], 1)),
                                            False))
                opt_dr.zero_grad(set_to_none=True)
                loss_dr.backward()
                opt_dr.step()

            # Generator: reconstruction + fooling the discriminators (+ perceptual).
            loss_rec = reconstruction_loss(fake, clean)
            loss_adv_w = gan_loss(d_whole(fake), True)
            loss_adv_r = (gan_loss(d_region(torch.cat([fake, mask], 1)), True)
                          if use_region else torch.zeros(()))
            loss_g = (config.rec_weight * loss_rec + config.adv_whole * loss_adv_w
                      + config.adv_region * loss_adv_r)
            if features is not None:
                loss_g = loss_g + config.perceptual_weight * perceptual_loss(features, fake,
                                                                            clean)
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            opt_g.step()

            step += 1
            bar.update(1)
            losses = {"rec": loss_rec.item(), "adv_w": loss_adv_w.item(),
                      "adv_r": loss_adv_r.item(), "d_w": loss_dw.item(), "d_r": loss_dr.item()}
            bar.set_postfix(rec=f"{losses['rec']:.4f}", d_w=f"{losses['d_w']:.3f}")
            log.write(json.dumps({"step": step, **{k: round(v, 5) for k, v in
                                                   losses.items()}}) + "\n")
            if step % config.val_every == 0 or step == config.steps or budget.spent():
                metrics = validate(gen, val_set, config,
                                   config.out / "samples" / f"step_{step:06d}.png")
                bar.write(f"step {step}: " + ", ".join(f"{k} {v:.4f}"
                                                       for k, v in metrics.items()))
                log.write(json.dumps({"step": step, **metrics}) + "\n")
                checkpoint()
    except KeyboardInterrupt:
        bar.write(f"interrupted at step {step}: saving; continue with --resume")
        checkpoint()
        raise
    finally:
        bar.close()
        log.close()
    return {"step": step, **metrics}


def parse_config(argv: list[str] | None) -> InpainterConfig:
    parser = argparse.ArgumentParser(prog="python -m training.train_inpainter",
                                     description="Train the GAN generator.")
    add_common_args(parser)
    d = InpainterConfig.__dataclass_fields__
    parser.add_argument("--depth", type=int, default=d["depth"].default)
    parser.add_argument("--refine", action="store_true")
    for name in ("lr_gen", "lr_disc", "rec_weight", "adv_whole", "adv_region",
                 "region_start", "perceptual_weight"):
        parser.add_argument("--" + name.replace("_", "-"), type=float, default=d[name].default)
    for name in ("disc_width", "disc_layers"):
        parser.add_argument("--" + name.replace("_", "-"), type=int, default=d[name].default)
    parser.add_argument("--perceptual-weights", type=Path, default=None)
    args = parser.parse_args(argv)
    extra = {name: getattr(args, name) for name in (
        "depth", "refine", "lr_gen", "lr_disc", "rec_weight", "adv_whole", "adv_region",
        "region_start", "disc_width", "disc_layers", "perceptual_weights",
        "perceptual_weight")}
    return InpainterConfig(**common_kwargs(args), **extra)


def main(argv: list[str] | None = None) -> int:
    return run_trainer(parse_config, train, argv)


if __name__ == "__main__":
    sys.exit(main())
