"""GPU telemetry through a stand-in NVML (no NVIDIA GPU here), and the CPU fallback."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from engines import probe, telemetry
from engines.base import BackendUnavailable


class FakeNvml:
    """Enough of pynvml for one GPU; counts init and shutdown calls."""

    class NVMLError(Exception):
        pass

    def __init__(self, count: int = 1, init_fails: bool = False) -> None:
        self.count, self.init_fails = count, init_fails
        self.inits = self.shutdowns = 0

    def nvmlInit(self) -> None:
        self.inits += 1
        if self.init_fails:
            raise self.NVMLError("no driver")

    def nvmlShutdown(self) -> None:
        self.shutdowns += 1

    def nvmlDeviceGetCount(self) -> int:
        return self.count

    def nvmlDeviceGetHandleByIndex(self, index: int) -> str:
        return f"gpu{index}"

    def nvmlDeviceGetName(self, handle: str) -> bytes:
        return b"Fake GPU"

    def nvmlDeviceGetMemoryInfo(self, handle: str) -> SimpleNamespace:
        return SimpleNamespace(used=2 * 2**20, total=8 * 2**20)

    def nvmlDeviceGetUtilizationRates(self, handle: str) -> SimpleNamespace:
        return SimpleNamespace(gpu=37)


def test_gpu_telemetry_reads_one_gpu_and_shuts_nvml_down(monkeypatch) -> None:
    nvml = FakeNvml()
    monkeypatch.setattr(probe, "import_pynvml", lambda: nvml)
    assert telemetry.gpu_telemetry() == {"gpu": "Fake GPU", "memory_used_mb": 2,
                                         "memory_total_mb": 8, "utilisation_percent": 37}
    assert nvml.inits == nvml.shutdowns == 1


@pytest.mark.parametrize(("nvml", "shutdowns"), [
    (FakeNvml(count=0), 1),           # a driver but no GPU
    (FakeNvml(init_fails=True), 0),   # no driver: init failed, nothing to shut down
])
def test_no_gpu_gives_none(monkeypatch, nvml: FakeNvml, shutdowns: int) -> None:
    monkeypatch.setattr(probe, "import_pynvml", lambda: nvml)
    assert telemetry.open_gpu() is None
    assert telemetry.gpu_telemetry() is None
    assert nvml.shutdowns == 2 * shutdowns


def test_without_pynvml_there_is_no_gpu(monkeypatch) -> None:
    def missing():
        raise BackendUnavailable("nvidia-ml-py is not installed")
    monkeypatch.setattr(probe, "import_pynvml", missing)
    assert telemetry.open_gpu() is None and telemetry.gpu_telemetry() is None


def test_open_gpu_hands_back_an_initialised_handle(monkeypatch) -> None:
    nvml = FakeNvml(count=2)
    monkeypatch.setattr(probe, "import_pynvml", lambda: nvml)
    opened = telemetry.open_gpu(1)
    assert opened == (nvml, "gpu1") and nvml.inits == 1 and nvml.shutdowns == 0
