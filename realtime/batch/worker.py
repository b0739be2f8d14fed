"""One batch worker: the pipeline loaded once, then one input after another through the loop.

    worker = Worker(run_config, threads=1)          # engines + MediaPipe, once
    outcome = process_input(task, worker, report=print, should_stop=lambda: False)

Each input runs through ``realtime.loop.run`` exactly as ``realtime-unmask --input X
--output Y`` would, with the worker's pipeline (reset between inputs, so no face history
leaks from one recording into the next). A small extra sink counts frames for the job's
progress bar and asks whether the job is stopping: a file is then abandoned (its output is
aborted, nothing appears), a live recording is finished and kept.

Both pools run this: ``realtime.batch.local`` in spawned processes, ``realtime.batch.ray_pool``
in Ray actors. Heavy imports happen inside functions, after the thread limits are set.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import socket
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from realtime.batch.tasks import Outcome, Task
from realtime.types import SinkContext

if TYPE_CHECKING:
    from realtime.loop import RunConfig

Report = Callable[[int], None]
ProcessInput = Callable[..., Outcome]

_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


class InputStopped(Exception):
    """Raised inside the loop to abandon a file when the job stops."""


def limit_threads(threads: int) -> None:
    """Keep this process's numeric libraries to ``threads`` threads.

    ONNX Runtime gets the number through ``EngineConfig.threads``; OpenMP/BLAS read their
    variables when first loaded, which in a fresh worker process is after this call.
    """
    for name in _THREAD_VARIABLES:
        os.environ[name] = str(threads)
    import cv2

    cv2.setNumThreads(threads)


class Worker:
    """A pipeline (engines, tracker) built once for a worker process or actor."""

    def __init__(self, run_config: RunConfig, *, threads: int,
                 log: Callable[[str], None] | None = None) -> None:
        limit_threads(threads)
        from realtime.pipeline import build_pipeline

        lines: list[str] = []
        engines = dataclasses.replace(run_config.engines, threads=threads)
        self.config = dataclasses.replace(run_config, engines=engines, progress=False,
                                          display=False, stats_json=None, extra_sinks=())
        self.pipeline = build_pipeline(self.config.pipeline, engines=engines,
                                       tracker=self.config.tracker, log=log or lines.append)
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        self.engines_line = next((ln for ln in lines if ln.startswith("engines:")),
                                 f"engines: {self.pipeline.engines.backend}")

    def close(self) -> None:
        self.pipeline.close()


class ProgressSink(SinkContext):
    """Counts frames for the job's progress bar and carries the job's stop request in."""

    def __init__(self, report: Report, should_stop: Callable[[], bool], *, live: bool,
                 every_s: float = 0.25) -> None:
        self.frames = 0
        self._report, self._should_stop = report, should_stop
        self.live = live
        """A live source is finished and kept when the job stops; a file is abandoned."""
        self._every_s, self._unreported, self._last = every_s, 0, time.monotonic()
        self.quit_requested = False
        """Read by the loop after each frame: True ends a live recording cleanly."""

    def write(self, frame, out_bgr, mask_full_hw) -> None:
        self.frames += 1
        self._unreported += 1
        now = time.monotonic()
        if now - self._last < self._every_s:
            return
        self._last = now
        self.flush()
        if self._should_stop():
            if not self.live:
                raise InputStopped
            self.quit_requested = True

    def flush(self) -> None:
        if self._unreported:
            self._report(self._unreported)
            self._unreported = 0

    def close(self) -> None:
        self.flush()

    def abort(self) -> None:
        self.flush()


def process_input(task: Task, worker: Worker, *, report: Report,
                  should_stop: Callable[[], bool], attempt: int = 1) -> Outcome:
    """Runs one input end to end; never raises for a bad input (the outcome says why)."""
    from realtime.loop import run
    from realtime.sources import open_source

    worker.pipeline.reset()
    counter = ProgressSink(report, should_stop, live=task.live)
    config = dataclasses.replace(worker.config, source=task.input, output=task.output,
                                 extra_sinks=(counter,))
    start = time.perf_counter()

    def outcome(status, frames: int, error: str | None = None) -> Outcome:
        return Outcome(task.input, task.output, status, frames=frames,
                       seconds=round(time.perf_counter() - start, 3), error=error,
                       attempts=attempt, worker=worker.name)

    try:
        os.makedirs(os.path.dirname(task.output), exist_ok=True)
        source = open_source(task.input, reconnect=config.reconnect)
        # The source knows best: an http(s) URL that names a file may still be a live stream.
        counter.live = source.info.live
        summary = run(config, log=lambda _line: None, pipeline=worker.pipeline, source=source)
    except InputStopped:
        return outcome("interrupted", counter.frames, "the job was stopped; nothing was kept")
    except _expected_errors() as exc:
        return outcome("failed", counter.frames, str(exc))
    except Exception as exc:  # a bug on one input must not end the job: it is recorded
        return outcome("failed", counter.frames,
                       f"internal error: {type(exc).__name__}: {exc}")
    finally:
        counter.flush()
    if summary["interrupted"] and not counter.live:  # a KeyboardInterrupt: not the whole file
        with contextlib.suppress(FileNotFoundError):
            os.remove(task.output)
        return outcome("interrupted", summary["frames"], "interrupted; nothing was kept")
    return outcome("stopped" if summary["interrupted"] else "done", summary["frames"])


def _expected_errors() -> tuple[type[BaseException], ...]:
    from engines import EngineError
    from realtime.types import UnmaskError

    return (UnmaskError, EngineError, ValueError, OSError)
