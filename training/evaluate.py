"""Evaluate the generator (with ground-truth and with segmented masks), the segmenter, and two
baselines (OpenCV Telea inpainting, and the masked input itself) on the validation split with
fixed synthetic occlusions, grouped by occlusion ratio (mask pixels / crop pixels).

    python -m training.evaluate --generator runs/gen/generator.safetensors \\
        --segmenter runs/seg/segmenter.safetensors --out runs/eval
    python -m training.evaluate --out runs/eval            # the bundled weights

Writes ``out/eval.md`` (markdown tables) and ``out/eval.json``. PSNR is capped at 100 dB
(identical images); "mask" columns are computed over the ground-truth mask pixels only, for
every method, so the rows compare the same pixels.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch

from training.losses import ssim_map

PSNR_CAP_DB = 100.0
BANDS = ((0.0, 0.10), (0.10, 0.15), (0.15, 0.20), (0.20, 0.30), (0.30, 1.01))
"""Occlusion-ratio bands: the research reports 10-15%, 20-30% and larger; the others are
what falls between and below."""
METRICS = ("psnr", "ssim", "mse", "psnr_mask", "ssim_mask", "mse_mask")


# ---------------------------------------------------------------------------------------------
# Metrics on images in [0, 1], (N, C, H, W); masks (N, 1, H, W) in {0, 1}


def mse_per_image(a: torch.Tensor, b: torch.Tensor,
                  mask: torch.Tensor | None = None) -> torch.Tensor:
    """(N,) mean squared error, over all pixels or over the mask's pixels."""
    err = (a - b).square().mean(dim=1, keepdim=True)
    if mask is None:
        return err.flatten(1).mean(1)
    return (err * mask).flatten(1).sum(1) / mask.flatten(1).sum(1).clamp(min=1)


def psnr_from_mse(mse: torch.Tensor, cap_db: float = PSNR_CAP_DB) -> torch.Tensor:
    """10 log10(1 / mse) for a data range of 1, capped (identical images give ``cap_db``)."""
    return (10 * torch.log10(1.0 / mse.clamp(min=10 ** (-cap_db / 10)))).clamp(max=cap_db)


def ssim_per_image(a: torch.Tensor, b: torch.Tensor,
                   mask: torch.Tensor | None = None) -> torch.Tensor:
    """(N,) mean SSIM (Gaussian window 11, sigma 1.5), over all pixels or the mask's."""
    s = ssim_map(a, b).mean(dim=1, keepdim=True)
    if mask is None:
        return s.flatten(1).mean(1)
    return (s * mask).flatten(1).sum(1) / mask.flatten(1).sum(1).clamp(min=1)


def image_metrics(out: torch.Tensor, target: torch.Tensor,
                  mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-image PSNR, SSIM and MSE over the crop and inside the mask."""
    mse, mse_mask = mse_per_image(out, target), mse_per_image(out, target, mask)
    return {"psnr": psnr_from_mse(mse), "ssim": ssim_per_image(out, target), "mse": mse,
            "psnr_mask": psnr_from_mse(mse_mask),
            "ssim_mask": ssim_per_image(out, target, mask), "mse_mask": mse_mask}


def mask_iou(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(N,) IoU of binary masks; 1 when both are empty."""
    pred, target = pred.flatten(1).bool(), target.flatten(1).bool()
    inter = (pred & target).sum(1).float()
    union = (pred | target).sum(1).float()
    return torch.where(union == 0, torch.ones_like(union), inter / union.clamp(min=1))


def band_name(lo: float, hi: float) -> str:
    return f"{lo:.0%}-{hi:.0%}" if hi <= 1 else f">{lo:.0%}"


def band_of(ratio: float) -> str:
    for lo, hi in BANDS:
        if lo <= ratio < hi:
            return band_name(lo, hi)
    raise ValueError(f"occlusion ratio out of [0, 1]: {ratio}")


# ---------------------------------------------------------------------------------------------
# Methods


def telea(masked_rgb: np.ndarray, mask_hw: np.ndarray, radius: int = 3) -> np.ndarray:
    """OpenCV Telea inpainting of an RGB uint8 crop inside a {0, 1} mask."""
    mask_u8 = (mask_hw > 0.5).astype(np.uint8) * 255
    return cv2.inpaint(np.ascontiguousarray(masked_rgb), mask_u8, radius, cv2.INPAINT_TELEA)


def generate(generator: torch.nn.Module, image: torch.Tensor,
             mask: torch.Tensor) -> torch.Tensor:
    """Generator output in [-1, 1] for an RGB image in [-1, 1] and a {0, 1} mask."""
    return generator(torch.cat([image * (1 - mask), mask], dim=1))


@dataclass
class Tally:
    """Per-image values collected per method and band."""

    rows: dict[tuple[str, str], dict[str, list[float]]] = field(default_factory=dict)

    def add(self, method: str, bands: list[str], values: dict[str, torch.Tensor]) -> None:
        for i, band in enumerate(bands):
            for key in (band, "all"):
                cell = self.rows.setdefault((method, key), {})
                for name, v in values.items():
                    cell.setdefault(name, []).append(float(v[i]))

    def summary(self) -> dict[str, dict[str, dict[str, float]]]:
        out: dict[str, dict[str, dict[str, float]]] = {}
        for (method, band), cell in self.rows.items():
            stats = {name: float(np.mean(v)) for name, v in cell.items()}
            stats["count"] = len(next(iter(cell.values())))
            out.setdefault(method, {})[band] = stats
        return out


def evaluate_batch(batch: dict, tally: Tally, generator: torch.nn.Module | None,
                   segmenter: torch.nn.Module | None) -> None:
    """Scores every method on one batch (tensors in [-1, 1]) and adds them to ``tally``."""
    masked, mask, clean = batch["masked"], batch["mask"], batch["clean"]
    target = (clean + 1) / 2
    ratios = mask.flatten(1).mean(1)
    bands = [band_of(float(r)) for r in ratios]
    tally.add("masked input", bands, image_metrics((masked + 1) / 2, target, mask))
    masked_rgb = ((masked + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()
    telea_rgb = np.stack([telea(m, k[0].numpy()) for m, k in zip(masked_rgb, mask,
                                                                  strict=True)])
    telea_t = torch.from_numpy(telea_rgb).permute(0, 3, 1, 2).float() / 255
    tally.add("telea (true mask)", bands, image_metrics(telea_t, target, mask))
    if generator is not None:
        out = generate(generator, masked, mask)
        tally.add("generator (true mask)", bands, image_metrics((out + 1) / 2, target, mask))
    if segmenter is not None:
        pred = (segmenter(masked) > 0).float()
        tally.add("segmenter", bands, {"iou": mask_iou(pred, mask)})
        if generator is not None:
            out = generate(generator, masked, pred)
            tally.add("generator (segmenter mask)", bands,
                      image_metrics((out + 1) / 2, target, mask))


def markdown(summary: dict, header: str) -> str:
    """One table per metric group: rows are methods, columns are ratio bands."""
    band_names = [band_name(lo, hi) for lo, hi in BANDS] + ["all"]
    counts = next(iter(summary.values()))
    lines = [header, "", "Images per band: " + ", ".join(
        f"{b} {counts.get(b, {}).get('count', 0)}" for b in band_names), ""]
    for metric in (*METRICS, "iou"):
        methods = [m for m, cells in summary.items() if metric in cells.get("all", {})]
        if not methods:
            continue
        lines += [f"### {metric}", "", "| method | " + " | ".join(band_names) + " |",
                  "|---|" + "---:|" * len(band_names)]
        for m in methods:
            cells = [summary[m].get(b, {}).get(metric) for b in band_names]
            lines.append(f"| {m} | " + " | ".join(
                "-" if c is None else f"{c:.4f}" if metric.startswith(("mse", "ssim", "iou"))
                else f"{c:.2f}" for c in cells) + " |")
        lines.append("")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# CLI


@dataclass(frozen=True)
class EvalConfig:
    """What to evaluate and on which faces."""

    out: Path
    """Folder for eval.md and eval.json."""
    data: tuple[Path, ...]
    """Face folders; their validation split (``validation_*``, or the hold-out) is used."""
    masks: Path
    """MaskTheFace's ``masks`` folder."""
    cache: Path
    """Aligned-face cache."""
    generator: Path | None = None
    """Generator checkpoint (None: the bundled one)."""
    segmenter: Path | None = None
    """Segmenter checkpoint (None: the bundled one)."""
    limit: int = 400
    """Most validation faces."""
    batch_size: int = 32
    seed: int = 1234
    """Seed of the fixed occlusions (the trainers validate with the same one)."""
    mix: tuple[float, float, float] = (0.70, 0.15, 0.15)
    """Occlusion shares (template, rectangle, freeform)."""

    def __post_init__(self) -> None:
        if self.limit < 1:
            raise ValueError(f"--limit must be >= 1, got {self.limit}")
        if self.batch_size < 1:
            raise ValueError(f"--batch-size must be >= 1, got {self.batch_size}")
        for path in (self.generator, self.segmenter):
            if path is not None and not path.is_file():
                raise FileNotFoundError(f"checkpoint not found: {path}")


def load_models(config: EvalConfig) -> tuple[torch.nn.Module, torch.nn.Module, int, dict]:
    """(generator, segmenter, crop size, their metadata); both must share the crop size."""
    from training.checkpoint import bundled_checkpoint, load_checkpoint

    models, metas = {}, {}
    for kind, path in (("generator", config.generator), ("segmenter", config.segmenter)):
        path = path or bundled_checkpoint(kind)
        if path is None:
            raise FileNotFoundError(f"no --{kind} given and no bundled {kind} weights in "
                                    "training/weights/")
        models[kind], metas[kind] = load_checkpoint(path, expected_kind=kind)
    sizes = {m["crop_size"] for m in metas.values()}
    if len(sizes) != 1:
        raise ValueError(f"the generator and the segmenter were trained on different crop "
                         f"sizes: {sorted(sizes)}")
    return models["generator"], models["segmenter"], sizes.pop(), metas


def run(config: EvalConfig) -> dict:
    from tqdm import tqdm

    from training.common import face_folders
    from training.data import (
        OcclusionConfig,
        OcclusionDataset,
        load_occluders,
        load_validation_faces,
    )

    torch.set_num_threads(2)
    generator, segmenter, crop, meta = load_models(config)
    val = load_validation_faces(face_folders(config.data), crop, config.cache)
    val = val.subset(np.arange(min(config.limit, len(val))))
    mix = OcclusionConfig(template_p=config.mix[0], rectangle_p=config.mix[1],
                          freeform_p=config.mix[2])
    dataset = OcclusionDataset(val, load_occluders(config.masks, crop), mix,
                               seed=config.seed, shuffle=False)
    tally = Tally()
    with torch.no_grad():
        for start in tqdm(range(0, len(dataset), config.batch_size), desc="evaluating"):
            ks = range(start, min(start + config.batch_size, len(dataset)))
            evaluate_batch(dataset.collate([dataset.sample(k) for k in ks]), tally,
                           generator, segmenter)
    summary = tally.summary()
    result = {"faces": len(dataset), "crop_size": crop, "seed": config.seed,
              "mix": list(config.mix), "results": summary,
              "checkpoints": {k: {"arch": v["arch"], "step": v["meta"].get("step"),
                                  "code_revision": v["meta"].get("code_revision")}
                              for k, v in meta.items()}}
    config.out.mkdir(parents=True, exist_ok=True)
    (config.out / "eval.json").write_text(json.dumps(result, indent=1))
    (config.out / "eval.md").write_text(markdown(
        summary, f"# Evaluation: {len(dataset)} validation faces, {crop} px, seed "
                 f"{config.seed}"))
    return result


def main(argv: list[str] | None = None) -> int:
    from training.checkpoint import CheckpointError
    from training.common import REPO
    from training.data import default_cache_dir

    shared = REPO.parent / "shared" / "data"
    parser = argparse.ArgumentParser(prog="python -m training.evaluate",
                                     description="Score generator, segmenter and baselines.")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--data", type=Path, nargs="+", default=[shared / "faces"])
    parser.add_argument("--masks", type=Path,
                        default=shared / "mask_templates" / "masktheface" / "masks")
    parser.add_argument("--cache", type=Path, default=None)
    parser.add_argument("--generator", type=Path, default=None)
    parser.add_argument("--segmenter", type=Path, default=None)
    parser.add_argument("--limit", type=int, default=400)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--occlusion-mix", type=float, nargs=3, default=(0.70, 0.15, 0.15))
    args = parser.parse_args(argv)
    try:
        config = EvalConfig(out=args.out, data=tuple(args.data), masks=args.masks,
                            cache=args.cache or default_cache_dir(), generator=args.generator,
                            segmenter=args.segmenter, limit=args.limit,
                            batch_size=args.batch_size, seed=args.seed,
                            mix=tuple(args.occlusion_mix))
        result = run(config)
    except (ValueError, FileNotFoundError, CheckpointError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print((config.out / "eval.md").read_text())
    print(f"wrote {config.out / 'eval.md'} and eval.json ({result['faces']} faces)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
