"""The sections of ``training.evaluate``: the segmenter and the generators on each validation
set, the generator by UTKFace group, and the seed paper's black rectangles.

Each returns a section of ``eval.json`` (``{"faces": ..., "results": ...}``), which
``training.eval_report`` turns into tables.

    parts = sections(config, scorers, sets, utk, occluders, clock)
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
import torch

from training.eval_inputs import (
    batches,
    fixed_batches,
    generator_occlusions,
    negative_crop,
    paper_sample,
    segmenter_templates,
)
from training.eval_metrics import (
    Scorers,
    mask_iou,
    method_outputs,
    product_masks,
    score_outputs,
    segment_batch,
    to_uint8_hwc,
)
from training.eval_report import (
    MASKED,
    PAPER_BANDS,
    Clock,
    Tally,
    band_of,
    group_of,
    group_spread,
    paper_band,
)

if TYPE_CHECKING:
    from training.evaluate import EvalConfig


def sections(config: EvalConfig, scorers: Scorers, sets: dict, utk, occluders,
             clock: Clock) -> dict:
    """The segmenter and generator on each set, the groups, the paper's setting."""
    parts: dict = {"segmenter": {}, "generator": {}, "groups": None, "paper": None}
    for name, faces in sets.items():
        faces = faces.subset(np.arange(min(config.limit, len(faces))))
        parts["segmenter"][name] = evaluate_segmenter(faces, occluders, scorers, config, name)
        clock.lap("segmenter")
        parts["generator"][name] = evaluate_generators(faces, occluders, scorers, config, name)
        clock.lap("generator")
    if utk is not None and len(utk) > 0:
        parts["groups"] = {"set": config.groups_folder, **evaluate_generators(
            utk, occluders, scorers, config, "groups", by_group=True)}
        clock.lap("groups")
    else:
        scorers.notes.append(f"No held-out faces in a --data folder named "
                             f"{config.groups_folder}: no per-group table.")
    if config.rectangles:
        paper_set = next(iter(sets))
        parts["paper"] = {"set": paper_set, **evaluate_paper(sets[paper_set], scorers, config)}
        clock.lap("paper")
    return parts


def evaluate_generators(faces, occluders, scorers: Scorers, config: EvalConfig, name: str,
                        *, by_group: bool = False) -> dict:
    """Every method on one validation set, by occlusion kind and ratio band; ``by_group``: the
    generator alone, on template occlusions, by UTKFace group (and the groups' spread)."""
    occlusion, wanted = generator_occlusions(config.mix), None
    if by_group:
        occlusion = replace(occlusion, template_p=1.0, rectangle_p=0.0, freeform_p=0.0)
        wanted = {"generator (true mask)", "generator (segmenter mask)"}
    tally = Tally()
    for ks, batch in fixed_batches(faces, occluders, occlusion, config, name):
        with_mesh_guides(batch, scorers)
        ratios = batch["mask"].flatten(1).mean(1).tolist()
        groups = ([group_of(faces.names[k]) for k in ks] if by_group else
                  [(kind, band_of(r)) for kind, r in zip(batch["kinds"], ratios, strict=True)])
        product = segment_batch(batch, scorers, tally, groups)
        score_outputs(method_outputs(batch, scorers, product, wanted), batch, scorers, tally,
                      groups)
    result = {"faces": len(faces), "results": tally.summary()}
    return result | (group_spread(result["results"]) if by_group else {})


def with_mesh_guides(batch: dict, scorers: Scorers) -> None:
    """Where a generator under test is guided: ``batch["guide"]`` drawn from the face mesh on
    the masked crops (``training.guides.mesh_guides``), as the product would see the face,
    in place of the clean landmarks the samples carry."""
    if any(getattr(g, "guide", False) for g in scorers.generators.values()):
        from training.guides import mesh_guides

        guides_hw = mesh_guides(to_uint8_hwc(batch["masked"]))
        batch["guide"] = torch.from_numpy(guides_hw)[:, None]


def evaluate_paper(faces, scorers: Scorers, config: EvalConfig) -> dict:
    """Black rectangles only, half per band, true masks: PSNR over the crop as the paper."""
    from training.data import OcclusionDataset

    wanted = {MASKED, "telea (true mask)"} | {f"{g} (true mask)" for g in scorers.generators}
    tally = Tally()
    make = lambda ks: OcclusionDataset.collate([  # noqa: E731
        paper_sample(faces, k, scorers.crop, config.seed) for k in ks])
    for _, batch in batches(config.rectangles, make, config, "paper rectangles"):
        with_mesh_guides(batch, scorers)
        groups = [paper_band(float(r)) for r in batch["mask"].flatten(1).mean(1)]
        score_outputs(method_outputs(batch, scorers, None, wanted), batch, scorers,
                      tally, groups, perceptual=False)
    return {"faces": config.rectangles, "results": tally.summary(),
            "paper_psnr_db": {f"{lo:.0%}-{hi:.0%}": db for lo, hi, db in PAPER_BANDS}}


def evaluate_segmenter(faces, occluders, scorers: Scorers, config: EvalConfig,
                       name: str) -> dict:
    """IoU and missed coverings on the segmenter's templates (no damage, no distractors), and
    marked shares on the same faces bare, with overlays and with distractors."""
    tally = Tally()
    for ks, batch in fixed_batches(faces, occluders, segmenter_templates(), config,
                                   f"segmenter {name}"):
        logits = scorers.segmenter(batch["masked"])
        painted, covered, _ = product_masks(logits, batch["masked"])
        tally.add("template", ["all"] * len(ks), {
            "iou": mask_iou(logits > 0, batch["mask"]),
            "iou_painted": mask_iou(painted > 0.5, batch["mask"]),
            "missed": (~covered).float()})
        for condition in ("clean", "overlays", "distractors"):
            crops = np.stack([negative_crop(faces, k, condition, config.seed) for k in ks])
            x = torch.from_numpy(crops).permute(0, 3, 1, 2).float() / 127.5 - 1
            logits = scorers.segmenter(x)
            painted = product_masks(logits, x).painted
            raw, kept = (logits > 0).flatten(1).float().mean(1), painted.flatten(1).mean(1)
            tally.add(condition, ["all"] * len(ks), {
                "marked": raw, "over_1pct": (raw > 0.01).float(),
                "marked_painted": kept, "over_1pct_painted": (kept > 0.01).float()})
    return {"faces": len(faces),
            "results": {c: cells["all"] for c, cells in tally.summary().items()}}
