"""How many pictures of a folder have a face found and painted, through the product's picture
path (``Unmasker.process_image``: ``realtime.picture``'s borders).

    python -m benchmarks.pictures ../shared/data/masked_real            # masked: painted = hits
    python -m benchmarks.pictures ../shared/data/faces/celebahq_192 --prefix val_   # false marks
    python -m benchmarks.pictures ../shared/data/faces/utkface_160 --every 5

Prints one line (pictures, faces found, painted); ``--json`` also writes each picture's result.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

EXTENSIONS = {".png", ".jpg", ".jpeg", ".webp", ".bmp"}


def count(paths: list[Path], *, progress: bool = True, segmenter: Path | None = None) -> dict:
    """{"pictures", "found", "painted", "each": {name: [found, painted]}} with the bundled
    nets (or ``segmenter``, a checkpoint) on the fastest backend here."""
    from tqdm import tqdm

    from realtime import Unmasker

    each: dict[str, list[bool]] = {}
    with Unmasker(label=False, segmenter_checkpoint=segmenter) as unmasker:
        for path in tqdm(paths, disable=not progress, unit="picture"):
            result = unmasker.process_image(path)
            each[path.name] = [bool(result.faces), bool(result.painted)]
    return {"pictures": len(each), "found": sum(f for f, _ in each.values()),
            "painted": sum(p for _, p in each.values()), "each": each}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.pictures",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--prefix", default="", help="only files whose names start so")
    parser.add_argument("--every", type=int, default=1, metavar="N", help="every Nth file")
    parser.add_argument("--limit", type=int, default=None, metavar="N", help="at most N files")
    parser.add_argument("--json", type=Path, default=None, metavar="FILE")
    parser.add_argument("--segmenter", type=Path, default=None, metavar="CHECKPOINT",
                        help="a segmenter checkpoint instead of the bundled one")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    if not args.folder.is_dir():
        print(f"error: {args.folder} is not a folder", file=sys.stderr)
        return 2
    if args.every < 1:
        print("error: --every must be at least 1", file=sys.stderr)
        return 2
    paths = sorted(p for p in args.folder.iterdir()
                   if p.suffix.lower() in EXTENSIONS and p.name.startswith(args.prefix))
    paths = paths[::args.every][:args.limit]
    if not paths:
        print(f"error: no pictures in {args.folder}", file=sys.stderr)
        return 2
    if args.segmenter is not None and not args.segmenter.is_file():
        print(f"error: segmenter checkpoint not found: {args.segmenter}", file=sys.stderr)
        return 2
    summary = count(paths, progress=not args.no_progress, segmenter=args.segmenter)
    n = summary["pictures"]
    print(f"{args.folder.name}: {n} picture{'' if n == 1 else 's'}, a face found in "
          f"{summary['found']}, painted {summary['painted']}")
    if args.json is not None:
        args.json.write_text(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
