"""Image files: awkward formats read as upright 8-bit BGR, broken files in a folder are skipped.

pytest tests/realtime/test_image_io.py
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from awkward_images import write_awkward_images

from realtime.image_io import ImageSource, read_image
from realtime.sources import open_source
from realtime.types import SourceError


@pytest.fixture(scope="module")
def awkward(tmp_path_factory) -> Path:
    return write_awkward_images(tmp_path_factory.mktemp("awkward"))


@pytest.mark.parametrize("name,shape_hw", [
    ("tiny1.png", (1, 1)), ("tiny8.png", (8, 8)), ("tiny32.png", (32, 32)),
    ("deep16.png", (30, 40)), ("grey.png", (30, 40)), ("palette.png", (30, 40)),
    ("cmyk.jpg", (30, 40)), ("rotated.jpg", (40, 30)),
])
def test_awkward_images_read_as_8_bit_bgr(awkward: Path, name: str, shape_hw: tuple[int, int]):
    image_bgr = read_image(awkward / name)
    assert image_bgr.shape == (*shape_hw, 3) and image_bgr.dtype == np.uint8
    assert image_bgr.flags["C_CONTIGUOUS"]


@pytest.mark.parametrize("name", ["palette.png", "cmyk.jpg"])
def test_colour_survives_palette_and_cmyk(awkward: Path, name: str):
    red_bgr = read_image(awkward / name)[5, 20].astype(int)
    assert red_bgr[2] > 200 and red_bgr[0] < 60 and red_bgr[1] < 60


def test_exif_orientation_is_applied_once(awkward: Path):
    image_bgr = read_image(awkward / "rotated.jpg")  # stored 40x30 with orientation 6
    right, left = image_bgr[:, -5].mean(axis=0), image_bgr[:, 5].mean(axis=0)
    assert right[2] > 200 and right[0] < 60  # the red top half is shown on the right
    assert abs(left - 90).max() < 15


def test_broken_images_in_a_folder_are_skipped_and_counted(tmp_path: Path, awkward: Path, caplog):
    (tmp_path / "0_broken.jpg").write_bytes(b"\xff\xd8 definitely not a jpeg")
    (tmp_path / "a.png").write_bytes((awkward / "tiny8.png").read_bytes())
    (tmp_path / "b.jpg").write_bytes(b"")
    (tmp_path / "c.png").write_bytes((awkward / "grey.png").read_bytes())
    with caplog.at_level(logging.WARNING), open_source(str(tmp_path)) as source:
        assert source.info.size_wh == (8, 8)  # from the first image that can be read
        frames = list(source)
    assert [(f.index, f.name) for f in frames] == [(1, "a.png"), (3, "c.png")]
    assert source.failed == 2
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2 and "0_broken.jpg" in lines[0] and "b.jpg" in lines[1]
    assert all("\n" not in line for line in lines)


def test_a_folder_of_only_broken_images_fails(tmp_path: Path):
    (tmp_path / "a.jpg").write_bytes(b"\xff\xd8 nope")
    (tmp_path / "b.png").write_bytes(b"\x89PNG nope")
    with pytest.raises(SourceError, match="none of the 2 images"):
        ImageSource(tmp_path)


def test_a_single_broken_image_is_still_an_error(tmp_path: Path):
    (tmp_path / "a.jpg").write_bytes(b"\xff\xd8 nope")
    with pytest.raises(SourceError, match=r"a\.jpg could not be decoded"):
        open_source(str(tmp_path / "a.jpg"))
