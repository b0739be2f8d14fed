"""Per-frame processing: detect, align, segment, smooth, inpaint, composite.

Stages are small functions; the only state across frames is the face tracker and the per-track
smoothers (mask and painted crop) held by ``Pipeline``.

    with build_pipeline(PipelineConfig(), engines=EngineConfig(), tracker=TrackerConfig(),
                        log=print) as pipeline:
        result = pipeline.process(frame)      # result.out_bgr, result.mask_full_hw, ...
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from engines.base import Engine, generator_mask
from engines.config import EngineConfig, check_crop_size
from realtime.composite import (
    composite,
    feather,
    match_colour,
    telea_inpaint,
)
from realtime.covering import CoveringConfig, CoveringVotes, below_eyes, plausible_covering
from realtime.edges import guided_grow, prob_grow, snap_edges
from realtime.face.align import (
    Alignment,
    affine_points,
    estimate_alignment,
    reference_points,
    warp_to_crop,
)
from realtime.face.guide import draw_guides
from realtime.smoothing import MaskSmoothers, SmoothingConfig
from realtime.types import Closing, Face, Frame, Inpainter

if TYPE_CHECKING:
    from realtime.tracking import TrackerConfig


@dataclass(frozen=True)
class PipelineConfig:
    """What happens to each face."""

    crop_size: int = 128
    """Side of the aligned face crop the nets see (128 for real time, 256 for quality)."""
    inpainter: Inpainter = "gan"
    """'gan': the trained generator; 'telea': OpenCV's classical inpainting, as a baseline."""
    smoothing: SmoothingConfig | None = field(default_factory=SmoothingConfig)
    """Temporal smoothing of masks and painted crops; None turns it off (each frame thresholded
    and painted alone)."""
    covering: CoveringConfig | None = field(default_factory=CoveringConfig)
    """Which marked regions are painted, and on which faces (``realtime.covering``); None
    paints whatever the segmenter marks (nothing above the eyes, still)."""
    colour_match: bool = False
    """Shift each painted region's colour to meet the visible skin around it
    (``realtime.composite.match_colour``). Off: written for the first generator's purple
    cast, it now moves the paint away from the truth (hole colour error 11.9 -> 16.5 levels,
    hole PSNR -0.5 dB on the celebahq_192 validation with the product's masks; the same on
    the old 400 crops), because the ring above the hole it reads also holds hair, glasses and
    background, while the generator, trained on re-lit faces, already meets the skin."""
    grow_px: int = 2
    """Grow the mask by up to this many crop pixels before painting: segmentation stops a
    pixel or two short of a real mask's edge, which otherwise stays visible as a thin coloured
    rim. A band generator sees the ring's pixels and keeps the real skin among them."""
    snap_px: int = 2
    """Before the grow, re-decide the pixels within this many crop pixels of the segmented
    edge by colour, both ways (``realtime.edges.snap_edges``); 0: the segmenter's edge.
    Measured with the bundled nets (256 faces per set, templates): hole PSNR 16.74 -> 16.85
    dB, hole-box LPIPS 0.338 -> 0.332, ArcFace 0.560 -> 0.562 on celebahq_192; 17.89 ->
    17.92, 0.314 -> 0.310, 0.537 -> 0.538 on the old crops; real photos look the same."""
    grow_upward: bool = True
    """Whether the grow also moves the top edge up; False grows down and sideways only (the
    top edge crosses the nose, where repainted skin costs the most identity)."""
    grow_min_prob: float = 0.0
    """The grow takes only pixels the segmenter gives at least this probability of being
    covering (``realtime.edges.prob_grow``): a soft real edge is taken, the skin beside a
    crisp one is not. 0 grows blindly by ``grow_px``."""
    grow_reach_px: int = 0
    """Above ``grow_px``: grow further, up to this many pixels, but only through pixels
    coloured like the covering (``realtime.edges``); 0 grows by ``grow_px`` alone."""
    feather_px: int = 3
    """Width, in crop pixels, of the soft edge where painted pixels meet the frame."""
    want_mask: bool = False
    """Also return the full-frame mask (for ``--save-masks`` and ``--show-mask``)."""

    def __post_init__(self) -> None:
        check_crop_size(self.crop_size, "crop size")
        if self.inpainter not in ("gan", "telea"):
            raise ValueError(f"inpainter must be 'gan' or 'telea', got {self.inpainter!r}")
        if not 0 <= self.feather_px <= 32:
            raise ValueError(f"feather must be between 0 and 32 px, got {self.feather_px}")
        if not 0 <= self.grow_px <= 16:
            raise ValueError(f"grow must be between 0 and 16 px, got {self.grow_px}")
        if not 0 <= self.snap_px <= 8:
            raise ValueError(f"edge snap must be between 0 and 8 px, got {self.snap_px}")
        if not 0 <= self.grow_min_prob < 0.5:
            raise ValueError(f"grow min probability must be in [0, 0.5), got "
                             f"{self.grow_min_prob}")
        if not (self.grow_reach_px == 0 or self.grow_px < self.grow_reach_px <= 16):
            raise ValueError(f"grow reach must be 0 or between the grow ({self.grow_px}) "
                             f"and 16 px, got {self.grow_reach_px}")

    @property
    def grow_reads_colours(self) -> bool:
        """Whether ``grown`` reads the crops' colours (the edge snap, the guided grow); else
        it takes None."""
        return self.snap_px > 0 or self.grow_reach_px > 0

    def grown(self, crops_rgb: np.ndarray | None, masks_hw: np.ndarray,
              probs_hw: np.ndarray) -> np.ndarray:
        """The masks (N, S, S) grown as configured, before painting; ``probs_hw``: the
        segmenter's probabilities (smoothed over time where masks are); ``crops_rgb`` may be
        None unless ``grow_reads_colours``."""
        if self.grow_reads_colours and crops_rgb is None:
            raise ValueError("the edge snap and the guided grow read the crops' colours")
        masks_hw = snap_edges(crops_rgb, masks_hw, self.snap_px)
        fixed = prob_grow(masks_hw, probs_hw, self.grow_px, self.grow_min_prob,
                          upward=self.grow_upward)
        if not self.grow_reach_px:
            return fixed
        plain = not self.grow_min_prob and self.grow_upward  # the guided grow's own fixed part
        return guided_grow(crops_rgb, masks_hw, self.grow_px, self.grow_reach_px,
                           None if plain else fixed)


@dataclass
class FrameResult:
    """What the pipeline made of one frame."""

    out_bgr: np.ndarray
    mask_full_hw: np.ndarray | None
    faces: list[Face]
    covered: list[bool] = field(default_factory=list)
    """Per face: whether it was judged to wear a covering (and so was painted)."""


def to_network(crops_rgb: np.ndarray) -> np.ndarray:
    """N x S x S x 3 uint8 RGB -> N x 3 x S x S float32 in [-1, 1]."""
    return np.ascontiguousarray(crops_rgb.transpose(0, 3, 1, 2), dtype=np.float32) / 127.5 - 1.0


def from_network(batch: np.ndarray) -> np.ndarray:
    """N x 3 x S x S float32 in [-1, 1] -> N x S x S x 3 uint8 RGB."""
    return np.clip((batch.transpose(0, 2, 3, 1) + 1.0) * 127.5 + 0.5, 0, 255).astype(np.uint8)


def segment(engine, crops_rgb: np.ndarray) -> np.ndarray:
    """Mask probabilities (N x S x S float32) for a batch of crops."""
    logits = engine(to_network(crops_rgb))[:, 0]
    return 1.0 / (1.0 + np.exp(-np.clip(logits, -30, 30)))


def inpaint(engine, crops_rgb: np.ndarray, masks_hw: np.ndarray,
            guides_hw: np.ndarray | None = None) -> np.ndarray:
    """Crops with the masked region painted by the generator (N x S x S x 3 uint8 RGB).

    ``masks_hw`` is the generator's mask channel: {0, 1}, or the three levels of
    ``engines.base.generator_mask``; the RGB is zeroed only where it is 1. ``guides_hw``
    (N x S x S, ``realtime.face.guide``) goes to a guided generator only."""
    x = to_network(crops_rgb)
    m = masks_hw[:, None].astype(np.float32)
    parts = [x * (m < 1), m]
    if guides_hw is not None:
        parts.append(guides_hw[:, None].astype(np.float32))
    painted = engine(np.ascontiguousarray(np.concatenate(parts, axis=1)))
    return from_network(painted)


class Tracker(Protocol):
    """What the pipeline needs of a face tracker (``realtime.tracking.FaceTracker``)."""

    last_timings_ms: dict[str, float]
    """Milliseconds of the last ``update`` by stage; its ``mesh`` share counts as alignment."""

    def update(self, frame_bgr: np.ndarray) -> list[Face]: ...

    def reset(self) -> None: ...

    def close(self) -> None: ...


class Nets(Protocol):
    """What the pipeline, and the loop's summary, need of the loaded models
    (``engines.Engines``)."""

    segmenter: Engine
    generator: Engine
    generator_band: bool
    """The generator takes ``engines.base.generator_mask``'s three levels."""
    generator_guide: bool
    """The generator also reads the landmark guide (``realtime.face.guide``)."""
    backend: str
    """What runs them, e.g. "onnxruntime-cpu"."""
    warmup_ms: float
    """Time their warm-up took at load, kept out of the per-frame statistics."""

    def telemetry(self) -> dict[str, Any]:
        """The device they run on (GPU or CPU model, memory, cores), for the summary."""
        ...


class Pipeline(Closing):
    """Turns frames into unmasked frames; keeps per-track mask and paint history between calls.
    Closing it (or leaving its ``with`` block) closes the tracker's MediaPipe graphs."""

    def __init__(self, config: PipelineConfig, *, engines: Nets, tracker: Tracker) -> None:
        self.config = config
        self.engines = engines
        self.tracker = tracker
        self.smoothers = MaskSmoothers(config.smoothing) if config.smoothing else None
        self.votes = CoveringVotes(config.covering) if config.covering else None

    def close(self) -> None:
        self.tracker.close()

    def reset(self) -> None:
        """Forget all tracks (between unrelated images)."""
        self.tracker.reset()
        if self.smoothers is not None:
            self.smoothers.clear()
        if self.votes is not None:
            self.votes.clear()

    def process(self, frame: Frame) -> FrameResult:
        """Runs every stage on one frame, recording milliseconds in ``frame.timings_ms``."""
        timings = frame.timings_ms
        t = time.perf_counter()
        faces = self.tracker.update(frame.bgr if frame.detect_bgr is None else frame.detect_bgr)
        t = _lap(timings, "detect", t)
        # The face mesh serves alignment, so its share of the tracker's time counts there.
        mesh_ms = self.tracker.last_timings_ms.get("mesh", 0.0)
        timings["detect"] -= mesh_ms
        if not faces:
            h, w = frame.bgr.shape[:2]
            mask = np.zeros((h, w), np.float32) if self.config.want_mask else None
            return FrameResult(frame.bgr, mask, faces)
        alignments = [estimate_alignment(reference_points(landmarks_xy=f.landmarks_xy,
                                                          keypoints_xy=f.keypoints_xy),
                                         self.config.crop_size) for f in faces]
        crops_rgb = np.stack([warp_to_crop(frame.bgr, a) for a in alignments])
        t = _lap(timings, "align", t)
        timings["align"] += mesh_ms
        probs_hw = segment(self.engines.segmenter, crops_rgb)
        smoothed_hw, averages_hw = self._smooth(faces, probs_hw, alignments)
        masks_hw, covered = self._coverings(faces, smoothed_hw, probs_hw)
        upper_off = below_eyes(self.config.crop_size)
        segmented_hw = masks_hw
        masks_hw = self.config.grown(crops_rgb, masks_hw, averages_hw) * upper_off
        t = _lap(timings, "segment", t)
        if self.config.inpainter == "telea":
            painted_rgb = telea_inpaint(crops_rgb, masks_hw)
        else:
            guides_hw = (draw_guides([None if f.landmarks_xy is None else affine_points(
                a.matrix, f.landmarks_xy) for f, a in zip(faces, alignments, strict=True)],
                self.config.crop_size) if self.engines.generator_guide else None)
            painted_rgb = self._inpaint_masked(crops_rgb, generator_mask(
                segmented_hw * upper_off, masks_hw) if self.engines.generator_band
                else masks_hw, guides_hw)
            if self.config.colour_match:
                painted_rgb = np.stack([match_colour(p, m) for p, m in zip(
                    painted_rgb, masks_hw, strict=True)])
        painted_rgb = self._smooth_painted(faces, painted_rgb)
        t = _lap(timings, "inpaint", t)
        alphas_hw = [feather(m, self.config.feather_px) * upper_off for m in masks_hw]
        out_bgr, mask_full_hw = composite(frame.bgr, painted_rgb, alphas_hw, alignments,
                                          want_mask=self.config.want_mask)
        _lap(timings, "composite", t)
        return FrameResult(out_bgr, mask_full_hw, faces, covered)

    def _smooth(self, faces: list[Face], probs_hw: np.ndarray, alignments: list[Alignment],
                ) -> tuple[np.ndarray, np.ndarray]:
        """(binary masks, the probabilities they were thresholded from), averaged over time
        per track where smoothing is on."""
        if self.smoothers is None:
            return (probs_hw > 0.5).astype(np.float32), probs_hw
        masks = [self.smoothers.update(f.track_id, p, a)
                 for f, p, a in zip(faces, probs_hw, alignments, strict=True)]
        averages = [self.smoothers.average(f.track_id) for f in faces]
        self.smoothers.prune({f.track_id for f in faces})
        return np.stack(masks), np.stack(averages)

    def _coverings(self, faces: list[Face], masks_hw: np.ndarray, probs_hw: np.ndarray,
                   ) -> tuple[np.ndarray, list[bool]]:
        """The plausible covering of each mask, emptied on faces voted uncovered."""
        if self.config.covering is None or self.votes is None:
            return masks_hw, [bool(m.any()) for m in masks_hw]
        out, covered = np.zeros_like(masks_hw), []
        for i, face in enumerate(faces):
            kept_hw, evidence = plausible_covering(masks_hw[i], self.config.covering,
                                                   probs_hw[i])
            on = self.votes.update(face.track_id, evidence)
            covered.append(on)
            if on:
                out[i] = kept_hw
        self.votes.prune({f.track_id for f in faces})
        return out, covered

    def _inpaint_masked(self, crops_rgb: np.ndarray, masks_hw: np.ndarray,
                        guides_hw: np.ndarray | None) -> np.ndarray:
        """The generator on the faces that have something to paint; the others keep their
        crop. Most faces in real video wear no mask, and the generator is ~3 ms a face."""
        todo = np.flatnonzero(masks_hw.reshape(len(masks_hw), -1).any(axis=1))
        if todo.size == len(masks_hw):
            return inpaint(self.engines.generator, crops_rgb, masks_hw, guides_hw)
        painted_rgb = crops_rgb.copy()
        if todo.size:
            painted_rgb[todo] = inpaint(self.engines.generator, crops_rgb[todo], masks_hw[todo],
                                        None if guides_hw is None else guides_hw[todo])
        return painted_rgb

    def _smooth_painted(self, faces: list[Face], painted_rgb: np.ndarray) -> np.ndarray:
        if self.smoothers is None:
            return painted_rgb
        return np.stack([self.smoothers.smooth_painted(f.track_id, crop_rgb)
                         for f, crop_rgb in zip(faces, painted_rgb, strict=True)])


def build_pipeline(config: PipelineConfig, *, engines: EngineConfig | Nets,
                   tracker: TrackerConfig, log: Callable[[str], None] = print) -> Pipeline:
    """The pipeline every entry point runs: the command line, the API, batch workers, the web
    demo, the benchmarks and the evaluation.

    ``engines`` is an ``EngineConfig`` to load them from (slow: seconds on first use, cached
    after), or engines already loaded, which pipelines may share (the web demo's sessions, a
    benchmark's variants: the nets hold no per-stream state, the tracker does). Raises
    ValueError when the configs disagree on the crop size or the batch.
    """
    from realtime.tracking import FaceTracker

    if isinstance(engines, EngineConfig):
        if engines.crop_size != config.crop_size:
            raise ValueError(f"the pipeline's crop size ({config.crop_size}) must be the "
                             f"engines' ({engines.crop_size})")
        if tracker.max_faces > engines.max_batch:
            raise ValueError(f"--max-faces {tracker.max_faces} is more than the engines' "
                             f"largest batch ({engines.max_batch})")
        from engines import load_engines

        engines = load_engines(engines, log=log)
    return Pipeline(config, engines=engines, tracker=FaceTracker(tracker))


def _lap(timings_ms: dict[str, float], stage: str, t_start: float) -> float:
    now = time.perf_counter()
    timings_ms[stage] = (now - t_start) * 1000.0
    return now
