"""Band masks for training: the true covering, misplaced as a segmenter would, as the
generator's three-level mask channel (``engines.base.generator_mask``).

    channel = band_masks(batch["mask"], np.random.default_rng(step))
    fake = generate(gen, batch["masked"], channel)   # the ring shows what lies there

The pipeline grows the segmented covering by 2 px and shows the generator a ring along its
edge (``realtime.pipeline``). A segmenter's edge is off by a pixel or two either way: short of
the covering's rim (the rim then lies on the ring and must be painted) or over skin (which
must be kept). Trained on such misplaced masks, the generator learns both.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from engines.base import generator_mask
from realtime.edges import disc
from training.eval_metrics import generator_input

EXACT_P = 0.15
"""Share of samples given the true mask alone ({0, 1}, no ring), as when painting with a
known mask."""
EDGE_SHIFTS_PX = (-2, -1, -1, 0, 0, 1, 1, 2)
"""How far the simulated segmentation's edge lies outside (+) or inside (-) the covering's."""
SHIFT_P = 0.3
"""Share of simulated segmentations also moved by a pixel (short on one side, over on the
other)."""
GROWS_PX = (1, 2, 2, 2, 3)
"""The grow before painting (the pipeline's default is 2 px)."""
GATE_GROWS_PX = (1, 2, 2, 3, 3, 4)
"""The grows a gated generator trains on: keeping skin costs it little, so a wider ring can
reach a real mask's light hem, which is often wider than 2 px."""


def misplaced(mask_hw: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A {0, 1} segmentation of ``mask_hw`` whose edge is off as a segmenter's is."""
    edge = int(rng.choice(EDGE_SHIFTS_PX))
    m = mask_hw.astype(np.float32)
    if edge > 0:
        m = cv2.dilate(m, disc(edge))
    elif edge < 0:
        m = cv2.erode(m, disc(-edge))
    if rng.random() < SHIFT_P:
        dx, dy = (int(v) for v in rng.integers(-1, 2, size=2))
        m = cv2.warpAffine(m, np.float32([[1, 0, dx], [0, 1, dy]]), m.shape[::-1],
                           flags=cv2.INTER_NEAREST)
    return m


def band_masks(mask: torch.Tensor, rng: np.random.Generator,
               grows_px: tuple[int, ...] = GROWS_PX) -> torch.Tensor:
    """(N, 1, S, S) true {0, 1} coverings -> the generator's mask channel for each: the true
    mask (``EXACT_P``), else ``generator_mask`` of a misplaced segmentation grown as the
    pipeline grows it (by one of ``grows_px``)."""
    out = []
    for m in mask[:, 0].numpy():
        if rng.random() < EXACT_P or not m.any():
            out.append(m.astype(np.float32))
            continue
        seg = misplaced(m, rng)
        paint = cv2.dilate(seg, disc(int(rng.choice(grows_px))))
        out.append(generator_mask(seg[None], paint[None])[0])
    return torch.from_numpy(np.stack(out))[:, None]


def generator_inputs(batch: dict, band: bool, rng: np.random.Generator, *,
                     gate: bool = False, grown: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(mask channel, RGB) a generator trains on: the true mask and the clean crop, or with
    ``band`` a misplaced mask with its ring and the masked crop (a missed rim shows there);
    ``gate``: on the wider grows of ``GATE_GROWS_PX``. ``grown`` (plain generators): the
    painted region of those misplaced, grown masks as a {0, 1} channel, with the masked crop,
    which is what the pipeline feeds a plain generator."""
    if grown and not band:
        return (band_masks(batch["mask"], rng) > 0).to(batch["mask"].dtype), batch["masked"]
    if not band:
        return batch["mask"], batch["clean"]
    return (band_masks(batch["mask"], rng, GATE_GROWS_PX if gate else GROWS_PX),
            batch["masked"])


def gate_loss(logits: torch.Tensor, channel: torch.Tensor, mask: torch.Tensor,
              valid: torch.Tensor) -> torch.Tensor:
    """BCE of a gated generator's ring logits against the truth: 1 where the pixel is the
    covering (paint it), 0 where it is skin (keep it), over the ring's valid pixels. Without
    it the gate hardly learns: where the paint already resembles the skin its gradient is
    small, and it drifts towards painting."""
    ring = ((channel > 0) & (channel < 1)).to(logits.dtype) * valid
    bce = torch.nn.functional.binary_cross_entropy_with_logits(
        logits, (mask > 0.5).to(logits.dtype), reduction="none")
    return (bce * ring).sum() / ring.sum().clamp(min=1)  # no ring: 0


def gated_paint(gen: torch.nn.Module, source: torch.Tensor, channel: torch.Tensor,
                mask: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A gated generator's output on ``source`` with ``channel`` and its ``gate_loss``."""
    out, logits = gen.forward_gated(generator_input(source, channel))
    return out, gate_loss(logits, channel, mask, valid)
