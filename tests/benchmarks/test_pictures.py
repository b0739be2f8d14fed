"""The picture count: found and painted through the product's picture path."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from benchmarks.pictures import main


@pytest.mark.slow
def test_counts_a_masked_photo_and_a_blank_picture(shared_data: Path, tmp_path: Path,
                                                   capsys) -> None:
    folder = tmp_path / "pictures"
    folder.mkdir()
    shutil.copy(shared_data / "masked_real" / "test_219.png", folder / "a_masked.png")
    cv2.imwrite(str(folder / "b_blank.png"), np.full((80, 80, 3), 128, np.uint8))
    (folder / "notes.txt").write_text("not a picture")
    out = tmp_path / "each.json"
    assert main([str(folder), "--json", str(out), "--no-progress"]) == 0
    assert "2 pictures, a face found in 1, painted 1" in capsys.readouterr().out
    summary = json.loads(out.read_text())
    assert summary["each"] == {"a_masked.png": [True, True], "b_blank.png": [False, False]}
    assert main([str(folder), "--prefix", "b_", "--no-progress"]) == 0
    assert "1 picture, a face found in 0, painted 0" in capsys.readouterr().out


def test_bad_folders_are_one_line_errors(tmp_path: Path, capsys) -> None:
    assert main([str(tmp_path / "missing")]) == 2
    assert capsys.readouterr().err.strip() == f"error: {tmp_path / 'missing'} is not a folder"
    assert main([str(tmp_path)]) == 2
    assert "no pictures" in capsys.readouterr().err
    assert main([str(tmp_path), "--every", "0"]) == 2


def test_a_missing_segmenter_checkpoint_is_a_one_line_error(tmp_path: Path, capsys) -> None:
    cv2.imwrite(str(tmp_path / "a.png"), np.full((80, 80, 3), 128, np.uint8))
    assert main([str(tmp_path), "--segmenter", str(tmp_path / "none.safetensors")]) == 2
    assert "segmenter checkpoint not found" in capsys.readouterr().err
