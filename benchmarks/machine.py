"""What a benchmark ran on: the machine, the package versions, and how busy the CPU or GPU was
while a block of work ran.

    with Utilisation() as busy:
        run_something()
    busy.result   # {"process_cpu_percent": 180.2, "system_cpu_percent": 93.5, ...}
"""

from __future__ import annotations

import os
import platform
import threading
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from training.revision import git_revision

PACKAGES = ("realtime-unmask", "torch", "onnxruntime", "mediapipe", "opencv-contrib-python",
            "av", "numpy", "torch-tensorrt", "nvidia-ml-py")
REPO = Path(__file__).resolve().parents[1]


def machine() -> dict[str, Any]:
    """CPU model and cores, the NVIDIA GPU (if any), OS and Python."""
    from engines.telemetry import cpu_telemetry, gpu_telemetry

    return {**cpu_telemetry(), "gpu": gpu_telemetry(), "os": platform.platform(terse=True),
            "python": platform.python_version(),
            "memory_gb": _memory_gb()}


def versions() -> dict[str, str | None]:
    """Installed versions of the packages that decide the numbers, and the code revision."""
    found: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    found["code_revision"] = git_revision(short=True, mark_dirty=True)
    return found


class Utilisation:
    """CPU time of this process and of the whole machine (and, on an NVIDIA GPU, its
    utilisation sampled every 100 ms) over a ``with`` block."""

    def __init__(self) -> None:
        self.result: dict[str, Any] = {}
        self._samples: list[int] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Utilisation:
        self._wall0, self._cpu0, self._system0 = (time.perf_counter(), time.process_time(),
                                                  _system_ticks())
        from engines.telemetry import open_gpu

        opened = open_gpu()
        if opened is not None:
            self._thread = threading.Thread(target=self._sample_gpu, args=opened, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        wall_s = time.perf_counter() - self._wall0
        cpu_s = time.process_time() - self._cpu0
        self.result = {"process_cpu_percent": round(100 * cpu_s / max(wall_s, 1e-9), 1)}
        system1 = _system_ticks()
        if self._system0 and system1:
            busy = system1[0] - self._system0[0]
            total = system1[1] - self._system0[1]
            if total > 0:
                self.result["system_cpu_percent"] = round(100 * busy / total, 1)
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            if self._samples:
                self.result["gpu_utilisation_percent"] = round(
                    sum(self._samples) / len(self._samples), 1)

    def _sample_gpu(self, nvml: Any, handle: Any) -> None:
        try:
            while not self._stop.wait(0.1):
                self._samples.append(int(nvml.nvmlDeviceGetUtilizationRates(handle).gpu))
        except nvml.NVMLError:
            return
        finally:
            nvml.nvmlShutdown()


def _system_ticks() -> tuple[int, int] | None:
    """(busy, total) jiffies of all CPUs from /proc/stat; None off Linux."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return None
    ticks = [int(f) for f in fields]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
    return sum(ticks) - idle, sum(ticks)


def _memory_gb() -> float | None:
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        return None

