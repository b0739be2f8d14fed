"""Landmark guides in training: drawn from each sample's own face, mirrored with it, moved
about as the face mesh under a covering moves them; a plain generator warm-starts a guided
one that paints as it did."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from engines.checkpoint import random_model, save_checkpoint
from engines.export import parity_inputs
from engines.models import build_generator
from realtime.face.guide import draw_guide
from training.data import GENERATOR_MIX, OcclusionDataset
from training.faces import FaceSet
from training.guides import EMPTY_P, jittered_guide
from training.occluders import Occluders
from training.train_state import warm_start

TINY = {"width": 4, "depth": 2, "dilation_rates": (2,)}


def test_samples_carry_their_faces_guide_and_mirror_it(faces: FaceSet,
                                                       occluders: Occluders) -> None:
    straight = OcclusionDataset(faces, occluders, replace(GENERATOR_MIX, flip_p=0.0), seed=1)
    mirrored = OcclusionDataset(faces, occluders, replace(GENERATOR_MIX, flip_p=1.0), seed=1)
    for k in range(6):
        a, b = straight.sample(k), mirrored.sample(k)
        np.testing.assert_array_equal(b.guide_hw, a.guide_hw[:, ::-1])
    batch = straight.batch(0, 4)
    assert batch["guide"].shape == (4, 1, 128, 128)
    assert 0 <= batch["guide"].min() and batch["guide"].max() <= 1


def test_jittered_guides_move_about_the_true_one_and_are_sometimes_empty(
        faces: FaceSet) -> None:
    marks = faces.landmarks_xy[0]
    truth = draw_guide(marks, 128)
    guides = [jittered_guide(marks, 128, np.random.default_rng(k)) for k in range(200)]
    empty = sum(not g.any() for g in guides)
    assert 0.03 < empty / len(guides) < 3 * EMPTY_P
    drawn = [g for g in guides if g.any()]
    assert all(not np.array_equal(g, truth) for g in drawn)
    # on average the lines stay near the face's own: most of a guide's ink lies within 4 px
    near = torch.nn.functional.max_pool2d(torch.from_numpy(truth)[None, None], 9, 1, 4)[0, 0]
    share = np.mean([(g * (near.numpy() > 0.1)).sum() / g.sum() for g in drawn])
    assert share > 0.6


def test_a_guided_generator_starts_from_a_plain_one_and_can_learn_to_read(
        tmp_path: Path) -> None:
    plain, meta = random_model("generator", seed=3, **TINY)
    path = tmp_path / "plain.safetensors"
    save_checkpoint(path, plain, kind="generator", arch=meta["arch"], crop_size=32, meta={})
    guided = build_generator(guide=True, **TINY)
    warm_start(guided, path, "generator")
    x = torch.from_numpy(parity_inputs("generator", 2, 32, guide=True))
    with torch.no_grad():
        torch.testing.assert_close(guided.eval()(x), plain.eval()(x[:, :4]), rtol=0, atol=0)
    guided.train()(x).square().sum().backward()
    assert guided.coarse.stem.weight.grad[:, 4].abs().sum() > 0  # the guide's weights move
