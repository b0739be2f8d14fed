"""The clips the benchmark runs on, made from the real clips in ``../shared/data/videos``, and
the I/O ceiling of a clip (what decoding alone, and decoding plus encoding, can sustain).

    frames_bgr = read_frames(Path("masked_webcam_256.mp4"))
    mosaic_clip(frames_bgr, Path("two_faces.mp4"), faces=2, size_wh=(640, 360), frames=150)
    io_ceiling(Path("two_faces.mp4"), scratch_dir)   # {"decode_fps": ..., "transcode_fps": ...}

A mosaic puts 1, 2 or 4 copies of a one-person clip side by side (each starting at a different
point of the clip), so the number of faces per frame is exact; scaling the mosaic gives the
same content at 480p, 720p or 1080p.
"""

from __future__ import annotations

import time
from itertools import islice
from pathlib import Path

import av
import cv2
import numpy as np

RESOLUTIONS = {"360p": (640, 360), "480p": (854, 480), "720p": (1280, 720),
               "1080p": (1920, 1080)}
"""Frame sizes of the resolution sweep (16:9; 854 keeps 480p even for yuv420p)."""
GRIDS = {1: (1, 1), 2: (2, 1), 4: (2, 2)}
"""Faces per frame -> (columns, rows) of the mosaic."""
BACKGROUND_BGR = (64, 64, 64)


def read_frames(path: Path, limit: int | None = None) -> list[np.ndarray]:
    """The clip's pictures as BGR arrays (at most ``limit``)."""
    frames: list[np.ndarray] = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="bgr24"))
            if limit is not None and len(frames) >= limit:
                break
    if not frames:
        raise ValueError(f"{path} has no video frames")
    return frames


def write_clip(frames_bgr: list[np.ndarray], path: Path, fps: float = 30.0) -> Path:
    """H.264 (crf 18, close to lossless for these sizes) at ``fps``; returns ``path``."""
    from realtime.video_writer import write_clip as write

    return write(path, frames_bgr, fps=fps)


def ping_pong(n_source: int, start: int, count: int) -> list[int]:
    """``count`` indices into a clip of ``n_source`` frames that play it forwards then
    backwards from ``start``, so a short clip loops without a jump."""
    if n_source == 1:
        return [0] * count
    period = 2 * (n_source - 1)
    out = []
    for i in range(start, start + count):
        k = i % period
        out.append(k if k < n_source else period - k)
    return out


def mosaic(tiles_bgr: list[np.ndarray], size_wh: tuple[int, int]) -> np.ndarray:
    """Square tiles laid out in the grid for their number, centred on a grey frame."""
    width, height = size_wh
    cols, rows = GRIDS[len(tiles_bgr)]
    side = min(width // cols, height // rows)
    canvas = np.empty((height, width, 3), np.uint8)
    canvas[:] = BACKGROUND_BGR
    x0, y0 = (width - cols * side) // 2, (height - rows * side) // 2
    for k, tile_bgr in enumerate(tiles_bgr):
        r, c = divmod(k, cols)
        tile = cv2.resize(tile_bgr, (side, side), interpolation=cv2.INTER_AREA
                          if tile_bgr.shape[0] > side else cv2.INTER_LINEAR)
        canvas[y0 + r * side:y0 + (r + 1) * side, x0 + c * side:x0 + (c + 1) * side] = tile
    return canvas


def mosaic_clip(source_bgr: list[np.ndarray], path: Path, *, faces: int,
                size_wh: tuple[int, int], frames: int, fps: float = 30.0) -> Path:
    """A clip of ``frames`` mosaics with ``faces`` copies of the (square) source clip."""
    if faces not in GRIDS:
        raise ValueError(f"faces per frame must be one of {sorted(GRIDS)}, got {faces}")
    n = len(source_bgr)
    starts = [k * n // faces for k in range(faces)]
    tracks = [ping_pong(n, s, frames) for s in starts]
    pictures = [mosaic([source_bgr[t[i]] for t in tracks], size_wh) for i in range(frames)]
    return write_clip(pictures, path, fps)


def io_ceiling(path: Path, scratch_dir: Path, frames: int | None = None) -> dict[str, float]:
    """FPS of the product's own reader alone, and of its reader feeding its H.264 writer
    (no processing): the most any pipeline on this clip could deliver."""
    from realtime.sinks import VideoFileSink
    from realtime.sources import VideoFileSource

    start = time.perf_counter()
    with VideoFileSource(path) as source:
        decoded = sum(1 for _ in islice(source, frames))
    decode_s = time.perf_counter() - start

    out = scratch_dir / f"transcode_{path.stem}.mp4"
    start = time.perf_counter()
    with VideoFileSource(path) as source:
        sink = VideoFileSink(out, source.info)
        try:
            transcoded = 0
            for frame in islice(source, frames):
                sink.write(frame, frame.bgr, None)
                transcoded += 1
        except BaseException:
            sink.abort()
            raise
        sink.close()
    transcode_s = time.perf_counter() - start
    out.unlink(missing_ok=True)
    return {"frames": decoded, "decode_fps": round(decoded / decode_s, 1),
            "transcode_fps": round(transcoded / transcode_s, 1)}

