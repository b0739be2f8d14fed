"""Aligned faces, the cache, splits and the synthetic occlusions, on a handful of real faces."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from realtime.face import mesh
from realtime.face.align import CANONICAL_XY
from training import faces as faces_module
from training.data import GENERATOR_MIX, SEGMENTER_MIX, OcclusionConfig, OcclusionDataset
from training.distractors import DISTRACTORS
from training.faces import FaceSet, load_face_folder, split_faces
from training.occluders import Occluders, face_box_xyxy, head_pose

ONLY = {
    "template": OcclusionConfig(template_p=1, rectangle_p=0, freeform_p=0, flip_p=0),
    "rectangle": OcclusionConfig(template_p=0, rectangle_p=1, freeform_p=0, flip_p=0),
    "freeform": OcclusionConfig(template_p=0, rectangle_p=0, freeform_p=1, flip_p=0),
}


def test_faces_are_aligned_to_the_canonical_layout(faces: FaceSet) -> None:
    assert len(faces) == 8 and faces.skipped == 0
    assert faces.crops_rgb.shape == (8, 128, 128, 3) and faces.crops_rgb.dtype == np.uint8
    assert faces.landmarks_xy.shape == (8, 468, 2) and faces.landmarks_xy.dtype == np.float32
    eyes_xy = faces.landmarks_xy[:, list(mesh.RIGHT_EYE[:2])].mean(axis=1)
    np.testing.assert_allclose(eyes_xy, np.broadcast_to(CANONICAL_XY[0] * 128, (8, 2)), atol=4)
    chin_y = faces.landmarks_xy[:, 152, 1]
    mouth_y = CANONICAL_XY[3, 1] * 128
    # the chin sits below the mouth with room under it for the neck (masks reach below it)
    assert ((chin_y > mouth_y + 4) & (chin_y < 0.8 * 128)).all()


@pytest.mark.parametrize("kind", list(ONLY))
def test_sample_shapes_ranges_and_mask_matches_occluder(
    kind: str, faces: FaceSet, occluders: Occluders
) -> None:
    dataset = OcclusionDataset(faces, occluders, ONLY[kind], seed=3)
    for k in range(8):
        masked_rgb, mask_hw, clean_rgb, got_kind = dataset.sample(k)[:4]
        assert got_kind == kind
        assert masked_rgb.shape == clean_rgb.shape == (128, 128, 3)
        assert masked_rgb.dtype == clean_rgb.dtype == np.uint8
        assert mask_hw.shape == (128, 128) and mask_hw.dtype == np.float32
        assert set(np.unique(mask_hw)) <= {0.0, 1.0}
        assert 0.005 < mask_hw.mean() < 0.7
        outside = mask_hw == 0
        np.testing.assert_array_equal(masked_rgb[outside], clean_rgb[outside])
        changed = (masked_rgb != clean_rgb).any(axis=2)
        assert changed[mask_hw == 1].mean() > 0.6  # the occluder really is where the mask is


def test_clean_crop_is_the_aligned_face_or_its_mirror(faces: FaceSet,
                                                      occluders: Occluders) -> None:
    dataset = OcclusionDataset(faces, occluders, OcclusionConfig(flip_p=0.5), seed=0,
                               shuffle=False)
    flips = 0
    for k in range(16):
        _, _, clean_rgb, _ = dataset.sample(k)[:4]
        face = faces.crops_rgb[k % len(faces)]
        flipped = np.array_equal(clean_rgb, face[:, ::-1])
        assert flipped or np.array_equal(clean_rgb, face)
        flips += flipped
    assert 0 < flips < 16


def test_samples_are_deterministic_and_order_independent(faces: FaceSet,
                                                         occluders: Occluders) -> None:
    def make(seed: int) -> OcclusionDataset:
        return OcclusionDataset(faces, occluders, OcclusionConfig(), seed=seed)

    a, b, c = make(7), make(7), make(8)
    forward = [a.sample(k) for k in range(12)]
    backward = [b.sample(k) for k in reversed(range(12))][::-1]
    for x, y in zip(forward, backward, strict=True):
        for u, v in zip(x[:3], y[:3], strict=True):
            np.testing.assert_array_equal(u, v)
    other = [c.sample(k) for k in range(12)]
    assert any(not np.array_equal(x[1], y[1]) for x, y in zip(forward, other, strict=True))


def test_epochs_visit_every_face_once(faces: FaceSet, occluders: Occluders) -> None:
    dataset = OcclusionDataset(faces, occluders, OcclusionConfig(), seed=1)
    n = len(faces)
    for epoch in range(3):
        assert sorted(dataset.face_index(epoch * n + i) for i in range(n)) == list(range(n))
    assert [dataset.face_index(i) for i in range(n)] != [dataset.face_index(n + i)
                                                          for i in range(n)]


def test_rectangles_cover_10_to_30_percent_of_the_face(faces: FaceSet,
                                                       occluders: Occluders) -> None:
    dataset = OcclusionDataset(faces, occluders, ONLY["rectangle"], seed=5, shuffle=False)
    for k in range(24):
        _, mask_hw, _, _ = dataset.sample(k)[:4]
        x0, y0, x1, y1 = face_box_xyxy(faces.landmarks_xy[k % len(faces)], 128)
        box_area = (x1 - x0) * (y1 - y0)
        assert mask_hw[y0:y1, x0:x1].sum() == mask_hw.sum()  # inside the face box
        assert 0.10 - 0.01 <= mask_hw.sum() / box_area <= 0.30 + 0.01
        rows, cols = np.nonzero(mask_hw)
        assert mask_hw.sum() == (np.ptp(rows) + 1) * (np.ptp(cols) + 1)  # one solid rectangle


def test_template_masks_cover_the_mouth_not_the_eyes(faces: FaceSet,
                                                     occluders: Occluders) -> None:
    dataset = OcclusionDataset(faces, occluders, ONLY["template"], seed=11, shuffle=False)
    checked_eyes = 0
    for k in range(16):
        _, mask_hw, _, _ = dataset.sample(k)[:4]
        marks = faces.landmarks_xy[k % len(faces)]
        mouth_x, mouth_y = np.round(marks[list(mesh.INNER_LIPS)].mean(axis=0)).astype(int)
        assert mask_hw[mouth_y, mouth_x] == 1, f"sample {k}: mouth not covered"
        # On strongly turned heads the far-side template edge can reach the far eye (as in
        # MaskTheFace); on frontal faces the eyes stay clear.
        for eye in ((33, 133), (362, 263)) if head_pose(marks) == "front" else ():
            eye_x, eye_y = np.round(marks[list(eye)].mean(axis=0)).astype(int)
            window = mask_hw[eye_y - 2:eye_y + 3, eye_x - 2:eye_x + 3]
            assert window.mean() < 0.5, f"sample {k}: eye covered"
            checked_eyes += 1
        rows, _ = np.nonzero(mask_hw)
        eyes_y = marks[[*mesh.RIGHT_EYE[:2], *mesh.LEFT_EYE[:2]], 1].mean()
        chin_y = marks[mesh.CHIN, 1]
        lower_face_y = eyes_y + 0.3 * (chin_y - eyes_y)
        assert rows.mean() > lower_face_y, f"sample {k}: not on the lower face"
    assert checked_eyes >= 16


def test_template_pose_follows_head_yaw(faces: FaceSet) -> None:
    marks = faces.landmarks_xy[0].copy()
    width = marks[454, 0] - marks[234, 0]
    marks[1, 0] = marks[234, 0] + 0.5 * width
    assert head_pose(marks) == "front"
    marks[1, 0] = marks[234, 0] + 0.2 * width
    assert head_pose(marks) == "left"
    marks[1, 0] = marks[234, 0] + 0.8 * width
    assert head_pose(marks) == "right"


def test_batches_are_tensors_in_range(faces: FaceSet, occluders: Occluders) -> None:
    dataset = OcclusionDataset(faces, occluders, OcclusionConfig(), seed=0)
    batch = dataset.batch(step=3, batch_size=5)
    assert batch["masked"].shape == batch["clean"].shape == (5, 3, 128, 128)
    assert batch["mask"].shape == (5, 1, 128, 128)
    for key in ("masked", "clean"):
        assert batch[key].min() >= -1 and batch[key].max() <= 1
    assert len(batch["kinds"]) == 5
    again = dataset.batch(step=3, batch_size=5)
    assert (again["masked"] == batch["masked"]).all()


def test_folder_is_aligned_once_then_read_from_the_cache(
    face_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    first = load_face_folder(face_dir, 128, cache, progress=False)
    assert len(list(cache.glob("*.npz"))) == 1

    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("aligned again instead of reading the cache")

    monkeypatch.setattr(faces_module, "align_images", fail)
    second = load_face_folder(face_dir, 128, cache, progress=False)
    np.testing.assert_array_equal(first.crops_rgb, second.crops_rgb)
    np.testing.assert_array_equal(first.landmarks_xy, second.landmarks_xy)
    assert first.names == second.names
    (face_dir / first.names[0]).unlink()  # a different file list is a different cache entry
    with pytest.raises(AssertionError, match="aligned again"):
        load_face_folder(face_dir, 128, cache, progress=False)


def test_split_uses_validation_names_or_a_holdout(faces: FaceSet) -> None:
    train, val = split_faces(faces)
    assert val.names == ("validation_1002.png", "validation_1003.png")
    assert len(train) == 6 and not set(train.names) & set(val.names)
    renamed = replace(faces, names=tuple(f"img_{i}.png" for i in range(len(faces))))
    train, val = split_faces(renamed, holdout_every=4)
    assert val.names == ("img_3.png", "img_7.png") and len(train) == 6


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"template_p": 0.5}, "sum to 1"),
        ({"template_p": 1.2, "rectangle_p": -0.2}, ">= 0"),
        ({"rect_coverage": (0.3, 0.1)}, "rect_coverage"),
        ({"flip_p": 1.5}, "flip_p"),
        ({"texture_p": 0.7, "tint_p": 0.6}, "texture_p"),
        ({"template_scale": (1.2, 1.0)}, "template_scale"),
        ({"template_grow": 1.5}, "template_grow"),
        ({"degrade_p": -0.1}, "degrade_p"),
    ],
)
def test_occlusion_config_rejects_bad_values(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        OcclusionConfig(**kwargs)


def test_grown_templates_reach_lower_and_wider_than_the_plain_ones(
        faces: FaceSet, occluders: Occluders) -> None:
    grown = replace(ONLY["template"], template_scale=(1.0, 1.0), template_grow=0.3)
    plain = replace(ONLY["template"], template_scale=(1.0, 1.0))
    lower = wider = 0
    for k in range(12):
        grown_hw = OcclusionDataset(faces, occluders, grown, seed=5).sample(k).mask_hw
        plain_hw = OcclusionDataset(faces, occluders, plain, seed=5).sample(k).mask_hw
        grown_rows, grown_cols = np.nonzero(grown_hw)
        plain_rows, plain_cols = np.nonzero(plain_hw)
        lower += grown_rows.max() >= plain_rows.max()
        wider += np.ptp(grown_cols) >= np.ptp(plain_cols)
    assert lower >= 10 and wider >= 10  # the other draws (template, colour) shift too


def test_degraded_inputs_keep_the_mask_and_the_clean_target(faces: FaceSet,
                                                            occluders: Occluders) -> None:
    plain = OcclusionDataset(faces, occluders, ONLY["template"], seed=9)
    damaged = OcclusionDataset(faces, occluders, replace(ONLY["template"], degrade_p=1.0),
                               seed=9)
    changed = 0
    for k in range(8):
        masked_a, mask_a, clean_a, _ = plain.sample(k)[:4]
        masked_b, mask_b, clean_b, _ = damaged.sample(k)[:4]
        np.testing.assert_array_equal(mask_a, mask_b)
        np.testing.assert_array_equal(clean_a, clean_b)
        assert masked_b.shape == masked_a.shape and masked_b.dtype == np.uint8
        changed += not np.array_equal(masked_a, masked_b)
    assert changed >= 6  # each damage has probability 1/2: all four skipped 1 time in 16
    np.testing.assert_array_equal(damaged.sample(3)[0], damaged.sample(3)[0])  # deterministic


def test_clean_samples_have_no_occluder_and_an_empty_mask(faces: FaceSet,
                                                          occluders: Occluders) -> None:
    config = replace(ONLY["template"], clean_p=0.5)
    dataset = OcclusionDataset(faces, occluders, config, seed=4, shuffle=False)
    kinds = []
    for k in range(24):
        masked_rgb, mask_hw, clean_rgb, kind = dataset.sample(k)[:4]
        kinds.append(kind)
        if kind == "none":
            assert not mask_hw.any()
            np.testing.assert_array_equal(masked_rgb, clean_rgb)
        else:
            assert mask_hw.any()
    assert 6 <= kinds.count("none") <= 18


def test_segmenter_mix_marks_coverings_only(faces: FaceSet, occluders: Occluders) -> None:
    """Its positives are templates; bare faces, even with overlays, glasses or hands drawn
    on them, have an empty mask (they are what the segmenter must leave alone)."""
    dataset = OcclusionDataset(faces, occluders, SEGMENTER_MIX, seed=2)
    kinds = set()
    for k in range(40):
        s = dataset.sample(k)
        kinds.add(s.kind)
        assert s.kind in ("template", "none")
        assert s.mask_hw.any() == (s.kind == "template")
    assert kinds == {"template", "none"}


@pytest.mark.parametrize("name", sorted(DISTRACTORS))
def test_each_distractor_changes_the_face_and_stays_in_range(
        name: str, faces: FaceSet) -> None:
    changed = 0
    for i in range(len(faces)):
        rng = np.random.default_rng([i, 5])
        crop = faces.crops_rgb[i].astype(np.float32)
        out = DISTRACTORS[name](crop.copy(), faces.landmarks_xy[i], rng)
        assert out.shape == crop.shape
        assert np.isfinite(out).all() and out.min() >= -1e-3 and out.max() <= 255 + 1e-3
        changed += np.abs(out - crop).max() > 20
    assert changed >= len(faces) - 1


def test_distractors_on_a_covering_keep_its_mask(faces: FaceSet, occluders: Occluders) -> None:
    plain = replace(SEGMENTER_MIX, clean_p=0.0, distractor_p=0.0, degrade_p=0.0,
                    photometric_p=0.0, flip_p=0.0)
    busy = replace(plain, distractor_p=1.0)
    differ = 0
    for k in range(8):
        a = OcclusionDataset(faces, occluders, plain, seed=6).sample(k)
        b = OcclusionDataset(faces, occluders, busy, seed=6).sample(k)
        np.testing.assert_array_equal(a.mask_hw, b.mask_hw)
        differ += not np.array_equal(a.masked_rgb, b.masked_rgb)
    assert differ >= 6


def test_validity_marks_the_replicated_border(faces: FaceSet, occluders: Occluders) -> None:
    """The tight celeba crops end at the chin: the bottom of the canonical crop is border."""
    assert faces.valid_hw is not None and faces.valid_hw.shape == (8, 128, 128)
    assert set(np.unique(faces.valid_hw)) <= {0, 1}
    outer_corners = [mesh.RIGHT_EYE[0], mesh.LEFT_EYE[1]]
    eyes_xy = np.round(faces.landmarks_xy[:, outer_corners].mean(axis=1)).astype(int)
    assert all(faces.valid_hw[i, y, x] == 1 for i, (x, y) in enumerate(eyes_xy))
    assert faces.valid_hw[:, -4:].mean() < 0.2  # below the neck: padding
    sample = OcclusionDataset(faces, occluders, replace(GENERATOR_MIX, flip_p=1.0), seed=0,
                              shuffle=False).sample(0)
    np.testing.assert_array_equal(sample.valid_hw, faces.valid_hw[0, :, ::-1])


def test_split_knows_both_validation_prefixes_and_holds_out_unsplit_sets() -> None:
    names = ("val_1.webp", "train_2.webp", "validation_3.png", *(f"white_{i}.webp"
                                                                   for i in range(10)))
    n = len(names)
    faces = FaceSet(np.zeros((n, 8, 8, 3), np.uint8), np.zeros((n, 468, 2), np.float32), names)
    train, val = split_faces(faces, holdout_every=5)
    assert val.names == ("val_1.webp", "validation_3.png", "white_4.webp", "white_9.webp")
    assert len(train) == n - 4


def test_photometric_changes_colour_but_keeps_the_pair_consistent(
        faces: FaceSet, occluders: Occluders) -> None:
    config = replace(GENERATOR_MIX, photometric_p=1.0, flip_p=0.0)
    dataset = OcclusionDataset(faces, occluders, config, seed=3, shuffle=False)
    for k in range(6):
        s = dataset.sample(k)
        assert not np.array_equal(s.clean_rgb, faces.crops_rgb[k])
        outside = s.mask_hw == 0
        np.testing.assert_array_equal(s.masked_rgb[outside], s.clean_rgb[outside])
