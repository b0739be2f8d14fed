"""Model checkpoints: safetensors weights with their metadata in the same file.

    save_checkpoint("gen.safetensors", model, kind="generator", arch={"width": 16},
                    crop_size=128, meta={"steps": 20000, "revision": "abc123"})
    model, metadata = load_checkpoint("gen.safetensors", expected_kind="generator")

The safetensors header carries one metadata entry, ``"realtime_unmask"``, a JSON document:

    {"format_version": 1, "kind": "generator", "arch": {...BUILDERS[kind] kwargs...},
     "crop_size": 128, "meta": {...free-form: data summary, metrics, code revision...}}

Weights and metadata live in one file so they cannot drift apart. Nothing is ever unpickled.
torch is imported inside the functions that build modules, so reading metadata and digests
works where only numpy and safetensors are installed (the ONNX Runtime path).
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from safetensors import SafetensorError, safe_open

if TYPE_CHECKING:
    from torch import nn

FORMAT_VERSION = 1
METADATA_KEY = "realtime_unmask"
KINDS = ("segmenter", "generator")
_WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "training" / "weights"
"""The shipped weights: the trainers' output, installed as ``training`` package data. A
path, not an import: reading them needs nothing from the training code."""


class CheckpointError(ValueError):
    """A checkpoint is missing, unreadable, or does not describe the model it claims to."""


def save_checkpoint(
    path: str | os.PathLike[str],
    model: nn.Module,
    *,
    kind: str,
    arch: Mapping[str, Any],
    crop_size: int,
    meta: Mapping[str, Any],
) -> None:
    """Write ``model``'s weights and metadata to ``path`` (``.safetensors``), atomically."""
    from safetensors.torch import save_file

    path = Path(path)
    if path.suffix != ".safetensors":
        raise CheckpointError(f"checkpoint paths must end in .safetensors, got {path}")
    header = _metadata(kind, dict(arch), crop_size, dict(meta))
    try:
        text = json.dumps(header, sort_keys=True)
    except TypeError as err:
        raise CheckpointError(f"checkpoint metadata must be JSON-serialisable: {err}") from err
    state = {k: v.detach().to("cpu").clone().contiguous() for k, v in model.state_dict().items()}
    _check_state(state, _build(kind, header["arch"]).state_dict(), f"the model given for {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        save_file(state, str(tmp), metadata={METADATA_KEY: text})
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load_checkpoint(
    path: str | os.PathLike[str], *, expected_kind: str | None = None
) -> tuple[nn.Module, dict[str, Any]]:
    """The model in eval mode and its metadata; any problem is a one-sentence CheckpointError."""
    from safetensors.torch import load_file

    path = Path(path)
    metadata = read_metadata(path)
    if expected_kind is not None and metadata["kind"] != expected_kind:
        raise CheckpointError(
            f"{path} holds a {metadata['kind']} checkpoint, but a {expected_kind} was expected"
        )
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError) as err:
        raise CheckpointError(f"{path} is corrupt: its tensors cannot be read ({err})") from err
    model = _build(metadata["kind"], metadata["arch"])
    _check_state(state, model.state_dict(), str(path))
    model.load_state_dict(state, strict=True)
    return model.eval(), metadata


def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The validated metadata of a checkpoint, read from its header without loading tensors."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        with safe_open(str(path), framework="numpy") as handle:
            header = handle.metadata() or {}
    except (SafetensorError, OSError) as err:
        raise CheckpointError(f"{path} is not a readable safetensors file ({err})") from err
    if METADATA_KEY not in header:
        raise CheckpointError(f"{path} has no '{METADATA_KEY}' metadata; it is not a checkpoint "
                              "written by realtime-unmask")
    try:
        metadata = json.loads(header[METADATA_KEY])
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{path} has malformed '{METADATA_KEY}' metadata: {err}") from err
    if not isinstance(metadata, dict) or metadata.get("format_version") != FORMAT_VERSION:
        found = metadata.get("format_version") if isinstance(metadata, dict) else None
        raise CheckpointError(f"{path} has checkpoint format version {found!r}; this version "
                              f"of realtime-unmask reads version {FORMAT_VERSION}")
    return _metadata(metadata.get("kind"), metadata.get("arch"), metadata.get("crop_size"),
                     metadata.get("meta", {}), source=str(path))


def random_model(
    kind: str, *, crop_size: int = 128, seed: int = 0, **arch: Any
) -> tuple[nn.Module, dict[str, Any]]:
    """A deterministically initialised model (used until trained weights exist)."""
    import torch

    metadata = _metadata(kind, arch, crop_size, {"init": "random", "seed": seed})
    with torch.random.fork_rng(devices=[]):  # leave the caller's RNG stream untouched
        torch.manual_seed(seed)
        model = _build(kind, metadata["arch"])
    return model.eval(), metadata


def bundled_checkpoint(kind: str) -> Path | None:
    """The shipped weights ``training/weights/{kind}.safetensors``, if that file exists."""
    _check_kind(kind, "bundled_checkpoint")
    path = _WEIGHTS_DIR / f"{kind}.safetensors"
    return path if path.is_file() else None


def checkpoint_digest(model_or_path: nn.Module | str | os.PathLike[str]) -> str:
    """sha256 over tensor names, dtypes, shapes and bytes; equal for a model and its checkpoint."""
    if isinstance(model_or_path, (str, os.PathLike)):
        from safetensors.numpy import load_file

        path = Path(model_or_path)
        read_metadata(path)
        try:
            arrays = load_file(str(path))
        except (SafetensorError, OSError) as err:
            raise CheckpointError(f"{path} is corrupt: its tensors cannot be read ({err})") from err
    else:
        arrays = {k: v.detach().to("cpu").numpy() for k, v in model_or_path.state_dict().items()}
    digest = hashlib.sha256()
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def _metadata(kind: Any, arch: Any, crop_size: Any, meta: Any, *, source: str = "") -> dict:
    """Validated metadata; when written (no ``source``) the arch gets its defaults filled in."""
    where = f"{source}: " if source else ""
    _check_kind(kind, f"{where}kind")
    if not isinstance(arch, dict):
        raise CheckpointError(f"{where}arch must be a dict of builder arguments, got {arch!r}")
    if not source:  # reading stays torch-free: what we wrote is already complete
        arch = _complete_arch(kind, arch)
    if not isinstance(crop_size, int) or isinstance(crop_size, bool) or crop_size < 16:
        raise CheckpointError(f"{where}crop_size must be an integer of at least 16, "
                              f"got {crop_size!r}")
    if not isinstance(meta, dict):
        raise CheckpointError(f"{where}meta must be a dict, got {meta!r}")
    return {"format_version": FORMAT_VERSION, "kind": kind, "arch": arch,
            "crop_size": crop_size, "meta": meta}


def _check_kind(kind: Any, what: str) -> None:
    if kind not in KINDS:
        raise CheckpointError(f"{what} must be one of {', '.join(KINDS)}, got {kind!r}")


def _complete_arch(kind: str, arch: dict[str, Any]) -> dict[str, Any]:
    """``arch`` with every builder default filled in (tuples as lists, as JSON keeps them).

    Recording the defaults makes a checkpoint mean the same model even if a default changes.
    """
    from engines.models import BUILDERS

    defaults = {name: p.default for name, p in inspect.signature(BUILDERS[kind]).parameters.items()
                if p.default is not inspect.Parameter.empty}
    unknown = sorted(set(arch) - set(defaults))
    if unknown:
        raise CheckpointError(f"arch has arguments {', '.join(unknown)} that build_{kind} does "
                              "not take")
    full = {**defaults, **arch}
    return {k: list(v) if isinstance(v, tuple) else v for k, v in sorted(full.items())}


def _build(kind: str, arch: dict[str, Any]) -> nn.Module:
    from engines.models import BUILDERS, LEGACY_ARCH

    try:  # checkpoints written before an argument existed were built the old way
        return BUILDERS[kind](**{**LEGACY_ARCH, **arch})
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"arch {arch!r} cannot build a {kind}: {err}") from err


def _check_state(state: Mapping[str, Any], expected: Mapping[str, Any], where: str) -> None:
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(state) & set(expected)
                   if tuple(state[k].shape) != tuple(expected[k].shape))
    if missing or unexpected or wrong:
        parts = [f"{label} {', '.join(names[:3])}{' ...' if len(names) > 3 else ''}"
                 for label, names in (("missing", missing), ("unexpected", unexpected),
                                      ("wrong shape for", wrong)) if names]
        raise CheckpointError(f"the tensors in {where} do not match the architecture in its "
                              f"metadata ({'; '.join(parts)})")
