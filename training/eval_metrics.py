"""Image, hole, identity and mask metrics for ``training.evaluate``, and the two baselines;
the fixed inputs its sections draw are ``training.eval_inputs``.

Images are (N, C, H, W) tensors in [0, 1] unless a name says otherwise; masks (N, 1, H, W) in
{0, 1}. Every per-image metric returns an (N,) tensor, so a batch is scored at once:

    values = image_metrics(out_01, target_01, mask)          # psnr, ssim, *_mask, mse
    values["checkerboard"] = checkerboard_score(out_01, target_01, mask)
    values["colour_error"] = colour_error(out_01, target_01, mask)
    values["lpips_hole"] = lpips_hole(lpips, [out_pm1], target_pm1, mask)[0]
    product = product_masks(segmenter_logits, masked)      # what the pipeline paints
    score_outputs(method_outputs(batch, scorers, product), batch, scorers, tally, groups)

    pytest tests/training/test_evaluate.py
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from training.eval_report import MASKED, Tally
from training.losses import real_pixels, ssim_map

if TYPE_CHECKING:
    from realtime.pipeline import PipelineConfig

PSNR_CAP_DB = 100.0
METRICS = ("psnr", "ssim", "mse", "psnr_mask", "ssim_mask", "mse_mask")
LPIPS_BOX_PX = 64
"""Side the hole's box is resized to for LPIPS (the trainer validates with the same)."""
GREY_WEIGHTS = (0.299, 0.587, 0.114)


# ---------------------------------------------------------------------------------------------
# Whole-crop and in-mask fidelity


def _mean(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """(N,) mean of (N, 1, H, W) over all pixels, or over the mask's (0 for an empty mask)."""
    if mask is None:
        return x.flatten(1).mean(1)
    return (x * mask).flatten(1).sum(1) / mask.flatten(1).sum(1).clamp(min=1)


def mse_per_image(a: torch.Tensor, b: torch.Tensor,
                  mask: torch.Tensor | None = None) -> torch.Tensor:
    """(N,) mean squared error, over all pixels or over the mask's pixels."""
    return _mean((a - b).square().mean(dim=1, keepdim=True), mask)


def psnr_from_mse(mse: torch.Tensor, cap_db: float = PSNR_CAP_DB) -> torch.Tensor:
    """10 log10(1 / mse) for a data range of 1, capped (identical images give ``cap_db``)."""
    return (10 * torch.log10(1.0 / mse.clamp(min=10 ** (-cap_db / 10)))).clamp(max=cap_db)


def ssim_per_image(a: torch.Tensor, b: torch.Tensor,
                   mask: torch.Tensor | None = None) -> torch.Tensor:
    """(N,) mean SSIM (Gaussian window 11, sigma 1.5), over all pixels or the mask's."""
    return _mean(ssim_map(a, b).mean(dim=1, keepdim=True), mask)


def image_metrics(out: torch.Tensor, target: torch.Tensor,
                  mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-image PSNR, SSIM and MSE over the crop and inside the mask (one SSIM map)."""
    err = (out - target).square().mean(dim=1, keepdim=True)
    mse, mse_mask = _mean(err, None), _mean(err, mask)
    ssim = ssim_map(out, target).mean(dim=1, keepdim=True)
    return {"psnr": psnr_from_mse(mse), "ssim": _mean(ssim, None), "mse": mse,
            "psnr_mask": psnr_from_mse(mse_mask), "ssim_mask": _mean(ssim, mask),
            "mse_mask": mse_mask}


def colour_error(out: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(N,) |mean RGB of ``out`` in the mask - mean RGB of ``target`` there|, in 0-255 levels,
    averaged over the channels (0 for an empty mask): a hole painted in the wrong tone."""
    area = mask.flatten(2).sum(2).clamp(min=1)  # (N, 1)
    mean_out = (out * mask).flatten(2).sum(2) / area
    mean_target = (target * mask).flatten(2).sum(2) / area
    return (mean_out - mean_target).abs().mean(1) * 255


def mask_box(mask_hw: torch.Tensor) -> tuple[slice, slice] | None:
    """(rows, cols) of a (H, W) mask's bounding box, None when the mask is empty."""
    rows, cols = torch.nonzero(mask_hw > 0.5, as_tuple=True)
    if len(rows) == 0:
        return None
    return (slice(int(rows.min()), int(rows.max()) + 1),
            slice(int(cols.min()), int(cols.max()) + 1))


def nyquist_energy(grey_hw: np.ndarray) -> float:
    """Power of a (H, W) image (even sides) on the Nyquist row and column of its 2D FFT: where
    a period-2 grid or stripe pattern puts its energy."""
    power = np.abs(np.fft.fft2(grey_hw)) ** 2
    h, w = grey_hw.shape
    return float(power[h // 2, :].sum() + power[:, w // 2].sum() - power[h // 2, w // 2])


def checkerboard_score(out: torch.Tensor, target: torch.Tensor,
                       mask: torch.Tensor) -> torch.Tensor:
    """(N,) Nyquist energy of ``out`` in the mask's box over the same of ``target`` (grey, the
    box cut to even sides). ~1: as much pixel-scale grid as the real face; a generator that
    paints a checkerboard scores >> 1. A floor at 8-bit quantisation noise keeps smooth truths
    from dividing by ~0; an empty or 1-pixel box scores 1."""
    weights = torch.tensor(GREY_WEIGHTS, dtype=out.dtype).view(1, 3, 1, 1)
    grey_out = (out * weights).sum(1).numpy()
    grey_target = (target * weights).sum(1).numpy()
    scores = []
    for i in range(len(out)):
        box = mask_box(mask[i, 0])
        h = 0 if box is None else (box[0].stop - box[0].start) // 2 * 2
        w = 0 if box is None else (box[1].stop - box[1].start) // 2 * 2
        if h < 2 or w < 2:
            scores.append(1.0)
            continue
        rows = slice(box[0].start, box[0].start + h)
        cols = slice(box[1].start, box[1].start + w)
        floor = (0.5 / 255) ** 2 * h * w * (h + w - 1)  # white noise of 0.5 levels, there
        scores.append((nyquist_energy(grey_out[i, rows, cols]) + floor)
                      / (nyquist_energy(grey_target[i, rows, cols]) + floor))
    return torch.tensor(scores, dtype=torch.float32)


def hole_boxes(images: torch.Tensor, mask: torch.Tensor,
               size: int = LPIPS_BOX_PX) -> tuple[torch.Tensor, torch.Tensor]:
    """(each image's mask box area-resized to ``size`` px (N, C, size, size), which masks were
    non-empty (N,) bool); empty masks give zeros. The box the LPIPS metric looks at."""
    crops = images.new_zeros((len(images), images.shape[1], size, size))
    present = torch.zeros(len(images), dtype=torch.bool)
    for i in range(len(images)):
        box = mask_box(mask[i, 0])
        if box is not None:
            crops[i] = F.interpolate(images[i][:, box[0], box[1]][None], size=(size, size),
                                     mode="area")[0]
            present[i] = True
    return crops, present


def lpips_hole(lpips: torch.nn.Module, outs: Sequence[torch.Tensor], target: torch.Tensor,
               mask: torch.Tensor, size: int = LPIPS_BOX_PX) -> list[torch.Tensor]:
    """(N,) LPIPS inside each mask's box (RGB in [-1, 1]) for each of ``outs``; 0 for an empty
    mask. Equal to LPIPS of each box alone (tested), but the batch goes through VGG16 at once
    and the target's features are computed once for every output: ~10x faster on a CPU."""
    target_crops, present = hole_boxes(target, mask, size)
    values = [target.new_zeros(len(target)) for _ in outs]
    if not present.any():
        return values

    def unit_features(crops: torch.Tensor) -> list[torch.Tensor]:  # as LPIPS normalises
        x = crops[present].contiguous(memory_format=torch.channels_last)
        return [f * torch.rsqrt(f.pow(2).sum(1, keepdim=True) + 1e-10)
                for f in lpips.features(x)]

    feats_target = unit_features(target_crops)
    for value, out in zip(values, outs, strict=True):
        feats = unit_features(hole_boxes(out, mask, size)[0])
        value[present] = sum(lin((a - b) ** 2).mean((2, 3))[:, 0] for lin, a, b in zip(
            lpips.lins, feats, feats_target, strict=True))
    return values


def mask_iou(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(N,) IoU of binary masks; 1 when both are empty."""
    pred, target = pred.flatten(1).bool(), target.flatten(1).bool()
    inter = (pred & target).sum(1).float()
    union = (pred | target).sum(1).float()
    return torch.where(union == 0, torch.ones_like(union), inter / union.clamp(min=1))


# ---------------------------------------------------------------------------------------------
# Identity


def embed_faces(arcface, images: torch.Tensor) -> np.ndarray:
    """(N, 512) unit ArcFace embeddings of canonical crops given as (N, 3, S, S) in [-1, 1]."""
    from training.identity import canonical_to_arcface

    return arcface.embed(canonical_to_arcface(to_uint8_hwc(images)))


def to_uint8_hwc(images: torch.Tensor) -> np.ndarray:
    """(N, 3, H, W) in [-1, 1] -> (N, H, W, 3) uint8, rounded as the pipeline rounds."""
    x = ((images.detach().float().clamp(-1, 1) + 1) * 127.5 + 0.5).floor()
    return np.ascontiguousarray(x.byte().permute(0, 2, 3, 1).numpy())


# ---------------------------------------------------------------------------------------------
# What the product paints, and the methods


class ProductMasks(NamedTuple):
    """What the pipeline would do with a batch's segmenter logits."""

    painted: torch.Tensor
    """(N, 1, S, S) {0, 1}: the region repainted (the kept covering grown, below the eyes)."""
    covered: torch.Tensor
    """(N,) bool: whether each face was judged covered (nothing is painted where not)."""
    segmented: torch.Tensor
    """(N, 1, S, S) {0, 1}: the kept covering before the grow, below the eyes."""

    def generator_channel(self, band: bool) -> torch.Tensor:
        """The mask channel a generator gets: ``painted``, or for a band generator the
        three levels of ``engines.base.generator_mask``, as ``realtime.pipeline`` feeds it."""
        if not band:
            return self.painted
        from engines.base import generator_mask

        return torch.from_numpy(generator_mask(self.segmented[:, 0].numpy(),
                                               self.painted[:, 0].numpy()))[:, None]


def product_masks(logits: torch.Tensor, masked: torch.Tensor,
                  pipeline: PipelineConfig | None = None) -> ProductMasks:
    """What the pipeline would paint from segmenter logits on the crops ``masked`` (N, 3, S, S)
    in [-1, 1]: logits > 0, ``plausible_covering`` (empty where not covered), grown as
    ``pipeline`` (default: the product's ``PipelineConfig``) grows it, and cut at the eye
    line, as ``realtime.pipeline`` does."""
    from realtime.covering import CoveringConfig, below_eyes, plausible_covering
    from realtime.pipeline import PipelineConfig, from_network

    binary_hw = (logits[:, 0] > 0).float().numpy()
    probs_hw = torch.sigmoid(logits[:, 0]).numpy()
    config = CoveringConfig()
    kept, covered = np.zeros_like(binary_hw), np.zeros(len(binary_hw), bool)
    for i, m in enumerate(binary_hw):
        kept_hw, covered[i] = plausible_covering(m, config, probs_hw[i])
        if covered[i]:
            kept[i] = kept_hw
    upper_off = below_eyes(binary_hw.shape[-1])[None]
    pipeline = pipeline or PipelineConfig()
    crops_rgb = (from_network(masked.detach().cpu().numpy()) if pipeline.grow_reads_colours
                 else None)
    painted = pipeline.grown(crops_rgb, kept, probs_hw) * upper_off

    def tensor(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a, np.float32))[:, None]
    return ProductMasks(tensor(painted), torch.from_numpy(covered), tensor(kept * upper_off))


def telea(masked_rgb: np.ndarray, mask_hw: np.ndarray, radius: int = 3) -> np.ndarray:
    """OpenCV Telea inpainting of an RGB uint8 crop inside a {0, 1} mask."""
    mask_u8 = (mask_hw > 0.5).astype(np.uint8) * 255
    return cv2.inpaint(np.ascontiguousarray(masked_rgb), mask_u8, radius, cv2.INPAINT_TELEA)


def telea_batch(masked: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Telea on a batch in [-1, 1] (N, 3, S, S) with masks (N, 1, S, S); result in [-1, 1]."""
    rgb = to_uint8_hwc(masked)
    out = np.stack([telea(r, m[0].numpy()) for r, m in zip(rgb, mask, strict=True)])
    return torch.from_numpy(out).permute(0, 3, 1, 2).float() / 127.5 - 1


def generate(generator: torch.nn.Module, image: torch.Tensor, mask: torch.Tensor,
             guide: torch.Tensor | None = None) -> torch.Tensor:
    """Generator output in [-1, 1] for an RGB image in [-1, 1] and a mask channel: {0, 1},
    or a band generator's three levels (``engines.base.generator_mask``); the image is zeroed
    only where the mask is 1. A guided generator also reads ``guide`` (N, 1, S, S; None: an
    empty guide), the others ignore it."""
    if not getattr(generator, "guide", False):
        guide = None
    elif guide is None:
        guide = torch.zeros_like(mask)
    return generator(generator_input(image, mask, guide))


def generator_input(image: torch.Tensor, mask: torch.Tensor,
                    guide: torch.Tensor | None = None) -> torch.Tensor:
    """A generator's (N, 4, S, S) input: the RGB zeroed where the mask channel is 1, then it;
    with ``guide``, (N, 5, S, S) ending in the guide."""
    parts = [image * (mask < 1), mask] + ([guide] if guide is not None else [])
    return torch.cat(parts, dim=1)


@dataclass
class Scorers:
    """The networks under test and the metric networks (None where omitted, with a note)."""

    segmenter: torch.nn.Module
    generators: dict[str, torch.nn.Module]
    """Row label -> generator: "previous generator" (if any), then "generator"."""
    crop: int
    lpips: torch.nn.Module | None = None
    arcface: object | None = None
    notes: list[str] = field(default_factory=list)
    checkpoints: dict = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# Scoring a batch of every method


def method_outputs(batch: dict, scorers: Scorers, product: ProductMasks | None,
                   wanted: set[str] | None = None) -> dict[str, torch.Tensor]:
    """Every method's result in [-1, 1] (or those ``wanted``), in table order; ``product``:
    what the segmenter makes the pipeline paint (None: true-mask rows only)."""
    masked, mask = batch["masked"], batch["mask"]
    outputs = {MASKED: masked} if wanted is None or MASKED in wanted else {}
    for name in ("telea", *scorers.generators):
        band = bool(getattr(scorers.generators.get(name), "band", False))
        masks = {"true mask": mask}
        if product is not None:
            masks["segmenter mask"] = (product.painted if name == "telea"
                                       else product.generator_channel(band))
        for label, m in masks.items():
            method = f"{name} ({label})"
            if wanted is not None and method not in wanted:
                continue
            outputs[method] = (telea_batch(masked, m) if name == "telea"
                               else generate(scorers.generators[name], masked, m,
                                             batch.get("guide")))
    return outputs


def score_outputs(outputs: dict[str, torch.Tensor], batch: dict, scorers: Scorers, tally: Tally,
                  groups: list, *, perceptual: bool = True) -> None:
    """Fidelity, hole, checkerboard and colour metrics of each output against the clean crop,
    LPIPS (not of the masked input) and ArcFace cosine where ``perceptual`` and available.
    Only what the photo has is scored: where the crop is padding (``valid`` 0) every output
    counts as the clean crop, and the hole is its part inside the photo."""
    clean, mask = batch["clean"], batch["mask"]
    if (valid := batch.get("valid")) is not None:
        outputs = {m: real_pixels(out, clean, valid) for m, out in outputs.items()}
        mask = mask * valid
    target = (clean + 1) / 2
    values = {}
    for method, out in outputs.items():
        out01 = ((out + 1) / 2).clamp(0, 1)
        values[method] = image_metrics(out01, target, mask)
        values[method]["checkerboard"] = checkerboard_score(out01, target, mask)
        values[method]["colour_error"] = colour_error(out01, target, mask)
    if perceptual and scorers.lpips is not None:
        painted = [m for m in outputs if m != MASKED]
        for method, v in zip(painted, lpips_hole(scorers.lpips, [
                outputs[m].clamp(-1, 1) for m in painted], clean, mask), strict=True):
            values[method]["lpips_hole"] = v
    if perceptual and scorers.arcface is not None:
        truth = embed_faces(scorers.arcface, clean)
        for method, out in outputs.items():
            cosine = (embed_faces(scorers.arcface, out) * truth).sum(1)
            values[method]["arcface"] = torch.from_numpy(cosine)
    for method, v in values.items():
        tally.add(method, groups, v)


def segment_batch(batch: dict, scorers: Scorers, tally: Tally, groups: list) -> ProductMasks:
    """The masks the product would paint; tallies raw and painted IoU and the covered share."""
    logits = scorers.segmenter(batch["masked"])
    product = product_masks(logits, batch["masked"])
    tally.add("segmenter", groups, {"iou": mask_iou(logits > 0, batch["mask"]),
                                    "iou_painted": mask_iou(product.painted > 0.5,
                                                            batch["mask"]),
                                    "covered": product.covered.float()})
    return product
