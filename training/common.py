"""Plumbing shared by the two training scripts: the common config and CLI flags, data loading,
sample grids, run metadata (the resumable state is ``training.train_state``).

The training loops themselves live in ``train_segmenter.py`` and ``train_inpainter.py``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from training.data import MIXES, OcclusionConfig, OcclusionDataset
from training.faces import FaceSet, faces_cache_dir, list_images, load_faces, split_faces
from training.occluders import load_occluders
from training.revision import git_revision

REPO = Path(__file__).resolve().parents[1]
VAL_SEED = 1234
"""Occlusions of the validation samples; fixed so every run is scored on the same set."""


@dataclass(frozen=True)
class TrainConfig:
    """Flags shared by both trainers."""

    data: tuple[Path, ...]
    """Folders of unmasked faces (a folder of folders uses each subfolder with images)."""
    masks: Path
    """MaskTheFace's ``masks`` folder (masks.cfg, templates/, textures/)."""
    cache: Path
    """Where aligned faces are cached (one .npz per folder and crop size)."""
    out: Path
    """Output folder: checkpoint, training state, sample grids, metrics."""
    steps: int = 20000
    """Total optimizer steps (a resumed run continues up to this number)."""
    minutes: float | None = None
    """Wall-clock budget of this invocation; on expiry the run validates, saves and exits."""
    batch_size: int = 16
    width: int = 16
    """Channels of the first U-Net level."""
    crop: int = 128
    """Aligned crop side: 128 or 256."""
    seed: int = 0
    val_every: int = 200
    """Steps between validations (which also save the checkpoint and the training state)."""
    val_samples: int = 128
    """Validation samples (from the validation split, fixed occlusions)."""
    resume: bool = False
    """Continue from ``out/train_state.*``."""
    init: Path | None = None
    """Warm start: a checkpoint of the same kind and architecture to start from."""
    occlusion: OcclusionConfig = field(default_factory=OcclusionConfig)
    progress: bool = True
    threads: int = 2
    """PyTorch CPU threads; 1 when sharing two cores with other work (more only contend)."""

    @property
    def arch(self) -> dict:
        """The trained net's architecture as its checkpoint records it (each trainer's)."""
        raise NotImplementedError

    @property
    def state_arch(self) -> dict:
        """What ``--resume`` must match: the architecture and the crop."""
        return {**self.arch, "crop": self.crop}

    def __post_init__(self) -> None:
        checks = [
            (len(self.data) > 0, "--data needs at least one folder"),
            (self.steps >= 1, f"--steps must be >= 1, got {self.steps}"),
            (self.minutes is None or self.minutes > 0,
             f"--minutes must be positive, got {self.minutes}"),
            (1 <= self.batch_size <= 512,
             f"--batch-size must be between 1 and 512, got {self.batch_size}"),
            (4 <= self.width <= 128, f"--width must be between 4 and 128, got {self.width}"),
            (self.crop in (128, 256), f"--crop must be 128 or 256, got {self.crop}"),
            (self.val_every >= 1, f"--val-every must be >= 1, got {self.val_every}"),
            (self.val_samples >= 1, f"--val-samples must be >= 1, got {self.val_samples}"),
            (self.init is None or self.init.is_file(),
             f"--init checkpoint not found: {self.init}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)


def add_common_args(parser: argparse.ArgumentParser, *, mix: str) -> None:
    """The shared flags; ``mix`` names the trainer's sample recipe (``training.data.MIXES``),
    whose values the occlusion flags default to."""
    shared = REPO.parent / "shared" / "data"
    d = TrainConfig.__dataclass_fields__
    parser.add_argument("--data", type=Path, nargs="+", default=[shared / "faces"],
                        help="folders of unmasked face images (default ../shared/data/faces)")
    parser.add_argument("--masks", type=Path,
                        default=shared / "mask_templates" / "masktheface" / "masks")
    parser.add_argument("--cache", type=Path, default=None,
                        help="aligned-face cache (default: the user cache)")
    parser.add_argument("--out", type=Path, required=True)
    for name in ("steps", "batch_size", "width", "crop", "seed", "val_every", "val_samples"):
        parser.add_argument("--" + name.replace("_", "-"), type=int, default=d[name].default)
    parser.add_argument("--minutes", type=float, default=None)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--init", type=Path, default=None,
                        help="warm start from a checkpoint of the same architecture")
    m = MIXES[mix]
    parser.add_argument("--mix", choices=sorted(MIXES), default=mix,
                        help=f"sample recipe whose values the flags below default to "
                             f"(default: {mix}; legacy = the first checkpoints' recipe)")
    parser.add_argument("--occlusion-mix", type=float, nargs=3, default=None,
                        metavar=("TEMPLATE", "RECTANGLE", "FREEFORM"),
                        help=f"shares of coverings, rectangles and strokes (default: "
                             f"{m.template_p:g} {m.rectangle_p:g} {m.freeform_p:g})")
    parser.add_argument("--template-scale", type=float, nargs=2, default=None,
                        metavar=("LO", "HI"), help="scale range of the mask templates")
    parser.add_argument("--template-grow", type=float, default=None, metavar="G",
                        help="largest extra reach of a template below the nose (and G/2 in "
                             "width), for masks larger than the templates")
    for flag, what in (("clean", "samples with no occluder at all, an empty mask"),
                       ("distractors", "samples with overlays, glasses, beards, hands... "
                                       "(never in the mask)"),
                       ("degrade", "inputs given webcam/surveillance damage"),
                       ("photometric", "faces re-lit and re-coloured before drawing"),
                       ("hem", "templates given a hem along the upper edge (in the mask)"),
                       ("loops", "templates given ear loops (in the mask)"),
                       ("photo_prints", "templates printed with a window of another photo"),
                       ("photo_cuts", "samples cut like a tight photo below the nose or beside "
                                      "the face, the border repeating the cut"),
                       ("misalign", "samples whose face is shifted, turned and scaled in "
                                    "its crop, as a misplaced crop")):
        parser.add_argument(f"--{flag.replace('_', '-')}", type=float, default=None, metavar="P",
                            help=f"share of {what}")
    parser.add_argument("--bleed-labels", action="store_true", default=None,
                        help="with --degrade: mark the skin that the damage smears the "
                             "covering's colour onto as covering too")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--threads", type=int, default=2,
                        help="PyTorch CPU threads (default: 2)")


def occlusion_from_args(args: argparse.Namespace) -> OcclusionConfig:
    """The recipe named by ``--mix`` with the flags that were given laid over it."""
    changes: dict[str, Any] = {}
    if args.occlusion_mix is not None:
        changes.update(zip(("template_p", "rectangle_p", "freeform_p"), args.occlusion_mix,
                           strict=True))
    for flag, name in (("template_scale", "template_scale"),
                       ("template_grow", "template_grow"), ("clean", "clean_p"),
                       ("distractors", "distractor_p"), ("degrade", "degrade_p"),
                       ("photometric", "photometric_p"), ("hem", "hem_p"),
                       ("loops", "loop_p"), ("photo_prints", "photo_p"),
                       ("photo_cuts", "cut_p"), ("misalign", "misalign_p"),
                       ("bleed_labels", "bleed_labels")):
        value = getattr(args, flag)
        if value is not None:
            changes[name] = tuple(value) if isinstance(value, list) else value
    return replace(MIXES[args.mix], **changes)


def common_kwargs(args: argparse.Namespace) -> dict:
    """TrainConfig fields from parsed flags."""
    return dict(
        data=tuple(args.data), masks=args.masks, cache=args.cache or faces_cache_dir(),
        out=args.out, steps=args.steps, minutes=args.minutes, batch_size=args.batch_size,
        width=args.width, crop=args.crop, seed=args.seed, val_every=args.val_every,
        val_samples=args.val_samples, resume=args.resume, init=args.init,
        occlusion=occlusion_from_args(args), progress=not args.no_progress,
        threads=args.threads)


def run_trainer(parse: Callable[[list[str] | None], Any], train: Callable[[Any], dict],
                argv: list[str] | None) -> int:
    """A trainer's command line: one-line errors, exit 130 on Ctrl-C, the result as JSON."""
    from engines.checkpoint import CheckpointError

    try:
        result = train(parse(argv))
    except (ValueError, FileNotFoundError, CheckpointError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    print(json.dumps(result))
    return 0


def setup_torch(seed: int, threads: int = 2) -> None:
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    np.random.seed(seed)  # nothing should use it; seeded so a stray call stays reproducible
    # CPU kernels are deterministic already (the resume test checks bit-equal losses);
    # torch.use_deterministic_algorithms would import torch._dynamo, ~2 s per start.


def face_folders(paths: tuple[Path, ...]) -> list[Path]:
    """Each path if it holds images, else its subfolders that do (``faces/`` -> both sets)."""
    folders = []
    for path in paths:
        if not path.is_dir():
            raise FileNotFoundError(f"--data folder not found: {path}")
        if list_images(path):
            folders.append(path)
        else:
            subs = [p for p in sorted(path.iterdir()) if p.is_dir() and list_images(p)]
            if not subs:
                raise ValueError(f"no images in {path} or its subfolders")
            folders += subs
    return folders


def build_datasets(config: TrainConfig) -> tuple[OcclusionDataset, OcclusionDataset, dict]:
    """(train, validation, summary): the validation set has fixed occlusions, in order."""
    folders = face_folders(config.data)
    faces = load_faces(folders, config.crop, config.cache, progress=config.progress)
    train, val = split_faces(faces)
    occluders = load_occluders(config.masks, config.crop)
    summary = {"folders": [str(f) for f in folders], "faces": len(faces),
               "skipped_no_landmarks": faces.skipped, "train": len(train),
               "validation": len(val), "templates": len(occluders.templates),
               "textures": len(occluders.textures_rgb)}
    if len(train) == 0 or len(val) == 0:
        raise ValueError(f"need training and validation faces, got {summary}")
    val = _first(val, config.val_samples)
    return (OcclusionDataset(train, occluders, config.occlusion, seed=config.seed),
            OcclusionDataset(val, occluders, config.occlusion, seed=VAL_SEED, shuffle=False),
            summary)


def _first(faces: FaceSet, n: int) -> FaceSet:
    """``n`` faces spread evenly over the set (every folder's validation faces take part)."""
    if n >= len(faces):
        return faces
    return faces.subset(np.linspace(0, len(faces) - 1, n).round().astype(np.int64))


def run_meta(config: TrainConfig, summary: dict, metrics: dict, step: int,
             train_seconds: float) -> dict:
    """Checkpoint metadata: data summary, validation metrics, code revision, time."""
    cfg = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()}
    cfg["data"] = [str(p) for p in config.data]
    return {"data": summary, "val_metrics": metrics, "step": step,
            "train_seconds": round(train_seconds, 1), "code_revision": git_revision(),
            "config": cfg}


# ---------------------------------------------------------------------------------------------
# Pictures and time


def to_uint8_rgb(images: torch.Tensor) -> np.ndarray:
    """(N, C, H, W) in [-1, 1] (C = 3) or [0, 1] (C = 1) -> (N, H, W, 3) uint8."""
    x = images.detach().float().cpu()
    x = x.repeat(1, 3, 1, 1) if x.shape[1] == 1 else (x + 1) / 2
    return (x.clamp(0, 1).permute(0, 2, 3, 1).numpy() * 255 + 0.5).astype(np.uint8)


def save_grid(path: Path, columns: list[torch.Tensor], rows: int = 8) -> None:
    """PNG with one sample per row and the given columns side by side
    (e.g. input | mask | output | target)."""
    arrays = [to_uint8_rgb(c[:rows]) for c in columns]
    grid_rgb = np.concatenate([np.concatenate(list(a), axis=0) for a in arrays], axis=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(grid_rgb, cv2.COLOR_RGB2BGR))


class Budget:
    """Wall-clock budget of one invocation (None: unlimited) that starts at ``first_step``."""

    def __init__(self, minutes: float | None, first_step: int = 0) -> None:
        self.start = time.monotonic()
        self.seconds = None if minutes is None else minutes * 60
        self.first_step = first_step

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def fraction(self) -> float:
        return 0.0 if self.seconds is None else self.elapsed() / self.seconds

    def spent(self) -> bool:
        return self.seconds is not None and self.elapsed() >= self.seconds

    def allows(self, step: int) -> bool:
        """Whether ``step`` may run: the invocation's first always does, however small the
        budget (setup on a loaded machine can outlast a tiny one), later ones until it is
        spent."""
        return step == self.first_step or not self.spent()
