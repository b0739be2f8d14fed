"""Pictures that carry their own number, readable after lossy encoding and processing.

    draw_number(image_bgr, 41)       # a row of black and white blocks along the top
    read_number(image_bgr) == 41

Sixteen blocks of 20 x 16 px, so the picture must be at least 320 px wide; the pipeline
paints only faces, so a face kept below the top 16 rows leaves the number intact.
"""

from __future__ import annotations

import numpy as np

BITS, BLOCK_PX, ROWS = 16, 20, 16


def draw_number(image_bgr: np.ndarray, number: int) -> None:
    """Draws ``number`` (0 to 65535) along the top of the picture, in place."""
    for bit in range(BITS):
        image_bgr[:ROWS, bit * BLOCK_PX:(bit + 1) * BLOCK_PX] = 255 if number >> bit & 1 else 0


def read_number(image_bgr: np.ndarray) -> int:
    """The number ``draw_number`` drew, from the middle of each block."""
    cells = [image_bgr[4:ROWS - 4, bit * BLOCK_PX + 6:(bit + 1) * BLOCK_PX - 6]
             for bit in range(BITS)]
    return sum(1 << bit for bit, cell in enumerate(cells) if cell.mean() > 128)
