"""Backend selection, fallbacks, forced backends, and what the loaded engines return."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engines import (
    BackendUnavailable,
    EngineConfig,
    EngineError,
    Engines,
    compile_models,
    load_engines,
    probe,
)
from engines.base import CHANNELS
from engines.checkpoint import random_model, save_checkpoint

MAX_BATCH = 3  # as in conftest.cpu_engines
REPO = Path(__file__).resolve().parents[2]


def _no_onnxruntime() -> None:
    raise BackendUnavailable("onnxruntime is not installed (simulated)")


def test_auto_picks_onnxruntime_cpu_and_says_why_not_the_others(
    onnx_cache: Path, cpu_engines: Engines, no_gpu: None
) -> None:
    lines: list[str] = []
    engines = load_engines(
        EngineConfig(cache_dir=onnx_cache, max_batch=MAX_BATCH, random_weights=True),
        log=lines.append,
    )
    assert engines.backend == "onnxruntime-cpu"
    assert engines.segmenter.name == engines.generator.name == "onnxruntime-cpu"
    assert [line.split(" skipped: ")[0] for line in engines.skipped] == [
        "tensorrt",
        "onnxruntime-cuda",
    ]
    assert "CUDA" in engines.skipped[0] and "CUDAExecutionProvider" in engines.skipped[1]
    assert all(line in lines for line in engines.skipped)
    assert any(line.startswith("engines: onnxruntime-cpu") for line in lines)
    assert engines.details["generator"]["cached"]  # the session fixture exported it already
    assert engines.warmup_ms > 0
    telemetry = engines.telemetry()
    assert telemetry["backend"] == "onnxruntime-cpu" and telemetry["cores"] >= 1


def test_forcing_tensorrt_without_a_gpu_fails_loudly(onnx_cache: Path, no_gpu: None) -> None:
    with pytest.raises(EngineError, match="--backend tensorrt cannot run here: tensorrt skipped"):
        load_engines(
            EngineConfig(backend="tensorrt", cache_dir=onnx_cache, random_weights=True),
            log=lambda s: None,
        )


def test_auto_falls_back_to_torch_without_onnxruntime(
    onnx_cache: Path, monkeypatch: pytest.MonkeyPatch, no_gpu: None
) -> None:
    monkeypatch.setattr(probe, "import_onnxruntime", _no_onnxruntime)
    engines = load_engines(
        EngineConfig(cache_dir=onnx_cache, max_batch=MAX_BATCH, random_weights=True),
        log=lambda s: None,
    )
    assert engines.backend == "torch-cpu"
    assert "onnxruntime-cpu skipped: onnxruntime is not installed (simulated)" in engines.skipped
    assert len(engines.skipped) == 3


def test_forcing_onnx_without_onnxruntime_fails_loudly(
    onnx_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(probe, "import_onnxruntime", _no_onnxruntime)
    with pytest.raises(EngineError, match="--backend onnx cannot run here") as info:
        load_engines(
            EngineConfig(backend="onnx", cache_dir=onnx_cache, random_weights=True),
            log=lambda s: None,
        )
    assert "\n" not in str(info.value)


@pytest.fixture(scope="module")
def torch_engines(onnx_cache: Path) -> Engines:
    """Eager PyTorch on the CPU (also where torch sees a GPU), to compare with cpu_engines."""
    import torch

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(torch.cuda, "is_available", lambda: False)
        return load_engines(
            EngineConfig(
                backend="torch", max_batch=MAX_BATCH, cache_dir=onnx_cache, random_weights=True
            ),
            log=lambda s: None,
        )


@pytest.mark.parametrize(
    ("backend", "n"),
    [
        ("onnx", 0),
        ("onnx", 1),
        ("onnx", 2),
        ("onnx", 3),
        ("onnx", 7),
        ("torch", 0),
        ("torch", 1),
        ("torch", 4),
    ],
)
def test_output_shapes_and_generator_keeps_unmasked_pixels(
    request: pytest.FixtureRequest, backend: str, n: int
) -> None:
    engines = request.getfixturevalue("cpu_engines" if backend == "onnx" else "torch_engines")
    rng = np.random.default_rng(n)
    crops = rng.uniform(-1, 1, (n, 3, 128, 128)).astype(np.float32)
    logits = engines.segmenter(crops)
    assert logits.shape == (n, CHANNELS["segmenter"][1], 128, 128)
    assert logits.dtype == np.float32 and logits.flags.c_contiguous
    mask = (rng.uniform(0, 1, (n, 1, 128, 128)) > 0.6).astype(np.float32)
    painted = engines.generator(np.concatenate([crops * (1 - mask), mask], axis=1))
    assert painted.shape == (n, 3, 128, 128) and np.all(np.isfinite(painted))
    keep = np.broadcast_to(mask == 0, painted.shape)
    np.testing.assert_allclose(painted[keep], crops[keep], rtol=0, atol=1e-6)
    assert np.all(np.abs(painted) <= 1.0 + 1e-6)


def test_onnx_and_torch_agree(cpu_engines: Engines, torch_engines: Engines) -> None:
    crops = np.random.default_rng(0).uniform(-1, 1, (2, 3, 128, 128)).astype(np.float32)
    np.testing.assert_allclose(
        cpu_engines.segmenter(crops), torch_engines.segmenter(crops), rtol=0, atol=1e-4
    )


def test_wrong_input_shape_is_refused(cpu_engines: Engines) -> None:
    with pytest.raises(ValueError, match=r"\(N, 4, 128, 128\)"):
        cpu_engines.generator(np.zeros((1, 3, 128, 128), np.float32))


def test_compile_reports_what_was_built_and_skipped(
    onnx_cache: Path, cpu_engines: Engines, no_gpu: None
) -> None:
    steps: list[tuple[int, int, str]] = []
    report = compile_models(
        EngineConfig(max_batch=MAX_BATCH, cache_dir=onnx_cache, random_weights=True),
        log=lambda s: None,
        progress=lambda *a: steps.append(a),
    )
    assert set(report["onnx-cpu"]) == {"segmenter", "generator"}
    assert report["onnx-cpu"]["generator"]["cached"]
    assert max(report["onnx-cpu"]["generator"]["max_abs_diff"].values()) < 1e-4
    assert "CUDAExecutionProvider" in report["onnx-cuda"]["skipped"]
    assert "CUDA" in report["tensorrt"]["skipped"]
    assert steps[-1][:2] == (6, 6)


def test_cached_onnx_runs_without_torch(
    tmp_path: Path, onnx_cache: Path, cpu_engines: Engines
) -> None:
    """Checkpoints equal to the random init hit the session's cache; torch is never imported."""
    paths = {}
    for kind in ("segmenter", "generator"):
        model, metadata = random_model(kind)
        paths[kind] = tmp_path / f"{kind}.safetensors"
        save_checkpoint(
            paths[kind], model, kind=kind, arch=metadata["arch"], crop_size=128, meta={}
        )
    script = f"""
import sys
sys.modules["torch"] = None  # any "import torch" now raises ImportError
from pathlib import Path
import numpy as np
from engines import EngineConfig, load_engines
engines = load_engines(EngineConfig(backend="onnx", cache_dir=Path({str(onnx_cache)!r}),
                                    segmenter_checkpoint=Path({str(paths["segmenter"])!r}),
                                    generator_checkpoint=Path({str(paths["generator"])!r})),
                       log=lambda s: None)
assert engines.details["segmenter"]["cached"] and engines.details["generator"]["cached"]
print(engines.backend, engines.segmenter(np.zeros((1, 3, 128, 128), np.float32)).shape)
"""
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr[-2000:]
    # Also where ONNX Runtime has CUDA: a GPU session would need an export, which needs torch.
    assert done.stdout.split() == ["onnxruntime-cpu", "(1,", "1,", "128,", "128)"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"backend": "cuda"}, "--backend must be one of"),
        ({"crop_size": 192}, "--crop must be 128 or 256"),
        ({"max_batch": 0}, "--max-faces must be between 1 and 16, got 0"),
        ({"max_batch": 17}, "--max-faces must be between 1 and 16, got 17"),
        ({"precision": "int8"}, "--precision must be fp16 or fp32"),
        ({"threads": 0}, "--threads must be a positive integer"),
    ],
)
def test_config_validation(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        EngineConfig(**kwargs)
