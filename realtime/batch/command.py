"""The ``realtime-unmask batch`` command line.

    realtime-unmask batch clips/ extra.mp4 --out unmasked/ [--workers N] [--ray local|ADDRESS]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path

from realtime.cli import _add_engine_options, _add_processing_options, _run_config
from realtime.signals import StopSignals

EXIT_SOME_FAILED = 3

EPILOG = """\
inputs:
  video and image files; folders (every video and image below them, written to the same
  relative paths under --out); text files (.txt, .lst, .list) with one input per line; URLs;
  camera indices. Cameras and live streams (rtsp://, rtmp://, http(s) URLs that do not name a
  video file) are recorded until the job is stopped, each on a worker of its own, into
  OUT/<source>_<start time>.mp4.

the manifest:
  OUT/manifest.jsonl gets one JSON line per input as it finishes: input, output, status
  (done, failed, interrupted, stopped), frames, seconds, error, attempts, worker. Running the
  same job again skips what is done and retries the rest. A worker that dies is replaced and
  its input tried once more; a second death marks the input failed.

exit status:
  0      every input done (and live recordings stopped by a signal, if any)
  1      the job could not run (no inputs, a worker could not load the engines, no Ray)
  2      a usage error, or an internal error (a bug)
  3      done, but some inputs failed: each is named in a 'failed:' line and in the manifest
  128+N  stopped by signal N (130 Ctrl-C, 143 SIGTERM): running files are abandoned (no
         output; the next run redoes them), live recordings are finished and kept
"""


def build_batch_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="realtime-unmask batch", epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Unmask many videos, images, streams or cameras at once, on worker\n"
                    "processes on this machine or on a Ray cluster. Each input is processed\n"
                    "end to end by one worker, which loads the models once.")
    parser.add_argument("inputs", nargs="+", metavar="INPUT",
                        help="a file, a folder, a URL, a camera index, or a .txt list of them")
    parser.add_argument("--out", required=True, type=Path, metavar="DIR",
                        help="folder for the outputs (same names as the inputs) and the "
                             "manifest; created if missing")
    parser.add_argument("--workers", type=int, metavar="N",
                        help="worker processes for files (default: one per two cores, or per "
                             "two of the Ray cluster's CPUs: a worker keeps about two busy); "
                             "each live source gets one more")
    parser.add_argument("--threads", type=int, metavar="N",
                        help="inference threads per worker (default: cores / (2 x workers), "
                             "at least 1: each worker's loop, decoding and encoding take about a "
                             "core of their own; on Ray: 1 CPU reserved per worker)")
    parser.add_argument("--ray", metavar="ADDRESS|local",
                        help="run on Ray: 'local' starts a Ray runtime on this machine, an "
                             "address (HOST:6379, or auto on a cluster node) joins a cluster; "
                             "needs the ray extra: pip install 'realtime-unmask[ray]' (Ray "
                             "Client's ray:// addresses also need Ray's client extra)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(stats_json=None)
    _add_processing_options(parser)
    _add_engine_options(parser)
    return parser


def main(argv: Sequence[str], *, log: Callable[[str], None]) -> int:
    args = build_batch_parser().parse_args(argv)
    from realtime.batch.job import BatchConfig, run_batch

    config = BatchConfig(inputs=tuple(args.inputs), out_dir=args.out,
                         run=_run_config(args, source="", output=None, display=False,
                                         progress=False),
                         workers=args.workers, threads=args.threads, ray=args.ray,
                         progress=not args.no_progress)
    with _StopFlag(log) as stop:
        result = run_batch(config, log=log, should_stop=lambda: stop.signum is not None)
    log(result.summary_line())
    if stop.signum is not None:
        return 128 + stop.signum
    return EXIT_SOME_FAILED if result.count("failed") else 0


class _StopFlag(StopSignals):
    """SIGINT, SIGTERM and SIGHUP ask the job to stop: it stops handing out inputs, running
    files are abandoned and live recordings finished. Later signals are ignored (said so).

    A flag rather than an exception: the job loop is talking to its workers and must not be
    cut off in the middle of a message.
    """

    ignored_note = "already stopping"
    stopping_note = "stopping the batch"

    def _stop(self, signum: int) -> None:
        pass  # the flag (``self.signum``) is all: the job loop checks it between messages
