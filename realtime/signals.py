"""Stop signals: SIGINT, SIGTERM and SIGHUP end a run the way Ctrl-C does.

    with StopSignals() as stop:      # the first signal raises StopRequested in the main thread
        run(config)
    if stop.signum is not None: ...  # which one came (the exit status says so too)
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable
from typing import Self


class StopRequested(KeyboardInterrupt):
    """A stop signal arrived; a KeyboardInterrupt, so the loop stops on it as on Ctrl-C."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class StopSignals:
    """SIGINT, SIGTERM and SIGHUP all stop a run the way Ctrl-C does, and say which came.

    The first one raises StopRequested, which the loop turns into a clean stop (the
    output is finished, the summary printed); later ones are ignored so that finishing the
    file cannot be cut short. Handlers are restored on exit.
    """

    _SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP")
                     if hasattr(signal, name))
    ignored_note = "already stopping, finishing the output"
    stopping_note = "stopping"

    def __init__(self, log: Callable[[str], None] | None = None) -> None:
        self.signum: int | None = None
        self._log = log or _stderr
        self._previous: dict[int, object] = {}

    def __enter__(self) -> Self:
        for signum in self._SIGNALS:
            try:
                self._previous[signum] = signal.signal(signum, self._handle)
            except ValueError:  # not the main thread (an embedding program): leave them be
                break
        return self

    def __exit__(self, *exc_info: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum: int, _frame: object) -> None:
        name = signal.Signals(signum).name
        if self.signum is not None:
            self._log(f"{name} ignored: {self.ignored_note}")
            return
        self.signum = signum
        self._log(f"{name}: {self.stopping_note}")
        self._stop(signum)

    def _stop(self, signum: int) -> None:
        raise StopRequested(signum)


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
