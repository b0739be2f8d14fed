"""Shared fixtures: where the real test data lives.

The data sits beside the repository in ../shared/data (never copied into it); set
REALTIME_UNMASK_DATA to point elsewhere. Tests that need it fail, rather than skip, when it is
missing, so a green run always means the real clips were exercised.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def shared_data() -> Path:
    root = Path(os.environ.get("REALTIME_UNMASK_DATA", REPO.parent / "shared" / "data"))
    if not (root / "videos" / "hamilton_clip_640x360.mp4").is_file():
        pytest.fail(f"test data not found in {root}: put shared/ beside the repository or set "
                    "REALTIME_UNMASK_DATA", pytrace=False)
    return root


@pytest.fixture(scope="session")
def hamilton_clip(shared_data: Path) -> Path:
    return shared_data / "videos" / "hamilton_clip_640x360.mp4"


@pytest.fixture(scope="session")
def masked_clip(shared_data: Path) -> Path:
    return shared_data / "videos" / "masked_webcam_256.mp4"
