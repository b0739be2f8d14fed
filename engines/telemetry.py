"""What the engines run on: GPU state through NVML, or the CPU model and core count.

    gpu_telemetry()   # {"gpu": "NVIDIA H100 ...", "memory_used_mb": ..., ...} or None
    cpu_telemetry()   # {"cpu": "Intel(R) Xeon(R) ...", "cores": 2, ...}
    cpu_signature()   # CPU model + vector ISA flags, part of cache keys for CPU-tuned models
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

from engines import probe
from engines.base import BackendUnavailable

# ISA features that change which kernels ONNX Runtime's layout optimiser bakes into a saved model.
_ISA_FLAGS = ("avx", "avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16",
              "avx_vnni", "amx_tile", "neon", "asimd")


def open_gpu(device_index: int = 0) -> tuple[Any, Any] | None:
    """(pynvml, device handle) with NVML initialised, or None where NVML finds no such GPU.
    The caller calls ``nvmlShutdown()`` when done."""
    try:
        nvml = probe.import_pynvml()
    except BackendUnavailable:
        return None
    try:
        nvml.nvmlInit()
    except nvml.NVMLError:
        return None  # no driver or no GPU: a normal state on CPU machines
    try:
        if nvml.nvmlDeviceGetCount() > device_index:
            return nvml, nvml.nvmlDeviceGetHandleByIndex(device_index)
    except nvml.NVMLError:
        pass
    nvml.nvmlShutdown()
    return None


def gpu_telemetry(device_index: int = 0) -> dict[str, Any] | None:
    """Name, memory and utilisation of one NVIDIA GPU, or None where NVML finds none."""
    opened = open_gpu(device_index)
    if opened is None:
        return None
    nvml, handle = opened
    try:
        memory = nvml.nvmlDeviceGetMemoryInfo(handle)
        utilisation = nvml.nvmlDeviceGetUtilizationRates(handle)
        return {"gpu": _text(nvml.nvmlDeviceGetName(handle)),
                "memory_used_mb": round(memory.used / 2**20),
                "memory_total_mb": round(memory.total / 2**20),
                "utilisation_percent": int(utilisation.gpu)}
    except nvml.NVMLError:
        return None
    finally:
        nvml.nvmlShutdown()


def gpu_name(device_index: int = 0) -> str:
    """The NVIDIA GPU's name for cache keys ("cuda" where NVML cannot say)."""
    info = gpu_telemetry(device_index)
    return f"cuda:{info['gpu']}" if info else "cuda"


def cpu_telemetry() -> dict[str, Any]:
    """CPU model, logical cores, and the cores this process may use."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu": _cpu_model(), "cores": os.cpu_count(), "usable_cores": usable,
            "machine": platform.machine()}


def cpu_signature() -> str:
    """CPU model and vector ISA flags, so a CPU-tuned model is not reused on another CPU."""
    flags = sorted(set(_cpu_flags()) & set(_ISA_FLAGS))
    return f"cpu:{_cpu_model()}|{platform.machine()}|{','.join(flags)}"


def _cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith(("model name", "Hardware")):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or "unknown"


def _cpu_flags() -> list[str]:
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.is_file():
        return []
    for line in cpuinfo.read_text(errors="replace").splitlines():
        if line.startswith(("flags", "Features")):
            return line.split(":", 1)[1].split()
    return []


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
