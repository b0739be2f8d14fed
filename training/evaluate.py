"""Evaluate the generator (against the previous one, Telea and the masked input, with the true
masks and with what the segmenter's masks make the product paint), the segmenter (coverage of
real coverings, false marks on bare faces, overlays and other distractors), per-group fairness
on held-out UTKFace faces, and the seed paper's black-rectangle setting, on fixed occlusions.

    python -m training.evaluate --out runs/eval                # the bundled weights
    python -m training.evaluate --out runs/eval --generator runs/gen/generator.safetensors \\
        --segmenter runs/seg/segmenter.safetensors --limit 100
    python -m training.evaluate --out runs/eval --skip-lpips --skip-identity

Writes ``out/eval.md`` (tables, with a header that explains each metric) and ``out/eval.json``
(everything). "Hole" metrics are over the true mask's pixels (or its box) for every method,
so rows compare the same pixels. The metrics live in ``training.eval_metrics``, the inputs in
``training.eval_inputs``, the tables in ``training.eval_report``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from training.eval_metrics import Scorers, generate, image_metrics
from training.eval_report import Clock, markdown
from training.eval_sections import sections

__all__ = ["EvalConfig", "generate", "image_metrics", "main", "run"]  # trainer and benchmarks

Log = Callable[[str], None]


@dataclass(frozen=True)
class EvalConfig:
    """What to evaluate and on which faces."""

    out: Path
    """Folder for eval.md and eval.json."""
    data: tuple[Path, ...]
    """Face folders (or folders of them)."""
    masks: Path
    """MaskTheFace's ``masks`` folder."""
    cache: Path
    """Aligned-face cache."""
    generator: Path | None = None
    """Generator checkpoint (None: the bundled one)."""
    segmenter: Path | None = None
    """Segmenter checkpoint (None: the bundled one)."""
    baseline_generator: Path | None = None
    """The previous generator to compare with (None: the bundled one; skipped when it is the
    same file as ``generator``)."""
    baseline: bool = True
    """Score the previous generator at all."""
    limit: int = 400
    """Most faces per validation set."""
    batch_size: int = 32
    """Faces scored together (every method of a batch shares the clean faces' features)."""
    seed: int = 1234
    """Seed of the fixed occlusions (the trainers validate with the same one)."""
    mix: tuple[float, float, float] = (0.70, 0.15, 0.15)
    """Occlusion shares (template, rectangle, freeform) of the generator evaluation."""
    sets: tuple[str, ...] = ()
    """Validation folders by name; () = every ``data`` folder with val_*/validation_* files."""
    groups_folder: str = "utkface_160"
    """The ``data`` folder whose held-out faces give the per-group table."""
    paper_set: str = "celebahq_192"
    """The set of the paper-setting table (and listed first); the first set if absent."""
    rectangles: int = 200
    """Faces with black rectangles for the paper setting, half per band (0: skip)."""
    vgg: Path | None = None
    """VGG16/LPIPS weights (None: the user cache)."""
    arcface: Path | None = None
    """ArcFace ONNX (None: the user cache)."""
    skip_lpips: bool = False
    """Leave LPIPS out (it is left out, with a warning, where its weights are missing)."""
    skip_identity: bool = False
    """Leave the ArcFace cosine out (likewise where the model is missing)."""
    progress: bool = True
    """A progress bar per section on stderr."""
    videos: Path | None = None
    """Folder with the real clips for the covering rule on video; None skips it."""
    threads: int = 1
    """PyTorch and ONNX Runtime CPU threads. 1: beside a training job on two cores, two threads
    made every step 3-5x slower (small ops wait on busy cores); try 2 on an idle machine."""

    def __post_init__(self) -> None:
        checks = [(self.limit >= 1, f"--limit must be >= 1, got {self.limit}"),
                  (self.batch_size >= 1, f"--batch-size must be >= 1, got {self.batch_size}"),
                  (self.rectangles >= 0, f"--rectangles must be >= 0, got {self.rectangles}"),
                  (self.threads >= 1, f"--threads must be >= 1, got {self.threads}"),
                  (min(self.mix) >= 0 and abs(sum(self.mix) - 1) < 1e-6,
                   f"--occlusion-mix must be 3 shares >= 0 summing to 1, got {self.mix}")]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
        missing = [f"--data folder not found: {p}" for p in self.data if not p.is_dir()]
        missing += [f"--masks folder not found: {self.masks}"] if not self.masks.is_dir() else []
        missing += [f"checkpoint not found: {p}" for p in (
            self.generator, self.segmenter, self.baseline_generator) if p and not p.is_file()]
        if missing:
            raise FileNotFoundError(missing[0])


def _checkpoint(kind: str, path: Path | None) -> tuple[torch.nn.Module, dict, Path]:
    from engines.checkpoint import bundled_checkpoint, load_checkpoint

    path = path or bundled_checkpoint(kind)
    if path is None:
        raise FileNotFoundError(f"no --{kind} given and no bundled {kind} weights in "
                                "training/weights/")
    model, meta = load_checkpoint(path, expected_kind=kind)
    # Depthwise convolutions run ~1.5x faster on CPU in NHWC; batches arrive NHWC already.
    return model.to(memory_format=torch.channels_last), meta, path


def load_scorers(config: EvalConfig, log: Log) -> Scorers:
    """The checkpoints (one crop size for all), LPIPS and ArcFace unless skipped or missing."""
    from training.identity import ArcFace, find_arcface
    from training.vgg import default_weights_path, load_vgg

    loaded = {"segmenter": _checkpoint("segmenter", config.segmenter)}
    if config.baseline:
        loaded["previous generator"] = _checkpoint("generator", config.baseline_generator)
    loaded["generator"] = _checkpoint("generator", config.generator)
    notes = []
    if config.baseline and loaded["previous generator"][2].resolve() == \
            loaded["generator"][2].resolve():
        del loaded["previous generator"]
        notes.append("The previous generator is the generator: one set of generator rows.")
    if len(sizes := {meta["crop_size"] for _, meta, _ in loaded.values()}) != 1:
        raise ValueError(f"the checkpoints were trained on different crop sizes: {sorted(sizes)}")
    scorers = Scorers(loaded["segmenter"][0], {k: v[0] for k, v in loaded.items()
                                               if k != "segmenter"}, sizes.pop(), notes=notes,
                      checkpoints={k: {"path": str(p), "arch": m["arch"],
                                       "step": m["meta"].get("step"),
                                       "code_revision": m["meta"].get("code_revision")}
                                   for k, (_, m, p) in loaded.items()})

    def lpips() -> torch.nn.Module:
        net = load_vgg(config.vgg or default_weights_path())[1]
        net.features.to(memory_format=torch.channels_last)  # ~1.3x faster on CPU
        return net

    scorers.lpips = _metric_net("LPIPS", config.skip_lpips, "--skip-lpips", lpips, notes, log)
    scorers.arcface = _metric_net("ArcFace identity", config.skip_identity, "--skip-identity",
                                  lambda: ArcFace(find_arcface(config.arcface),
                                                  threads=config.threads), notes, log)
    return scorers


def _metric_net(what: str, skip: bool, flag: str, load: Callable[[], object], notes: list[str],
                log: Log):
    """``load()``, or None with a note (and a warning when the weights are missing)."""
    if skip:
        notes.append(f"{what} not computed ({flag}).")
        return None
    try:
        return load()
    except (FileNotFoundError, ValueError) as err:
        log(f"warning: {what} omitted: {err}")
        notes.append(f"{what} omitted: {err}")
        return None


# ---------------------------------------------------------------------------------------------
# Faces, the run, the command line


def load_face_sets(config: EvalConfig, crop: int) -> tuple[dict, object | None]:
    """({set name: its validation faces, the paper set first}, held-out UTKFace faces or
    None); folders are named by their directory names."""
    from training.common import face_folders
    from training.faces import (
        VALIDATION_PREFIXES,
        list_images,
        load_face_folder,
        load_validation_faces,
        split_faces,
    )

    folders = {f.name: f for f in face_folders(config.data)}
    names = config.sets or tuple(n for n, f in folders.items() if any(
        p.name.startswith(VALIDATION_PREFIXES) for p in list_images(f)))
    if unknown := [n for n in names if n not in folders]:
        raise FileNotFoundError(f"--sets {' '.join(unknown)}: not among the --data folders "
                                f"({', '.join(folders)})")
    if not names:
        raise ValueError("no validation set: no --data folder has val_* or validation_* files")
    names = sorted(names, key=lambda n: n != config.paper_set)
    sets = {n: load_validation_faces([folders[n]], crop, config.cache,
                                     progress=config.progress) for n in names}
    groups = folders.get(config.groups_folder)
    if groups is not None:
        groups = split_faces(load_face_folder(groups, crop, config.cache,
                                              progress=config.progress))[1]
    return sets, groups


def run(config: EvalConfig, log: Log | None = None) -> dict:
    """Every section; writes ``eval.json`` and ``eval.md`` to ``config.out``. ``log`` gets the
    warnings (default: stderr)."""
    from training.occluders import load_occluders

    torch.set_num_threads(config.threads)
    clock = Clock()
    scorers = load_scorers(config, log or (lambda line: print(line, file=sys.stderr)))
    sets, utk = load_face_sets(config, scorers.crop)
    occluders = load_occluders(config.masks, scorers.crop)
    clock.lap("loading")
    with torch.no_grad():
        parts = sections(config, scorers, sets, utk, occluders, clock)
    if config.videos is not None:
        from training.eval_video import video_section

        parts["videos"] = video_section(config.videos, segmenter=config.segmenter,
                                        generator=config.generator)
        clock.lap("videos")
    primary = next(iter(sets))
    result = {"faces": parts["generator"][primary]["faces"], "set": primary,
              "results": parts["generator"][primary]["results"], "crop_size": scorers.crop,
              "seed": config.seed, "mix": list(config.mix), **parts, "notes": scorers.notes,
              "checkpoints": scorers.checkpoints,
              "seconds": {**clock.laps, "total": round(time.monotonic() - clock.start, 1)}}
    config.out.mkdir(parents=True, exist_ok=True)
    (config.out / "eval.json").write_text(json.dumps(result, indent=1))
    (config.out / "eval.md").write_text(markdown(result))
    return result


def parse_config(argv: list[str] | None) -> EvalConfig:
    from training.common import REPO
    from training.faces import faces_cache_dir

    shared = REPO.parent / "shared" / "data"
    d = EvalConfig.__dataclass_fields__
    parser = argparse.ArgumentParser(prog="python -m training.evaluate", description=(
        "Score the generator, the previous one, Telea and the segmenter on fixed occlusions."))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--data", type=Path, nargs="+", default=[shared / "faces"])
    parser.add_argument("--masks", type=Path,
                        default=shared / "mask_templates" / "masktheface" / "masks")
    parser.add_argument("--cache", type=Path, default=None,
                        help="aligned-face cache (default: the user cache)")
    for flag, what in (("generator", "generator to score"), ("segmenter", "segmenter"),
                       ("baseline-generator", "previous generator, to compare with"),
                       ("vgg", "VGG16/LPIPS weights"), ("arcface", "ArcFace ONNX")):
        where = "the user cache" if flag in ("vgg", "arcface") else "training/weights/"
        parser.add_argument(f"--{flag}", type=Path, default=None,
                            help=f"the {what} (default: the one in {where})")
    parser.add_argument("--no-baseline", action="store_true",
                        help="do not score the previous (bundled) generator")
    for name in ("limit", "batch_size", "seed", "rectangles", "threads"):
        parser.add_argument("--" + name.replace("_", "-"), type=int, default=d[name].default)
    parser.add_argument("--occlusion-mix", type=float, nargs=3, default=d["mix"].default,
                        metavar=("TEMPLATE", "RECTANGLE", "FREEFORM"))
    parser.add_argument("--sets", nargs="+", default=[],
                        help="validation folders by name (default: every one with val_* files)")
    parser.add_argument("--groups-folder", default=d["groups_folder"].default)
    parser.add_argument("--paper-set", default=d["paper_set"].default)
    parser.add_argument("--videos", type=Path, default=shared / "videos",
                        help="the real clips, for the covering rule on video")
    for flag in ("skip-lpips", "skip-identity", "skip-videos", "no-progress"):
        parser.add_argument(f"--{flag}", action="store_true")
    a = parser.parse_args(argv)
    return EvalConfig(
        out=a.out, data=tuple(a.data), masks=a.masks, cache=a.cache or faces_cache_dir(),
        generator=a.generator, segmenter=a.segmenter, baseline_generator=a.baseline_generator,
        baseline=not a.no_baseline, limit=a.limit, batch_size=a.batch_size, seed=a.seed,
        mix=tuple(a.occlusion_mix), sets=tuple(a.sets), groups_folder=a.groups_folder,
        paper_set=a.paper_set, rectangles=a.rectangles, vgg=a.vgg, arcface=a.arcface,
        skip_lpips=a.skip_lpips, skip_identity=a.skip_identity, progress=not a.no_progress,
        threads=a.threads, videos=None if a.skip_videos else a.videos)


def main(argv: list[str] | None = None) -> int:
    from engines.checkpoint import CheckpointError

    try:
        config = parse_config(argv)
        result = run(config)
    except (ValueError, FileNotFoundError, CheckpointError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print((config.out / "eval.md").read_text())
    print(f"wrote {config.out / 'eval.md'} and eval.json ({result['faces']} faces per set, "
          f"{result['seconds']['total']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
