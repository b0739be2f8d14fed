"""A training run's resumable state and warm starts: models, optimizer moments, step and RNG
as safetensors plus JSON (never pickle), checked against the architecture that ``--resume``
asks for; ``warm_start`` copies a checkpoint into a model of the same (or a widened) design.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from torch import nn

STATE_TENSORS, STATE_JSON = "train_state.safetensors", "train_state.json"


def _optimizer_tensors(name: str, opt: torch.optim.Optimizer) -> tuple[dict, dict]:
    state = opt.state_dict()
    tensors = {f"optim.{name}.{idx}.{key}": value.detach().clone().contiguous()
               for idx, per_param in state["state"].items()
               for key, value in per_param.items() if torch.is_tensor(value)}
    return tensors, {"param_groups": state["param_groups"]}


def save_train_state(out: Path, *, step: int, models: dict[str, nn.Module],
                     optimizers: dict[str, torch.optim.Optimizer], info: dict,
                     arch: dict) -> None:
    """Models, optimizer moments, step and torch RNG as safetensors; the rest, with the
    architecture that ``--resume`` must match (``arch``, JSON values), as JSON."""
    from safetensors.torch import save_file

    tensors = {f"model.{name}.{k}": v.detach().clone().contiguous()
               for name, model in models.items() for k, v in model.state_dict().items()}
    groups = {}
    for name, opt in optimizers.items():
        opt_tensors, groups[name] = _optimizer_tensors(name, opt)
        tensors.update(opt_tensors)
    tensors["rng.torch"] = torch.get_rng_state()
    out.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out / (STATE_TENSORS + ".tmp")), metadata={"step": str(step)})
    (out / (STATE_JSON + ".tmp")).write_text(json.dumps(
        {"step": step, "optimizers": groups, **info, "arch": arch}, indent=1))
    os.replace(out / (STATE_TENSORS + ".tmp"), out / STATE_TENSORS)
    os.replace(out / (STATE_JSON + ".tmp"), out / STATE_JSON)


def check_resume_arch(out: Path, saved: dict | None, wanted: dict) -> None:
    """ValueError naming every architecture flag where a saved run and this command differ
    (nothing to check when the run predates the record, ``saved`` None)."""
    if saved is None:
        return
    wanted = json.loads(json.dumps(wanted))  # compare as saved: tuples become lists
    diffs = [f"{k}={saved.get(k)!r} (this command: {wanted.get(k)!r})"
             for k in sorted(set(saved) | set(wanted)) if saved.get(k) != wanted.get(k)]
    if diffs:
        raise ValueError(f"--resume: {out} was trained with {', '.join(diffs)}; repeat the "
                         "run's flags or start a new --out")


def load_train_state(out: Path, *, models: dict[str, nn.Module],
                     optimizers: dict[str, torch.optim.Optimizer], arch: dict) -> dict:
    """Restores models, optimizers and RNG in place; returns the JSON info (with ``step``).

    Refuses (ValueError) a state saved with another architecture than ``arch``: a flag such
    as ``--guide-scale`` changes what the same tensors compute, so shapes alone cannot tell.
    States saved before the architecture was recorded are checked by their shapes only."""
    from safetensors import safe_open

    if not (out / STATE_TENSORS).is_file() or not (out / STATE_JSON).is_file():
        raise FileNotFoundError(f"--resume: no training state in {out}")
    info = json.loads((out / STATE_JSON).read_text())
    check_resume_arch(out, info.get("arch"), arch)
    with safe_open(str(out / STATE_TENSORS), framework="pt") as f:
        if f.metadata().get("step") != str(info["step"]):
            raise ValueError(f"{out}: training state files disagree on the step; "
                             "delete them to start over")
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    for name, model in models.items():
        prefix = f"model.{name}."
        try:
            model.load_state_dict({k[len(prefix):]: v for k, v in tensors.items()
                                   if k.startswith(prefix)})
        except RuntimeError as e:  # torch lists every mismatched tensor over many lines
            raise ValueError(f"--resume: the {name} in {out} has another architecture than "
                             "this command's flags ask for; repeat the run's flags or start "
                             "a new --out") from e
    for name, opt in optimizers.items():
        per_param: dict[int, dict] = {}
        prefix = f"optim.{name}."
        for key, value in tensors.items():
            if key.startswith(prefix):
                idx, field_name = key[len(prefix):].split(".", 1)
                per_param.setdefault(int(idx), {})[field_name] = value
        opt.load_state_dict({"state": per_param,
                             "param_groups": info["optimizers"][name]["param_groups"]})
    torch.set_rng_state(tensors["rng.torch"])
    return info


def warm_start(model: nn.Module, path: Path, kind: str) -> None:
    """Copies a checkpoint's weights into ``model`` (same architecture required)."""
    from engines.checkpoint import load_checkpoint

    source, _ = load_checkpoint(path, expected_kind=kind)
    state = source.state_dict()
    widen = {"gate": ("coarse.head.weight", "coarse.head.bias"), "guide": ("coarse.stem.weight",)}
    for flag, keys in widen.items():
        if getattr(model, flag, False) and not getattr(source, flag, False):
            state = _widened(state, model.state_dict(), keys)
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise ValueError(f"--init {path} does not match the requested architecture "
                         f"(check --width/--depth/--refine): {str(err).splitlines()[0]}") from err


def _widened(state: dict, target: dict, keys: tuple[str, ...]) -> dict:
    """``state`` with each of ``keys`` zero-padded to the target's shape: a generator's weights
    for its twin with a gate (the head's extra output starts at zero weights and bias, a half
    blend on the ring) or a guide (the stem's extra input starts unread, so the twin paints as
    the source did and learns to read the guide from there)."""
    out = dict(state)
    for key in keys:
        if key in state and key in target and state[key].shape != target[key].shape:
            widened = torch.zeros_like(target[key])
            widened[tuple(slice(0, n) for n in state[key].shape)] = state[key]
            out[key] = widened
    return out
