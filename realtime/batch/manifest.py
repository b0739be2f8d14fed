"""The job manifest: one JSON line per finished attempt, in the output folder.

    manifest = Manifest(Path("out") / MANIFEST_NAME)
    manifest.append(outcome)              # written and flushed at once
    manifest.latest()["/in/a.mp4"].status # the last word on each input

It is only ever appended to, one ``write`` per line, so a job that is killed leaves at worst a
torn last line, which reading skips. The latest line for an input is its state: a second run
skips inputs whose latest line says ``done`` (and whose output is still there) and does the
others again.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

from realtime.batch.tasks import Outcome
from realtime.types import UnmaskError

MANIFEST_NAME = "manifest.jsonl"


class ManifestBusy(UnmaskError):
    """Another job is writing to the same output folder."""


class Manifest:
    """Append-only JSON lines: input, output, status, frames, seconds, error (and more)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.torn_lines = 0
        """Lines that could not be read back (a job killed mid-write), skipped."""

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """For one job's duration: a second job on the same folder fails at once instead of
        doing the same inputs and interleaving its lines (POSIX; elsewhere not checked)."""
        try:
            import fcntl
        except ImportError:
            yield
            return
        with self.path.open("a", encoding="utf-8") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as exc:
                raise ManifestBusy(f"another batch job is writing to {self.path.parent}; "
                                   "wait for it, or give another --out") from exc
            yield

    def latest(self) -> dict[str, Outcome]:
        """Input -> its last recorded outcome."""
        if not self.path.exists():
            return {}
        latest: dict[str, Outcome] = {}
        fields = set(Outcome.__dataclass_fields__)
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
                outcome = Outcome(**{k: v for k, v in record.items() if k in fields})
            except (json.JSONDecodeError, TypeError):
                self.torn_lines += 1
                continue
            latest[outcome.input] = outcome
        return latest

    def append(self, outcome: Outcome) -> None:
        line = json.dumps(outcome.to_json(), ensure_ascii=False) + "\n"
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())
