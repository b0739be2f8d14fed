"""Import the optional heavy packages, turning absence into a reason a backend is skipped.

    torch = probe.import_torch()          # or raises BackendUnavailable("torch is not installed")

Call these through the module (``probe.import_onnxruntime()``) so tests can monkeypatch one
to pretend a package is missing.
"""

from __future__ import annotations

from types import ModuleType

from engines.base import BackendUnavailable


def import_torch() -> ModuleType:
    """torch, or BackendUnavailable."""
    try:
        import torch
    except ImportError as err:
        raise BackendUnavailable(f"torch is not installed ({err})") from err
    return torch


def import_onnxruntime() -> ModuleType:
    """onnxruntime, or BackendUnavailable."""
    try:
        import onnxruntime
    except ImportError as err:
        raise BackendUnavailable(f"onnxruntime is not installed ({err})") from err
    return onnxruntime


def import_torch_tensorrt() -> ModuleType:
    """torch_tensorrt, or BackendUnavailable."""
    try:
        import torch_tensorrt
    except ImportError as err:
        raise BackendUnavailable("torch_tensorrt is not installed "
                                 "(pip install 'realtime-unmask[tensorrt]')") from err
    return torch_tensorrt


def import_pynvml() -> ModuleType:
    """pynvml (from nvidia-ml-py), or BackendUnavailable."""
    try:
        import pynvml
    except ImportError as err:
        raise BackendUnavailable("nvidia-ml-py is not installed") from err
    return pynvml


def require_torch_cuda() -> ModuleType:
    """torch with a CUDA device visible, or BackendUnavailable."""
    torch = import_torch()
    if not torch.cuda.is_available():
        build = "a CPU-only build" if torch.version.cuda is None else f"CUDA {torch.version.cuda}"
        raise BackendUnavailable(f"no CUDA GPU visible to torch ({torch.__version__}, {build})")
    return torch
