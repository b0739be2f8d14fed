"""The grows: into the rim that still looks like the covering (or that the segmenter gives
some probability), and no further."""

from __future__ import annotations

import numpy as np
import pytest

from realtime.edges import (
    MIN_SHARE,
    grow,
    guided_grow,
    guided_grow_one,
    prob_grow,
    snap_edges,
    snap_edges_one,
)
from realtime.pipeline import PipelineConfig

SKIN = np.array([200, 150, 120], np.float32)
COVER = np.array([235, 240, 245], np.float32)


def _scene(size: int = 128, rim_px: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(crop RGB, the segmented core: a box, the covering's share of every pixel): a pale
    box on skin whose edge fades out over ``rim_px`` pixels beyond the core."""
    yy, xx = np.mgrid[0:size, 0:size]
    lo, hi = size * 3 // 8, size * 5 // 8
    outside_by = np.maximum.reduce([lo - xx, xx - (hi - 1), lo - yy, yy - (hi - 1),
                                    np.zeros_like(xx)])
    share = (np.clip(1 - outside_by / (rim_px + 1), 0, 1) if rim_px
             else (outside_by == 0).astype(float))
    rgb = SKIN * (1 - share[..., None]) + COVER * share[..., None]
    core = (outside_by == 0).astype(np.float32)
    return np.rint(rgb).astype(np.uint8), core, share


def test_a_faded_rim_is_taken_as_far_as_it_shows_the_covering() -> None:
    rgb, core, share = _scene(rim_px=3)
    grown = guided_grow_one(rgb, core, min_px=0, max_px=4)
    rim = (share > 0) & (core == 0)
    assert np.all(grown >= core)
    assert np.all(grown[rim & (share >= MIN_SHARE + 0.05)] == 1)  # the visible rim is painted
    assert not np.any(grown[share == 0])  # bare skin is not


def test_a_crisp_edge_grows_by_the_minimum_only() -> None:
    rgb, core, _ = _scene(rim_px=0)
    assert np.array_equal(guided_grow_one(rgb, core, min_px=0, max_px=4), core)
    grown = guided_grow_one(rgb, core, min_px=1, max_px=4)
    assert grown.sum() > core.sum()
    assert np.array_equal(grown, guided_grow_one(rgb, core, min_px=1, max_px=1))


def test_a_covering_coloured_like_the_skin_grows_by_the_minimum_only() -> None:
    rgb, core, _ = _scene(rim_px=3)
    flat = np.full_like(rgb, 180)  # no contrast: no rim to see, none to chase
    assert np.array_equal(guided_grow_one(flat, core, 0, 4), core)


def test_the_reach_scales_with_the_crop() -> None:
    small = guided_grow_one(*_scene(128, rim_px=8)[:2], min_px=0, max_px=4)
    large = guided_grow_one(*_scene(256, rim_px=16)[:2], min_px=0, max_px=4)
    assert (large.sum() - _scene(256)[1].sum()) > 3 * (small.sum() - _scene(128)[1].sum())


def test_batches_and_empty_masks() -> None:
    rgb, core, _ = _scene(rim_px=3)
    out = guided_grow(np.stack([rgb, rgb]), np.stack([core, np.zeros_like(core)]), 0, 4)
    assert out.shape == (2, 128, 128) and out.dtype == np.float32
    assert not out[1].any()


def _grows(**fields) -> PipelineConfig:
    """A pipeline configuration without the edge snap: the grows alone."""
    return PipelineConfig(snap_px=0, **fields)


def test_the_pipeline_grows_as_configured() -> None:
    rgb, core, share = _scene(rim_px=3)
    probs = share[None].astype(np.float32)
    fixed = _grows(grow_px=2).grown(rgb[None], core[None], probs)[0]
    np.testing.assert_array_equal(fixed, grow(core[None], 2)[0])
    # a fixed or probability grow reads no colours, so callers need not convert the crops
    assert not _grows(grow_px=2, grow_min_prob=0.4).grow_reads_colours
    np.testing.assert_array_equal(_grows(grow_px=2).grown(None, core[None], probs)[0],
                                  fixed)
    with pytest.raises(ValueError, match="read the crops' colours"):
        _grows(grow_px=0, grow_reach_px=4).grown(None, core[None], probs)
    guided = _grows(grow_px=0, grow_reach_px=4).grown(rgb[None], core[None], probs)[0]
    assert not np.array_equal(fixed, guided)
    np.testing.assert_array_equal(guided, guided_grow_one(rgb, core, 0, 4))
    both = _grows(grow_px=2, grow_reach_px=4).grown(rgb[None], core[None], probs)[0]
    np.testing.assert_array_equal(both, guided_grow_one(rgb, core, 2, 4))  # as measured
    by_prob = _grows(grow_px=2, grow_min_prob=0.4).grown(rgb[None], core[None], probs)[0]
    np.testing.assert_array_equal(by_prob, prob_grow(core[None], probs, 2, 0.4)[0])
    # the guided grow continues from the probability grow, with colours read about the core
    on_prob = _grows(grow_px=2, grow_min_prob=0.4, grow_reach_px=4).grown(
        rgb[None], core[None], probs)[0]
    np.testing.assert_array_equal(on_prob, guided_grow_one(rgb, core, 2, 4, by_prob))
    assert (on_prob >= by_prob).all()
    with pytest.raises(ValueError, match="grow reach"):
        _grows(grow_px=3, grow_reach_px=2)
    with pytest.raises(ValueError, match="grow min probability"):
        PipelineConfig(grow_min_prob=0.5)


def test_the_probability_grow_takes_a_soft_edge_and_not_the_skin_beside_a_crisp_one() -> None:
    _, core, _ = _scene()
    yy, xx = np.mgrid[0:128, 0:128]
    probs = np.where(core > 0, 0.99, 0.01).astype(np.float32)
    soft = (xx >= 80) & (xx < 83) & (yy >= 48) & (yy < 80)   # 3 px fading past the right edge
    probs[soft] = 0.3
    grown = prob_grow(core[None], probs[None], 2, 0.1)[0]
    added = (grown > 0) & (core == 0)
    assert added[soft].sum() == 2 * 32            # two rings of the soft edge, not the third
    assert not added[~soft].any()                 # the crisp edges keep their skin
    np.testing.assert_array_equal(prob_grow(core[None], probs[None], 2, 0.0),
                                  grow(core[None], 2))
    np.testing.assert_array_equal(prob_grow(core[None], probs[None], 0, 0.1), core[None])


def _noisy(rgb: np.ndarray, seed: int = 0, sd: float = 6.0) -> np.ndarray:
    noise = np.random.default_rng(seed).normal(0, sd, rgb.shape)
    return np.clip(rgb + noise, 0, 255).astype(np.uint8)


def test_the_snap_moves_a_misplaced_edge_onto_the_covering_both_ways() -> None:
    rgb, truth, _ = _scene()
    rgb = _noisy(rgb)
    misplaced = np.roll(truth, (2, -2), axis=(0, 1))  # 2 px over skin at the bottom and left,
    #                                                  2 px short at the top and right
    snapped = snap_edges_one(rgb, misplaced, 2)
    assert (misplaced != truth).sum() > 200
    assert (snapped != truth).sum() <= 4
    # no further than the band: an edge 4 px off moves by 2 px at most
    far = np.roll(truth, 4, axis=0)
    moved = snap_edges_one(rgb, far, 2)
    assert (moved != far).sum() > 0
    np.testing.assert_array_equal(moved * (1 - grow(far[None], 2)[0]), 0)  # taken: <= 2 px out
    core = 1 - grow(1 - far[None], 2)[0]
    assert not ((moved < far) & (core > 0)).any()                         # dropped: <= 2 px in


def test_the_snap_keeps_the_segmented_edge_where_colours_do_not_tell() -> None:
    rgb, truth, _ = _scene()
    misplaced = np.roll(truth, 2, axis=0)
    flat = _noisy(np.full_like(rgb, 180))  # covering and skin alike: nothing to snap to
    np.testing.assert_array_equal(snap_edges_one(flat, misplaced, 2), misplaced)
    assert not snap_edges_one(rgb, np.zeros_like(truth), 2).any()
    out = snap_edges(np.stack([rgb, rgb]), np.stack([misplaced, misplaced]), 0)
    np.testing.assert_array_equal(out[0], misplaced)  # 0 px: off


def test_the_snap_scales_with_the_crop() -> None:
    rgb, truth, _ = _scene(256)
    misplaced = np.roll(truth, 4, axis=0)  # 2 px at 128 px
    assert (snap_edges_one(_noisy(rgb), misplaced, 2) != truth).sum() <= 8


def test_a_grow_without_upward_leaves_the_top_edge_where_it_was() -> None:
    _, core, _ = _scene()
    down = grow(core[None], 2, upward=False)[0]
    full = grow(core[None], 2)[0]
    rows = np.nonzero(core.any(1))[0]
    top, bottom = rows[0], rows[-1]
    assert not down[:top].any() and full[:top].any()
    assert down[bottom + 1: bottom + 3].any() and down[:, :48].any()  # down and sideways
    assert (down <= full).all()
    probs = core[None] * 0.9 + 0.05
    by_prob = prob_grow(core[None], probs.astype(np.float32), 2, 0.01, upward=False)[0]
    assert not by_prob[:top].any() and by_prob[bottom + 1:].any()


def test_the_pipeline_snaps_before_it_grows() -> None:
    rgb, truth, share = _scene()
    rgb = _noisy(rgb)
    misplaced = np.roll(truth, 2, axis=0)
    probs = share[None].astype(np.float32)
    config = PipelineConfig(snap_px=2, grow_px=1, grow_upward=False)
    assert config.grow_reads_colours
    np.testing.assert_array_equal(
        config.grown(rgb[None], misplaced[None], probs),
        grow(snap_edges(rgb[None], misplaced[None], 2), 1, upward=False))
    with pytest.raises(ValueError, match="read the crops' colours"):
        config.grown(None, misplaced[None], probs)
    with pytest.raises(ValueError, match="edge snap"):
        PipelineConfig(snap_px=9)
