"""The web page's examples: made from the built-in sample alone, and each one unmasks.

pytest tests/realtime/test_web_examples.py
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image
from standins import standin_engines

from realtime.demo_clip import MASK_RGB
from realtime.web import Settings, WebApp, WebConfig
from realtime.web_examples import CLIP_SECONDS, CLOSE_UP_PX, PageExamples, write_examples


@pytest.fixture(scope="module")
def examples(tmp_path_factory: pytest.TempPathFactory) -> PageExamples:
    return write_examples(tmp_path_factory.mktemp("examples") / "not yet there")


@pytest.fixture
def app() -> Iterator[WebApp]:
    web_app = WebApp(WebConfig(), engines=standin_engines())
    yield web_app
    web_app.close()


def _drawn_mask(image_rgb: np.ndarray) -> np.ndarray:
    """Where the picture is the drawn mask's light blue (bool H x W)."""
    return np.abs(image_rgb.astype(np.float32) - MASK_RGB).max(axis=2) < 40


def test_examples_are_masked_pictures_and_a_clip(examples: PageExamples) -> None:
    photo, close_up = examples.photos
    photo_rgb = np.asarray(Image.open(photo).convert("RGB"))
    close_up_rgb = np.asarray(Image.open(close_up).convert("RGB"))
    assert photo_rgb.shape == (512, 512, 3)
    assert close_up_rgb.shape == (CLOSE_UP_PX, CLOSE_UP_PX, 3)
    assert 0.02 < _drawn_mask(photo_rgb).mean() < 0.2  # a face among a spacesuit and a flag
    assert 0.15 < _drawn_mask(close_up_rgb).mean() < 0.6  # the face fills it
    with av.open(str(examples.clip)) as container:
        frames = sum(1 for _ in container.decode(video=0))
    assert frames == round(CLIP_SECONDS * 25)


@pytest.mark.parametrize("index", [0, 1])
def test_each_example_photo_unmasks(app: WebApp, examples: PageExamples, index: int) -> None:
    path = examples.photos[index]
    shown, _, _, session = app.unmask_image(None, str(path), Settings(label=False))
    in_rgb = np.asarray(Image.open(path).convert("RGB"), np.float32)
    out_rgb = np.asarray(Image.open(shown).convert("RGB"), np.float32)
    # The stand-ins paint the lower 60% of the aligned face white: most of the drawn mask
    # (all but its top edge, over the nose) and little else.
    changed_hw = np.abs(out_rgb - in_rgb).max(axis=2) > 30
    assert changed_hw[_drawn_mask(in_rgb)].mean() > 0.5
    assert changed_hw.mean() < 0.5
    session.close()


def test_example_clip_unmasks(app: WebApp, examples: PageExamples) -> None:
    shown, _, session = app.unmask_video(None, str(examples.clip), Settings())
    assert Path(shown).is_file()
    session.close()
