"""How evaluation results are grouped (ratio bands, paper bands, UTKFace groups), summed up
(``Tally``) and timed (``Clock``), and the markdown of a result (what ``training.evaluate.run``
returns and writes as eval.json): a header explaining each metric, one section per part.

    result = json.loads(Path("runs/eval/eval.json").read_text())
    Path("runs/eval/eval.md").write_text(markdown(result))
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

BANDS = ((0.0, 0.10), (0.10, 0.15), (0.15, 0.20), (0.20, 0.30), (0.30, 1.01))
"""Occlusion-ratio bands: the research reports 10-15%, 20-30% and larger; the others are
what falls between and below."""
PAPER_BANDS = ((0.10, 0.15, 35.51), (0.20, 0.30, 30.33))
"""(low, high share of the crop occluded, the seed paper's PSNR over the image in dB)."""
GROUPS = ("white", "black", "asian", "indian", "other")
"""UTKFace's groups, the first field of its file names (``white_25_m_0001.webp``)."""
MASKED = "masked input"
"""The row of the occluded input itself (no LPIPS: its box holds the occluder)."""
COLUMNS = (("psnr", "PSNR", 2), ("ssim", "SSIM", 4), ("psnr_mask", "hole PSNR", 2),
           ("ssim_mask", "hole SSIM", 4), ("lpips_hole", "hole LPIPS", 4),
           ("arcface", "ArcFace", 3), ("checkerboard", "checker", 2),
           ("colour_error", "colour err", 1))
"""(metric key, column title, decimals) of the generator tables."""
KINDS = ("all", "template", "rectangle", "freeform")
IOU_TARGET, MARKED_TARGET, OVER_TARGET = 0.93, 0.005, 0.05
"""Issue 10's segmenter targets: IoU on coverings, mean marked share and share of faces with
more than 1% marked on faces without one."""


# ---------------------------------------------------------------------------------------------
# Grouping and summaries


def band_name(lo: float, hi: float) -> str:
    return f"{lo:.0%}-{hi:.0%}" if hi <= 1 else f">{lo:.0%}"


def band_of(ratio: float) -> str:
    for lo, hi in BANDS:
        if lo <= ratio < hi:
            return band_name(lo, hi)
    raise ValueError(f"occlusion ratio out of [0, 1]: {ratio}")


@dataclass
class Tally:
    """Per-image values collected per method and group; every image also counts in "all"."""

    rows: dict[tuple[str, str], dict[str, list[float]]] = field(default_factory=dict)

    def add(self, method: str, groups: Sequence[str | Sequence[str]],
            values: dict[str, torch.Tensor]) -> None:
        """``groups[i]``: the group (or groups) image ``i`` belongs to, besides "all"."""
        for i, own in enumerate(groups):
            for key in ((own,) if isinstance(own, str) else tuple(own)) + ("all",):
                cell = self.rows.setdefault((method, key), {})
                for name, v in values.items():
                    cell.setdefault(name, []).append(float(v[i]))

    def summary(self) -> dict[str, dict[str, dict[str, float]]]:
        out: dict[str, dict[str, dict[str, float]]] = {}
        for (method, key), cell in self.rows.items():
            stats = {name: float(np.mean(v)) for name, v in cell.items()}
            stats["count"] = len(next(iter(cell.values())))
            out.setdefault(method, {})[key] = stats
        return out


def paper_band(share: float) -> str:
    return next((f"{lo:.0%}-{hi:.0%}" for lo, hi, _ in PAPER_BANDS if lo <= share < hi),
                "other")


def group_of(name: str) -> str:
    """The UTKFace group of a file name, "unknown" for any other name."""
    head = name.split("_", 1)[0]
    return head if head in GROUPS else "unknown"


def group_spread(summary: dict) -> dict:
    """Best minus worst group of the generator with the segmenter's masks: hole PSNR (dB) and
    hole LPIPS (where computed)."""
    rows = summary.get("generator (segmenter mask)", {})
    present = [g for g in GROUPS if g in rows]
    return {"groups": present, **{
        f"spread_{m}": max(rows[g][m] for g in present) - min(rows[g][m] for g in present)
        for m in ("psnr_mask", "lpips_hole") if present and m in rows[present[0]]}}


class Clock:
    """Seconds per section, summed over the sets."""

    def __init__(self) -> None:
        self.start = self.last = time.monotonic()
        self.laps: dict[str, float] = {}

    def lap(self, section: str) -> None:
        now = time.monotonic()
        self.laps[section] = round(self.laps.get(section, 0.0) + now - self.last, 1)
        self.last = now


# ---------------------------------------------------------------------------------------------
# Markdown


EXPLAIN = """\
How to read the tables:

- **PSNR, SSIM**: over the whole crop (output against the clean face); PSNR in dB, capped at
  100. **hole PSNR, hole SSIM**: over the true occlusion's pixels only, for every method, also
  when it painted with the segmenter's mask, so every row compares the same pixels.
  Only pixels the photo has are scored: where the canonical crop reaches past the photo (its
  replicated border), every output counts as the clean face, and the hole is the rest.
- **hole LPIPS**: LPIPS (VGG16) inside the true hole's bounding box resized to 64 px, as the
  generator trainer validates; lower is better; not computed for the masked input.
- **ArcFace**: cosine of ArcFace (w600k_mbf) embeddings of the result and the clean face; the
  masked input's row is the identity left before anything is painted.
- **checker**: energy on the Nyquist row and column of the 2D FFT of the grey hole box, the
  output's over the clean face's; ~1 is natural, >> 1 a pixel-scale grid (checkerboard).
- **colour err**: |mean RGB of the hole, output minus clean| in 0-255 levels, averaged over
  the channels: a hole painted in the wrong tone.
- **mask**: *true* = the synthetic occlusion's own mask; *segmenter* = what the product would
  paint from the segmenter's marks: logits > 0, `plausible_covering` (nothing at all on a
  face not judged covered), the edge snapped to the covering's colour (2 px either side),
  grown 2 px, nothing above the eyes.
- Occlusions are fixed (seed {seed}): the generator recipe with shares {mix} of MaskTheFace
  templates, black rectangles and freeform strokes, never re-lit or mirrored. Telea is
  OpenCV's inpainting (radius 3)."""


def fmt(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def split_method(method: str) -> tuple[str, str]:
    """("generator", "true") from "generator (true mask)"; the masked input has no mask."""
    if method == MASKED or " (" not in method:
        return method, "-"
    name, mask = method[:-1].split(" (", 1)
    return name, mask.removesuffix(" mask")


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1),
            *["| " + " | ".join(r) + " |" for r in rows], ""]


def check(value: float, ok: bool) -> str:
    return f"{value} {'✓' if ok else '✗'}"


def segmenter_section(sections: dict) -> list[str]:
    lines = ["## Segmenter", "",
             "Coverings: the segmenter recipe's templates (no camera damage, no distractors, not "
             "re-lit or mirrored). *raw*: logits > 0; *painted*: what the product paints (see "
             "above). Missed: coverings `plausible_covering` did not judge covered (nothing "
             f"painted). Targets: IoU >= {IOU_TARGET}; on faces without a covering, marked "
             f"share <= {MARKED_TARGET:.1%} and faces with > 1% marked <= {OVER_TARGET:.0%}.",
             ""]
    rows = [[name, str(s["faces"]), check(fmt(t["iou"], 4), t["iou"] >= IOU_TARGET),
             fmt(t["iou_painted"], 4), f"{t['missed']:.1%}"]
            for name, s in sections.items() for t in [s["results"]["template"]]]
    lines += table(["set", "faces", "IoU raw", "IoU painted", "missed"], rows)
    rows = []
    for name, s in sections.items():
        for condition in ("clean", "overlays", "distractors"):
            c = s["results"][condition]
            rows.append([name, condition, str(s["faces"]), *(
                check(f"{c[m]:.2%}", c[m] <= target) for m, target in (
                    ("marked", MARKED_TARGET), ("over_1pct", OVER_TARGET),
                    ("marked_painted", MARKED_TARGET), ("over_1pct_painted", OVER_TARGET)))])
    lines += ["False marks on the same faces: bare, with burned-in analytics overlays (boxes, "
              "labels, timestamps, lines), and with two distractors of any kind (overlays, "
              "glasses, beards, hands, hair, shadows...).", ""]
    return lines + table(["set", "condition", "faces", "marked raw", "> 1% raw",
                          "marked painted", "> 1% painted"], rows)


def method_rows(summary: dict, key: str, columns=COLUMNS) -> list[list[str]]:
    rows = []
    for method, cells in summary.items():
        if method == "segmenter" or key not in cells:
            continue
        rows.append([*split_method(method),
                     *(fmt(cells[key].get(m), d) for m, _, d in columns)])
    return rows


def generator_section(name: str, section: dict) -> list[str]:
    summary = section["results"]
    seg = summary.get("segmenter", {})
    lines = [f"## Generator on {name} ({section['faces']} faces)", ""]
    if "all" in seg:
        lines += [f"Segmenter on these faces: raw IoU {seg['all']['iou']:.3f}, judged covered "
                  f"on {seg['all']['covered']:.0%}" + (
                      f" (templates: IoU {seg['template']['iou']:.3f}, covered "
                      f"{seg['template']['covered']:.0%})" if "template" in seg else "") + ".",
                  ""]
    header = ["method", "mask", *(title for _, title, _ in COLUMNS)]
    for kind in KINDS:
        if kind in summary.get(MASKED, {}):
            count = summary[MASKED][kind]["count"]
            lines += [f"### {name}: {kind} occlusions ({count})", "",
                      *table(header, method_rows(summary, kind))]
    bands = [band_name(lo, hi) for lo, hi in BANDS]
    counts = [str(summary.get(MASKED, {}).get(b, {}).get("count", 0)) for b in bands]
    rows = [[*split_method(m), *(fmt(cells.get(b, {}).get("psnr_mask"), 2) for b in bands)]
            for m, cells in summary.items() if m != "segmenter"]
    lines += [f"### {name}: hole PSNR by occlusion ratio (faces: {', '.join(counts)})", ""]
    return lines + table(["method", "mask", *bands], rows)


def groups_section(section: dict) -> list[str]:
    summary = section["results"]
    seg_rows = summary.get("generator (segmenter mask)", {})
    true_rows = summary.get("generator (true mask)", {})
    covered = summary.get("segmenter", {})
    rows = [[g, str(seg_rows[g]["count"]), fmt(seg_rows[g]["psnr_mask"], 2),
             fmt(seg_rows[g].get("lpips_hole"), 4), fmt(seg_rows[g].get("arcface"), 3),
             fmt(true_rows.get(g, {}).get("psnr_mask"), 2),
             f"{covered.get(g, {}).get('covered', 0):.0%}"]
            for g in [*section["groups"], "all"] if g in seg_rows]
    spread = [f"hole PSNR {section['spread_psnr_mask']:.2f} dB"] if (
        "spread_psnr_mask" in section) else []
    if "spread_lpips_hole" in section:
        spread.append(f"hole LPIPS {section['spread_lpips_hole']:.4f}")
    lines = [f"## By group: {section['faces']} held-out {section.get('set', '')} faces, "
             "template occlusions", "",
             "The generator with the segmenter's masks (hole PSNR, LPIPS, ArcFace), and with "
             "the true masks (last PSNR column). About 20 faces a group: differences under ~1 dB "
             "are within noise.", "",
             *table(["group", "faces", "hole PSNR", "hole LPIPS", "ArcFace",
                     "hole PSNR (true mask)", "covered"], rows)]
    if spread:
        lines += ["Spread, best minus worst group: " + ", ".join(spread) + ".", ""]
    return lines


def paper_section(section: dict) -> list[str]:
    summary = section["results"]
    methods = [m for m in summary if m != "segmenter"]
    bands = [*section["paper_psnr_db"], "other"]
    rows = []
    for band in bands:
        if band not in summary.get(MASKED, {}):
            continue
        paper = section["paper_psnr_db"].get(band)
        rows.append([band, str(summary[MASKED][band]["count"]), fmt(paper, 2),
                     *(fmt(summary[m][band]["psnr"], 2) for m in methods)])
    return [f"## The seed paper's setting: black rectangles on {section.get('set', '')}", "",
            "One black rectangle inside the face's landmark box, sized so that its share of the "
            "whole crop falls in the band (binned by the share measured; clipping at the box "
            "leaves a few in *other*); PSNR over the whole crop, true masks. The paper reports "
            "on its own crop and resolution, so its figures are a reference, not a "
            "like-for-like comparison.", "",
            *table(["band", "faces", "paper", *(m.removesuffix(" (true mask)") for m in methods)],
                   rows)]


def markdown(result: dict) -> str:
    sets = ", ".join(result["generator"])
    mix = "/".join(f"{m:g}" for m in result["mix"])
    lines = [f"# Evaluation: up to {result['faces']} faces per set ({sets}), "
             f"{result['crop_size']} px, seed {result['seed']}", "",
             EXPLAIN.format(seed=result["seed"], mix=mix), ""]
    if result["notes"]:
        lines += ["Notes:", "", *(f"- {n}" for n in result["notes"]), ""]
    lines += segmenter_section(result["segmenter"])
    for name, section in result["generator"].items():
        lines += generator_section(name, section)
    if result.get("groups"):
        lines += groups_section(result["groups"])
    if result.get("paper"):
        lines += paper_section(result["paper"])
    if result.get("videos"):
        from training.eval_video import video_markdown

        lines += video_markdown(result["videos"])
    seconds = ", ".join(f"{k} {v:.0f} s" for k, v in result["seconds"].items())
    return "\n".join([*lines, f"Run time: {seconds}.", ""])
