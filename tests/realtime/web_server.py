"""Runs ``realtime-unmask web`` for the browser test and stops it by itself after a while.

    python tests/realtime/web_server.py SECONDS web --port 7861 --backend onnx

After SECONDS the process interrupts itself the way Ctrl-C would (so the server cleans up its
temporary files), and exits hard a little later if that did not end it.
"""

from __future__ import annotations

import os
import signal
import sys
import threading

from realtime.cli import main


def _stop_later(seconds: float) -> None:
    def interrupt() -> None:
        os.kill(os.getpid(), signal.SIGINT)
        hard = threading.Timer(15.0, os._exit, args=(3,))
        hard.daemon = True
        hard.start()

    timer = threading.Timer(seconds, interrupt)
    timer.daemon = True
    timer.start()


if __name__ == "__main__":
    # A process started in the background of a script inherits SIGINT ignored; Ctrl-C (and
    # the test's own interrupt) must reach the server's shutdown path.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    _stop_later(float(sys.argv[1]))
    sys.exit(main(sys.argv[2:]))
