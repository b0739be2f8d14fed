"""A batch job: plan the inputs, skip what an earlier run finished, run the rest on a pool.

    result = run_batch(BatchConfig(inputs=("archive/",), out_dir=Path("out"),
                                   run=RunConfig(source="")))
    result.failed          # inputs that could not be done (each in out/manifest.jsonl)

Local worker processes by default; ``ray="local"`` starts a Ray runtime on this machine,
``ray="ADDRESS"`` joins a cluster. Either way one failed input never stops the job, a worker
that dies is replaced and its input tried once more, and one progress bar covers the job.
"""

from __future__ import annotations

import os
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from realtime.batch.inputs import PlanError, plan_tasks
from realtime.batch.manifest import MANIFEST_NAME, Manifest
from realtime.batch.tasks import Died, Finished, Outcome, Pool, Progress, Ready, Task
from realtime.batch.worker import ProcessInput, process_input
from realtime.loop import RunConfig
from realtime.types import UnmaskError

_POLL_S = 0.2
_ATTEMPTS = 2  # a worker dying on an input once may be bad luck; twice is the input


class BatchError(UnmaskError):
    """The job could not run at all (a worker could not load the engines...)."""


@dataclass(frozen=True)
class BatchConfig:
    """One ``realtime-unmask batch`` job."""

    inputs: tuple[str, ...]
    """Files, folders, URLs, camera indices and text files listing them."""
    out_dir: Path
    """Where outputs (same names as the inputs) and the manifest go; created if missing."""
    run: RunConfig = field(default_factory=lambda: RunConfig(source=""))
    """Processing options for every input; its source and output are set per input."""
    workers: int | None = None
    """Workers for files (live sources get one more each); None: one per two cores, or per
    two of the Ray cluster's CPUs (each keeps about two busy); never more than there are
    files."""
    threads: int | None = None
    """Inference threads per worker; None: cores // (2 x workers) locally, at least 1, so
    the workers use the cores once between them; 1 on Ray (where each worker reserves that
    many CPUs)."""
    ray: str | None = None
    """None: local processes; "local": a new Ray runtime here; else a Ray cluster's address."""
    progress: bool = True
    """Show the job's progress bar (on a terminal)."""

    def __post_init__(self) -> None:
        if not self.inputs:
            raise ValueError("batch needs at least one INPUT")
        for flag, value in (("--workers", self.workers), ("--threads", self.threads)):
            if value is not None and not 1 <= value <= 1024:
                raise ValueError(f"{flag} must be between 1 and 1024, got {value}")
        if self.ray is not None and not self.ray.strip():
            raise ValueError("--ray needs 'local' or a cluster address, got an empty string")


@dataclass
class BatchResult:
    """What the job did this time."""

    outcomes: list[Outcome]
    """This run's final outcome per input it ran."""
    skipped: int
    """Inputs left alone because an earlier run did them."""
    not_started: int
    """Inputs still waiting when the job was stopped (the next run does them)."""
    seconds: float
    workers: str
    manifest: Path

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    @property
    def frames(self) -> int:
        return sum(o.frames for o in self.outcomes)

    def summary_line(self) -> str:
        done, seconds = self.count("done"), max(self.seconds, 1e-9)
        line = (f"batch: {done} done, {self.count('failed')} failed, {self.skipped} already "
                f"done before")
        for status, n in (("interrupted", self.count("interrupted")),
                          ("live recordings stopped", self.count("stopped")),
                          ("not started", self.not_started)):
            if n:
                line += f", {n} {status}"
        return (f"{line}; {self.frames} frames in {self.seconds:.1f} s: "
                f"{self.frames / seconds:.1f} frames/s, {done / seconds * 60:.1f} files/min on "
                f"{self.workers}; manifest {self.manifest}")


def run_batch(config: BatchConfig, *, log: Callable[[str], None] = print,
              should_stop: Callable[[], bool] = lambda: False,
              process: ProcessInput = process_input) -> BatchResult:
    """Runs the job to its end (or until ``should_stop()``); the manifest records each input.

    ``process`` is what a worker does with one task (tests wrap it to kill their worker).
    """
    if config.ray is not None:
        from realtime.batch.ray_pool import import_ray

        import_ray()  # before anything is created: a missing extra is one line, at once
    out_dir = config.out_dir.resolve()
    tasks = plan_tasks(config.inputs, out_dir)
    if not tasks:
        raise PlanError(f"no videos or images found in {', '.join(config.inputs)}")
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = Manifest(out_dir / MANIFEST_NAME)
    with manifest.held():
        todo = _still_to_do(tasks, manifest)
        if manifest.torn_lines:
            log(f"{manifest.path}: {manifest.torn_lines} torn line(s) skipped")
        start = time.perf_counter()
        if not todo:
            return BatchResult([], len(tasks), 0, 0.0, "no workers (nothing to do)",
                               manifest.path)
        live = [t for t in todo if t.live]
        pool = _open_pool(config, n_files=len(todo) - len(live), n_live=len(live),
                          process=process)
        try:
            outcomes, not_started = _Job(pool, manifest, config.progress, log).run(
                deque(live + [t for t in todo if not t.live]), should_stop)
        finally:
            pool.close()
    return BatchResult(outcomes, len(tasks) - len(todo), not_started,
                       time.perf_counter() - start, pool.description, manifest.path)


def _still_to_do(tasks: list[Task], manifest: Manifest) -> list[Task]:
    """All but the files an earlier run finished (and whose output is still there)."""
    before = manifest.latest()
    return [t for t in tasks if t.live or t.input not in before
            or before[t.input].status != "done" or not Path(t.output).exists()]


def available_cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _open_pool(config: BatchConfig, *, n_files: int, n_live: int,
               process: ProcessInput) -> Pool:
    if config.ray is not None:
        from realtime.batch.ray_pool import RayPool

        return RayPool(config.run, address=config.ray, workers=config.workers,
                       threads=config.threads or 1, n_files=n_files, n_live=n_live,
                       process=process)
    from realtime.batch.local import LocalPool

    # A worker keeps about two cores busy: the nets on one, its decoder, encoder and
    # MediaPipe on the other. On 2 cores one worker with 1 thread did the most (83 frames/s;
    # 2 threads: 77; two workers: 79; README, "How it scales").
    cores = available_cores()
    size = min(config.workers or max(1, cores // 2), n_files) + n_live
    threads = config.threads or max(1, cores // (2 * size))
    return LocalPool(config.run, size=size, threads=threads, process=process)


class _Job:
    """The dispatch loop: hand tasks to idle slots, record what comes back, retry the dead."""

    def __init__(self, pool: Pool, manifest: Manifest, progress: bool,
                 log: Callable[[str], None]) -> None:
        from tqdm import tqdm

        self.pool, self.manifest, self.log = pool, manifest, log
        self.outcomes: list[Outcome] = []
        self.attempts: dict[str, int] = {}
        self.running = 0
        self.frames, self.first_frame_t = 0, None
        self.stopping = False
        self.bar = tqdm(total=None, unit="input", desc="batch", dynamic_ncols=True,
                        disable=None if progress else True, file=sys.stderr)
        self.ready_seen = False
        self.shown_t = 0.0

    def run(self, pending: deque[Task], should_stop: Callable[[], bool]
            ) -> tuple[list[Outcome], int]:
        self.bar.total = sum(1 for t in pending if not t.live)
        self.bar.refresh()
        try:
            while pending or self.running:
                if not self.stopping and should_stop():
                    self.stopping = True
                    self.pool.stop()
                    self._say(f"stopping: {self.running} running input(s) end (files are "
                              f"abandoned, live recordings kept), {len(pending)} not started")
                if self.stopping and not self.running:
                    break
                if not self.stopping:
                    self._dispatch(pending)
                for event in self.pool.poll(_POLL_S):
                    self._handle(event, pending)
                self._show()
        finally:
            self.bar.close()
        return self.outcomes, len(pending)

    def _dispatch(self, pending: deque[Task]) -> None:
        for slot in self.pool.idle_slots():
            if not pending:
                return
            task = pending.popleft()
            self.attempts[task.input] = self.attempts.get(task.input, 0) + 1
            self.pool.submit(slot, task, self.attempts[task.input])
            self.running += 1

    def _handle(self, event, pending: deque[Task]) -> None:
        if isinstance(event, Ready):
            if event.error is not None:
                raise BatchError(f"a worker could not start: {event.error}")
            if not self.ready_seen:
                self.ready_seen = True
                self._say(f"workers: {self.pool.description}; {event.line}")
        elif isinstance(event, Progress):
            self.frames += event.frames
            self.first_frame_t = self.first_frame_t or time.perf_counter()
        elif isinstance(event, Finished):
            self.running -= 1
            self._record(event.outcome, live=event.task.live)
        elif isinstance(event, Died):
            self.running -= 1
            self._died(event, pending)

    def _died(self, event: Died, pending: deque[Task]) -> None:
        task, attempt = event.task, self.attempts[event.task.input]
        if self.stopping:
            self._record(Outcome(task.input, task.output, "interrupted", error=event.reason,
                                 attempts=attempt), live=task.live)
        elif attempt < _ATTEMPTS:
            self._say(f"retrying {task.input}: {event.reason}")
            pending.appendleft(task)  # live ones first, so they keep a worker each
        else:
            self._record(Outcome(task.input, task.output, "failed", attempts=attempt,
                                 error=f"{event.reason}, on each of {attempt} attempts"),
                         live=task.live)

    def _record(self, outcome: Outcome, *, live: bool) -> None:
        self.manifest.append(outcome)
        self.outcomes.append(outcome)
        if outcome.status == "failed":
            self._say(f"failed: {outcome.input}: {outcome.error}")
        if not live and outcome.status in ("done", "failed"):
            self.bar.update(1)

    def _show(self) -> None:
        parts = []
        if self.first_frame_t is not None:
            elapsed = max(time.perf_counter() - self.first_frame_t, 1e-3)
            parts.append(f"{self.frames / elapsed:.1f} frames/s")
        failed = sum(1 for o in self.outcomes if o.status == "failed")
        if failed:
            parts.append(f"{failed} failed")
        self.bar.set_postfix_str(", ".join(parts), refresh=False)
        now = time.perf_counter()
        if now - self.shown_t >= 1.0:  # frames/s moves even while no input finishes
            self.shown_t = now
            self.bar.refresh()

    def _say(self, line: str) -> None:
        if self.bar.disable:
            self.log(line)
        else:
            self.bar.write(line, file=sys.stderr)
