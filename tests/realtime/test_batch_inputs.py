"""Planning a batch: which inputs INPUT... names, where each output goes, and the manifest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from realtime.batch.inputs import PlanError, output_name, plan_tasks
from realtime.batch.manifest import Manifest, ManifestBusy
from realtime.batch.tasks import Outcome, Task

STARTED = 1_700_000_000.0  # names live recordings


def _touch(root: Path, *names: str) -> None:
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"")


def test_a_folder_gives_every_video_and_image_below_it_at_the_same_relative_path(
        tmp_path: Path) -> None:
    _touch(tmp_path / "archive", "cam1/0900.mp4", "cam1/0901.ts", "cam2/still.JPG",
           "notes.txt", ".hidden.mp4", ".cache/x.mp4", "cam2/.0900.partial.mp4")
    tasks = plan_tasks([str(tmp_path / "archive")], tmp_path / "out")
    rel = {Path(t.input).relative_to(tmp_path / "archive").as_posix():
           Path(t.output).relative_to(tmp_path / "out").as_posix() for t in tasks}
    assert rel == {"cam1/0900.mp4": "cam1/0900.mp4", "cam1/0901.ts": "cam1/0901.mp4",
                   "cam2/still.JPG": "cam2/still.JPG"}
    assert not any(t.live for t in tasks)


def test_a_list_file_names_inputs_relative_to_itself_with_comments(tmp_path: Path) -> None:
    _touch(tmp_path, "lists/a.mp4", "b.mkv")
    listing = tmp_path / "lists" / "job.txt"
    listing.write_text("# morning\na.mp4\n\n  ../b.mkv  \nhttps://host/v/c.webm\n"
                       "rtsp://cam1.local:554/live\n0\n")
    tasks = plan_tasks([str(listing)], tmp_path / "out", started=STARTED)
    out = (tmp_path / "out").resolve()
    assert [(Path(t.output).relative_to(out).as_posix(), t.live) for t in tasks[:3]] == [
        ("a.mp4", False), ("b.mkv", False), ("c.webm", False)]
    assert tasks[2].input == "https://host/v/c.webm"
    stream, camera = tasks[3], tasks[4]
    assert stream.live and Path(stream.output).name.startswith("cam1.local_live_")
    assert camera.live and camera.input == "0" and Path(camera.output).name.startswith(
        "camera0_")


@pytest.mark.parametrize("name,expected", [
    ("clip.mp4", "clip.mp4"), ("clip.MOV", "clip.MOV"), ("a.b.mkv", "a.b.mkv"),
    ("anim.gif", "anim.mp4"), ("tv.ts", "tv.mp4"), ("photo.webp", "photo.webp"),
    ("noext", "noext.mp4"),
])
def test_output_names(name: str, expected: str) -> None:
    assert output_name(name) == expected


@pytest.mark.parametrize("url,live", [
    ("http://host/stream.m3u8", True), ("https://host/files/clip.mp4", False),
    ("rtsp://host/clip.mp4", True), ("rtmp://host/app/key", True),
])
def test_urls_are_live_unless_they_name_a_file(tmp_path: Path, url: str, live: bool) -> None:
    (task,) = plan_tasks([url], tmp_path)
    assert task.live is live and Path(task.output).suffix == ".mp4"


def test_the_outputs_own_folder_and_repeats_are_left_out(tmp_path: Path) -> None:
    _touch(tmp_path, "a.mp4", "unmasked/a.mp4")
    tasks = plan_tasks([str(tmp_path), str(tmp_path / "a.mp4")], tmp_path / "unmasked")
    assert [Path(t.input).name for t in tasks] == ["a.mp4"]


def test_two_inputs_with_one_output_name_are_refused(tmp_path: Path) -> None:
    _touch(tmp_path, "day1/clip.mp4", "day2/clip.mp4")
    with pytest.raises(PlanError, match="would both be written to"):
        plan_tasks([str(tmp_path / "day1/clip.mp4"), str(tmp_path / "day2/clip.mp4")],
                   tmp_path / "out")


def test_a_list_that_names_itself_is_refused(tmp_path: Path) -> None:
    (tmp_path / "loop.txt").write_text("loop.txt\n")
    with pytest.raises(PlanError, match="names itself"):
        plan_tasks([str(tmp_path / "loop.txt")], tmp_path / "out")


def test_a_missing_file_is_still_a_task_so_the_manifest_reports_it(tmp_path: Path) -> None:
    (task,) = plan_tasks([str(tmp_path / "gone.mp4")], tmp_path / "out")
    assert task == Task(str(tmp_path / "gone.mp4"), str(tmp_path / "out" / "gone.mp4"))


def test_the_manifest_keeps_the_latest_line_and_skips_a_torn_one(tmp_path: Path) -> None:
    manifest = Manifest(tmp_path / "manifest.jsonl")
    assert manifest.latest() == {}
    manifest.append(Outcome("/in/a.mp4", "/out/a.mp4", "failed", error="worker died"))
    manifest.append(Outcome("/in/a.mp4", "/out/a.mp4", "done", frames=30, seconds=1.5,
                            attempts=2))
    with manifest.path.open("a") as handle:
        handle.write('{"input": "/in/b.mp4", "out')  # a job killed mid-line
    latest = manifest.latest()
    assert list(latest) == ["/in/a.mp4"] and latest["/in/a.mp4"].status == "done"
    assert manifest.torn_lines == 1
    first = json.loads(manifest.path.read_text().splitlines()[0])
    assert set(first) >= {"input", "output", "status", "frames", "seconds", "error"}


def test_a_second_job_on_the_same_folder_is_refused(tmp_path: Path) -> None:
    manifest = Manifest(tmp_path / "manifest.jsonl")
    with manifest.held():
        with pytest.raises(ManifestBusy, match="another batch job is writing to"):
            with Manifest(manifest.path).held():
                pass
    with Manifest(manifest.path).held():  # free again once the first job ends
        pass
