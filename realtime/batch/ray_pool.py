"""Workers as Ray actors, on a local Ray runtime or on a cluster.

    pool = RayPool(run_config, address="local", workers=None, threads=1, n_files=6, n_live=0)

Each actor reserves ``threads`` CPUs (so Ray never places more of them on a node than it has
cores) and loads the pipeline once. Actors are restarted by Ray when their process dies
(``max_restarts=-1``); the task that was running is not retried by Ray
(``max_task_retries=0``) but reported, so the job retries it once, as with local workers.
A small hub actor adds up the frames for the progress bar and carries the stop request.

Ray is an optional extra (``pip install 'realtime-unmask[ray]'``), imported here only.
On a cluster, every node needs realtime-unmask installed (the same version), and the inputs
and ``--out`` must be reachable under the same paths from every node (a shared file system),
or be URLs.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import TYPE_CHECKING, Any

from realtime.batch.local import describe_error
from realtime.batch.tasks import Died, Event, Finished, Outcome, Progress, Ready, Task
from realtime.batch.worker import ProcessInput, Worker, process_input
from realtime.types import UnmaskError

if TYPE_CHECKING:
    from realtime.loop import RunConfig

_START_DEATHS = 2  # an actor that dies this often while loading will not load


def import_ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise UnmaskError("--ray needs Ray, which is not installed here: "
                          "pip install 'realtime-unmask[ray]'") from exc
    return ray


class _Hub:
    """Frames processed since the job last asked, and whether the job is stopping."""

    def __init__(self) -> None:
        self.frames, self.stopping = 0, False

    def report(self, frames: int) -> bool:
        self.frames += frames
        return self.stopping

    def take(self) -> int:
        frames, self.frames = self.frames, 0
        return frames

    def stop(self) -> None:
        self.stopping = True


class _ActorWorker:
    """A Ray actor around ``Worker``: loads once, then processes one input per call."""

    def __init__(self, run_config: RunConfig, threads: int, process: ProcessInput) -> None:
        self._process, self._stopping = process, False
        self._worker: Worker | None = None
        self._error: str | None = None
        try:
            self._worker = Worker(run_config, threads=threads)
        except Exception as exc:  # answered by ready(); the job stops with this one line
            self._error = describe_error(exc)

    def ready(self) -> tuple[str, str | None]:
        return (self._worker.engines_line if self._worker else "", self._error)

    def run(self, task: Task, attempt: int, hub: Any) -> Outcome:
        if self._worker is None:
            return Outcome(task.input, task.output, "failed", error=self._error,
                           attempts=attempt)
        import ray

        def report(frames: int) -> None:
            self._stopping = ray.get(hub.report.remote(frames))

        return self._process(task, self._worker, report=report,
                             should_stop=lambda: self._stopping, attempt=attempt)


class RayPool:
    """Actors on the Ray runtime this process is connected to (or connects to)."""

    def __init__(self, run_config: RunConfig, *, address: str, workers: int | None,
                 threads: int, n_files: int, n_live: int,
                 process: ProcessInput = process_input) -> None:
        ray = self._ray = import_ray()
        self._owns = not ray.is_initialized()  # a test or an embedding program may have
        if self._owns:
            _connect(ray, address)
        cpus = int(ray.cluster_resources().get("CPU", 1))
        # As locally, one worker per two CPUs by default; SPREAD puts them on as many nodes
        # as it can, so no node gets more actors than it has pairs of cores.
        self.size = min(workers or max(1, cpus // (2 * threads)), n_files) + n_live
        nodes = sum(1 for n in ray.nodes() if n.get("Alive"))
        self.description = (f"{self.size} Ray actor{'s' if self.size != 1 else ''} x "
                            f"{threads} thread{'s' if threads != 1 else ''} on {nodes} "
                            f"node{'s' if nodes != 1 else ''} ({cpus} CPUs)")
        self._hub = ray.remote(num_cpus=0)(_Hub).remote()
        actor = ray.remote(num_cpus=threads, max_restarts=-1, max_task_retries=0,
                           scheduling_strategy="SPREAD")(_ActorWorker)
        # The hub goes with each call, not to the constructor: Ray warns that a restarted
        # actor cannot get back constructor arguments that live in the object store.
        self._actors = [actor.remote(run_config, threads, process)
                        for _ in range(self.size)]
        self._ready = [False] * self.size
        self._busy = [False] * self.size
        self._start_deaths = [0] * self.size
        self._refs: dict[Any, tuple[int, Task | None]] = {
            a.ready.remote(): (i, None) for i, a in enumerate(self._actors)}

    def idle_slots(self) -> list[int]:
        return [i for i in range(self.size) if self._ready[i] and not self._busy[i]]

    def submit(self, slot: int, task: Task, attempt: int) -> None:
        self._busy[slot] = True
        self._refs[self._actors[slot].run.remote(task, attempt, self._hub)] = (slot, task)

    def poll(self, timeout_s: float) -> list[Event]:
        ray = self._ray
        refs = list(self._refs)
        if not refs:
            time.sleep(timeout_s)
            return []
        done, _ = ray.wait(refs, num_returns=1, timeout=timeout_s)
        if done:
            done, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
        events: list[Event] = []
        frames = ray.get(self._hub.take.remote())
        if frames:
            events.append(Progress(-1, frames))
        for ref in done:
            events.extend(self._result(ref, *self._refs.pop(ref)))
        return events

    def _result(self, ref: Any, slot: int, task: Task | None) -> list[Event]:
        ray = self._ray
        try:
            value = ray.get(ref)
        except ray.exceptions.RayActorError as exc:
            reason = f"its worker died ({_first_line(exc)})"
            if task is not None:
                self._busy[slot] = False
                return [Died(slot, task, reason)]
            self._start_deaths[slot] += 1  # Ray restarts it; ask again, up to a point
            if self._start_deaths[slot] >= _START_DEATHS:
                return [Ready(slot, "", reason)]
            self._refs[self._actors[slot].ready.remote()] = (slot, None)
            return []
        except ray.exceptions.RayError as exc:  # the task itself broke inside Ray
            if task is None:
                return [Ready(slot, "", _first_line(exc))]
            self._busy[slot] = False
            return [Finished(slot, task, Outcome(task.input, task.output, "failed",
                                                 error=_first_line(exc)))]
        if task is None:
            self._ready[slot] = value[1] is None
            return [Ready(slot, *value)]
        self._busy[slot] = False
        return [Finished(slot, task, value)]

    def stop(self) -> None:
        self._hub.stop.remote()

    def close(self) -> None:
        for actor in self._actors:
            self._ray.kill(actor)
        self._ray.kill(self._hub)
        if self._owns:
            self._ray.shutdown()


def _connect(ray: Any, address: str) -> None:
    """``local``: a new Ray runtime on this machine; otherwise join the cluster at ADDRESS.

    ``ray.init`` installs its own SIGTERM handler; the one in place before (the command's,
    which stops the job cleanly) is put back.
    """
    quiet = {"log_to_driver": False, "logging_level": "warning"}
    sigterm = signal.getsignal(signal.SIGTERM)
    try:
        if address == "local":
            ray.init(address="local", include_dashboard=False,
                     num_cpus=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                     else os.cpu_count(), **quiet)
        else:
            ray.init(address=address, **quiet)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise UnmaskError(f"--ray {address}: cannot start or join Ray: {_first_line(exc)}"
                          ) from exc
    if threading.current_thread() is threading.main_thread() and sigterm is not None:
        signal.signal(signal.SIGTERM, sigterm)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    line = text[0] if text else type(exc).__name__
    return line if len(line) <= 240 else line[:237] + "..."
