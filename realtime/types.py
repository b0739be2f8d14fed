"""Plain data that travels through the streaming loop.

Every array name carries its layout: ``frame_bgr`` is H x W x 3 uint8 in OpenCV's BGR order,
``crop_rgb`` is S x S x 3 uint8 RGB, ``mask_hw`` is float32 in [0, 1], ``box_xyxy`` is
(x0, y0, x1, y1) in frame pixels, ``landmarks_xy`` is N x 2 float32 in frame pixels.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol, Self, runtime_checkable

import numpy as np

from engines.config import Backend as Backend  # re-exported: defined once, where engines are chosen

Inpainter = Literal["gan", "telea"]


class UnmaskError(Exception):
    """A problem the user can act on; the CLI prints its message on one line and exits 1."""


class SourceError(UnmaskError):
    """An input could not be opened or decoded (missing file, not a video, no camera...)."""


class SinkError(UnmaskError):
    """An output could not be written (unwritable folder, encoder failure...)."""


class ClosedError(UnmaskError):
    """Something was used after ``close()`` (an ``Unmasker`` after its ``with`` block)."""


class Closing:
    """Context-manager support for anything with a ``close()`` (sources, MediaPipe graphs)."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class SinkContext:
    """Closes on success and aborts on an exception, for every sink; a sink that writes no
    file, times no encoder or has no viewer to stop it keeps the defaults of ``Sink``'s
    attributes."""

    quit_requested: bool = False
    encode_ms: Sequence[float] = ()
    written: Sequence[Path] = ()

    def close(self) -> None:
        raise NotImplementedError

    def abort(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


@runtime_checkable
class Sink(Protocol):
    """Anything the loop hands processed frames to: files, windows, virtual cameras, progress
    counters (``SinkContext`` gives the attributes' defaults)."""

    quit_requested: bool
    """True once its viewer asked to stop (a window's q or Esc, a batch job's stop): the loop
    ends there and finishes what it wrote."""
    encode_ms: Sequence[float]
    """Milliseconds each frame took to encode and write (the summary's ``encode`` stage)."""
    written: Sequence[Path]
    """The files it finished, where it names them itself (a video, or each of its segments);
    empty for pictures and viewers, and the run then reports the output it was asked for."""

    def write(self, frame: Frame, out_bgr: np.ndarray, mask_full_hw: np.ndarray | None
              ) -> None: ...

    def close(self) -> None: ...

    def abort(self) -> None: ...

    def __enter__(self) -> Sink: ...

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> None: ...


@runtime_checkable
class Source(Protocol):
    """Anything the loop reads frames from: files, cameras, streams, pictures."""

    info: StreamInfo
    dropped: int
    """Frames a live source threw away while the loop was busy (files and pictures: 0)."""
    failed: int
    """Pictures of a folder skipped as unreadable (everything else: 0)."""

    def __iter__(self) -> Iterator[Frame]: ...

    def close(self) -> None: ...

    def __enter__(self) -> Source: ...

    def __exit__(self, *exc_info: object) -> None: ...


@dataclass
class Frame:
    """One picture on its way through the loop."""

    index: int
    """0-based position in the source (for images: position in the sorted folder)."""
    t_capture: float
    """``time.perf_counter()`` when the frame was read or captured, for latency."""
    bgr: np.ndarray
    """H x W x 3 uint8, BGR."""
    name: str | None = None
    """For image sources: the file name (``photo.jpg``), so outputs keep it."""
    timings_ms: dict[str, float] = field(default_factory=dict)
    """Stage name -> milliseconds spent on this frame (decode, detect, align, ...)."""
    detect_bgr: np.ndarray | None = None
    """What the face tracker reads instead of ``bgr`` (same size), or None: ``bgr``. A
    padded picture gives it a plain border, while the nets see the replicated border they
    were trained on (``realtime.picture``)."""
    t_media_s: float | None = None
    """Seconds since the first frame on the source's own clock (a video file's timestamps), so
    that a written copy of a variable-frame-rate file keeps its timing; None where there is no
    such clock (cameras and streams are timed by capture, images have no time)."""


@dataclass(frozen=True)
class StreamInfo:
    """What a source knows about itself, so a sink can match it."""

    size_wh: tuple[int, int]
    """Frame width and height in pixels."""
    fps: float
    """Nominal frame rate (30.0 where the source does not say); for a variable-frame-rate file,
    the rate on whose ticks its frames fall (FFmpeg's guess, the rate its own tools write)."""
    live: bool
    """True for cameras and network streams: stale frames are dropped to bound latency."""
    frame_count: int | None = None
    """Number of frames when known (files, image folders), for progress bars."""
    audio_path: str | None = None
    """A file whose first audio stream a video sink copies (None: no audio)."""
    kind: Literal["video", "images", "camera", "stream"] = "video"
    """Which kind of source produced the frames."""


@dataclass
class Face:
    """One tracked face in one frame, as the tracker returns it."""

    track_id: int
    """Stable across frames while the same face is followed; never reused for a new face."""
    box_xyxy: np.ndarray
    """float32 (4,): the detector's box in frame pixels (may reach past the frame edges), or
    one derived from the landmarks on frames where the face was followed without the
    detector."""
    keypoints_xy: np.ndarray
    """float32 (6, 2): detector keypoints (or the same points taken from the landmarks) in
    frame pixels, in MediaPipe order: right eye, left eye, nose tip, mouth centre, right ear
    tragion, left ear tragion (the subject's right eye is on the image's left in a frontal
    view)."""
    landmarks_xy: np.ndarray | None
    """float32 (468, 2) face-mesh landmarks in frame pixels; None when the mesh failed or
    disagreed with the detector on this face."""
    score: float
    """Detector confidence in [0, 1] from the last frame the face was detected in."""
    age: int = 0
    """Frames since last found: 0 = detected or followed in this frame, > 0 = held after a
    miss, with its last geometry."""
