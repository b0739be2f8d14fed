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
        if self.backend not in get_args(Backend):
            raise ValueError(f"--backend must be one of {', '.join(get_args(Backend))}, "
                             f"got {self.backend!r}")
        if self.crop_size not in (128, 256):
            raise ValueError(f"--crop must be 128 or 256, got {self.crop_size!r}")
        if not isinstance(self.max_batch, int) or not 1 <= self.max_batch <= 16:
            raise ValueError(f"--max-faces must be between 1 and 16, got {self.max_batch!r}")
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
