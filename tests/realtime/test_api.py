"""The Python API (``realtime.api``) on real photos and clips, with the bundled weights."""

from __future__ import annotations

import itertools
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from realtime import Unmasker
from realtime.api import UnmaskerConfig, _split_mask
from realtime.sinks import PROVENANCE
from realtime.types import ClosedError

REPO = Path(__file__).resolve().parents[2]
PHOTO = "test_219.png"  # a tight crop of a face in a white surgical mask


@pytest.fixture(scope="module")
def cache_root(tmp_path_factory) -> Path:
    """An XDG cache home: the engines compiled once here serve every test of this module."""
    return tmp_path_factory.mktemp("xdg-cache")


@pytest.fixture(scope="module")
def unmasker(cache_root: Path) -> Iterator[Unmasker]:
    with Unmasker(backend="onnx", label=False, cache_dir=cache_root / "realtime-unmask") as u:
        yield u


def _prepare(image_bgr: np.ndarray) -> np.ndarray:
    """As training/contact_sheet.py does: half a crop of border on each side, ~384 px."""
    h, w = image_bgr.shape[:2]
    padded = cv2.copyMakeBorder(image_bgr, h // 2, h // 2, w // 2, w // 2, cv2.BORDER_REPLICATE)
    return cv2.resize(padded, (384, 384), interpolation=cv2.INTER_CUBIC)


def _frames(path: Path, count: int) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        frames = itertools.islice(container.decode(video=0), count)
        return [f.to_ndarray(format="bgr24") for f in frames]


def test_import_stays_light() -> None:
    code = ("import sys; from realtime import Unmasker; "
            "print(sorted({'torch', 'mediapipe', 'onnxruntime'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=REPO)
    assert out.stdout.strip() == "[]"


def test_masked_photo_is_painted_near_the_face_only(unmasker: Unmasker,
                                                    shared_data: Path) -> None:
    image_bgr = _prepare(cv2.imread(str(shared_data / "masked_real" / PHOTO)))
    unmasker.reset()
    result = unmasker.process(image_bgr)
    assert result.painted and result.frame_bgr.shape == image_bgr.shape
    assert result.frame_bgr.dtype == np.uint8 and result.frame_bgr is not image_bgr
    (face,) = [f for f in result.faces if f.painted]
    assert face.mask_hw.shape == image_bgr.shape[:2] and face.mask_hw.dtype == np.float32
    assert 0 <= face.mask_hw.min() and face.mask_hw.max() <= 1 and face.mask_hw.max() > 0.9
    np.testing.assert_array_equal(face.mask_hw, result.mask_hw)  # the only painted face
    changed = np.abs(result.frame_bgr.astype(int) - image_bgr.astype(int)).max(axis=2) > 0
    assert changed.sum() > 500
    assert not changed[result.mask_hw == 0].any()  # nothing outside the painted region
    x0, y0, x1, y1 = face.box_xyxy
    ys, xs = np.nonzero(changed)
    side = max(x1 - x0, y1 - y0)  # the crop reaches below the chin: allow a face's margin
    assert xs.min() >= x0 - 0.5 * side and xs.max() <= x1 + 0.5 * side
    assert ys.min() >= y0 and ys.max() <= y1 + side


def test_masked_clip_is_a_stream(unmasker: Unmasker, masked_clip: Path) -> None:
    unmasker.reset()
    results = [unmasker.process(f) for f in _frames(masked_clip, 8)]
    assert all(len(r.faces) == 1 for r in results)
    assert len({r.faces[0].track_id for r in results}) == 1  # tracking carries over
    assert sum(r.painted for r in results) >= 6


def test_unmasked_faces_are_left_alone(unmasker: Unmasker, hamilton_clip: Path) -> None:
    unmasker.reset()
    for frame_bgr in _frames(hamilton_clip, 4):
        result = unmasker.process(frame_bgr)
        assert result.faces and not result.painted
        assert not any(f.mask_hw.any() for f in result.faces) and not result.mask_hw.any()
        np.testing.assert_array_equal(result.frame_bgr, frame_bgr)
        assert result.frame_bgr is not frame_bgr  # a copy: changing it leaves the input be


def test_label_and_closing(cache_root: Path, hamilton_clip: Path) -> None:
    (frame_bgr,) = _frames(hamilton_clip, 1)
    with Unmasker(backend="onnx", cache_dir=cache_root / "realtime-unmask") as unmasker:
        out_bgr = unmasker.process(frame_bgr).frame_bgr
    ys, xs = np.nonzero((out_bgr != frame_bgr).any(axis=2))
    assert ys.size > 0  # the 'reconstructed' tag, bottom left
    assert ys.min() > 0.85 * frame_bgr.shape[0] and xs.max() < 0.4 * frame_bgr.shape[1]
    with pytest.raises(ClosedError, match="closed"):
        unmasker.process(frame_bgr)
    unmasker.close()  # closing twice is harmless


@pytest.mark.parametrize("bad", [
    np.zeros((64, 64, 3), np.float32),
    np.zeros((64, 64), np.uint8),
    np.zeros((64, 64, 4), np.uint8),
    np.zeros((0, 0, 3), np.uint8),
    [[0, 0, 0]],
], ids=["float", "grey", "bgra", "empty", "list"])
def test_bad_frames_say_what_is_expected(unmasker: Unmasker, bad: object) -> None:
    with pytest.raises(ValueError, match=r"H x W x 3 uint8"):
        unmasker.process(bad)


@pytest.mark.parametrize(("options", "message"), [
    ({"max_faces": 0}, "max_faces must be between 1 and 16, got 0"),
    ({"max_faces": 17}, "got 17"),
    ({"backend": "cuda"}, "backend must be one of auto, tensorrt, onnx, torch, got 'cuda'"),
    ({"crop_size": 64}, "crop_size must be 128 or 256, got 64"),
])
def test_config_errors_name_the_option(options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        UnmaskerConfig(**options)


def test_process_image_writes_provenance_at_the_input_size(unmasker: Unmasker,
                                                           shared_data: Path,
                                                           tmp_path: Path) -> None:
    photo = shared_data / "masked_real" / PHOTO  # tight: found only with a border added
    out = tmp_path / "unmasked.png"
    result = unmasker.process_image(photo, out)
    assert result.painted and result.frame_bgr.shape == cv2.imread(str(photo)).shape
    assert result.faces[0].mask_hw.shape == result.frame_bgr.shape[:2]
    assert PROVENANCE.encode() in out.read_bytes()


def test_process_video_runs_the_loop(unmasker: Unmasker, masked_clip: Path,
                                     tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    summary = unmasker.process_video(masked_clip, out, max_frames=12)
    assert summary["frames"] == 12 and summary["frames_with_faces"] == 12
    with av.open(str(out)) as container:
        assert container.metadata.get("comment") == PROVENANCE


def test_overlapping_regions_go_to_the_nearer_face() -> None:
    mask_hw = np.zeros((10, 20), np.float32)
    mask_hw[2:8, 2:18] = 0.5
    left, right = _split_mask(mask_hw, [np.array([0, 0, 10, 10], np.float32),
                                        np.array([10, 0, 20, 10], np.float32)])
    assert left[:, :10].sum() == mask_hw[:, :10].sum() and not left[:, 10:].any()
    assert right[:, 10:].sum() == mask_hw[:, 10:].sum() and not right[:, :10].any()
    assert _split_mask(mask_hw, []) == []


def _readme_example() -> str | None:
    """The first ```python block after a '## Python API' line of README.md, or None."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    heading = re.search(r"^## Python API[ \t]*$", text, re.MULTILINE)
    if heading is None:
        return None
    block = re.search(r"^```python\n(.*?)^```", text[heading.end():], re.MULTILINE | re.DOTALL)
    return block.group(1) if block else None


def test_readme_example_runs(shared_data: Path, masked_clip: Path, cache_root: Path,
                             tmp_path: Path) -> None:
    """Runs the README's example where ``masked.jpg`` is a real masked photo and
    ``clip.mp4`` the real masked webcam clip; every file it writes must carry the note."""
    code = _readme_example()
    if code is None:
        pytest.skip("README.md has no '## Python API' section with a ```python block yet")
    photo = _prepare(cv2.imread(str(shared_data / "masked_real" / PHOTO)))
    cv2.imwrite(str(tmp_path / "masked.jpg"), photo)
    (tmp_path / "clip.mp4").symlink_to(masked_clip)
    before = set(tmp_path.iterdir())
    env = {**os.environ, "XDG_CACHE_HOME": str(cache_root),
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    for written in set(tmp_path.iterdir()) - before:
        assert PROVENANCE.encode() in written.read_bytes(), f"{written.name} lacks the note"
