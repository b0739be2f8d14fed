"""Single pictures: a border is added before the pipeline runs, and cut off after.

The face detector and the face mesh miss or misplace many tight crops (a face and little
else, as in ``../shared/data/masked_real``) that they get right with some background around
them, so a picture is run with the borders of ``TRIES`` in turn until a face is found. The
nets always read the replicated border they were trained on (``training.photo_edge``); on the
last tries the tracker reads a plain grey one instead.

Measured (``Unmasker.process_image``, bundled nets): of the 531 real masked photos, no border
first, then replicated ones of 0.25 and 0.5 of the longer side found a face in 505 and
painted 448; ``TRIES`` find 522 and paint 468, and on the photos painted both ways most
paint more of the covering (a replicated 0.25 border places the eyes better than none). Of
2,400 unmasked validation photos (1,000 celebahq_192, 400 celeba_crops, 1,000 UTKFace), 18
were painted before and 6 after.

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

TRIES = ((0.25, False), (0.5, False), (0.0, False), (0.25, True), (0.5, True))
"""(border as a share of the picture's longer side, whether the tracker reads it grey), tried
in order until a face is found."""

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


def tries(height: int, width: int) -> list[tuple[int, bool]]:
    """(border width in pixels, grey for the tracker) tried on a picture of this size."""
    return [(round(f * max(height, width)), grey) for f, grey in TRIES]


def unmask_picture(pipeline: Pipeline, frame: Frame) -> FrameResult:
    """The pipeline's result on one picture, at the first border in ``TRIES`` where a face is
    found (or the last), cut back: the output and the mask have the picture's size, the faces
    are in its pixels. Each try starts with no history, and none is left behind."""
    height, width = frame.bgr.shape[:2]
    for pad, grey in tries(height, width):
        pipeline.reset()  # unrelated pictures, and each retry, share no history
        result = pipeline.process(padded_frame(frame, pad, grey=grey))
        if result.faces:
            break
    pipeline.reset()
    if pad == 0:
        return result
    mask = result.mask_full_hw
    return replace(result, out_bgr=unpad(result.out_bgr, pad, (height, width)),
                   mask_full_hw=None if mask is None else unpad(mask, pad, (height, width)),
                   faces=[shifted(f, -pad) for f in result.faces])


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
