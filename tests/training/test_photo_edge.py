"""Samples cut like a tight photo: the crop beyond the cut repeats the cut line's pixels."""

from __future__ import annotations

import argparse
from dataclasses import replace

import numpy as np
import pytest

from realtime.face import mesh
from training.common import add_common_args, occlusion_from_args
from training.data import SEGMENTER_MIX, OcclusionConfig, OcclusionDataset
from training.faces import FaceSet
from training.occluders import Occluders
from training.photo_edge import cut_line, cut_photo


def _beyond(valid_hw: np.ndarray) -> tuple[int, int, bool]:
    """(axis, index of the last kept line, keep_low) read back from a cut validity."""
    for axis in (0, 1):
        dropped = ~(valid_hw > 0).any(axis=1 - axis)
        if dropped.any() and not dropped.all():
            kept = np.nonzero(~dropped)[0]
            if dropped[-1] and not dropped[0]:
                return axis, int(kept.max()), True
            if dropped[0] and not dropped[-1]:
                return axis, int(kept.min()), False
    raise AssertionError("no cut found in the validity mask")


def test_cut_replicates_the_line_in_every_image_and_drops_validity(
        faces: FaceSet) -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (128, 128, 3), np.uint8)
    mask = (rng.random((128, 128)) > 0.5).astype(np.float32)
    seen = set()
    for seed in range(40):
        marks = faces.landmarks_xy[seed % len(faces)]
        (cut_image, cut_mask), valid = cut_photo([image, mask], np.ones((128, 128), np.float32),
                                                 marks, np.random.default_rng(seed))
        axis, index, keep_low = _beyond(valid)
        seen.add((axis, keep_low))
        lines = np.moveaxis(cut_image, axis, 0)
        mask_lines = np.moveaxis(cut_mask, axis, 0)
        beyond = slice(index + 1, None) if keep_low else slice(0, index)
        kept = slice(0, index + 1) if keep_low else slice(index, None)
        assert np.all(lines[beyond] == lines[index])
        assert np.all(mask_lines[beyond] == mask_lines[index])
        np.testing.assert_array_equal(lines[kept], np.moveaxis(image, axis, 0)[kept])
        assert valid.dtype == np.float32 and set(np.unique(valid)) <= {0.0, 1.0}
    assert seen == {(0, True), (1, True), (1, False)}  # below, and beside on either side


def test_bottom_cuts_fall_between_the_nose_and_below_the_chin(faces: FaceSet) -> None:
    for i in range(len(faces)):
        marks = faces.landmarks_xy[i]
        nose, chin = marks[mesh.NOSE_TIP, 1], marks[mesh.CHIN, 1]
        for seed in range(30):
            axis, index, keep_low = cut_line(marks, 128, np.random.default_rng(seed))
            if axis == 0:
                assert keep_low
                drop = chin - nose
                assert nose + drop / 3 - 1 <= index <= min(chin + drop / 5 + 1, 127)


def test_cut_samples_keep_every_other_draw(faces: FaceSet, occluders: Occluders) -> None:
    """The cut has its own random stream: above a bottom cut the sample is the uncut one."""
    faces = replace(faces, valid_hw=None)  # every pixel real: the cut alone drops validity
    whole = OcclusionDataset(faces, occluders, SEGMENTER_MIX, seed=3)
    cut = OcclusionDataset(faces, occluders, replace(SEGMENTER_MIX, cut_p=1.0), seed=3)
    checked = 0
    for k in range(16):
        a, b = whole.sample(k), cut.sample(k)
        assert a.kind == b.kind
        axis, index, _ = _beyond(b.valid_hw)
        if axis != 0:
            continue
        np.testing.assert_array_equal(b.masked_rgb[: index + 1], a.masked_rgb[: index + 1])
        np.testing.assert_array_equal(b.mask_hw[: index + 1], a.mask_hw[: index + 1])
        assert np.all(b.masked_rgb[index + 1:] == b.masked_rgb[index])
        assert not b.valid_hw[index + 1:].any()
        checked += 1
    assert checked >= 6
    never = OcclusionDataset(faces, occluders, replace(SEGMENTER_MIX, cut_p=0.0), seed=3)
    for k in range(4):
        np.testing.assert_array_equal(never.sample(k).masked_rgb, whole.sample(k).masked_rgb)


def test_side_cuts_follow_the_mirrored_face(faces: FaceSet, occluders: Occluders) -> None:
    """A mirrored sample is cut beside the mirrored face, not beside where it was."""
    marks_xy = faces.landmarks_xy
    faces = replace(faces, valid_hw=None)
    config = replace(SEGMENTER_MIX, cut_p=1.0, flip_p=1.0, clean_p=1.0)
    dataset = OcclusionDataset(faces, occluders, config, seed=5, shuffle=False)
    side = 0
    for k in range(48):
        sample = dataset.sample(k)
        axis, index, _ = _beyond(sample.valid_hw)
        if axis != 1:
            continue
        xs = 127 - marks_xy[k % len(faces)][list(mesh.OUTLINE_AT_EYES), 0]
        width = abs(xs[1] - xs[0])
        assert xs.min() - 1 <= index <= xs.max() + 1
        assert min(abs(index - xs.min()), abs(index - xs.max())) <= width / 5 + 1
        side += 1
    assert side >= 4


@pytest.mark.parametrize("flag, name", [("--photo-cuts", "cut_p"), ("--misalign", "misalign_p")])
@pytest.mark.parametrize("value", [-0.1, 1.5])
def test_sample_shares_are_checked_and_read_from_their_flags(flag: str, name: str,
                                                              value: float) -> None:
    """The photo cut's share and the misplaced crop's (``training.misalign``)."""
    with pytest.raises(ValueError, match=name):
        OcclusionConfig(**{name: value})
    parser = argparse.ArgumentParser()
    add_common_args(parser, mix="segmenter")
    assert getattr(occlusion_from_args(parser.parse_args(["--out", "x", flag, "0.3"])),
                   name) == 0.3
    assert getattr(occlusion_from_args(parser.parse_args(["--out", "x"])), name) == 0.0
