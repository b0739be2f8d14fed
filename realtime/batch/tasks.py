"""What travels between a batch job and its workers: tasks, outcomes and pool events.

    task = Task(input="/archive/cam1.mp4", output="/out/cam1.mp4", live=False)
    outcome = Outcome(task.input, task.output, "done", frames=300, seconds=12.5)

Both worker pools (``realtime.batch.local``, ``realtime.batch.ray_pool``) take tasks and
answer with the same events, so the job loop (``realtime.batch.job``) is written once.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal, Protocol

Status = Literal["done", "failed", "interrupted", "stopped"]
"""done: the whole input was written; failed: it could not be (``error`` says why);
interrupted: the job was stopped while a file was half done (nothing was kept, the next run
does it again); stopped: a live source was recorded until the job was stopped (kept)."""


@dataclass(frozen=True)
class Task:
    """One input, processed end to end by one worker."""

    input: str
    """An absolute file path, a URL, or a camera index (``"0"``)."""
    output: str
    """The absolute path the result is written to, atomically."""
    live: bool = False
    """A camera or a live stream: it runs until the job is stopped, on a worker of its own."""


@dataclass(frozen=True)
class Outcome:
    """What became of one task: one line of the job manifest."""

    input: str
    output: str
    status: Status
    frames: int = 0
    """Frames processed (and, when done, written)."""
    seconds: float = 0.0
    """Wall time the worker spent on it (not counting start-up)."""
    error: str | None = None
    """Why it failed, in one sentence; None otherwise."""
    attempts: int = 1
    """1, or 2 when a first worker died on this input."""
    worker: str | None = None
    """host:pid of the worker that produced this outcome."""

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Ready:
    """A worker loaded its engines and tracker; ``error`` is set when it could not."""

    slot: int
    line: str
    error: str | None = None


@dataclass(frozen=True)
class Progress:
    """Frames a worker processed since its last report."""

    slot: int
    frames: int


@dataclass(frozen=True)
class Finished:
    """A worker finished a task (well or not) and is free again."""

    slot: int
    task: Task
    outcome: Outcome


@dataclass(frozen=True)
class Died:
    """A worker's process ended while it held ``task``; the slot has a fresh worker."""

    slot: int
    task: Task
    reason: str


Event = Ready | Progress | Finished | Died


class Pool(Protocol):
    """A fixed number of worker slots, each holding at most one task at a time."""

    size: int
    """Number of slots (worker processes or actors)."""
    description: str
    """For the summary: "2 local workers x 1 thread", "4 Ray actors on 2 nodes"."""

    def idle_slots(self) -> list[int]: ...

    def submit(self, slot: int, task: Task, attempt: int) -> None: ...

    def poll(self, timeout_s: float) -> list[Event]: ...

    def stop(self) -> None:
        """Ask running tasks to stop: files are abandoned, live recordings finished."""

    def close(self) -> None: ...
