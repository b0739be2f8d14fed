"""Turning the command line's INPUT... into tasks with their output paths.

    tasks = plan_tasks(["archive/", "extra.mp4", "rtsp://cam1/live", "list.txt"], Path("out"))

- a video or image file: one task, written to ``out/<its name>``;
- a folder: every video and image below it, recursively, each written to the same relative
  path under ``out`` (``archive/cam1/0900.mp4`` -> ``out/cam1/0900.mp4``); hidden files and
  anything inside ``out`` itself are left out;
- a text file (``.txt``, ``.lst``, ``.list``): one input per line, lines that start with ``#``
  are comments, relative paths are taken from the list's folder;
- a URL: a finite one (``https://host/clip.mp4``) is written as ``out/clip.mp4``; a live one
  (``rtsp://``, ``rtmp://``, an ``http(s)://`` URL that does not name a video file, e.g. an HLS
  playlist) and a camera index are recorded until the job is stopped, each into a new file
  named after the source and the start time (``rtsp://cam1/live`` ->
  ``out/cam1_live_20250101T120000.mp4``).

Videos whose container the writer does not produce (GIF, MPEG-TS, ...) are written as .mp4.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from urllib.parse import urlparse

from realtime.batch.tasks import Task

VIDEO_INPUTS = frozenset({".mp4", ".mkv", ".mov", ".avi", ".webm", ".m4v", ".mpg", ".mpeg",
                          ".ts", ".mts", ".flv", ".wmv", ".3gp", ".gif", ".ogv"})
WRITABLE_VIDEO = frozenset({".mp4", ".mkv", ".mov", ".avi", ".webm"})  # realtime.sinks
IMAGE_INPUTS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp"})  # realtime.image_io
LIST_FILES = frozenset({".txt", ".lst", ".list"})
LIVE_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "rtmps://")
URL_SCHEMES = (*LIVE_SCHEMES, "http://", "https://")


class PlanError(ValueError):
    """The inputs cannot be turned into a job (a clash of output names, a list that loops)."""


def plan_tasks(specs: Iterable[str], out_dir: Path, *, started: float | None = None,
               ) -> list[Task]:
    """Every input the specs name, in order, once each; raises PlanError on a name clash.

    ``started`` (seconds since the epoch, default now) stamps the names of live recordings.
    """
    out_dir = out_dir.resolve()
    stamp = time.strftime("%Y%m%dT%H%M%S", time.localtime(started))
    tasks: dict[str, Task] = {}
    claimed: dict[str, str] = {}
    for task in _expand(specs, out_dir, stamp, base=Path.cwd(), seen_lists=frozenset()):
        if task.input in tasks:
            continue  # named twice (a folder and a file in it): done once
        other = claimed.setdefault(task.output, task.input)
        if other != task.input:
            raise PlanError(f"{other} and {task.input} would both be written to {task.output}; "
                            "give them in separate jobs or rename one")
        tasks[task.input] = task
    return list(tasks.values())


def _expand(specs: Iterable[str], out_dir: Path, stamp: str, *, base: Path,
            seen_lists: frozenset[Path]) -> Iterator[Task]:
    for raw in specs:
        spec = raw.strip()
        if not spec:
            continue
        if spec.isdigit():
            yield Task(spec, str(out_dir / f"camera{spec}_{stamp}.mp4"), live=True)
        elif spec.lower().startswith(URL_SCHEMES):
            yield _url_task(spec, out_dir, stamp)
        else:
            path = (base / spec).resolve()
            if path.is_dir():
                yield from _folder_tasks(path, out_dir)
            elif path.suffix.lower() in LIST_FILES and path.is_file():
                if path in seen_lists:
                    raise PlanError(f"the list {path} names itself, directly or through others")
                yield from _expand(_read_list(path), out_dir, stamp, base=path.parent,
                                   seen_lists=seen_lists | {path})
            else:
                # Missing or unreadable files become tasks too: the worker reports them in the
                # manifest, and the rest of the job goes on.
                yield Task(str(path), str(out_dir / output_name(path.name)))


def _read_list(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PlanError(f"cannot read the input list {path}: {exc}") from exc
    return [line for line in text.splitlines() if not line.lstrip().startswith("#")]


def _folder_tasks(folder: Path, out_dir: Path) -> Iterator[Task]:
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts) or not path.is_file():
            continue
        if path.is_relative_to(out_dir):
            continue  # `batch . --out unmasked`: never the job's own outputs
        if path.suffix.lower() in VIDEO_INPUTS | IMAGE_INPUTS:
            yield Task(str(path), str(out_dir / rel.parent / output_name(path.name)))


def output_name(name: str) -> str:
    """The output's file name: the input's, with .mp4 for containers the writer lacks."""
    stem, suffix = Path(name).stem, Path(name).suffix.lower()
    if suffix in IMAGE_INPUTS or suffix in WRITABLE_VIDEO:
        return name
    return f"{stem}.mp4"


def _url_task(url: str, out_dir: Path, stamp: str) -> Task:
    parsed = urlparse(url)
    name = Path(parsed.path).name
    finite = (not url.lower().startswith(LIVE_SCHEMES)
              and Path(name).suffix.lower() in VIDEO_INPUTS | IMAGE_INPUTS)
    if finite:
        return Task(url, str(out_dir / output_name(name)))
    label = "_".join(p for p in (parsed.hostname, *parsed.path.split("/")) if p)
    label = re.sub(r"[^A-Za-z0-9._-]+", "-", label or "stream")
    return Task(url, str(out_dir / f"{label}_{stamp}.mp4"), live=True)
