"""Which weights each model runs with: a given checkpoint, the bundled one, or random init.

    source = resolve_weights("generator", None, crop_size=128)   # bundled, else random
    source.digest        # sha256 of the weights, part of every cache key
    model = source.build()   # imports torch; only needed when exporting or running PyTorch

Resolving a checkpoint file reads only its header and tensors through safetensors and numpy,
so a cached ONNX model can be found and run without torch installed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engines import checkpoint, probe
from engines.base import BackendUnavailable, EngineError, channels

if TYPE_CHECKING:
    from torch import nn


@dataclass(frozen=True)
class ModelSource:
    """A model's weights and metadata, resolved but not yet built."""

    kind: str
    """"segmenter" or "generator"."""
    checkpoint: Path | None
    """The .safetensors file, or None for deterministic random init."""
    metadata: dict[str, Any]
    """Checkpoint metadata: kind, arch, crop_size, meta."""
    digest: str
    """checkpoint_digest of the weights."""

    @property
    def description(self) -> str:
        """For logs: the file name, or that the weights are random."""
        return str(self.checkpoint) if self.checkpoint else "random init (no trained weights)"

    @property
    def channels(self) -> tuple[int, int]:
        """(input, output) channels of the model (``engines.base.channels``)."""
        return channels(self.kind, bool(self.metadata["arch"].get("guide")))

    @property
    def arch_json(self) -> str:
        """The builder arguments as canonical JSON, for cache keys."""
        return json.dumps(self.metadata["arch"], sort_keys=True)

    def build(self) -> nn.Module:
        """The model in eval mode on the CPU (imports torch)."""
        probe.import_torch()
        if self.checkpoint is None:
            model, _ = checkpoint.random_model(self.kind, crop_size=self.metadata["crop_size"],
                                               seed=self.metadata["meta"]["seed"])
            return model
        model, _ = checkpoint.load_checkpoint(self.checkpoint, expected_kind=self.kind)
        return model


def resolve_weights(
    kind: str, path: Path | None, *, crop_size: int, random: bool = False
) -> ModelSource:
    """The weights ``kind`` runs with; raises CheckpointError for a bad file.

    ``path`` wins; else the bundled weights unless ``random``; else deterministic random init.
    """
    if path is None and not random:
        path = checkpoint.bundled_checkpoint(kind)
    if path is None:
        try:
            probe.import_torch()
        except BackendUnavailable as err:
            raise EngineError(f"no {kind} weights were given or bundled, and random init "
                              f"needs torch: {err}") from err
        model, metadata = checkpoint.random_model(kind, crop_size=crop_size)
        return ModelSource(kind, None, metadata, checkpoint.checkpoint_digest(model))
    metadata = checkpoint.read_metadata(path)
    if metadata["kind"] != kind:
        raise checkpoint.CheckpointError(f"{path} holds a {metadata['kind']} checkpoint, but "
                                         f"a {kind} was expected")
    if metadata["crop_size"] != crop_size:
        raise EngineError(f"{path} was trained on {metadata['crop_size']} px crops but --crop "
                          f"is {crop_size}; pass --crop {metadata['crop_size']} or other weights")
    return ModelSource(kind, Path(path), metadata, checkpoint.checkpoint_digest(path))
