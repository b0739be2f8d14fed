"""Hems, ear loops and bleed labels: what real masks have and the templates lack."""

from __future__ import annotations

import argparse
from dataclasses import replace

import cv2
import numpy as np

from training.common import add_common_args, occlusion_from_args
from training.data import OcclusionConfig, OcclusionDataset
from training.faces import FaceSet
from training.occluders import Occluders

TEMPLATE = OcclusionConfig(template_p=1, rectangle_p=0, freeform_p=0, flip_p=0)


def _pairs(faces: FaceSet, occluders: Occluders, changed: OcclusionConfig, seed: int,
           count: int = 8):
    plain = OcclusionDataset(faces, occluders, TEMPLATE, seed=seed)
    other = OcclusionDataset(faces, occluders, changed, seed=seed)
    return [(plain.sample(k), other.sample(k)) for k in range(count)]


def test_a_hem_raises_the_upper_edge_and_is_in_the_mask(faces: FaceSet,
                                                         occluders: Occluders) -> None:
    for plain, hemmed in _pairs(faces, occluders, replace(TEMPLATE, hem_p=1.0), seed=4):
        assert np.all(hemmed.mask_hw >= plain.mask_hw)  # the same template, only added to
        cols = np.nonzero(plain.mask_hw.any(axis=0))[0]
        top_plain = plain.mask_hw[:, cols].argmax(axis=0)
        top_hemmed = hemmed.mask_hw[:, cols].argmax(axis=0)
        assert np.all(top_hemmed <= top_plain)
        assert np.mean(top_hemmed < top_plain) > 0.5  # raised along most of its width
        added = (hemmed.mask_hw > 0) & (plain.mask_hw == 0)
        rows = np.nonzero(added)[0]
        assert rows.max() < np.nonzero(plain.mask_hw)[0].max()  # above the chin: at the top
        # the masked crop shows the hem there, not the skin
        diff = np.abs(hemmed.masked_rgb.astype(int) - hemmed.clean_rgb.astype(int)).sum(-1)
        assert np.mean(diff[added] > 0) > 0.9


def test_ear_loops_are_thin_strands_reaching_beyond_the_sides(faces: FaceSet,
                                                             occluders: Occluders) -> None:
    beyond = 0
    for plain, looped in _pairs(faces, occluders, replace(TEMPLATE, loop_p=1.0), seed=6):
        assert np.all(looped.mask_hw >= plain.mask_hw)
        added = (looped.mask_hw > 0) & (plain.mask_hw == 0)
        core = cv2.erode(added.astype(np.uint8), np.ones((5, 5), np.uint8))
        assert core.sum() <= 0.05 * max(int(added.sum()), 1)  # strands, not a patch
        cols = np.nonzero(plain.mask_hw.any(axis=0))[0]
        added_cols = np.nonzero(added.any(axis=0))[0]
        beyond += bool(len(added_cols)) and (added_cols.min() < cols.min() - 3
                                             or added_cols.max() > cols.max() + 3)
    assert beyond >= 6  # a loop whose ear lies inside the template's reach adds little


def test_bleed_labels_mark_the_smeared_rim_and_leave_the_picture_alone(
        faces: FaceSet, occluders: Occluders) -> None:
    damaged = replace(TEMPLATE, degrade_p=1.0)
    unlabelled = OcclusionDataset(faces, occluders, damaged, seed=9)
    labelled = OcclusionDataset(faces, occluders, replace(damaged, bleed_labels=True), seed=9)
    grown = 0
    for k in range(10):
        before, after = unlabelled.sample(k), labelled.sample(k)
        np.testing.assert_array_equal(before.masked_rgb, after.masked_rgb)  # same damage
        assert np.all(after.mask_hw >= before.mask_hw)
        near = cv2.dilate(before.mask_hw, np.ones((11, 11), np.uint8))
        assert np.all(near[after.mask_hw > 0] > 0)  # only a rim around the covering
        grown += int(after.mask_hw.sum() > before.mask_hw.sum())
    assert grown >= 5  # rescaling or blur happen in 3 of 4 samples; each smears the edge


def test_the_trim_flags_reach_the_recipe() -> None:
    parser = argparse.ArgumentParser()
    add_common_args(parser, mix="segmenter")
    base = occlusion_from_args(parser.parse_args(["--out", "x"]))
    assert (base.hem_p, base.loop_p, base.bleed_labels) == (0.0, 0.0, False)
    given = occlusion_from_args(parser.parse_args(
        ["--out", "x", "--hem", "0.5", "--loops", "0.4", "--bleed-labels"]))
    assert (given.hem_p, given.loop_p, given.bleed_labels) == (0.5, 0.4, True)
    assert replace(given, hem_p=0.0, loop_p=0.0, bleed_labels=False) == base


def test_photo_prints_cover_the_template_with_a_window_of_another_photo(
        faces: FaceSet, occluders: Occluders) -> None:
    plain_style = replace(TEMPLATE, texture_p=0.0, tint_p=0.0, pattern_p=0.0)
    printed_style = replace(plain_style, photo_p=1.0)
    for plain, printed in _pairs(faces, occluders, printed_style, seed=9):
        # the same template in the same place: only its picture changes
        np.testing.assert_array_equal(printed.mask_hw, plain.mask_hw)
        inside = plain.mask_hw > 0
        assert np.array_equal(printed.masked_rgb[~inside], plain.masked_rgb[~inside])
        diff = np.abs(printed.masked_rgb.astype(int) - plain.masked_rgb.astype(int)).sum(-1)
        assert np.mean(diff[inside] > 12) > 0.5
    with np.testing.assert_raises(ValueError):
        replace(plain_style, tint_p=0.5, photo_p=0.6)
    parser = argparse.ArgumentParser()
    add_common_args(parser, mix="segmenter")
    args = parser.parse_args(["--out", "x", "--photo-prints", "0.15"])
    assert occlusion_from_args(args).photo_p == 0.15


def test_a_photo_print_is_a_window_of_one_photo() -> None:
    from training.occluders import photo_print

    photos = np.zeros((3, 64, 64, 3), np.uint8)
    for i in range(3):
        photos[i] = 80 * i
    for seed in range(10):
        window = photo_print(photos, 32, np.random.default_rng(seed))
        assert window.shape == (32, 32, 3) and window.dtype == np.float32
        assert len(np.unique(window)) == 1 and window.flat[0] in (0, 80, 160)
