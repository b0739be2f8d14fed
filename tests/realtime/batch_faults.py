"""Worker behaviours for the batch tests, importable by spawned worker processes.

A marker file beside the outputs says whether an input already killed a worker once.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

from realtime.batch.worker import process_input


def dies_on_some_inputs(task, worker, **kwargs):
    """``once_*`` inputs kill their first worker with SIGKILL (as the OOM killer would);
    ``always_*`` inputs make every worker exit on them; the others are processed."""
    name = Path(task.input).name
    marker = Path(task.output).with_name(f".killed-{name}")
    if name.startswith("once_") and not marker.exists():
        marker.touch()
        os.kill(os.getpid(), signal.SIGKILL)
    if name.startswith("always_"):
        os._exit(7)
    return process_input(task, worker, **kwargs)
