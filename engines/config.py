"""Configuration for loading and compiling the inference engines.

    config = EngineConfig(backend="onnx", max_batch=2, precision="fp32")
    engines = load_engines(config)
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

Backend = Literal["auto", "tensorrt", "onnx", "torch"]
Precision = Literal["fp16", "fp32"]
CROP_SIZES = (128, 256)
"""Sides of the aligned face crop the nets are trained and exported for."""
MAX_FACES = 16
"""Most faces one frame may send through the nets (the largest engine batch)."""


def check_backend(value: object, name: str = "--backend") -> None:
    """Raises ValueError unless ``value`` is a ``Backend``; ``name`` is what the message calls
    it (a flag, a keyword argument), so every entry point checks the same way."""
    if value not in get_args(Backend):
        raise ValueError(f"{name} must be one of {', '.join(get_args(Backend))}, got {value!r}")


def check_crop_size(value: object, name: str = "--crop") -> None:
    """Raises ValueError unless ``value`` is one of ``CROP_SIZES``."""
    if value not in CROP_SIZES:
        raise ValueError(f"{name} must be {' or '.join(map(str, CROP_SIZES))}, got {value!r}")


def check_max_faces(value: object, name: str = "--max-faces") -> None:
    """Raises ValueError unless ``value`` is an int from 1 to ``MAX_FACES``."""
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_FACES:
        raise ValueError(f"{name} must be between 1 and {MAX_FACES}, got {value!r}")


@dataclass(frozen=True)
class EngineConfig:
    """How to build the segmenter and generator engines."""

    backend: Backend = "auto"
    """auto tries TensorRT, ONNX Runtime (CUDA, then CPU), then PyTorch; others force one."""
    crop_size: int = 128
    """Side of the aligned face crop in pixels: 128 or 256."""
    max_batch: int = 4
    """Most faces run in one call (--max-faces), 1 to 16; TensorRT engines are built for it."""
    precision: Precision = "fp16"
    """fp16 or fp32 on NVIDIA GPUs; CPU backends always run fp32."""
    segmenter_checkpoint: Path | None = None
    """Segmenter weights (.safetensors); None: the bundled weights, else random init."""
    generator_checkpoint: Path | None = None
    """Generator weights (.safetensors); None: the bundled weights, else random init."""
    random_weights: bool = False
    """Ignore the bundled weights and use deterministic random init (cost and shape checks;
    explicitly given checkpoints still win)."""
    cache_dir: Path | None = None
    """Where exported/compiled models are kept; None: the platform's user cache folder."""
    threads: int | None = None
    """CPU threads per inference call; None: 1 (other cores run tracking and encoding)."""

    def __post_init__(self) -> None:
        check_backend(self.backend)
        check_crop_size(self.crop_size)
        check_max_faces(self.max_batch)
        if self.precision not in get_args(Precision):
            raise ValueError(f"--precision must be fp16 or fp32, got {self.precision!r}")
        if self.threads is not None and (not isinstance(self.threads, int) or self.threads < 1):
            raise ValueError(f"--threads must be a positive integer, got {self.threads!r}")
        for name in ("segmenter_checkpoint", "generator_checkpoint", "cache_dir"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, Path):
                object.__setattr__(self, name, Path(value))


def default_cache_dir() -> Path:
    """The platform's per-user cache folder for realtime-unmask.

    Linux: $XDG_CACHE_HOME/realtime-unmask (~/.cache/realtime-unmask); macOS:
    ~/Library/Caches/realtime-unmask; Windows: %LOCALAPPDATA%\\realtime-unmask\\Cache.
    Only the entry points (load_engines, compile_models) call this, so nothing deeper reads the
    environment.
    """
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA")
        root = Path(base) if base else Path.home() / "AppData" / "Local"
        return root / "realtime-unmask" / "Cache"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "realtime-unmask"
    base = os.environ.get("XDG_CACHE_HOME")
    return (Path(base) if base else Path.home() / ".cache") / "realtime-unmask"
