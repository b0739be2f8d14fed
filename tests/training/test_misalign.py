"""Misplaced crops: the face moved about in its crop, labels and validity moved with it."""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np

from training.data import SEGMENTER_MIX, OcclusionDataset
from training.faces import FaceSet
from training.misalign import SCALE, SHIFT, misalign, misalign_matrix
from training.occluders import Occluders


def test_labels_move_with_the_image_and_stay_binary() -> None:
    image = np.zeros((128, 128, 3), np.uint8)
    label = np.zeros((128, 128), np.float32)
    image[70:100, 40:90] = 255
    label[70:100, 40:90] = 1
    moved = 0
    for seed in range(20):
        (warped,), (warped_label,), valid = misalign([image], [label], np.ones_like(label),
                                                     np.random.default_rng(seed))
        assert warped.shape == image.shape and warped.dtype == np.uint8
        assert set(np.unique(warped_label)) <= {0.0, 1.0}
        assert set(np.unique(valid)) <= {0.0, 1.0}
        agree = (warped[..., 0] >= 128) == (warped_label > 0)
        assert agree.mean() > 0.99
        moved += not np.array_equal(warped_label, label)
    assert moved == 20


def test_validity_drops_where_the_warp_leaves_the_crop_or_its_border() -> None:
    valid = np.ones((128, 128), np.float32)
    valid[100:] = 0  # the cached crop's own replicated border
    matrix = misalign_matrix(128, np.random.default_rng(4))
    inside = cv2.warpAffine(valid, matrix, (128, 128), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_CONSTANT)
    _, _, warped = misalign([], [], valid, np.random.default_rng(4))
    np.testing.assert_array_equal(warped, (inside > 0.999).astype(np.float32))
    assert 0 < warped.mean() < valid.mean() + 0.2


def test_the_warp_stays_within_its_ranges() -> None:
    for seed in range(200):
        matrix = misalign_matrix(128, np.random.default_rng(seed))
        scale = float(np.hypot(*matrix[:, 0]))
        assert SCALE[0] - 1e-6 <= scale <= SCALE[1] + 1e-6
        centre = matrix[:, :2] @ np.array([64.0, 64.0]) + matrix[:, 2]
        assert np.all(np.abs(centre - 64) <= np.asarray(SHIFT) * 128 + 1e-6)


def test_misaligned_samples_keep_every_other_draw(faces: FaceSet,
                                                  occluders: Occluders) -> None:
    """Its own random stream: the same sample, only moved, and never moved at share 0."""
    plain = OcclusionDataset(faces, occluders, SEGMENTER_MIX, seed=2)
    moved = OcclusionDataset(faces, occluders, replace(SEGMENTER_MIX, misalign_p=1.0), seed=2)
    changed = 0
    for k in range(8):
        a, b = plain.sample(k), moved.sample(k)
        assert a.kind == b.kind
        assert abs(a.mask_hw.mean() - b.mask_hw.mean()) < 0.5 * a.mask_hw.mean() + 0.01
        changed += not np.array_equal(a.masked_rgb, b.masked_rgb)
    assert changed == 8
    never = OcclusionDataset(faces, occluders, replace(SEGMENTER_MIX, misalign_p=0.0), seed=2)
    np.testing.assert_array_equal(never.sample(0).masked_rgb, plain.sample(0).masked_rgb)

