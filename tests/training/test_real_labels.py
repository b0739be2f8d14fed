"""Real masked photos labelled by the segmenter's own answers, and drawn into its batches."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from realtime.covering import MOUTH_NOSE_XY
from training import real_labels, train_segmenter
from training.data import OcclusionDataset, Sample
from training.real_labels import RealLabels, teacher_label

S = 128


def covering_probs() -> np.ndarray:
    """A covering's probabilities on the lower face: a box round the mouth-and-nose point."""
    probs = np.zeros((S, S), np.float32)
    cx, cy = round(MOUTH_NOSE_XY[0] * S), round(MOUTH_NOSE_XY[1] * S)
    probs[cy - 20: cy + 30, cx - 30: cx + 30] = 0.97
    return probs


def segmenter_marking(which: set[int]):
    """A fake segment function marking the covering on the crops at these batch indices."""
    def segment(crops: np.ndarray) -> np.ndarray:
        assert crops.shape == (1 + len(real_labels.TRANSFORMS), S, S, 3)
        return np.stack([covering_probs() if i in which else np.zeros((S, S), np.float32)
                         for i in range(len(crops))])
    return segment


def test_the_plain_crops_covering_is_the_label() -> None:
    crop = np.full((S, S, 3), 120, np.uint8)
    label, how = teacher_label(segmenter_marking({0}), crop)
    assert how == "plain"
    box = covering_probs() > 0.5
    assert label is not None and not label[~box].any()
    assert label.sum() == pytest.approx(box.sum(), rel=0.01)  # the opening rounds the corners


def test_transformed_crops_vote_when_the_plain_one_marks_nothing() -> None:
    crop = np.full((S, S, 3), 120, np.uint8)
    label, how = teacher_label(segmenter_marking({1, 3}), crop)  # mirror and grey
    assert how == "vote" and label is not None and label.any()
    assert teacher_label(segmenter_marking(set()), crop) == (None, "none")
    assert teacher_label(segmenter_marking({1, 3}), crop, min_votes=0) == (None, "none")
    assert teacher_label(segmenter_marking({1, 3}), crop, min_votes=3) == (None, "none")


def test_mirrored_probabilities_are_mirrored_back() -> None:
    """A covering that reaches the right edge of the mirrored crop reaches the left edge of
    the photo's."""
    def segment(crops: np.ndarray) -> np.ndarray:
        probs = np.zeros((len(crops), S, S), np.float32)
        probs[1] = covering_probs()
        rows = np.flatnonzero(probs[1].any(axis=1))
        probs[1][rows[0]: rows[-1] + 1, S // 2: S - 2] = 0.97
        return probs
    label, how = teacher_label(segment, np.full((S, S, 3), 120, np.uint8))
    assert how == "vote" and label is not None
    assert label[:, :8].any() and not label[:, S - 8:].any()


@pytest.fixture()
def labels_file(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 255, (3, S, S, 3), dtype=np.uint8)
    masks = np.stack([(covering_probs() > 0.5).astype(np.uint8)] * 3)
    path = tmp_path / "labels.npz"
    np.savez_compressed(path, crops=crops, masks=masks, names=np.array(["a", "b", "c"]),
                        voted=np.zeros(3, bool))
    return path


def test_real_samples_keep_their_label_through_the_jitter(labels_file: Path) -> None:
    real = RealLabels(labels_file)
    assert len(real) == 3
    truth = covering_probs() > 0.5
    for k in range(8):
        s = real.sample(k, seed=1)
        assert s.masked_rgb.shape == (S, S, 3) and s.masked_rgb.dtype == np.uint8
        assert set(np.unique(s.mask_hw)) <= {0.0, 1.0}
        overlap = (s.mask_hw > 0) & truth
        assert overlap.sum() > 0.7 * truth.sum()  # shifted by at most ~3 px, rotated 5 deg
    again = real.sample(5, seed=1)
    assert np.array_equal(again.masked_rgb, real.sample(5, seed=1).masked_rgb)


def test_missing_or_empty_labels_are_refused(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        RealLabels(tmp_path / "none.npz")
    empty = tmp_path / "empty.npz"
    np.savez(empty, crops=np.zeros((0, S, S, 3), np.uint8), masks=np.zeros((0, S, S)))
    with pytest.raises(ValueError):
        RealLabels(empty)


class Synthetic:
    """Stands in for the OcclusionDataset: every sample is blank with an empty mask."""

    @staticmethod
    def sample(k: int) -> Sample:
        blank = np.zeros((S, S, 3), np.uint8)
        zeros = np.zeros((S, S), np.float32)
        return Sample(blank, zeros, blank, "none", zeros + 1, zeros)

    collate = staticmethod(OcclusionDataset.collate)


def test_batches_take_about_the_share_of_real_photos(labels_file: Path) -> None:
    real = RealLabels(labels_file)
    counts = [int(train_segmenter.mixed_batch(Synthetic(), real, 0.25, step, 16, seed=0)
                  ["mask"].flatten(1).any(1).sum()) for step in range(40)]
    assert 0.15 < sum(counts) / (40 * 16) < 0.35
    same = train_segmenter.mixed_batch(Synthetic(), real, 0.25, 7, 16, seed=0)
    assert int(same["mask"].flatten(1).any(1).sum()) == counts[7]  # resumable: same draw


def test_real_share_needs_its_labels(labels_file: Path, tmp_path: Path) -> None:
    assert train_segmenter.main(["--out", str(tmp_path), "--real-share", "0.2"]) == 1
    assert train_segmenter.main(["--out", str(tmp_path), "--real-labels", str(labels_file),
                                 "--real-share", "1.5"]) == 1


def test_the_command_refuses_a_missing_folder(tmp_path: Path,
                                              capsys: pytest.CaptureFixture) -> None:
    assert real_labels.main([str(tmp_path / "nope"), "--out", str(tmp_path / "x.npz")]) == 1
    assert "not found" in capsys.readouterr().err
