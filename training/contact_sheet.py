"""A contact sheet of the segmenter and generator on real masked photos (no labels: for looking).

    python -m training.contact_sheet --images ../shared/data/masked_real --out sheet.png

Each tile shows the photo, the segmented mask tinted over it, and the result. Each photo goes
through the product's own picture path (``realtime.picture``: the tight crops are run with
a border, then cut back), as ``realtime-unmask --input photo.jpg`` does.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
TILE_PX = 160


def _tile(image_bgr: np.ndarray) -> np.ndarray:
    interpolation = cv2.INTER_AREA if max(image_bgr.shape[:2]) > TILE_PX else cv2.INTER_CUBIC
    return cv2.resize(image_bgr, (TILE_PX, TILE_PX), interpolation=interpolation)


def contact_sheet(paths: list[Path], pipeline, *, columns: int = 4,
                  ) -> tuple[np.ndarray, int, int]:
    """Rows of (photo | mask | result) triplets; returns the sheet, how many photos had a face
    and on how many a face was judged to wear a covering (and so was painted)."""
    from realtime.picture import unmask_picture
    from realtime.present import overlay_mask
    from realtime.types import Frame

    tiles, found, covered = [], 0, 0
    for index, path in enumerate(paths):
        image_bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image_bgr is None:
            continue
        frame = Frame(index=index, t_capture=0.0, bgr=image_bgr)
        result = unmask_picture(pipeline, frame)
        found += bool(result.faces)
        covered += any(result.covered)
        mask = result.mask_full_hw if result.mask_full_hw is not None else np.zeros(
            frame.bgr.shape[:2], np.float32)
        triplet = [frame.bgr, overlay_mask(frame.bgr, mask), result.out_bgr]
        tiles.append(np.concatenate([_tile(t) for t in triplet], axis=1))
    blank = np.zeros_like(tiles[0])
    tiles += [blank] * (-len(tiles) % columns)
    rows = [np.concatenate(tiles[i: i + columns], axis=1) for i in range(0, len(tiles), columns)]
    return np.concatenate(rows, axis=0), found, covered


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.contact_sheet",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=Path, default=REPO.parent / "shared/data/masked_real")
    parser.add_argument("--out", type=Path, required=True, help="PNG to write")
    parser.add_argument("--count", type=int, default=24, help="photos to show (default: 24)")
    parser.add_argument("--segmenter", type=Path, help="default: the bundled weights")
    parser.add_argument("--generator", type=Path, help="default: the bundled weights")
    args = parser.parse_args(argv)
    from engines import EngineConfig
    from realtime.pipeline import PipelineConfig, build_pipeline
    from realtime.tracking import TrackerConfig

    paths = sorted(p for p in args.images.iterdir() if p.suffix.lower() in {".png", ".jpg"})
    step = max(1, len(paths) // args.count)
    paths = paths[::step][: args.count]
    engines = EngineConfig(segmenter_checkpoint=args.segmenter,
                           generator_checkpoint=args.generator)
    # Unrelated photos: no smoothing; masks for the tinted middle tile.
    with build_pipeline(PipelineConfig(smoothing=None, want_mask=True), engines=engines,
                        tracker=TrackerConfig(), log=print) as pipeline:
        sheet, found, covered = contact_sheet(paths, pipeline)
    cv2.imwrite(str(args.out), sheet)
    print(f"{args.out}: {len(paths)} photos, a face found in {found}, judged masked (painted) "
          f"in {covered}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
