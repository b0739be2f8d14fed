"""Where processed frames go: a video file, image files, or a window.

    from realtime.sinks import open_sink

    with open_source("clip.mp4") as source, open_sink("out.mp4", source.info,
                                                      save_masks=False) as sink:
        for frame in source:
            sink.write(frame, out_bgr, mask_full_hw)   # closes on success, aborts on error

No output is ever half-written at the asked name: pictures are written under a hidden
``.NAME.partial.EXT`` name and renamed into place when complete; a video is recorded as
``NAME.recording.EXT``, a file that stays playable if the run is killed, and finished into
place on a clean stop (``realtime.video_writer``, ``realtime.recording``); an error removes
what is unfinished. Every output says in its metadata that its faces were synthesized
(``PROVENANCE``).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np

# Re-exported: callers import every sink from here.
from realtime.image_io import IMAGE_EXTENSIONS, PROVENANCE, ImageSink, SingleImageSink
from realtime.present import draw_status
from realtime.types import Frame, Sink, SinkContext, SinkError, StreamInfo
from realtime.video_writer import VIDEO_EXTENSIONS, VideoFileSink

__all__ = [
    "PROVENANCE",
    "VIDEO_EXTENSIONS",
    "DisplaySink",
    "ImageSink",
    "SingleImageSink",
    "Sink",
    "VideoFileSink",
    "open_sink",
]

log = logging.getLogger(__name__)

_NO_DISPLAY = "cannot open a window (no display); use --no-display"


class DisplaySink(SinkContext):
    """An OpenCV window with the frame rate and capture-to-display latency; q or Esc quits."""

    def __init__(self, title: str = "realtime-unmask"):
        self.title = title
        self.quit_requested = False
        self._fps_ema: float | None = None
        self._last_s: float | None = None
        # Without a display OpenCV's Qt backend aborts the whole process instead of raising,
        # so the environment has to be checked before any window is touched.
        has_display = os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
        if sys.platform.startswith("linux") and not has_display:
            raise SinkError(_NO_DISPLAY)
        try:
            cv2.namedWindow(title, cv2.WINDOW_NORMAL)
        except cv2.error as exc:  # an OpenCV built without GUI support
            raise SinkError(_NO_DISPLAY) from exc

    def write(self, frame: Frame, out_bgr: np.ndarray, mask_full_hw: np.ndarray | None) -> None:
        now_s = time.perf_counter()
        if self._last_s is not None and now_s > self._last_s:
            fps = 1.0 / (now_s - self._last_s)
            self._fps_ema = fps if self._fps_ema is None else 0.9 * self._fps_ema + 0.1 * fps
        self._last_s = now_s
        latency_ms = (now_s - frame.t_capture) * 1000.0
        # The status line is for the window only, not for the outputs: drawn on a copy.
        shown_bgr = draw_status(out_bgr.copy(), f"{self._fps_ema or 0.0:.1f} fps  "
                                                f"{latency_ms:.0f} ms latency")
        cv2.imshow(self.title, shown_bgr)
        if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
            self.quit_requested = True

    def close(self) -> None:
        try:
            cv2.destroyWindow(self.title)
        except cv2.error as exc:
            log.warning("closing window %r: %s", self.title, exc)

    def abort(self) -> None:
        self.close()


def open_sink(output: str | None, info: StreamInfo, *, save_masks: bool,
              segment_seconds: float | None = None) -> Sink | None:
    """Picks the sink that ``output`` names: a video file, an image file, or a folder.

    ``segment_seconds`` cuts a video output into numbered files (``VideoFileSink``)."""
    if output is None:
        return None
    path = Path(output)
    suffix = path.suffix.lower()
    if segment_seconds is not None and suffix not in VIDEO_EXTENSIONS:
        exts = ", ".join(sorted(e[1:] for e in VIDEO_EXTENSIONS))
        raise SinkError(f"--segment-seconds needs a video --output ({exts}), got {output}")
    if path.is_dir() or not suffix:
        return ImageSink(path, save_masks=save_masks)
    if suffix in VIDEO_EXTENSIONS:
        if info.kind == "images":
            raise SinkError(f"cannot turn images into the video {output}; give a folder instead")
        if save_masks:
            raise SinkError(f"masks are saved as images; give a folder, not the video {output}")
        return VideoFileSink(path, info, segment_seconds=segment_seconds)
    if suffix in IMAGE_EXTENSIONS:
        if info.kind != "images":
            raise SinkError(f"cannot write a {info.kind} into the single image {output}")
        if (info.frame_count or 1) > 1:
            raise SinkError(f"{info.frame_count} images cannot go into one file {output}")
        return SingleImageSink(path, save_masks=save_masks)
    raise SinkError(f"output {output} is neither a video, an image nor a folder (extension?)")
