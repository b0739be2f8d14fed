"""The web page's one-click examples, made from the built-in sample (nothing is downloaded).

    examples = write_examples(Path(tempfile.mkdtemp()))
    examples.photos    # [masked photo, small close-up of its face] for the Image tab
    examples.clip      # a few seconds of the sample under a moving camera, for the Video tab

Everything comes from ``realtime.demo_clip``: scikit-image's public-domain astronaut with a
surgical mask drawn on from her face mesh. The page writes them once, into its temporary root,
when it is built, so someone without a masked photo at hand has something to click.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from realtime.demo_clip import masked_sample, render_demo_clip
from realtime.types import SinkError

CLIP_SECONDS = 3.0
"""Length of the Video tab's sample: long enough to watch the progress, short to process."""
CLOSE_UP_PX = 160
"""Side of the close-up example: a small upload, which the page must still show large."""


@dataclass(frozen=True)
class PageExamples:
    """Paths of the files the examples offer."""

    photos: list[Path]
    """The Image tab's pictures: the 512 px sample photo, then a small close-up of its face."""
    clip: Path
    """The Video tab's mp4 (``CLIP_SECONDS`` long, 640 x 360, 25 fps)."""


def write_examples(folder: Path) -> PageExamples:
    """Writes the sample photo, a small close-up of its face and the sample clip into
    ``folder`` (created if needed)."""
    folder.mkdir(parents=True, exist_ok=True)
    photo_bgr, center_xy, side_px = masked_sample()
    photo = folder / "astronaut_masked.png"
    close_up = folder / "astronaut_close_up.png"
    _write_png(photo, photo_bgr)
    _write_png(close_up, _close_up(photo_bgr, center_xy, side_px))
    clip = render_demo_clip(folder / "astronaut_moving_camera.mp4", seconds=CLIP_SECONDS)
    return PageExamples(photos=[photo, close_up], clip=clip)


def _close_up(photo_bgr: np.ndarray, center_xy: np.ndarray, side_px: float) -> np.ndarray:
    """A tight square around the face (forehead to chin, as phone crops are), scaled down."""
    side = round(1.3 * side_px)
    left = max(0, round(center_xy[0] - side / 2))
    top = max(0, round(center_xy[1] - 0.55 * side))  # a little more above: the hair
    crop_bgr = photo_bgr[top:top + side, left:left + side]
    return cv2.resize(crop_bgr, (CLOSE_UP_PX, CLOSE_UP_PX), interpolation=cv2.INTER_AREA)


def _write_png(path: Path, image_bgr: np.ndarray) -> None:
    if not cv2.imwrite(str(path), image_bgr):
        raise SinkError(f"could not write the example picture {path}")
