"""The generator trainer's configuration and command line (``training.train_inpainter``)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from training.common import TrainConfig, add_common_args, common_kwargs


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
    vgg: Path | None = None
    """VGG16 + LPIPS weights (``python -m training.vgg convert``); None: the user cache."""
    perceptual_weight: float = 10.0
    """Weight of the VGG16 feature loss on the lower face; 0 turns it off."""
    fm_weight: float = 5.0
    """Weight of feature matching on the whole-face discriminator's activations."""
    blocks: int = 1
    """Inverted-residual blocks after each down and up block of the generator."""
    identity_weight: float = 0.0
    """Weight of 1 - ArcFace cosine(output, clean) (``training.identity_loss``); 0: off."""
    identity_jitter: float = 0.0
    """Random misalignment of each output/clean pair before the identity loss: up to this
    many ArcFace pixels of shift, degrees of rotation and percent of scale; 0: the exact warp."""
    arcface: Path | None = None
    """ArcFace ONNX (``python -m training.identity fetch``); None: the user cache."""
    band: bool = False
    """Train on segmenter-like misplaced masks with an edge ring the generator sees
    (``training.band``); the checkpoint then takes the pipeline's three-level mask."""
    gate: bool = False
    """With ``band``: the generator also outputs a blend weight for the ring's pixels
    (``engines.models.MaskInpainter``), trained on wider grows; ``--init`` may be a band
    checkpoint without one."""
    gate_weight: float = 1.0
    """Weight of the gate's BCE against the true covering on the ring
    (``training.band.gate_loss``)."""
    grown: bool = False
    """A plain generator trains on the painted region of ``band``'s misplaced, grown masks."""
    guide: bool = False
    """The generator also reads the landmark guide (``realtime.face.guide``); ``--init`` may
    be a checkpoint without one (it starts unread)."""
    guide_scale: float = 10.0
    """The guide is read times this (``engines.models.MaskInpainter``): the stem's guide weights
    then learn this many times faster; at 1 they barely left zero in 1,837 steps."""

    @property
    def arch(self) -> dict:
        """The checkpoint's architecture (``engines.models.build_generator``'s arguments);
        ``guide_scale`` only for a guided net, the one that reads it."""
        return {"width": self.width, "depth": self.depth, "refine": self.refine,
                "blocks": self.blocks, "upsample": "resize", "band": self.band,
                "gate": self.gate, "guide": self.guide,
                **({"guide_scale": self.guide_scale} if self.guide else {})}

    def __post_init__(self) -> None:
        super().__post_init__()
        checks = [
            (2 <= self.depth <= 6, f"--depth must be 2..6, got {self.depth}"),
            (0 < self.lr_gen < 1 and 0 < self.lr_disc < 1,
             f"learning rates must be in (0, 1), got {self.lr_gen}, {self.lr_disc}"),
            (min(self.rec_weight, self.adv_whole, self.adv_region, self.perceptual_weight,
                 self.fm_weight, self.identity_weight, self.gate_weight) >= 0,
             "loss weights must be >= 0"),
            (0 <= self.region_start <= 1,
             f"--region-start must be in [0, 1], got {self.region_start}"),
            (0 <= self.blocks <= 3, f"--blocks must be 0..3, got {self.blocks}"),
            (0 <= self.identity_jitter <= 10,
             f"--identity-jitter must be in [0, 10], got {self.identity_jitter}"),
            (self.band or not self.gate, "--gate needs --band"),
            (not (self.band and self.grown), "--grown is for plain generators, not --band"),
            (not (self.gate and self.refine), "--gate does not go with --refine"),
            (not (self.gate and self.guide), "--gate does not go with --guide"),
            (self.guide_scale > 0, f"--guide-scale must be > 0, got {self.guide_scale}"),
            (self.vgg is None or self.vgg.is_file(), f"--vgg file not found: {self.vgg}"),
            (self.arcface is None or self.arcface.is_file(),
             f"--arcface file not found: {self.arcface}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)


def parse_config(argv: list[str] | None) -> InpainterConfig:
    parser = argparse.ArgumentParser(prog="python -m training.train_inpainter",
                                     description="Train the GAN generator.")
    add_common_args(parser, mix="generator")
    d = InpainterConfig.__dataclass_fields__
    parser.add_argument("--depth", type=int, default=d["depth"].default)
    parser.add_argument("--refine", action="store_true")
    parser.add_argument("--band", action="store_true", help="segmenter-like masks with an edge "
                        "ring the generator sees (training.band)")
    parser.add_argument("--gate", action="store_true", help="with --band: the generator also "
                        "outputs a blend weight on the ring, so it keeps real skin there "
                        "exactly; trained on grows up to 4 px")
    parser.add_argument("--grown", action="store_true", help="train on segmenter-like "
                        "misplaced masks grown as the pipeline grows them (training.band)")
    parser.add_argument("--guide", action="store_true", help="the generator also reads a line "
                        "drawing of the lower face's landmarks (realtime.face.guide)")
    parser.add_argument("--guide-scale", type=float, default=d["guide_scale"].default,
                        help="with --guide: read the guide times this, so its weights learn "
                             "this many times faster (default: %(default)s)")
    for name in ("lr_gen", "lr_disc", "rec_weight", "adv_whole", "adv_region",
                 "region_start", "perceptual_weight", "fm_weight", "identity_weight",
                 "gate_weight"):
        parser.add_argument("--" + name.replace("_", "-"), type=float, default=d[name].default)
    parser.add_argument("--identity-jitter", type=float, metavar="PX",
                        default=d["identity_jitter"].default,
                        help="before the identity loss, warp each result/clean pair by the "
                             "same random shift (up to PX px), rotation (PX degrees) and "
                             "scale (PX percent); default: 0, the exact warp")
    for name in ("disc_width", "disc_layers", "blocks"):
        parser.add_argument("--" + name.replace("_", "-"), type=int, default=d[name].default)
    parser.add_argument("--vgg", type=Path, default=None,
                        help="VGG16/LPIPS weights from `python -m training.vgg convert` "
                             "(default: the user cache)")
    parser.add_argument("--arcface", type=Path, default=None,
                        help="ArcFace ONNX for --identity-weight, from `python -m "
                             "training.identity fetch` (default: the user cache)")
    args = parser.parse_args(argv)
    extra = {name: getattr(args, name) for name in (
        "depth", "refine", "lr_gen", "lr_disc", "rec_weight", "adv_whole", "adv_region",
        "region_start", "disc_width", "disc_layers", "vgg", "perceptual_weight",
        "fm_weight", "blocks", "identity_weight", "identity_jitter", "arcface", "band",
        "gate", "gate_weight", "guide", "guide_scale", "grown")}
    return InpainterConfig(**common_kwargs(args), **extra)
