"""Single pictures: a border is added before the pipeline runs, and cut off after.

The face detector and the face mesh miss or misplace many tight crops (a face and little
else, as in ``../shared/data/masked_real``) that they get right with some background around
them, so a picture is run with and without a border (``COMPARED``), and with wider ones
(``FALLBACKS``) where neither finds a face. The nets always read the replicated border they
were trained on (``training.photo_edge``); on the last tries the tracker reads a plain grey
one instead.

Measured (``Unmasker.process_image``, bundled nets): of the 531 real masked photos, the
earlier order (no border, then replicated ones of 0.25 and 0.5 of the longer side, until a
face was found) found a face in 505 and painted 448; this finds 522 and paints 469, and most
of the photos painted both ways are painted more fully (the 0.25 border places the eyes
better). Of 2,400 unmasked validation photos (1,000 celebahq_192, 400 celeba_crops, 1,000
UTKFace), 18 were painted before and 8 now. Each picture costs two pipeline runs or more.

    result = unmask_picture(pipeline, Frame(0, time.perf_counter(), image_bgr))
    result.out_bgr, result.mask_full_hw   # the picture's size; result.faces in its pixels
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import cv2
import numpy as np

from realtime.types import Face, Frame

if TYPE_CHECKING:
    from realtime.pipeline import FrameResult, Pipeline

COMPARED = ((0.25, False), (0.0, False))
"""(border as a share of the picture's longer side, whether the tracker reads it grey) run on
every picture; the one that finds the most faces is kept, the first on a tie. A tight crop is
found and aligned better with the border; a wide scene can lose a small face to it (2 of 10
frames of the hamilton clip had one face fewer with it, 1 one more)."""

FALLBACKS = ((0.5, False), (0.25, True), (0.5, True))
"""Tried in order, after ``COMPARED`` found no face, until one is found."""

DETECT_GREY = 128
"""The tracker's border colour on its last tries. A replicated border stretches the photo's
edge rows into streaks that the detector takes for part of the scene; on a plain one it finds
some faces it otherwise misses. But the face mesh places the eyes lower on it, so it is the
last resort, and the nets are never shown it: the generator reads a grey chin out of a grey
border."""


def padded_frame(frame: Frame, pad: int, *, grey: bool = False) -> Frame:
    """The picture with a ``pad``-pixel border on each side, replicated; with ``grey``, a grey
    one in ``Frame.detect_bgr`` for the tracker. It shares ``frame``'s timings."""
    if pad == 0:
        return frame
    nets_bgr = cv2.copyMakeBorder(frame.bgr, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    detect_bgr = cv2.copyMakeBorder(frame.bgr, pad, pad, pad, pad, cv2.BORDER_CONSTANT,
                                    value=(DETECT_GREY,) * 3) if grey else None
    return replace(frame, bgr=nets_bgr, detect_bgr=detect_bgr)


def _pads(fractions: tuple[tuple[float, bool], ...], height: int, width: int,
          ) -> list[tuple[int, bool]]:
    return [(round(f * max(height, width)), grey) for f, grey in fractions]


def unmask_picture(pipeline: Pipeline, frame: Frame) -> FrameResult:
    """The pipeline's result on one picture, at the border of ``COMPARED`` that finds the most
    faces or else the first of ``FALLBACKS`` that finds one (or the last), cut back: the
    output and the mask have the picture's size, the faces are in its pixels. Each try starts
    with no history, and none is left behind."""
    height, width = frame.bgr.shape[:2]
    best: tuple[FrameResult, int] | None = None
    for pad, grey in _pads(COMPARED, height, width):
        result = _try(pipeline, frame, pad, grey)
        if best is None or len(result.faces) > len(best[0].faces):
            best = result, pad
    result, pad = best
    if not result.faces:
        for pad, grey in _pads(FALLBACKS, height, width):
            result = _try(pipeline, frame, pad, grey)
            if result.faces:
                break
    pipeline.reset()
    if pad == 0:
        return result
    mask = result.mask_full_hw
    return replace(result, out_bgr=unpad(result.out_bgr, pad, (height, width)),
                   mask_full_hw=None if mask is None else unpad(mask, pad, (height, width)),
                   faces=[shifted(f, -pad) for f in result.faces])


def _try(pipeline: Pipeline, frame: Frame, pad: int, grey: bool) -> FrameResult:
    pipeline.reset()  # unrelated pictures, and each retry, share no history
    return pipeline.process(padded_frame(frame, pad, grey=grey))


def shifted(face: Face, offset: float) -> Face:
    """The face with its box, keypoints and landmarks moved by ``offset`` pixels on both axes."""
    return replace(face, box_xyxy=face.box_xyxy + np.float32(offset),
                   keypoints_xy=face.keypoints_xy + np.float32(offset),
                   landmarks_xy=None if face.landmarks_xy is None
                   else face.landmarks_xy + np.float32(offset))


def unpad(image: np.ndarray, pad: int, size_hw: tuple[int, int]) -> np.ndarray:
    """The picture's own pixels of a padded image (any channels), contiguous."""
    height, width = size_hw
    return np.ascontiguousarray(image[pad:pad + height, pad:pad + width])
