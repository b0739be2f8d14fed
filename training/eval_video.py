"""The covering rule on real video, both ways: unmasked faces that get painted, and a masked
face that does not.

    rows = video_section(Path("../shared/data/videos"), segmenter=None, generator=None)
    lines = video_markdown(rows)

- ``hamilton_clip_640x360.mp4`` (nobody wears a mask), as it is (faces 56-135 px across) and
  scaled to half (28-67 px, surveillance size): the share of frames where any face was painted
  (target <= 2%) and of faces painted.
- ``masked_webcam_256.mp4`` (one person in a surgical mask in every frame): the share of
  frames where she was painted (the other way round: 100% is right).
"""

from __future__ import annotations

from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np

PAINTED = 0.5
"""Alpha above which a pixel counts as painted."""
UNMASKED_CLIP, MASKED_CLIP = "hamilton_clip_640x360.mp4", "masked_webcam_256.mp4"


def unmasked_clip_marks(pipeline: Any, clip: Path, *, scale: float = 1.0,
                        frames: int | None = None) -> dict[str, Any]:
    """How often ``pipeline`` (built with ``want_mask``) paints faces in a clip where nobody
    wears a covering: the share of frames where any face was painted, of faces painted, and
    the mean painted share of the frame. ``scale`` resizes the frames first."""
    import cv2

    from realtime.sources import VideoFileSource
    from realtime.types import Frame

    processed = faces = painted_faces = painted_frames = 0
    shares = []
    with VideoFileSource(clip) as source:
        for frame in islice(source, frames):
            if scale != 1.0:
                bgr = cv2.resize(frame.bgr, None, fx=scale, fy=scale,
                                 interpolation=cv2.INTER_AREA)
                frame = Frame(frame.index, frame.t_capture, bgr)
            result = pipeline.process(frame)
            processed += 1
            faces += len(result.faces)
            painted_faces += sum(result.covered)
            painted_frames += any(result.covered)
            if result.mask_full_hw is not None:
                shares.append(float((result.mask_full_hw > PAINTED).mean()))
    if processed == 0:
        raise ValueError(f"{clip} has no frames")
    return {"frames": processed, "scale": scale, "faces_per_frame": round(faces / processed, 2),
            "frames_painted": round(painted_frames / processed, 4),
            "faces_painted": round(painted_faces / max(faces, 1), 4),
            "painted_share_of_frame": round(float(np.mean(shares)), 5) if shares else None}


def video_section(videos: Path, *, segmenter: Path | None, generator: Path | None,
                  cache_dir: Path | None = None, frames: int | None = None) -> list[dict]:
    """One row per clip run: the unmasked clip at scales 1 and 0.5, then the masked clip."""
    from engines import EngineConfig, load_engines
    from realtime.pipeline import PipelineConfig, build_pipeline
    from realtime.tracking import TrackerConfig

    for name in (UNMASKED_CLIP, MASKED_CLIP):
        if not (videos / name).is_file():
            raise FileNotFoundError(f"clip not found: {videos / name}")
    engines = load_engines(EngineConfig(backend="onnx", segmenter_checkpoint=segmenter,
                                        generator_checkpoint=generator, cache_dir=cache_dir),
                           log=lambda _: None)
    rows = []
    for clip, scale, masked in ((UNMASKED_CLIP, 1.0, False), (UNMASKED_CLIP, 0.5, False),
                                (MASKED_CLIP, 1.0, True)):
        # Loaded once, shared: each clip gets a fresh tracker and fresh smoothing only.
        with build_pipeline(PipelineConfig(want_mask=True), engines=engines,
                            tracker=TrackerConfig(max_faces=4)) as pipeline:
            row = unmasked_clip_marks(pipeline, videos / clip, scale=scale, frames=frames)
        rows.append({"clip": clip, "masked": masked, **row})
    return rows


def video_markdown(rows: list[dict]) -> list[str]:
    lines = ["## The covering rule on real video", "",
             "Frames painted: share of frames where any face was painted. On the unmasked "
             "clip that is the false-paint rate (target <= 2%); on the masked clip, where one "
             "masked face is in every frame, it should be 100%.", "",
             "| clip | scale | masks worn | frames | faces per frame | frames painted | "
             "faces painted |", "|---|---:|---|---:|---:|---:|---:|"]
    for r in rows:
        ok = (r["frames_painted"] >= 0.95) if r["masked"] else (r["frames_painted"] <= 0.02)
        lines.append(f"| {r['clip']} | {r['scale']:g} | {'yes' if r['masked'] else 'no'} | "
                     f"{r['frames']} | {r['faces_per_frame']} | "
                     f"{r['frames_painted']:.2%} {'✓' if ok else '✗'} | "
                     f"{r['faces_painted']:.2%} |")
    return [*lines, ""]
