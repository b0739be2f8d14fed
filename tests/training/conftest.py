"""A handful of real faces (aligned once per session) and the mask templates."""

from __future__ import annotations

from pathlib import Path

import pytest

from training.faces import FaceSet, align_images
from training.occluders import Occluders, load_occluders

FACE_FILES = (
    "celeba_crops/train_10.png", "celeba_crops/train_1004.png", "celeba_crops/train_1005.png",
    "celeba_crops/train_1007.png", "celeba_crops/validation_1002.png",
    "celeba_crops/validation_1003.png", "rmfd_crops/0_0_aidai_0014.jpg",
    "rmfd_crops/0_0_aidai_0029.jpg",
)


@pytest.fixture(scope="session")
def face_paths(shared_data: Path) -> list[Path]:
    paths = [shared_data / "faces" / f for f in FACE_FILES]
    missing = [p for p in paths if not p.is_file()]
    assert not missing, f"test faces missing: {missing}"
    return paths


@pytest.fixture(scope="session")
def masks_root(shared_data: Path) -> Path:
    return shared_data / "mask_templates" / "masktheface" / "masks"


@pytest.fixture(scope="session")
def faces(face_paths: list[Path]) -> FaceSet:
    return align_images(face_paths, 128)


@pytest.fixture(scope="session")
def occluders(masks_root: Path) -> Occluders:
    return load_occluders(masks_root, 128)


@pytest.fixture()
def face_dir(tmp_path: Path, face_paths: list[Path]) -> Path:
    """A folder of links to the test faces (the data itself is never copied)."""
    folder = tmp_path / "faces"
    folder.mkdir()
    for p in face_paths:
        (folder / p.name).symlink_to(p)
    return folder
