"""Train the GAN generator (DWSC U-Net) that paints the face under a mask.

    python -m training.train_inpainter --out runs/gen --minutes 40
    python -m training.train_inpainter --out runs/gen --minutes 40 --resume
    python -m training.train_inpainter --out runs/gen2 --init runs/gen/generator.safetensors \\
        --lr-gen 3e-4 --minutes 20
    python -m training.vgg convert --download           # once: VGG16 + LPIPS, offline after
    python -m training.train_inpainter --out runs/gen --refine

Generator input: the clean crop with the mask region zeroed, plus the mask; output: RGB painted
only inside the mask. Every loss and both discriminators' inputs are weighted by the validity
mask, so pixels that came from padding (the canonical crop reaches below most photos) carry
no loss. Losses: 100 x (L1 + (1 - SSIM)); a perceptual loss on ImageNet VGG16 features of the
lower face (relu1_2..relu3_3, weight 10; ``--vgg``, from ``python -m training.vgg convert``,
nothing is downloaded; ``--perceptual-weight 0`` trains without); a whole-image PatchGAN
(weight 0.3) with feature matching (weight 5) from the start and a mask-region PatchGAN
(weight 0.7, input: the composite and the mask) from 40% of the run on, i.e. of ``--steps`` or
of ``--minutes``, whichever runs out first; vanilla (BCE) GAN losses; Adam with two
time-scale rates (1e-4 generator, 4e-4 discriminators, betas 0.5/0.999). ``--identity-weight
W`` adds W x (1 - ArcFace cosine) of output and clean face (``training.identity_loss``, the
w600k_mbf ONNX run in torch; off by default, used to fine-tune with ``--init``). ``--band``
trains on segmenter-like misplaced masks with an edge ring the generator sees
(``training.band``), as the pipeline feeds a band checkpoint.

Validation reports PSNR/SSIM over the crop and in the hole, LPIPS in the hole's box and, when
the model is in the cache, the ArcFace cosine; the checkpoint with the lowest LPIPS (plus
0.25 x (1 - ArcFace cosine) when training with the identity loss: ``selection_score``) is kept
as ``out/generator.safetensors`` (the last one as ``out/last.safetensors``). Also
``out/train_state.*`` (for ``--resume``), ``out/samples/step_*.png`` (input | mask | output |
target) and ``out/metrics.jsonl``.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from engines.models import build_generator
from training.band import gated_paint, generator_inputs
from training.common import (
    Budget,
    build_datasets,
    run_meta,
    run_trainer,
    setup_torch,
)
from training.discriminator import build_discriminator
from training.evaluate import generate
from training.identity_loss import TorchArcFace, identity_loss
from training.inpainter_config import InpainterConfig, parse_config
from training.inpainter_validation import selection_score, validate
from training.losses import gan_loss, reconstruction_loss
from training.train_state import load_train_state, save_train_state, warm_start
from training.vgg import default_weights_path, load_vgg, perceptual_loss

LOWER_FACE = (0.2, 0.3, 0.8, 0.9)
"""x0, y0, x1, y1 of the canonical crop where coverings lie (fractions): the perceptual loss
looks there only, at 64 px, which keeps VGG16 affordable on a CPU."""


def lower_face(x: torch.Tensor, size: int = 64) -> torch.Tensor:
    """The ``LOWER_FACE`` box of NCHW crops, resized to ``size`` px."""
    s = x.shape[-1]
    x0, y0, x1, y1 = (round(f * s) for f in LOWER_FACE)
    return F.interpolate(x[..., y0:y1, x0:x1], size=(size, size), mode="area")


def load_arcface(config: InpainterConfig) -> torch.nn.Module | None:
    """The differentiable ArcFace: needed for ``--identity-weight`` > 0, else loaded only to
    validate identity when it is in the cache."""
    from training.identity import default_arcface_path, find_arcface

    if config.identity_weight == 0 and not (config.arcface or default_arcface_path()).is_file():
        return None
    model = TorchArcFace.from_onnx(find_arcface(config.arcface))
    return model.to(memory_format=torch.channels_last).requires_grad_(False)


def build_models(config: InpainterConfig) -> tuple[torch.nn.Module, ...]:
    gen = build_generator(**config.arch)
    if config.init is not None:
        warm_start(gen, config.init, "generator")
    d_whole = build_discriminator(in_channels=3, width=config.disc_width,
                                  layers=config.disc_layers)
    d_region = build_discriminator(in_channels=4, width=config.disc_width,
                                   layers=config.disc_layers)
    # Depthwise convolutions run ~1.5x faster on CPU in NHWC; batches arrive NHWC already.
    return tuple(m.to(memory_format=torch.channels_last) for m in (gen, d_whole, d_region))


def save_outputs(models: dict, optimizers: dict, config: InpainterConfig, step: int,
                 info: dict, metrics: dict, summary: dict, *, best: bool) -> None:
    """The training state, the last checkpoint, and the best one (lowest LPIPS) if ``best``."""
    import shutil

    from engines.checkpoint import save_checkpoint

    save_train_state(config.out, step=step, models=models, optimizers=optimizers, info=info,
                     arch=config.state_arch)
    last = config.out / "last.safetensors"
    save_checkpoint(last, models["generator"], kind="generator",
                    arch=config.arch,
                    crop_size=config.crop,
                    meta=run_meta(config, summary, metrics, step, info["train_seconds"]))
    if best:
        tmp = config.out / "generator.safetensors.tmp"
        shutil.copyfile(last, tmp)
        tmp.replace(config.out / "generator.safetensors")


class Losses:
    """The generator's and discriminators' losses of one batch, written out plainly."""

    def __init__(self, config: InpainterConfig, models: dict, vgg: torch.nn.Module | None,
                 arcface: torch.nn.Module | None = None) -> None:
        self.config, self.vgg, self.arcface = config, vgg, arcface
        self.gen, self.d_whole, self.d_region = (models[k] for k in
                                                 ("generator", "d_whole", "d_region"))

    def discriminators(self, clean, fake, mask, valid, use_region: bool):
        """(whole-face loss, mask-region loss or 0): real crops vs generated ones; padding is
        zeroed in both, so it tells the discriminators nothing."""
        fake = fake.detach()
        loss_dw = 0.5 * (gan_loss(self.d_whole(clean * valid), True)
                         + gan_loss(self.d_whole(fake * valid), False))
        loss_dr = torch.zeros(())
        if use_region:
            loss_dr = 0.5 * (gan_loss(self.d_region(torch.cat([clean * valid, mask], 1)), True)
                             + gan_loss(self.d_region(torch.cat([fake * valid, mask], 1)),
                                        False))
        return loss_dw, loss_dr

    def generator(self, clean, fake, mask, valid, use_region: bool,
                  gate: torch.Tensor | None = None) -> dict:
        """Each term of the generator's loss (unweighted) and ``total`` (weighted);
        ``gate``: a gated generator's ``gate_loss``."""
        cfg = self.config
        terms = {"rec": reconstruction_loss(fake, clean, valid)}
        logits, fake_feats = self.d_whole.forward_features(fake * valid)
        terms["adv_w"] = gan_loss(logits, True)
        with torch.no_grad():
            _, real_feats = self.d_whole.forward_features(clean * valid)
        terms["fm"] = sum((a - b).abs().mean() for a, b in zip(fake_feats, real_feats,
                                                              strict=True)) / len(fake_feats)
        terms["adv_r"] = (gan_loss(self.d_region(torch.cat([fake * valid, mask], 1)), True)
                          if use_region else torch.zeros(()))
        terms["perc"] = (perceptual_loss(self.vgg, lower_face(fake), lower_face(clean),
                                         lower_face(valid), (1.0, 1.0, 1.0))
                         if self.vgg is not None else torch.zeros(()))
        terms["id"] = (identity_loss(self.arcface, fake, clean, jitter=cfg.identity_jitter,
                                     valid=valid)
                       if self.arcface is not None
                       else torch.zeros(()))
        terms["total"] = (cfg.rec_weight * terms["rec"] + cfg.adv_whole * terms["adv_w"]
                          + cfg.adv_region * terms["adv_r"] + cfg.fm_weight * terms["fm"]
                          + cfg.perceptual_weight * terms["perc"]
                          + cfg.identity_weight * terms["id"])
        if gate is not None:
            terms["gate"] = gate
            terms["total"] = terms["total"] + cfg.gate_weight * gate
        return terms


def train(config: InpainterConfig) -> dict:
    """Runs until ``config.steps`` or the time budget; returns the last validation metrics."""
    setup_torch(config.seed, config.threads)
    train_set, val_set, summary = build_datasets(config)
    gen, d_whole, d_region = build_models(config)
    vgg_path = config.vgg or default_weights_path()
    vgg, lpips = load_vgg(vgg_path) if config.perceptual_weight > 0 or vgg_path.is_file() \
        else (None, None)
    betas = (0.5, 0.999)
    opt_g = torch.optim.Adam(gen.parameters(), lr=config.lr_gen, betas=betas)
    opt_dw = torch.optim.Adam(d_whole.parameters(), lr=config.lr_disc, betas=betas)
    opt_dr = torch.optim.Adam(d_region.parameters(), lr=config.lr_disc, betas=betas)
    models = {"generator": gen, "d_whole": d_whole, "d_region": d_region}
    optimizers = {"gen": opt_g, "d_whole": opt_dw, "d_region": opt_dr}
    arcface = load_arcface(config)
    losses = Losses(config, models, vgg if config.perceptual_weight > 0 else None,
                    arcface if config.identity_weight > 0 else None)
    step, seconds_before, region_step, metrics, best_score = 0, 0.0, None, {}, None
    best_kind = None
    if config.resume:
        info = load_train_state(config.out, models=models, optimizers=optimizers,
                                arch=config.state_arch)
        step, seconds_before = info["step"], info["train_seconds"]
        region_step, best_score = info.get("region_step"), info.get("best_lpips")
        best_kind = info.get("best_kind", "lpips")
        # A new --lr-gen or --lr-disc applies to a resumed run too.
        for opt, lr in ((opt_g, config.lr_gen), (opt_dw, config.lr_disc),
                        (opt_dr, config.lr_disc)):
            for group in opt.param_groups:
                group["lr"] = lr
    budget = Budget(config.minutes, first_step=step)
    config.out.mkdir(parents=True, exist_ok=True)
    log = (config.out / "metrics.jsonl").open("a")
    bar = tqdm(total=config.steps, initial=step, disable=not config.progress, unit="step")

    def checkpoint() -> None:
        nonlocal best_score, best_kind
        kind, score = selection_score(metrics, config)
        if kind != best_kind and best_kind is not None:
            bar.write(f"step {step}: checkpoints are now chosen by {kind} (was {best_kind})")
            best_score = None  # scores of another kind do not compare
        best = best_score is None or score < best_score or not (
            config.out / "generator.safetensors").is_file()
        best_score, best_kind = (score if best else best_score), kind
        info = {"train_seconds": seconds_before + budget.elapsed(), "region_step": region_step,
                "best_lpips": best_score, "best_kind": best_kind}
        save_outputs(models, optimizers, config, step, info, metrics, summary, best=best)

    try:
        while step < config.steps and budget.allows(step):
            progress = max(step / config.steps, budget.fraction())
            if region_step is None and progress >= config.region_start:
                region_step = step
                bar.write(f"step {step}: the mask-region discriminator joins")
            use_region = region_step is not None
            batch = train_set.batch(step, config.batch_size)
            clean, valid = batch["clean"], batch["valid"]
            channel, source = generator_inputs(
                batch, config.band, np.random.default_rng([config.seed, 4, step]),
                gate=config.gate, grown=config.grown)
            mask = (channel > 0).to(clean.dtype)  # what is repainted, for the region critic
            fake, gate = (gated_paint(gen, source, channel, batch["mask"], valid)
                          if config.gate else (generate(gen, source, channel, batch["guide"]),
                                               None))

            loss_dw, loss_dr = losses.discriminators(clean, fake, mask, valid, use_region)
            opt_dw.zero_grad(set_to_none=True)
            opt_dr.zero_grad(set_to_none=True)
            (loss_dw + loss_dr).backward()
            opt_dw.step()
            if use_region:
                opt_dr.step()

            terms = losses.generator(clean, fake, mask, valid, use_region, gate)
            opt_g.zero_grad(set_to_none=True)
            terms["total"].backward()
            opt_g.step()

            step += 1
            bar.update(1)
            logged = {k: round(v.item(), 5) for k, v in terms.items()}
            logged |= {"d_w": round(loss_dw.item(), 5), "d_r": round(loss_dr.item(), 5)}
            bar.set_postfix(rec=f"{logged['rec']:.4f}", d_w=f"{logged['d_w']:.3f}")
            log.write(json.dumps({"step": step, **logged}) + "\n")
            if step % config.val_every == 0 or step == config.steps or budget.spent():
                metrics = validate(gen, val_set, config, lpips,
                                   config.out / "samples" / f"step_{step:06d}.png", arcface)
                bar.write(f"step {step}: " + ", ".join(f"{k} {v:.4f}"
                                                       for k, v in metrics.items()))
                log.write(json.dumps({"step": step, **metrics}) + "\n")
                log.flush()
                checkpoint()
    except KeyboardInterrupt:
        bar.write(f"interrupted at step {step}: saving; continue with --resume")
        checkpoint()
        raise
    finally:
        bar.close()
        log.close()
    return {"step": step, **metrics}


def main(argv: list[str] | None = None) -> int:
    return run_trainer(parse_config, train, argv)


if __name__ == "__main__":
    sys.exit(main())
