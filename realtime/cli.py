"""The ``realtime-unmask`` command.

    realtime-unmask demo                                  # built-in sample -> unmask_demo.mp4
    realtime-unmask --camera 0                            # live, in a window
    realtime-unmask --input street.mp4 --output out.mp4   # a recorded video
    realtime-unmask --input photos/ --output unmasked/ --save-masks
    realtime-unmask compile                               # ONNX (and TensorRT on NVIDIA GPUs)
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from realtime.signals import StopRequested, StopSignals

DESCRIPTION = """\
Remove face masks from faces in live or recorded video, in real time.

Faces are found with MediaPipe, the mask region is segmented by a small U-Net, and a GAN
generator paints the face under it. The painted face is a plausible guess, not the hidden
identity; written outputs say so in their metadata and carry a 'reconstructed' tag.
"""

COMMANDS_HELP = """\
commands (run 'realtime-unmask COMMAND --help'):
  demo      run the whole pipeline on a built-in sample and write unmask_demo.mp4
  compile   export the nets to ONNX (and TensorRT engines on NVIDIA GPUs) into the cache
  train     train the segmenter or the inpainter: 'train segmenter|inpainter --help'
  evaluate  segmenter coverage and false marks; generator PSNR/SSIM/LPIPS/identity vs Telea
  web       the browser demo (Gradio) on http://127.0.0.1:7860: photos, videos, webcam
  batch     many files, folders, URLs or cameras on local workers or a Ray cluster
  bench     speed, latency, quality and flicker with baselines -> report.md, JSON, plots

examples:
  realtime-unmask --camera 0
  realtime-unmask --input clip.mp4 --output clip_unmasked.mp4 --stats-json stats.json
  realtime-unmask --input rtsp://camera.local/stream --output cam/rec.mp4 --segment-seconds 600
  realtime-unmask --input photos/ --output unmasked/ --save-masks

exit status:
  0      done
  1      an error, said in one line; no half-written output is left behind
  2      a usage error, or an internal error (a bug)
  3      done, but some images of the input folder could not be read: each is named in a
         'skipped:' line, the others were written, and the summary counts them
  128+N  stopped by signal N: 130 SIGINT (Ctrl-C), 143 SIGTERM (timeout, docker stop,
         systemd), 129 SIGHUP (terminal closed). Each stops reading, finishes the output
         (a playable video up to the last processed frame) and prints the summary; further
         signals while it finishes are ignored
"""

EXIT_SOME_INPUTS_FAILED = 3


def _add_engine_options(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("models and engines")
    g.add_argument("--backend", choices=["auto", "tensorrt", "onnx", "torch"], default="auto",
                   help="inference backend; auto tries TensorRT, ONNX Runtime (CUDA, then CPU), "
                        "then PyTorch and prints which one runs (default: auto)")
    g.add_argument("--crop", type=int, choices=[128, 256], default=128,
                   help="side of the aligned face crop in pixels (default: 128, real time)")
    g.add_argument("--segmenter", type=Path, metavar="FILE",
                   help="segmenter checkpoint (.safetensors; default: the bundled one)")
    g.add_argument("--generator", type=Path, metavar="FILE",
                   help="generator checkpoint (.safetensors; default: the bundled one)")
    g.add_argument("--random-weights", action="store_true",
                   help="ignore the bundled weights and use random ones (to measure speed "
                        "independently of training)")
    g.add_argument("--cache-dir", type=Path, metavar="DIR",
                   help="where compiled engines are kept (default: the user cache folder)")


def _add_processing_options(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("processing")
    g.add_argument("--max-faces", type=int, default=4, metavar="N",
                   help="most faces processed per frame, 1-16 (default: 4)")
    g.add_argument("--inpainter", choices=["gan", "telea"], default="gan",
                   help="'gan': the trained generator; 'telea': OpenCV inpainting, a baseline "
                        "(default: gan)")
    g.add_argument("--no-covering-check", dest="covering_check", action="store_false",
                   help="paint whatever the segmenter marks below the eyes, also on faces it "
                        "does not judge to wear a covering (default: only covered faces, only "
                        "the covering; see 'Which faces are painted' in the README)")
    g.add_argument("--smoothing", type=float, default=0.5, metavar="ALPHA",
                   help="weight of the newest frame in the per-face mask average, in (0, 1]; "
                        "lower is steadier; the painted face is averaged too (at 0.5) unless "
                        "this is 1, which turns all smoothing off (default: 0.5)")
    g.add_argument("--show-mask", action="store_true", help="tint the painted region")
    g.add_argument("--side-by-side", action="store_true",
                   help="output the input and the result next to each other")
    g.add_argument("--label", action=argparse.BooleanOptionalAction, default=True,
                   help="draw a small 'reconstructed' tag on written frames (default: on)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="realtime-unmask", description=DESCRIPTION, epilog=COMMANDS_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    inputs = parser.add_argument_group("input (--camera or --input)")
    src = inputs.add_mutually_exclusive_group()
    src.add_argument("--camera", type=int, metavar="INDEX", help="a camera, e.g. 0")
    src.add_argument("--input", metavar="PATH|URL",
                     help="a video file (mp4, mkv, avi, mov, webm, gif...), an image, a folder "
                          "of images (jpg, png, webp, bmp), or an rtsp:// or http(s):// stream")
    inputs.add_argument("--reconnect", action=argparse.BooleanOptionalAction, default=None,
                        help="reconnect with back-off when a network input drops; --reconnect "
                             "also replays a finite one (an HTTP file, HLS VOD) forever, "
                             "--no-reconnect ends a live one at its first drop (default: live "
                             "streams reconnect, finite ones end with their last frame)")
    out = parser.add_argument_group("output")
    out.add_argument("--output", metavar="PATH",
                     help="a video file (H.264 mp4/mkv/mov/avi, VP9 webm, with the input's "
                          "audio), an image file, or a folder for images (created if missing); "
                          "a video is NAME.recording.EXT until the run ends, playable up to "
                          "its last second or so if the run is killed (SIGKILL, power loss)")
    out.add_argument("--segment-seconds", type=float, metavar="N",
                     help="cut a video output into files of N seconds, each complete on its "
                          "own: NAME_000.EXT, NAME_001.EXT..., numbered on from any there")
    out.add_argument("--virtual-camera", nargs="?", const=True, default=False,
                     metavar="DEVICE",
                     help="also send the output to a virtual camera that video-call apps can "
                          "pick (v4l2loopback on Linux, OBS on Windows/macOS; needs the "
                          "virtualcam extra); DEVICE e.g. /dev/video10 (default: the first)")
    out.add_argument("--display", action=argparse.BooleanOptionalAction, default=None,
                     help="show a window with FPS and latency; q or Esc quits "
                          "(default: on for cameras)")
    out.add_argument("--save-masks", action="store_true",
                     help="with a folder output: also write masks/<name>.png (0/255)")
    out.add_argument("--stats-json", metavar="FILE",
                     help="write frame counts, FPS and per-stage latency p50/p95 here")
    out.add_argument("--max-frames", type=int, metavar="N", help="stop after N frames")
    out.add_argument("--simulate-live", type=float, metavar="FPS",
                     help="play a video file as if it were a camera at FPS: frames arrive in "
                          "real time and stale ones are dropped (to test live latency)")
    out.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    _add_processing_options(parser)
    _add_engine_options(parser)
    return parser


def build_demo_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="realtime-unmask demo",
        description="Render a short built-in clip (the public-domain astronaut photo that "
                    "scikit-image ships, with a face mask drawn on and camera motion), run the "
                    "whole pipeline on it and write the input beside the result.")
    parser.add_argument("--output", default="unmask_demo.mp4", metavar="FILE",
                        help="where to write the side-by-side video (default: unmask_demo.mp4)")
    parser.add_argument("--seconds", type=float, default=4.0, help="clip length (default: 4)")
    parser.add_argument("--stats-json", metavar="FILE", help="write the run's statistics here")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    _add_processing_options(parser)
    _add_engine_options(parser)
    return parser


def build_compile_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="realtime-unmask compile",
        description="Export the segmenter and generator to ONNX (checked against PyTorch) and, "
                    "on an NVIDIA GPU with torch-tensorrt, build TensorRT engines, into the cache. "
                    "Elsewhere TensorRT is skipped with the reason, and the command still "
                    "succeeds.")
    parser.add_argument("--precision", choices=["fp16", "fp32"], default="fp16",
                        help="TensorRT precision (default: fp16; the CPU always runs fp32)")
    parser.add_argument("--max-faces", type=int, default=4, metavar="N",
                        help="largest batch the engines accept (default: 4)")
    _add_engine_options(parser)
    return parser


def _engine_config(args: argparse.Namespace, **fields: Any):
    """The ``models and engines`` options (``_add_engine_options``) as an ``EngineConfig``."""
    from engines import EngineConfig

    return EngineConfig(**{"backend": args.backend, "crop_size": args.crop,
                           "segmenter_checkpoint": args.segmenter,
                           "generator_checkpoint": args.generator, "cache_dir": args.cache_dir,
                           "random_weights": args.random_weights, **fields})


def _run_config(args: argparse.Namespace, **overrides: Any):
    """A ``RunConfig`` from the processing and engine options; ``overrides`` are its own
    fields (source, output...)."""
    from realtime.covering import CoveringConfig
    from realtime.loop import RunConfig
    from realtime.pipeline import PipelineConfig
    from realtime.present import PresentConfig
    from realtime.smoothing import smoothing_for
    from realtime.tracking import TrackerConfig

    engines = _engine_config(args, max_batch=args.max_faces)  # checks --max-faces first
    pipeline = PipelineConfig(crop_size=args.crop, inpainter=args.inpainter,
                              smoothing=smoothing_for(args.smoothing),
                              covering=CoveringConfig() if args.covering_check else None)
    view = PresentConfig(label=args.label, side_by_side=args.side_by_side,
                         show_mask=args.show_mask)
    fields = dict(engines=engines, pipeline=pipeline,
                  tracker=TrackerConfig(max_faces=args.max_faces), present=view,
                  stats_json=args.stats_json, progress=not args.no_progress)
    fields.update(overrides)
    return RunConfig(**fields)


def cmd_run(argv: Sequence[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.camera is None and args.input is None:
        parser.error("give --camera INDEX or --input PATH (or run 'realtime-unmask demo')")
    from realtime.loop import run

    source = args.camera if args.camera is not None else args.input
    config = _run_config(args, source=source, output=args.output, display=args.display,
                         save_masks=args.save_masks, max_frames=args.max_frames,
                         reconnect=args.reconnect, virtual_camera=args.virtual_camera,
                         segment_seconds=args.segment_seconds)
    live = None
    if args.simulate_live is not None:
        from realtime.sources import SimulatedCamera

        if args.input is None or not 0 < args.simulate_live <= 240:
            raise ValueError("--simulate-live needs --input FILE and an FPS between 0 and 240")
        if not Path(args.input).is_file():
            raise ValueError(f"input not found: {args.input}")
        live = SimulatedCamera(Path(args.input), fps=args.simulate_live)
    with StopSignals() as stop:
        summary = run(config, log=_log, source=live)
    if stop.signum is not None:
        return 128 + stop.signum
    return EXIT_SOME_INPUTS_FAILED if summary.get("images_failed") else 0


def cmd_demo(argv: Sequence[str]) -> int:
    args = build_demo_parser().parse_args(argv)
    from realtime.demo_clip import render_demo_clip
    from realtime.loop import run

    with tempfile.TemporaryDirectory(prefix="realtime-unmask-demo-") as tmp:
        clip = render_demo_clip(Path(tmp) / "demo_input.mp4", seconds=args.seconds)
        args.side_by_side = True  # the demo always shows the input beside the result
        config = _run_config(args, source=str(clip), output=args.output, display=False)
        with StopSignals() as stop:
            run(config, log=_log)
    if stop.signum is not None:
        return 128 + stop.signum
    _log(f"left: the masked input; right: the result -> {Path(args.output).resolve()}")
    return 0


def cmd_compile(argv: Sequence[str]) -> int:
    args = build_compile_parser().parse_args(argv)
    from engines import compile_models

    config = _engine_config(args, max_batch=args.max_faces, precision=args.precision)
    report = compile_models(config, log=_log)
    for section in ("onnx-cpu", "onnx-cuda", "tensorrt"):
        for kind, result in report.get(section, {}).items():
            if kind == "skipped":
                continue
            diff = max(result.get("max_abs_diff", {}).values(), default=float("nan"))
            state = "cached" if result.get("cached") else "built"
            _log(f"{section} {kind}: {state}, max |{section} - PyTorch| = {diff:.2e} "
                 f"-> {result.get('entry')}")
    return 0


def cmd_train(argv: Sequence[str]) -> int:
    trainers = {"segmenter": "training.train_segmenter", "inpainter": "training.train_inpainter"}
    if not argv or argv[0] not in trainers:
        _log("usage: realtime-unmask train {segmenter,inpainter} [options]  (add --help)")
        return 2
    import importlib

    return importlib.import_module(trainers[argv[0]]).main(list(argv[1:]))


def cmd_evaluate(argv: Sequence[str]) -> int:
    from training.evaluate import main as evaluate_main

    return evaluate_main(list(argv))


def build_web_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="realtime-unmask web",
        description="Serve the browser demo (Gradio): photos, videos and the webcam through the "
                    "pipeline. It listens on this machine only unless --host says otherwise.")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default: 127.0.0.1; 0.0.0.0: every network)")
    parser.add_argument("--port", type=int, default=7860, help="TCP port (default: 7860)")
    parser.add_argument("--share", action="store_true",
                        help="also publish a temporary public gradio.live link (default: off)")
    parser.add_argument("--max-faces", type=int, default=4, metavar="N",
                        help="most faces processed per frame, 1-16 (default: 4)")
    parser.add_argument("--ice-server", action="append", default=[], metavar="URL",
                        help="a STUN or TURN server for the WebRTC webcam, for browsers across "
                             "a NAT (stun:HOST:PORT, turn:USER:PASSWORD@HOST:PORT; repeatable; "
                             "default: none, enough on this machine and a LAN)")
    _add_engine_options(parser)
    return parser


def cmd_web(argv: Sequence[str]) -> int:
    args = build_web_parser().parse_args(argv)
    from realtime.web import WebConfig
    from realtime.web_page import serve

    engines = _engine_config(args, backend="auto")  # the Settings tab picks the backend
    serve(WebConfig(host=args.host, port=args.port, share=args.share, backend=args.backend,
                    max_faces=args.max_faces, engines=engines,
                    ice_servers=tuple(args.ice_server)))
    return 0


def cmd_batch(argv: Sequence[str]) -> int:
    from realtime.batch.command import main as batch_main

    return batch_main(argv, log=_log)


def cmd_bench(argv: Sequence[str]) -> int:
    from benchmarks.bench import main as bench_main

    return bench_main(argv, log=_log)


COMMANDS = {"demo": cmd_demo, "compile": cmd_compile, "train": cmd_train,
            "evaluate": cmd_evaluate, "web": cmd_web, "bench": cmd_bench, "batch": cmd_batch}


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _quiet_native_logs() -> None:
    """MediaPipe and TensorFlow Lite print start-up chatter to stderr; keep warnings only."""
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _expected_errors() -> tuple[type[BaseException], ...]:
    from realtime.types import UnmaskError

    errors: list[type[BaseException]] = [UnmaskError, ValueError, OSError]
    try:
        from engines import EngineError
        errors.append(EngineError)
    except ImportError:
        pass
    return tuple(errors)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    _quiet_native_logs()
    command = COMMANDS.get(argv[0]) if argv else None
    try:
        return command(argv[1:]) if command else cmd_run(argv)
    except KeyboardInterrupt as e:  # before the frame loop: nothing was written
        _log("interrupted")
        return 128 + (e.signum if isinstance(e, StopRequested) else signal.SIGINT)
    except _expected_errors() as e:
        _log(f"realtime-unmask: error: {e}")
        return 1
    except Exception as e:  # a bug: still one line, with a way to see more
        if os.environ.get("REALTIME_UNMASK_DEBUG"):
            raise
        _log(f"realtime-unmask: internal error: {type(e).__name__}: {e} "
             "(set REALTIME_UNMASK_DEBUG=1 for the traceback)")
        return 2


if __name__ == "__main__":
    sys.exit(main())
