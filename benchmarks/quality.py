"""Quality figures: the training evaluation on the validation split, and temporal stability
of the output on a real masked clip.

    temporal_stability(pipeline, Path("masked_webcam_256.mp4"))
    # {"flicker": 1.07, "coverage": 0.99, ...}

Flicker is the mean absolute frame-to-frame change of the output inside the painted pixels
(those painted in either of the two frames), divided by the same measure on the input over
the same pixels: 1 means the painted face moves as much as the real masked face did, above 1
means it shimmers or pops on and off. Coverage is the share of frames with painted pixels.
"""

from __future__ import annotations

from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np

from training.eval_video import unmasked_clip_marks

__all__ = ["evaluation", "temporal_stability", "unmasked_clip_marks"]

PAINTED = 0.5
"""Alpha above which a pixel counts as painted."""


def temporal_stability(pipeline: Any, clip: Path, frames: int | None = None) -> dict[str, Any]:
    """Flicker and coverage of ``pipeline`` (built with ``want_mask``) over ``clip``."""
    from realtime.sources import VideoFileSource

    change_out = change_in = 0.0
    painted_frames = processed = 0
    painted_share = []
    previous = None
    with VideoFileSource(clip) as source:
        for frame in islice(source, frames):
            result = pipeline.process(frame)
            painted_hw = (result.mask_full_hw > PAINTED if result.mask_full_hw is not None
                          else np.zeros(frame.bgr.shape[:2], bool))
            processed += 1
            painted_frames += bool(painted_hw.any())
            painted_share.append(float(painted_hw.mean()))
            if previous is not None:
                in_prev, out_prev, painted_prev = previous
                region = painted_hw | painted_prev
                change_out += _abs_change(result.out_bgr, out_prev, region)
                change_in += _abs_change(frame.bgr, in_prev, region)
            previous = (frame.bgr, result.out_bgr, painted_hw)
    if processed == 0:
        raise ValueError(f"{clip} has no frames")
    return {"frames": processed,
            "flicker": round(change_out / change_in, 3) if change_in > 0 else None,
            "coverage": round(painted_frames / processed, 4),
            "painted_share_of_frame": round(float(np.mean(painted_share)), 4)}


def _abs_change(a_bgr: np.ndarray, b_bgr: np.ndarray, region_hw: np.ndarray) -> float:
    if not region_hw.any():
        return 0.0
    diff = np.abs(a_bgr[region_hw].astype(np.int16) - b_bgr[region_hw].astype(np.int16))
    return float(diff.sum())


def evaluation(data_dir: Path, out_dir: Path, faces: int) -> tuple[dict, str]:
    """``realtime-unmask evaluate`` on the first ``faces`` validation faces: its JSON result
    and its markdown tables (PSNR/SSIM/MSE and IoU by occlusion band)."""
    from training.evaluate import EvalConfig, run
    from training.faces import faces_cache_dir

    config = EvalConfig(out=out_dir, data=(data_dir / "faces",),
                        masks=data_dir / "mask_templates" / "masktheface" / "masks",
                        cache=faces_cache_dir(), limit=faces)
    result = run(config)
    return result, (out_dir / "eval.md").read_text()
