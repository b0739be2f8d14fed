"""Local workers: one spawned process per slot, each with its own pipe to the job.

    pool = LocalPool(run_config, size=2, threads=1)
    pool.submit(0, task, attempt=1)
    for event in pool.poll(0.2): ...          # Ready, Progress, Finished, Died

Not ``concurrent.futures.ProcessPoolExecutor``: when one of its workers dies it breaks the
whole pool and fails every pending future without saying whose input killed it. Here each
slot knows the one task it holds, so only that task is retried and only that process is
replaced. Workers ignore SIGINT, SIGTERM and SIGHUP (a Ctrl-C reaches the whole process
group): the job decides when to stop, and tells them through an Event.
"""

from __future__ import annotations

import multiprocessing
import signal
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import TYPE_CHECKING, Any

from realtime.batch.tasks import Died, Event, Finished, Progress, Ready, Task
from realtime.batch.worker import ProcessInput, Worker, process_input

if TYPE_CHECKING:
    from realtime.loop import RunConfig

_JOIN_S = 15.0  # a worker finishing a live recording writes its trailer first
_START_DEATHS = 2  # processes that die while loading before the job gives up


@dataclass
class _Slot:
    process: Any
    conn: Connection
    task: Task | None = None
    ready: bool = False
    """It has loaded the pipeline."""
    retired: bool = False
    """Takes no more tasks: its start failed, or it ended while the job was stopping."""


class LocalPool:
    """``size`` worker processes on this machine, each loading the pipeline once."""

    def __init__(self, run_config: RunConfig, *, size: int, threads: int,
                 process: ProcessInput = process_input) -> None:
        self._ctx = multiprocessing.get_context("spawn")  # no forked MediaPipe/ORT state
        self._stop = self._ctx.Event()
        self._args = (run_config, threads, process)
        self.size = size
        self._start_deaths = 0
        self.description = (f"{size} local worker{'s' if size != 1 else ''} x {threads} "
                            f"thread{'s' if threads != 1 else ''}")
        self._slots = [self._start(i) for i in range(size)]

    def _start(self, index: int) -> _Slot:
        parent, child = self._ctx.Pipe()
        process = self._ctx.Process(target=serve, args=(child, self._stop, *self._args),
                                    name=f"realtime-unmask batch worker {index}", daemon=True)
        process.start()
        child.close()
        return _Slot(process, parent)

    def idle_slots(self) -> list[int]:
        return [i for i, s in enumerate(self._slots) if s.task is None and not s.retired]

    def submit(self, slot: int, task: Task, attempt: int) -> None:
        s = self._slots[slot]
        s.task = task
        try:
            s.conn.send((task, attempt))
        except OSError:
            pass  # the worker is gone; poll() sees its exit and reports the task

    def poll(self, timeout_s: float) -> list[Event]:
        active = [s for s in self._slots if not s.retired]
        if active:
            wait([s.conn for s in active] + [s.process.sentinel for s in active], timeout_s)
        events: list[Event] = []
        for index, slot in enumerate(self._slots):
            if slot.retired:
                continue
            events.extend(self._drain(index, slot))
            if slot.process.exitcode is not None:
                events.extend(self._replace(index, slot))
        return events

    def _drain(self, index: int, slot: _Slot) -> list[Event]:
        events: list[Event] = []
        while True:
            try:
                if not slot.conn.poll():
                    return events
                kind, *payload = slot.conn.recv()
            except (EOFError, OSError):
                return events
            if kind == "frames":
                events.append(Progress(index, payload[0]))
            elif kind == "ready":
                slot.ready, slot.retired = True, payload[1] is not None
                events.append(Ready(index, payload[0], payload[1]))
            elif kind == "outcome" and slot.task is not None:
                events.append(Finished(index, slot.task, payload[0]))
                slot.task = None

    def _replace(self, index: int, slot: _Slot) -> list[Event]:
        code, task = slot.process.exitcode, slot.task
        slot.conn.close()
        reason = (f"killed by {signal.Signals(-code).name}" if code < 0
                  else f"exited with status {code}")
        if not slot.ready:  # died while loading: once may be bad luck, twice will not load
            self._start_deaths += 1
            if self._start_deaths >= _START_DEATHS:
                self._slots[index] = _Slot(slot.process, slot.conn, retired=True)
                return [Ready(index, "", f"its process died while loading ({reason})")]
        if self._stop.is_set():  # the job is ending: no new worker
            self._slots[index] = _Slot(slot.process, slot.conn, retired=True)
        else:
            self._slots[index] = self._start(index)
        return [] if task is None else [Died(index, task, f"its worker died ({reason})")]

    def stop(self) -> None:
        self._stop.set()

    def close(self) -> None:
        self._stop.set()
        for slot in self._slots:
            try:
                slot.conn.send(None)
            except OSError:
                pass
        for slot in self._slots:
            slot.process.join(_JOIN_S)
            if slot.process.exitcode is None:
                slot.process.kill()  # SIGTERM is ignored by design
                slot.process.join()
            slot.conn.close()


def serve(conn: Connection, stop: Any, run_config: RunConfig, threads: int,
          process: ProcessInput) -> None:
    """A worker process's life: load once, then take tasks until told None."""
    for name in ("SIGINT", "SIGTERM", "SIGHUP"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_IGN)
    try:
        worker = Worker(run_config, threads=threads)
    except Exception as exc:  # reported to the job, which stops with this one line
        conn.send(("ready", "", describe_error(exc)))
        return
    conn.send(("ready", worker.engines_line, None))
    try:
        while True:
            try:
                message = conn.recv()
            except EOFError:
                return  # the job is gone
            if message is None:
                return
            task, attempt = message
            outcome = process(task, worker, report=lambda n: conn.send(("frames", n)),
                              should_stop=stop.is_set, attempt=attempt)
            conn.send(("outcome", outcome))
    finally:
        worker.close()


def describe_error(exc: BaseException) -> str:
    from engines import EngineError
    from realtime.types import UnmaskError

    if isinstance(exc, UnmaskError | EngineError | ValueError | OSError):
        return str(exc)
    return f"internal error: {type(exc).__name__}: {exc}"
