"""Checkpoints: a round trip, and every bad file is a CheckpointError with nothing unpickled."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from engines import checkpoint
from engines.checkpoint import (
    CheckpointError,
    checkpoint_digest,
    load_checkpoint,
    random_model,
    read_metadata,
    save_checkpoint,
)
from engines.models import build_generator, build_segmenter

TINY = {"segmenter": {"width": 4, "depth": 2}, "generator": {"width": 4, "depth": 2,
                                                            "dilation_rates": (2,)}}


def _save(tmp_path: Path, kind: str, name: str | None = None) -> tuple[Path, torch.nn.Module]:
    model, _ = random_model(kind, seed=3, **TINY[kind])
    path = tmp_path / (name or f"{kind}.safetensors")
    save_checkpoint(path, model, kind=kind, arch=TINY[kind], crop_size=64,
                    meta={"steps": 12, "revision": "abc"})
    return path, model


@pytest.mark.parametrize("kind", ["segmenter", "generator"])
def test_round_trip_keeps_weights_metadata_and_outputs(tmp_path: Path, kind: str) -> None:
    path, model = _save(tmp_path, kind)
    loaded, metadata = load_checkpoint(path, expected_kind=kind)
    assert not loaded.training
    assert metadata["kind"] == kind and metadata["crop_size"] == 64
    assert metadata["meta"] == {"steps": 12, "revision": "abc"}
    assert metadata["arch"]["width"] == 4 and "dropout" in metadata["arch"]  # defaults recorded
    assert metadata == read_metadata(path)
    assert checkpoint_digest(path) == checkpoint_digest(model) == checkpoint_digest(loaded)
    x = torch.rand(2, 3 if kind == "segmenter" else 4, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
    assert not list(tmp_path.glob(".*tmp"))  # the atomic write left no temp file behind


def test_digest_changes_with_weights() -> None:
    a, _ = random_model("segmenter", seed=0, **TINY["segmenter"])
    b, _ = random_model("segmenter", seed=1, **TINY["segmenter"])
    again, _ = random_model("segmenter", seed=0, **TINY["segmenter"])
    assert checkpoint_digest(a) == checkpoint_digest(again) != checkpoint_digest(b)


def test_random_model_leaves_the_global_rng_alone() -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    random_model("generator", **TINY["generator"])
    assert torch.equal(torch.rand(3), expected)


def _bad_files(tmp_path: Path) -> dict[str, Path]:
    good, _ = _save(tmp_path, "generator", "good.safetensors")
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(good.read_bytes()[:-200])
    text = tmp_path / "notes.safetensors"
    text.write_text("not a checkpoint at all")
    pickled = tmp_path / "weights.safetensors"
    pickled.write_bytes(pickle.dumps({"w": [1, 2, 3]}))
    plain = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(2)}, str(plain))
    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign), metadata={"realtime_unmask": "{not json"})
    future = tmp_path / "future.safetensors"
    save_file({"w": torch.zeros(2)}, str(future), metadata={"realtime_unmask": json.dumps(
        {"format_version": 99, "kind": "generator", "arch": {}, "crop_size": 128, "meta": {}})})
    return {"missing": tmp_path / "nope.safetensors", "truncated": truncated, "text": text,
            "pickle": pickled, "no metadata": plain, "malformed metadata": foreign,
            "future format": future}


@pytest.mark.parametrize("case", ["missing", "truncated", "text", "pickle", "no metadata",
                                  "malformed metadata", "future format"])
def test_bad_files_raise_checkpoint_error(tmp_path: Path, case: str) -> None:
    path = _bad_files(tmp_path)[case]
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    assert str(path.name) in str(info.value)
    assert "\n" not in str(info.value)


def test_wrong_kind(tmp_path: Path) -> None:
    path, _ = _save(tmp_path, "segmenter")
    with pytest.raises(CheckpointError, match="holds a segmenter checkpoint"):
        load_checkpoint(path, expected_kind="generator")


def test_tensors_that_do_not_match_the_arch(tmp_path: Path) -> None:
    path, _ = _save(tmp_path, "generator")
    lie = read_metadata(path)
    lie["arch"]["width"] = 8  # the metadata now claims a wider net than the tensors hold
    state = {k: v.clone() for k, v in build_generator(**TINY["generator"]).state_dict().items()}
    save_file(state, str(path), metadata={"realtime_unmask": json.dumps(lie)})
    with pytest.raises(CheckpointError, match="do not match the architecture"):
        load_checkpoint(path)


def test_unknown_arch_argument(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not take"):
        save_checkpoint(tmp_path / "s.safetensors", build_segmenter(width=4, depth=2),
                        kind="segmenter", arch={"width": 4, "depth": 2, "heads": 3},
                        crop_size=64, meta={})


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"kind": "discriminator"}, "kind must be one of"),
    ({"arch": {"width": 8, "depth": 2}}, "do not match"),
    ({"crop_size": 0}, "crop_size"),
    ({"meta": {"when": object()}}, "JSON"),
])
def test_save_rejects_bad_arguments(tmp_path: Path, kwargs: dict, match: str) -> None:
    args = {"kind": "segmenter", "arch": TINY["segmenter"], "crop_size": 64, "meta": {}}
    with pytest.raises(CheckpointError, match=match):
        save_checkpoint(tmp_path / "s.safetensors", build_segmenter(**TINY["segmenter"]),
                        **{**args, **kwargs})
    assert not list(tmp_path.iterdir())


def test_save_wants_a_safetensors_path(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"\.safetensors"):
        save_checkpoint(tmp_path / "s.pt", build_segmenter(**TINY["segmenter"]),
                        kind="segmenter", arch=TINY["segmenter"], crop_size=64, meta={})


def test_loading_never_unpickles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path, _ = _save(tmp_path, "generator")

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("something tried to unpickle")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(torch, "load", refuse)
    load_checkpoint(path)
    checkpoint_digest(path)
    with pytest.raises(CheckpointError):
        load_checkpoint(_bad_files(tmp_path)["pickle"])


def test_bundled_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(checkpoint, "_WEIGHTS_DIR", tmp_path)
    assert checkpoint.bundled_checkpoint("generator") is None
    path, _ = _save(tmp_path, "generator")
    assert checkpoint.bundled_checkpoint("generator") == path
    with pytest.raises(CheckpointError):
        checkpoint.bundled_checkpoint("discriminator")
