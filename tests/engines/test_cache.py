"""The artefact cache: keys, reuse, and rebuilding whatever is stale, foreign or corrupt."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from engines.cache import MANIFEST, ArtefactCache, ArtefactError, CacheKey
from engines.onnxrt import _open_cpu, onnx_cache_key
from engines.tensorrt import tensorrt_cache_key
from engines.weights import ModelSource

SOURCE = ModelSource("generator", None, {"arch": {"width": 16}, "crop_size": 128,
                                         "meta": {"seed": 0}}, digest="a" * 64)


class Builds:
    """A build function that counts its calls and writes a small artefact."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, folder: Path) -> dict:
        self.calls += 1
        (folder / "model.bin").write_bytes(b"weights" * 100)
        return {"build": self.calls}


def _read(entry: Path) -> bytes:
    return (entry / "model.bin").read_bytes()


@pytest.fixture()
def cache(tmp_path: Path) -> ArtefactCache:
    return ArtefactCache(tmp_path / "cache", log=lambda line: None)


KEY = CacheKey("generator-onnx-cpu", {"weights": "a" * 64, "precision": "fp32"})


def test_onnx_key_changes_with_weights_precision_and_device_only() -> None:
    base = onnx_cache_key(SOURCE, device="cpu", crop_size=128, precision="fp32")
    assert base == onnx_cache_key(SOURCE, device="cpu", crop_size=128, precision="fp32")
    other_weights = onnx_cache_key(replace(SOURCE, digest="b" * 64), device="cpu",
                                   crop_size=128, precision="fp32")
    other_crop = onnx_cache_key(SOURCE, device="cpu", crop_size=256, precision="fp32")
    gpu_fp16 = onnx_cache_key(SOURCE, device="cuda", crop_size=128, precision="fp16")
    gpu_fp32 = onnx_cache_key(SOURCE, device="cuda", crop_size=128, precision="fp32")
    digests = {k.digest for k in (base, other_weights, other_crop, gpu_fp16, gpu_fp32)}
    assert len(digests) == 5
    # CPU sessions always run fp32, so asking for fp16 there must reuse the fp32 entry.
    assert onnx_cache_key(SOURCE, device="cpu", crop_size=128, precision="fp16") == base
    assert "version:onnxruntime" in base.fields


def test_tensorrt_key_changes_with_weights_precision_and_batch() -> None:
    keys = [tensorrt_cache_key(SOURCE, crop_size=128, max_batch=4, precision="fp16"),
            tensorrt_cache_key(SOURCE, crop_size=128, max_batch=4, precision="fp32"),
            tensorrt_cache_key(SOURCE, crop_size=128, max_batch=8, precision="fp16"),
            tensorrt_cache_key(replace(SOURCE, digest="c" * 64), crop_size=128, max_batch=4,
                               precision="fp16")]
    assert len({k.digest for k in keys}) == 4


def test_valid_entry_is_reused_without_building(cache: ArtefactCache) -> None:
    build = Builds()
    data, entry, hit = cache.get_or_build(KEY, build, _read)
    assert (build.calls, hit) == (1, False)
    mtime = (entry / "model.bin").stat().st_mtime_ns
    data_again, entry_again, hit = cache.get_or_build(KEY, build, _read)
    assert (build.calls, hit, entry_again, data_again) == (1, True, entry, data)
    assert (entry / "model.bin").stat().st_mtime_ns == mtime
    assert cache.manifest(entry)["info"] == {"build": 1}
    assert [p.name for p in cache.root.iterdir()] == [entry.name]  # no temp folders left


def test_other_key_gets_its_own_entry(cache: ArtefactCache) -> None:
    build = Builds()
    _, first, _ = cache.get_or_build(KEY, build, _read)
    other = CacheKey(KEY.name, {**KEY.fields, "precision": "fp16"})
    _, second, hit = cache.get_or_build(other, build, _read)
    assert (build.calls, hit) == (2, False) and first != second


def _corrupt_artefact(entry: Path) -> None:
    with (entry / "model.bin").open("r+b") as handle:
        handle.write(b"XX")


def _foreign_manifest(entry: Path) -> None:
    manifest = json.loads((entry / MANIFEST).read_text())
    manifest["fields"]["weights"] = "f" * 64  # an entry built from other weights
    (entry / MANIFEST).write_text(json.dumps(manifest))


def _garbage_manifest(entry: Path) -> None:
    (entry / MANIFEST).write_text("{truncated")


def _missing_artefact(entry: Path) -> None:
    (entry / "model.bin").unlink()


@pytest.mark.parametrize("damage", [_corrupt_artefact, _foreign_manifest, _garbage_manifest,
                                    _missing_artefact])
def test_damaged_entry_is_rebuilt_not_loaded(tmp_path: Path, damage) -> None:
    lines: list[str] = []
    cache = ArtefactCache(tmp_path / "cache", log=lines.append)
    build = Builds()
    _, entry, _ = cache.get_or_build(KEY, build, _read)
    damage(entry)
    loaded: list[bytes] = []

    def load(folder: Path) -> bytes:
        loaded.append(_read(folder))
        return loaded[-1]

    _, entry_again, hit = cache.get_or_build(KEY, build, load)
    assert (build.calls, hit, entry_again) == (2, False, entry)
    assert loaded == [b"weights" * 100]  # only the rebuilt artefact was ever loaded
    assert any("rebuilding" in line for line in lines)
    assert cache.lookup(KEY) == entry


def test_entry_that_fails_to_load_is_rebuilt(cache: ArtefactCache) -> None:
    build = Builds()
    cache.get_or_build(KEY, build, _read)
    attempts = []

    def load(folder: Path) -> int:
        attempts.append(folder)
        if len(attempts) == 1:
            raise ArtefactError("engine built for another GPU")
        return cache.manifest(folder)["info"]["build"]

    info, _, hit = cache.get_or_build(KEY, build, load)
    assert (info, hit, build.calls, len(attempts)) == (2, False, 2, 2)


def test_a_build_that_loses_the_race_keeps_the_winners_entry(cache: ArtefactCache) -> None:
    # Two workers on a cold cache: the other one installs the entry while this one builds,
    # and is loading it; moving it aside would pull it from under that load.
    winner: dict = {}

    def build_while_another_installs(folder: Path) -> dict:
        winner["entry"] = cache.build(KEY, Builds())
        winner["manifest"] = cache.manifest(winner["entry"])
        (folder / "model.bin").write_bytes(b"ours")
        return {}

    entry = cache.build(KEY, build_while_another_installs)
    assert entry == winner["entry"] and cache.manifest(entry) == winner["manifest"]
    assert _read(entry) == b"weights" * 100
    assert [p.name for p in cache.root.iterdir()] == [entry.name]  # this copy is gone


def test_failed_build_leaves_nothing(cache: ArtefactCache) -> None:
    def broken(folder: Path) -> dict:
        (folder / "half.bin").write_bytes(b"x")
        raise RuntimeError("exporter crashed")

    with pytest.raises(RuntimeError):
        cache.get_or_build(KEY, broken, _read)
    assert list(cache.root.iterdir()) == []


def test_unreadable_onnx_file_is_an_artefact_error(tmp_path: Path) -> None:
    import onnxruntime

    (tmp_path / "model.optimized.onnx").write_bytes(b"not a protobuf")
    with pytest.raises(ArtefactError, match="cannot open"):
        _open_cpu(onnxruntime, tmp_path, threads=1)
