"""Small real image files of the kinds users have that are not plain 8-bit RGB.

    from awkward_images import write_awkward_images
    folder = write_awkward_images(tmp_path / "in")
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

EXIF_ORIENTATION = 0x0112


def half_red_rgb(size_wh: tuple[int, int] = (40, 30)) -> np.ndarray:
    """Red top half, grey bottom half, so a rotation can be read back from the pixels."""
    rgb = np.full((size_wh[1], size_wh[0], 3), 90, np.uint8)
    rgb[: size_wh[1] // 2] = (255, 0, 0)
    return rgb


def write_awkward_images(folder: Path) -> Path:
    """Tiny, 16-bit, grey, palette, CMYK and EXIF-rotated pictures, each a few hundred bytes."""
    folder.mkdir(parents=True, exist_ok=True)
    rgb = Image.fromarray(half_red_rgb())
    for side in (1, 8, 32):
        Image.fromarray(np.full((side, side, 3), 120, np.uint8)).save(folder / f"tiny{side}.png")
    ramp = (np.arange(30 * 40).reshape(30, 40) * 50).astype(np.uint16)
    Image.fromarray(ramp).save(folder / "deep16.png")  # Pillow mode I;16
    rgb.convert("L").save(folder / "grey.png")
    rgb.convert("P").save(folder / "palette.png")
    rgb.convert("CMYK").save(folder / "cmyk.jpg")
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = 6  # shown turned 90 degrees clockwise, as phones store portraits
    rgb.save(folder / "rotated.jpg", exif=exif.tobytes())
    return folder
