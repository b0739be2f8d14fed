"""Shared fixtures: where the real test data lives.

The data sits beside the repository in ../shared/data (never copied into it); set
REALTIME_UNMASK_DATA to point elsewhere. Tests that need it fail, rather than skip, when it is
missing, so a green run always means the real clips were exercised.
"""

from __future__ import annotations

import os
from collections.abc import Callable
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


@pytest.fixture(scope="session")
def runners() -> dict[str, str]:
    """The runner each ``--backend`` gets on this machine, from what is installed and visible,
    so that tests naming it hold with and without an NVIDIA GPU: ``onnx`` runs on ONNX
    Runtime's CUDA (or TensorRT) provider where it has one, else on the CPU; ``torch`` on CUDA
    where torch sees a GPU; ``auto`` is Torch-TensorRT where that can run, else ``onnx``'s."""
    from engines import onnxrt, probe
    from engines.base import BackendUnavailable

    try:
        onnx = onnxrt.gpu_providers(probe.import_onnxruntime(), precision="fp16")[1]
    except BackendUnavailable:
        onnx = "onnxruntime-cpu"
    def runs(*probes: Callable[[], object]) -> bool:
        try:
            for check in probes:
                check()
        except BackendUnavailable:
            return False
        return True

    tensorrt = runs(probe.require_torch_cuda, probe.import_torch_tensorrt)
    return {"auto": "torch-tensorrt" if tensorrt else onnx, "onnx": onnx,
            "torch": "torch-cuda" if runs(probe.require_torch_cuda) else "torch-cpu"}
