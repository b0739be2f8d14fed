"""Photos that end at the face: the crop beyond a cut line repeats the line's pixels.

A tight photo (a selfie cut at the chin, a face at a frame's bottom edge, the real masked
photos of ``../shared/data/masked_real``) ends inside the canonical crop, and the pipeline's
replicated border (``realtime.face.align``) stretches the photo's last row into vertical
streaks. Where that row crosses a covering, the streaks are the covering's colour: the
bundled segmenter, which never saw a cut photo, marked nothing at all on 52 of the 60 real
masked photos it missed, most of them cut at the mouth or chin. ``cut_photo`` makes such
samples from whole ones:

    images = cut_photo([masked_rgb, clean_rgb, mask_hw], valid_hw, landmarks_xy, rng)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from realtime.face import mesh

SIDE_SHARE = 0.25
"""Share of cuts at the left or right of the face instead of below the nose."""


def cut_line(landmarks_xy: np.ndarray, size: int, rng: np.random.Generator,
             ) -> tuple[int, int, bool]:
    """(axis, index, keep_low): the crop ends after row/column ``index`` (axis 0: rows, 1:
    columns); ``keep_low`` keeps indices <= index, otherwise >= index. Bottom cuts fall
    between a third of the way from the nose tip to the chin and a fifth of that distance
    below the chin; side cuts between the face outline at eye level and a fifth of the face
    inwards."""
    nose_y, chin_y = float(landmarks_xy[mesh.NOSE_TIP, 1]), float(landmarks_xy[mesh.CHIN, 1])
    drop = max(chin_y - nose_y, 1.0)
    if rng.random() >= SIDE_SHARE:
        y = rng.uniform(nose_y + drop / 3, chin_y + drop / 5)
        return 0, int(np.clip(round(y), 1, size - 1)), True
    left_x, right_x = (float(x) for x in landmarks_xy[list(mesh.OUTLINE_AT_EYES), 0])
    width = max(abs(right_x - left_x), 1.0)
    inward = rng.uniform(0, width / 5)
    if rng.random() < 0.5:
        x, keep_low = min(left_x, right_x) + inward, False
    else:
        x, keep_low = max(left_x, right_x) - inward, True
    return 1, int(np.clip(round(x), 1, size - 2)), keep_low


def _beyond(index: int, keep_low: bool) -> slice:
    """The lines past the cut, along its axis."""
    return slice(index + 1, None) if keep_low else slice(0, index)


def _replicate(image: np.ndarray, axis: int, index: int, keep_low: bool) -> np.ndarray:
    out = image.copy()
    lines = np.moveaxis(out, axis, 0)  # a view: rows or columns first
    lines[_beyond(index, keep_low)] = lines[index]
    return out


def cut_photo(images: Sequence[np.ndarray], valid_hw: np.ndarray, landmarks_xy: np.ndarray,
              rng: np.random.Generator) -> tuple[list[np.ndarray], np.ndarray]:
    """(each image (S, S[, C]) with the crop beyond one cut line replaced by the line's
    pixels, the validity with 0 beyond it). Labels go through the same replication: the
    streaks of a covering are marked as covering, as they look (the pipeline never writes
    them back: they lie outside the photo)."""
    axis, index, keep_low = cut_line(landmarks_xy, valid_hw.shape[0], rng)
    valid = valid_hw.copy()
    np.moveaxis(valid, axis, 0)[_beyond(index, keep_low)] = 0
    return [_replicate(image, axis, index, keep_low) for image in images], valid
