"""The benchmark's outputs: ``bench.json`` (every figure), ``report.md`` and three PNG plots.

    write_outputs(results, Path("bench-20261122-0130"))

Each file is written under a temporary name and renamed, so a folder never holds a
half-written report.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

from realtime.stats import STAGES

PLOTS = ("stages.png", "fps.png", "flicker.png")
MAIN_THREAD = ("detect", "align", "segment", "inpaint", "composite")
STAGE_COLOURS = {"decode": "#bbbbbb", "detect": "#1f77b4", "align": "#aec7e8",
                 "segment": "#ff7f0e", "inpaint": "#d62728", "composite": "#2ca02c",
                 "encode": "#7f7f7f"}


def write_outputs(results: dict[str, Any], out_dir: Path) -> list[Path]:
    """Writes the plots, the report and the JSON into ``out_dir``; returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, draw in (("stages.png", plot_stages), ("fps.png", plot_fps),
                       ("flicker.png", plot_flicker)):
        written.append(_write(out_dir / name, _png(draw, results)))
    written.append(_write(out_dir / "report.md", markdown(results).encode()))
    written.append(_write(out_dir / "bench.json",
                          (json.dumps(results, indent=1) + "\n").encode()))
    return written


def _write(path: Path, data: bytes) -> Path:
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return path


# ---------------------------------------------------------------------------------------------
# Markdown


def markdown(r: dict[str, Any]) -> str:
    m = r["machine"]
    gpu = m["gpu"]["gpu"] if m.get("gpu") else "none"
    lines = [f"# realtime-unmask benchmark ({'quick' if r['settings']['quick'] else 'full'} run)",
             "",
             f"{r['created']} on {m['cpu']} ({m['cores']} cores, {m.get('memory_gb')} GiB), "
             f"GPU: {gpu}. Python {m['python']}, code {r['versions'].get('code_revision')}.",
             "Versions: " + ", ".join(f"{k} {v}" for k, v in r["versions"].items()
                                      if v and k != "code_revision") + ".",
             f"Command: `{r['settings']['command']}`. {r['settings']['frames']} frames per file "
             f"run, {r['settings']['live_seconds']:g} s per live run; backends: "
             f"{', '.join(r['backends']['available'])}.", ""]
    for skipped in r["backends"]["skipped"]:
        lines.append(f"- {skipped}")
    lines += ["", "## Targets", "", "| what | result | target | met |", "|---|---:|---:|---|"]
    for t in r["targets"]:
        value = "-" if t["value"] is None else f"{t['value']:g} {t['unit']}"
        met = {True: "yes", False: "**no**", None: "-"}[t["met"]]
        lines.append(f"| {t['what']} | {value} | {t['target']} | {met} |")
    lines += _speed_section(r) + _live_section(r) + _warmup_section(r) + _quality_section(r)
    lines += ["", "## Plots", "", "![per-stage latency](stages.png)", "",
              "![FPS by resolution and faces per frame](fps.png)", "",
              "![flicker](flicker.png)", ""]
    return "\n".join(lines)


def _speed_section(r: dict[str, Any]) -> list[str]:
    lines = ["", "## Speed (video files, H.264 out)", "",
             "FPS counts every frame from first read to last write. The I/O ceiling is the "
             "same clip decoded and re-encoded with no processing; \"share\" is the pipeline's "
             "FPS over it. Stages are p50 / p95 ms; decode and encode run on their own "
             "threads. Busy: this process's CPU time over wall time (100% = one core), and the "
             "GPU's utilisation where there is one.", "",
             "| backend | clip | variant | faces/frame | FPS | share of ceiling | "
             + " | ".join(STAGES) + " | busy |",
             "|---|---|---|---:|---:|---:|" + "---:|" * len(STAGES) + "---:|"]
    for row in r["speed"]:
        stages = " | ".join(f"{row['stages_ms'][s]['p50']:.1f} / {row['stages_ms'][s]['p95']:.1f}"
                            for s in STAGES)
        lines.append(f"| {row['backend']} | {row['clip']} | {row['variant'] or 'default'} | "
                     f"{row['faces_per_frame']:.2f} | {row['fps']:.1f} | "
                     f"{row['share_of_ceiling']:.0%} | {stages} | {_busy(row)} |")
    lines += ["", "I/O ceiling:", "", "| clip | size | decode only FPS | decode + encode FPS |",
              "|---|---|---:|---:|"]
    for name, c in r["io_ceiling"].items():
        size = "x".join(map(str, r["clips"][name]["size_wh"]))
        lines.append(f"| {name} | {size} | {c['decode_fps']:.0f} | {c['transcode_fps']:.0f} |")
    return lines


def _busy(row: dict[str, Any]) -> str:
    u = row.get("utilisation", {})
    text = f"CPU {u.get('process_cpu_percent', 0):.0f}%"
    if "gpu_utilisation_percent" in u:
        text += f", GPU {u['gpu_utilisation_percent']:.0f}%"
    return text


def _live_section(r: dict[str, Any]) -> list[str]:
    lines = ["", "## Live (a clip played as a 30 FPS camera, no file written)", "",
             "| backend | clip | faces/frame | delivered FPS | capture-to-output p50 / p95 ms | "
             "dropped | busy |", "|---|---|---:|---:|---:|---:|---:|"]
    for row in r["live"]:
        lat = row["capture_to_output_ms"] or {"p50": 0, "p95": 0}
        lines.append(f"| {row['backend']} | {row['clip']} | {row['faces_per_frame']:.2f} | "
                     f"{row['fps']:.1f} | {lat['p50']:.0f} / {lat['p95']:.0f} | "
                     f"{row['frames_dropped']} of {row['frames_dropped'] + row['frames']} | "
                     f"{_busy(row)} |")
    return lines


def _warmup_section(r: dict[str, Any]) -> list[str]:
    lines = ["", "## Warm-up (kept out of every figure above)", "",
             "| backend | first load (builds the engines) | cached load | engine warm-up | "
             "pipeline build | first frame | warm frame p50 |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for name, w in r["warmup"].items():
        lines.append(f"| {name} | {w['first_load_s']:.1f} s | {w['cached_load_s']:.2f} s | "
                     f"{w['engine_warmup_ms']:.0f} ms | {w['pipeline_build_ms']:.0f} ms | "
                     f"{w['first_frame_ms']:.0f} ms | {w['warm_frame_ms_p50']:.0f} ms |")
    return lines


def _quality_section(r: dict[str, Any]) -> list[str]:
    q = r["quality"]
    lines = ["", "## Temporal stability (real masked clip)", "",
             f"`{q['clip']}`, {q['flicker'][0]['frames'] if q['flicker'] else 0} frames. "
             "Flicker: output change inside painted pixels over input change there (1 = as "
             "steady as the real face); coverage: share of frames painted.", "",
             "| variant | flicker | coverage | painted share of frame |", "|---|---:|---:|---:|"]
    for row in q["flicker"]:
        lines.append(f"| {row['variant']} | {row['flicker']} | {row['coverage']:.1%} | "
                     f"{row['painted_share_of_frame']:.1%} |")
    if q.get("false_paints"):
        lines += ["", "## False paints (real clip, nobody wears a mask)", "",
                  "`hamilton_clip_640x360.mp4` as it is and scaled to half (faces 40-60 px). "
                  "A face is painted only when the covering rule and its per-track vote say it "
                  "wears a covering (target: <= 2% of frames).", "",
                  "| scale | frames | faces per frame | frames painted | faces painted |",
                  "|---:|---:|---:|---:|---:|"]
        for row in q["false_paints"]:
            lines.append(f"| {row['scale']:g} | {row['frames']} | {row['faces_per_frame']} | "
                         f"{row['frames_painted']:.1%} | {row['faces_painted']:.1%} |")
    if q.get("evaluation_md"):
        body = q["evaluation_md"].split("\n", 1)[1] if "\n" in q["evaluation_md"] else ""
        lines += ["", f"## Image quality ({q['evaluation']['faces']} validation faces, "
                      "synthetic masks, by occlusion band)", "",
                  body.replace("\n## ", "\n### ").strip()]
    return lines


# ---------------------------------------------------------------------------------------------
# Plots


def _png(draw, results: dict[str, Any]) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = draw(plt, results)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def plot_stages(plt, r: dict[str, Any]):
    """Stacked p50 per stage for every file run."""
    rows = r["speed"]
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(rows) + 1.6))
    labels = [f"{row['backend']} | {row['clip']}" + (f" | {row['variant']}" if row["variant"]
                                                      else "") for row in rows]
    left = [0.0] * len(rows)
    for stage in STAGES:
        widths = [row["stages_ms"][stage]["p50"] for row in rows]
        hatch = None if stage in MAIN_THREAD else "//"
        ax.barh(labels, widths, left=left, color=STAGE_COLOURS[stage], label=stage, hatch=hatch)
        left = [a + b for a, b in zip(left, widths, strict=True)]
    ax.invert_yaxis()
    ax.set_xlabel("p50 milliseconds per frame (hatched: decode and encode, on their own threads)")
    ax.set_title("Per-stage latency")
    # Below the x label: about 0.6 inch, in axes units of a height that grows with the rows.
    ax.legend(ncol=len(STAGES), fontsize=7, loc="upper center",
              bbox_to_anchor=(0.5, -0.6 / (0.45 * len(rows) + 0.6)))
    return fig


def plot_fps(plt, r: dict[str, Any]):
    """FPS against resolution (one face) and against faces per frame (360p), per backend."""
    from matplotlib import ticker

    fig, (by_res, by_faces) = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    default = [row for row in r["speed"] if not row["variant"]]
    for backend in dict.fromkeys(row["backend"] for row in default):
        mine = [row for row in default if row["backend"] == backend]
        res = [row for row in mine if row["sweep"] in ("resolution", "both")]
        faces = [row for row in mine if row["sweep"] in ("faces", "both")]
        if res:
            by_res.plot([row["resolution"] for row in res], [row["fps"] for row in res],
                        "o-", label=backend)
        if faces:
            by_faces.plot([row["faces"] for row in faces], [row["fps"] for row in faces],
                          "o-", label=backend)
    ceiling = {name: c["transcode_fps"] for name, c in r["io_ceiling"].items()}
    res_clips = [name for name, c in r["clips"].items() if c["sweep"] in ("resolution", "both")]
    by_res.plot([r["clips"][n]["resolution"] for n in res_clips],
                [ceiling[n] for n in res_clips], "k:", label="I/O ceiling (decode + encode)")
    for ax, title, xlabel in ((by_res, "One face, by resolution", "resolution"),
                              (by_faces, "640x360, by faces per frame", "faces per frame")):
        ax.axhline(r["settings"]["fps_target"], color="red", lw=0.8, ls="--",
                   label=f"target {r['settings']['fps_target']} FPS")
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.set_yscale("log")
        ax.set_yticks([5, 10, 20, 30, 40, 60, 100, 150, 200, 300])
        ax.yaxis.set_major_formatter(ticker.ScalarFormatter())
        ax.yaxis.set_minor_formatter(ticker.NullFormatter())
        ax.grid(alpha=0.3)
    by_faces.set_xticks([1, 2, 4])
    by_res.set_ylabel("frames per second (log)")
    by_res.legend(fontsize=7)
    return fig


def plot_flicker(plt, r: dict[str, Any]):
    """Flicker of each variant against the input (1) and the target."""
    rows = r["quality"]["flicker"]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.bar([row["variant"] for row in rows], [row["flicker"] or 0 for row in rows],
           color=["#2ca02c" if "smoothing on" in row["variant"] else "#d62728" for row in rows])
    ax.axhline(1.0, color="black", lw=0.8, label="input (1.0)")
    ax.axhline(r["settings"]["flicker_target"], color="red", ls="--", lw=0.8,
               label=f"target {r['settings']['flicker_target']}")
    ax.set_ylabel("flicker (output change / input change)")
    ax.set_title(f"Temporal stability on {r['quality']['clip']}")
    ax.legend(fontsize=8)
    plt.setp(ax.get_xticklabels(), rotation=15, ha="right")
    return fig
