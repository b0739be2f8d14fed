"""Train the mask segmenter (DWSC U-Net) on real unmasked faces with synthetic occluders.

    python -m training.train_segmenter --out runs/seg --minutes 30
    python -m training.train_segmenter --out runs/seg --minutes 30 --resume     # continue
    python -m training.train_segmenter --data ~/ffhq --crop 256 --out runs/seg256 --steps 50000

Loss: BCE + Dice on the mask logits. Validation (fixed occlusions on the validation split)
reports per-image IoU and F1 at probability 0.5, and the share of bare faces marked. Writes
``out/last.safetensors`` at every validation and ``out/segmenter.safetensors``, the best one
by ``selection_score`` (the last is often not the best: a fine-tune peaked 3 validations
before its end), via ``engines.checkpoint.save_checkpoint``; ``out/train_state.{safetensors,
json}`` for ``--resume``, ``out/samples/step_*.png`` (input | mask | prediction | target)
and ``out/metrics.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from engines.models import build_segmenter
from training.common import (
    Budget,
    TrainConfig,
    add_common_args,
    build_datasets,
    common_kwargs,
    run_meta,
    run_trainer,
    save_grid,
    setup_torch,
)
from training.data import OcclusionDataset
from training.losses import dice_loss
from training.real_labels import RealLabels
from training.train_state import load_train_state, save_train_state, warm_start


@dataclass(frozen=True)
class SegmenterConfig(TrainConfig):
    """Segmenter training: the shared flags plus these."""

    depth: int = 6
    """Down blocks of the U-Net (6 leaves a 2x2 bottleneck at 128 px)."""
    lr: float = 1e-3
    """Adam learning rate."""
    dice_weight: float = 1.0
    """Weight of the Dice loss next to BCE."""
    edge_weight: float = 0.0
    """Extra BCE weight on the pixels within 1 px of the true covering's edge (0: plain BCE).
    The pipeline's paint ends at the segmented edge, and a pixel off there costs identity
    (real skin repainted) or leaves a rim; interior pixels are easy and dominate plain BCE."""
    real_labels: Path | None = None
    """An .npz of real masked photos labelled by ``training.real_labels``; None: none."""
    real_share: float = 0.0
    """Share of each batch drawn from ``real_labels`` instead of the synthetic samples."""

    @property
    def arch(self) -> dict:
        """The checkpoint's architecture (``engines.models.build_segmenter``'s arguments)."""
        return {"width": self.width, "depth": self.depth, "upsample": "resize"}

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 3 <= self.depth <= 8 or self.crop % 2**self.depth:
            raise ValueError(f"--depth must be 3..8 and divide the crop, got {self.depth}")
        if not 0 < self.lr < 1:
            raise ValueError(f"--lr must be in (0, 1), got {self.lr}")
        if self.dice_weight < 0:
            raise ValueError(f"--dice-weight must be >= 0, got {self.dice_weight}")
        if self.edge_weight < 0:
            raise ValueError(f"--edge-weight must be >= 0, got {self.edge_weight}")
        if not 0 <= self.real_share < 1 or (self.real_share > 0) != (self.real_labels
                                                                      is not None):
            raise ValueError("--real-share must be in [0, 1) and given with --real-labels")


def segmentation_loss(logits: torch.Tensor, mask: torch.Tensor, dice_weight: float,
                      edge_weight: float = 0.0) -> torch.Tensor:
    """BCE (``edge_weight`` more on the edge ring, ``edge_ring``) + ``dice_weight`` x Dice."""
    weight = 1 + edge_weight * edge_ring(mask) if edge_weight else None
    return (F.binary_cross_entropy_with_logits(logits, mask, weight=weight)
            + dice_weight * dice_loss(logits, mask))


def edge_ring(mask: torch.Tensor) -> torch.Tensor:
    """(N, 1, H, W) {0, 1}: the pixels of a {0, 1} mask within 1 px of its edge, either side
    (a 3x3 dilation minus a 3x3 erosion)."""
    grown = F.max_pool2d(mask, 3, stride=1, padding=1)
    shrunk = -F.max_pool2d(-mask, 3, stride=1, padding=1)
    return grown - shrunk


def iou_f1(pred: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image IoU and F1 of binary masks (N,1,H,W); 1.0 when both are empty."""
    pred, mask = pred.flatten(1).float(), mask.flatten(1).float()
    tp = (pred * mask).sum(1)
    union = pred.sum(1) + mask.sum(1) - tp
    both_empty = union == 0
    iou = torch.where(both_empty, torch.ones_like(tp), tp / union.clamp(min=1))
    f1 = torch.where(both_empty, torch.ones_like(tp),
                     2 * tp / (pred.sum(1) + mask.sum(1)).clamp(min=1))
    return iou, f1


@torch.no_grad()
def validate(model: torch.nn.Module, val: OcclusionDataset, config: SegmenterConfig,
             grid_path: object = None) -> dict:
    """Mean loss; IoU and F1 at probability 0.5 on faces with a covering; on faces without
    one (bare or with distractors) the marked share of the crop and the share of faces with
    more than 1% marked. Saves a sample grid if asked."""
    model.eval()
    losses, ious, f1s, false_shares = [], [], [], []
    for start in range(0, len(val), config.batch_size):
        batch = val.collate([val.sample(k) for k in
                             range(start, min(start + config.batch_size, len(val)))])
        logits = model(batch["masked"])
        losses.append(segmentation_loss(logits, batch["mask"], config.dice_weight).item())
        pred, positive = logits > 0, batch["mask"].flatten(1).any(1)
        iou, f1 = iou_f1(pred, batch["mask"] > 0.5)
        ious.append(iou[positive])
        f1s.append(f1[positive])
        false_shares.append(pred.flatten(1).float().mean(1)[~positive])
        if start == 0 and grid_path is not None:
            save_grid(grid_path, [batch["masked"], batch["mask"], torch.sigmoid(logits),
                                  batch["clean"]])
    model.train()
    shares = torch.cat(false_shares)
    metrics = {"val_loss": sum(losses) / len(losses), "val_iou": torch.cat(ious).mean().item(),
               "val_f1": torch.cat(f1s).mean().item()}
    if len(shares):
        metrics |= {"val_false_share": shares.mean().item(),
                    "val_false_over_1pct": (shares > 0.01).float().mean().item()}
    return metrics


FALSE_MARK_COST = 10.0
"""In ``selection_score``, 0.1% of bare-face pixels marked costs as much as 0.01 of IoU: a
painted bare face is the worse error."""


def selection_score(metrics: dict) -> float:
    """Higher is better: validation IoU on coverings minus ``FALSE_MARK_COST`` x the share of
    bare-face pixels marked."""
    return metrics["val_iou"] - FALSE_MARK_COST * metrics.get("val_false_share", 0.0)


def mixed_batch(train_set: OcclusionDataset, real: RealLabels | None, share: float, step: int,
                batch_size: int, seed: int) -> dict:
    """Batch ``step``: the synthetic samples, each replaced with probability ``share`` by a
    real labelled photo (its own seeded stream, so a resumed run draws the same)."""
    if real is None:
        return train_set.batch(step, batch_size)
    rng = np.random.default_rng([seed, 9, step])
    ks = range(step * batch_size, (step + 1) * batch_size)
    return train_set.collate([real.sample(k, seed) if rng.random() < share
                              else train_set.sample(k) for k in ks])


def save_outputs(model: torch.nn.Module, opt: torch.optim.Optimizer, config: SegmenterConfig,
                 step: int, info: dict, metrics: dict, summary: dict) -> float | None:
    """The training state for --resume, the last checkpoint, and the best one (the one the
    app loads) when this validation scored higher than every earlier one of the run; returns
    the best score so far (``info["best_score"]`` carries it across resumes)."""
    import shutil

    from engines.checkpoint import save_checkpoint

    score = selection_score(metrics) if "val_iou" in metrics else None
    best = info.get("best_score")
    is_best = (best is None or (score is not None and score > best)
               or not (config.out / "segmenter.safetensors").is_file())
    info = {**info, "best_score": score if is_best else best}
    save_train_state(config.out, step=step, models={"segmenter": model},
                     optimizers={"adam": opt}, info=info, arch=config.state_arch)
    last = config.out / "last.safetensors"
    save_checkpoint(last, model, kind="segmenter",
                    arch=config.arch,
                    crop_size=config.crop,
                    meta=run_meta(config, summary, metrics, step, info["train_seconds"]))
    if is_best:
        tmp = config.out / "segmenter.safetensors.tmp"
        shutil.copyfile(last, tmp)
        tmp.replace(config.out / "segmenter.safetensors")
    return info["best_score"]


def train(config: SegmenterConfig) -> dict:
    """Runs until ``config.steps`` or the time budget; returns the last validation metrics."""
    setup_torch(config.seed, config.threads)
    train_set, val_set, summary = build_datasets(config)
    real = None
    if config.real_labels is not None:
        real = RealLabels(config.real_labels)
        summary["real_labelled_photos"] = len(real)
    model = build_segmenter(**config.arch)
    if config.init is not None:
        warm_start(model, config.init, "segmenter")
    # Depthwise convolutions run ~1.7x faster on CPU in NHWC; batches arrive NHWC already.
    model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    step, seconds_before, metrics, best_score = 0, 0.0, {}, None
    if config.resume:
        info = load_train_state(config.out, models={"segmenter": model},
                                optimizers={"adam": opt}, arch=config.state_arch)
        step, seconds_before = info["step"], info["train_seconds"]
        best_score = info.get("best_score")
        for group in opt.param_groups:  # a new --lr applies to a resumed run too
            group["lr"] = config.lr
    budget = Budget(config.minutes, first_step=step)
    config.out.mkdir(parents=True, exist_ok=True)
    log = (config.out / "metrics.jsonl").open("a")
    bar = tqdm(total=config.steps, initial=step, disable=not config.progress, unit="step")
    model.train()

    def checkpoint() -> float | None:
        info = {"train_seconds": seconds_before + budget.elapsed(), "best_score": best_score}
        return save_outputs(model, opt, config, step, info, metrics, summary)

    try:
        while step < config.steps and budget.allows(step):
            batch = mixed_batch(train_set, real, config.real_share, step, config.batch_size,
                                config.seed)
            logits = model(batch["masked"])
            loss = segmentation_loss(logits, batch["mask"], config.dice_weight,
                                     config.edge_weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.4f}")
            log.write(json.dumps({"step": step, "loss": round(loss.item(), 5)}) + "\n")
            if step % config.val_every == 0 or step == config.steps or budget.spent():
                metrics = validate(model, val_set, config,
                                   config.out / "samples" / f"step_{step:06d}.png")
                bar.write(f"step {step}: " + ", ".join(f"{k} {v:.4f}"
                                                       for k, v in metrics.items()))
                log.write(json.dumps({"step": step, **metrics}) + "\n")
                best_score = checkpoint()
    except KeyboardInterrupt:
        bar.write(f"interrupted at step {step}: saving; continue with --resume")
        checkpoint()
        raise
    finally:
        bar.close()
        log.close()
    return {"step": step, **metrics}


def parse_config(argv: list[str] | None) -> SegmenterConfig:
    parser = argparse.ArgumentParser(prog="python -m training.train_segmenter",
                                     description="Train the mask segmenter.")
    add_common_args(parser, mix="segmenter")
    parser.add_argument("--depth", type=int, default=6)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--dice-weight", type=float, default=1.0)
    parser.add_argument("--edge-weight", type=float, default=0.0,
                        help="extra BCE weight within 1 px of the covering's edge (default 0)")
    parser.add_argument("--real-labels", type=Path, default=None,
                        help="real masked photos labelled by python -m training.real_labels")
    parser.add_argument("--real-share", type=float, default=0.0, metavar="P",
                        help="share of each batch drawn from --real-labels (default 0)")
    args = parser.parse_args(argv)
    return SegmenterConfig(**common_kwargs(args), depth=args.depth, lr=args.lr,
                           dice_weight=args.dice_weight, edge_weight=args.edge_weight,
                           real_labels=args.real_labels, real_share=args.real_share)


def main(argv: list[str] | None = None) -> int:
    return run_trainer(parse_config, train, argv)


if __name__ == "__main__":
    sys.exit(main())
