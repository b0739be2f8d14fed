"""The landmark guide: lines where the lower face's mesh edges are, nothing elsewhere."""

from __future__ import annotations

import numpy as np

from realtime.face import mesh
from realtime.face.guide import draw_guide, draw_guides


def _landmarks(seed: int = 0) -> np.ndarray:
    """468 points spread over the middle of a 128 px crop."""
    return np.random.default_rng(seed).uniform(40, 90, (mesh.NUM_LANDMARKS, 2)).astype(
        np.float32)


def test_no_landmarks_is_an_empty_guide() -> None:
    guide = draw_guide(None, 64)
    assert guide.shape == (64, 64) and guide.dtype == np.float32 and not guide.any()


def test_the_guide_lies_on_the_edges_it_draws() -> None:
    marks = _landmarks()
    guide = draw_guide(marks, 128)
    assert guide.max() <= 1.0 and guide.max() > 0.5
    for a, b in mesh.GUIDE_EDGES[::7]:  # the middle of an edge is on its line
        x, y = np.round((marks[a] + marks[b]) / 2).astype(int)
        assert guide[y - 1:y + 2, x - 1:x + 2].max() > 0.2
    used = sorted({i for edge in mesh.GUIDE_EDGES for i in edge})
    lo, hi = marks[used].min(axis=0), marks[used].max(axis=0)
    outside = np.ones_like(guide, bool)
    outside[int(lo[1]) - 2:int(hi[1]) + 3, int(lo[0]) - 2:int(hi[0]) + 3] = False
    assert not guide[outside].any()


def test_points_the_guide_does_not_draw_do_not_move_it() -> None:
    marks = _landmarks()
    moved = marks.copy()
    unused = sorted(set(range(mesh.NUM_LANDMARKS)) - {i for e in mesh.GUIDE_EDGES for i in e})
    moved[unused] += 20  # the eyes, the brow, the forehead
    np.testing.assert_array_equal(draw_guide(moved, 128), draw_guide(marks, 128))


def test_the_guide_follows_the_face() -> None:
    marks = _landmarks()
    shifted = draw_guide(marks + np.float32([5, 3]), 128)
    np.testing.assert_array_equal(shifted[3:, 5:], draw_guide(marks, 128)[:-3, :-5])


def test_draw_guides_stacks_faces_and_keeps_missing_ones_empty() -> None:
    guides = draw_guides([_landmarks(1), None], 128)
    assert guides.shape == (2, 128, 128) and guides[0].any() and not guides[1].any()
    assert draw_guides([], 32).shape == (0, 32, 32)
