"""``realtime-unmask bench``: speed against the I/O ceiling, live latency, warm-up, quality and
flicker, with the baselines, in one run; writes bench.json, report.md and PNG plots.

    realtime-unmask bench --quick                 # ~1.5 min on a 2-core CPU
    realtime-unmask bench --out bench-full        # the full run behind the README's table

Clips come from the real clips in the data folder (``../shared/data`` by default): the masked
webcam clip laid out as mosaics of 1, 2 and 4 faces at 640x360 and scaled to 480p, 720p and
1080p, and the Hamilton clip as it is (several unmasked faces).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from benchmarks import clips as clipmod
from benchmarks import quality, speed
from benchmarks.machine import REPO, machine, versions
from benchmarks.report import write_outputs

FPS_TARGET, LATENCY_TARGET_MS, FLICKER_TARGET, NETS_TARGET_MS = 40, 60, 1.2, 10
FALSE_PAINT_TARGET = 0.02
"""Most frames of an unmasked clip in which any face may be painted."""
CAMERA_FPS = 30.0
BACKENDS = ("tensorrt", "onnx", "torch")
"""Tried in this order; the first that runs is the primary (what ``--backend auto`` picks)."""
MOSAICS = {"1 face 360p": (1, "360p", "both"), "1 face 480p": (1, "480p", "resolution"),
           "1 face 720p": (1, "720p", "resolution"), "1 face 1080p": (1, "1080p", "resolution"),
           "2 faces 360p": (2, "360p", "faces"), "4 faces 360p": (4, "360p", "faces")}
"""Mosaic clip name -> (faces per frame, resolution, which sweep it belongs to)."""
TARGET_CLIP = "1 face 360p"
REAL_CLIP = "hamilton 360p"
HAMILTON = Path("videos/hamilton_clip_640x360.mp4")
MASKED = Path("videos/masked_webcam_256.mp4")
NEEDED = (HAMILTON, MASKED, Path("faces"), Path("mask_templates/masktheface/masks"))


@dataclass(frozen=True)
class BenchConfig:
    """One benchmark run."""

    out: Path
    """Folder for bench.json, report.md and the plots (created; files inside are replaced)."""
    data: Path
    """The shared data folder (videos/, faces/, mask_templates/)."""
    quick: bool = False
    """A small version: fewer frames and faces, the full grid on the primary backend only."""
    backends: tuple[str, ...] = BACKENDS
    """Backends to try; those that cannot run here are reported as skipped."""
    frames: int | None = None
    """Frames per file run (default: 60 quick, 300 full)."""
    live_seconds: float | None = None
    """Seconds per live run (default: 4 quick, 10 full)."""
    eval_faces: int | None = None
    """Validation faces for the image-quality evaluation (default: 64 quick, 400 full)."""
    command: str = "realtime-unmask bench"
    """How it was started, for the report."""
    log: Callable[[str], None] = field(default=print, compare=False)

    def __post_init__(self) -> None:
        for name in ("frames", "eval_faces"):
            value = getattr(self, name)
            if value is not None and value < 2:
                raise ValueError(f"--{name.replace('_', '-')} must be at least 2, got {value}")
        if self.live_seconds is not None and not 0 < self.live_seconds <= 600:
            raise ValueError(f"--live-seconds must be in (0, 600], got {self.live_seconds}")
        unknown = set(self.backends) - set(BACKENDS)
        if unknown or not self.backends:
            raise ValueError(f"--backends takes some of {', '.join(BACKENDS)}, "
                             f"got {', '.join(self.backends) or 'none'}")
        missing = [str(self.data / p) for p in NEEDED if not (self.data / p).exists()]
        if missing:
            raise FileNotFoundError(f"benchmark data not found: {', '.join(missing)} (pass "
                                    "--data DIR, the folder the README describes)")

    @property
    def n_frames(self) -> int:
        return self.frames or (60 if self.quick else 300)

    @property
    def n_live_s(self) -> float:
        return self.live_seconds or (4.0 if self.quick else 10.0)

    @property
    def n_eval(self) -> int:
        return self.eval_faces or (64 if self.quick else 400)


def run_bench(config: BenchConfig) -> dict[str, Any]:
    """Runs everything and writes the outputs; returns what bench.json holds."""
    t0 = time.perf_counter()

    def log(message: str) -> None:
        config.log(f"[{time.perf_counter() - t0:5.0f} s] {message}")

    config.out.mkdir(parents=True, exist_ok=True)  # fail now, not after minutes of work
    results: dict[str, Any] = {
        "schema": 1, "created": datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": machine(), "versions": versions(),
        "settings": {"quick": config.quick, "frames": config.n_frames,
                     "live_seconds": config.n_live_s, "camera_fps": CAMERA_FPS,
                     "eval_faces": config.n_eval, "command": config.command,
                     "fps_target": FPS_TARGET, "latency_target_ms": LATENCY_TARGET_MS,
                     "flicker_target": FLICKER_TARGET, "nets_target_ms": NETS_TARGET_MS}}
    with tempfile.TemporaryDirectory(prefix="realtime-unmask-bench-") as tmp:
        scratch = Path(tmp)
        clips = _make_clips(config, scratch, log)
        results["clips"] = {name: {k: v for k, v in c.items() if k != "path"}
                            for name, c in clips.items()}
        results["io_ceiling"] = {}
        engines = _load_backends(config, scratch, clips, results, log)
        primary = next(iter(engines))
        results["speed"] = _speed_runs(config, engines, primary, clips, scratch, results, log)
        results["live"] = _live_runs(config, engines, primary, clips, log)
        results["quality"] = _quality(config, engines[primary], scratch, log)
    results["targets"] = _targets(results, primary)
    results["elapsed_s"] = round(time.perf_counter() - t0, 1)
    for path in write_outputs(results, config.out):
        log(f"wrote {path}")
    return results


def _make_clips(config: BenchConfig, scratch: Path, log) -> dict[str, dict[str, Any]]:
    source_bgr = clipmod.read_frames(config.data / MASKED)
    made = {}
    for name, (faces, resolution, sweep) in MOSAICS.items():
        size_wh = clipmod.RESOLUTIONS[resolution]
        path = clipmod.mosaic_clip(source_bgr, scratch / f"{name.replace(' ', '_')}.mp4",
                                   faces=faces, size_wh=size_wh, frames=config.n_frames)
        made[name] = {"path": path, "faces": faces, "resolution": resolution, "sweep": sweep,
                      "size_wh": list(size_wh), "source": str(MASKED)}
    made[REAL_CLIP] = {"path": config.data / HAMILTON, "faces": "all", "resolution": "360p",
                       "sweep": "real", "size_wh": [640, 360], "source": str(HAMILTON)}
    log(f"made {len(MOSAICS)} mosaic clips of {config.n_frames} frames from {MASKED.name}")
    return made


def _load_backends(config, scratch, clips, results, log) -> dict[str, Any]:
    from engines import BackendUnavailable, EngineError

    engines, results["warmup"] = {}, {}
    skipped = []
    for backend in config.backends:
        try:
            loaded, warm = speed.load_backend(backend, scratch / f"cache-{backend}")
        except (BackendUnavailable, EngineError) as why:
            reason = str(why).removeprefix(f"--backend {backend} cannot run here: ")
            skipped.append(reason)
            log(reason)
            continue
        skipped += [s for s in loaded.skipped if s not in skipped]
        if loaded.backend in {e.backend for e in engines.values()}:
            continue  # e.g. "onnx" fell back to the same runner another entry already has
        warm.update(speed.first_frames(loaded, clips[TARGET_CLIP]["path"]))
        engines[loaded.backend] = loaded
        results["warmup"][loaded.backend] = warm
        log(f"{loaded.backend}: first load {warm['first_load_s']:.1f} s, cached "
            f"{warm['cached_load_s']:.2f} s, first frame {warm['first_frame_ms']:.0f} ms")
    if not engines:
        raise EngineError("no backend could run: " + "; ".join(skipped))
    results["backends"] = {"available": list(engines), "skipped": skipped}
    return engines


def _speed_runs(config, engines, primary, clips, scratch, results, log) -> list[dict]:
    plan = []
    for backend in engines:
        names = list(clips) if backend == primary or not config.quick else [TARGET_CLIP]
        plan += [(backend, name, speed.Variant()) for name in names]
    plan += [(primary, TARGET_CLIP, speed.Variant(inpainter="telea")),
             (primary, TARGET_CLIP, speed.Variant(smoothing=False))]
    rows = []
    for backend, name, variant in plan:
        if name not in results["io_ceiling"]:
            # Measured right before the clip's first pipeline run, so that both see the same
            # machine: on a shared one, load that comes and goes would skew the share.
            io = results["io_ceiling"][name] = clipmod.io_ceiling(
                clips[name]["path"], scratch, config.n_frames)
            log(f"I/O ceiling {name}: decode {io['decode_fps']:.0f} FPS, decode + encode "
                f"{io['transcode_fps']:.0f} FPS")
        record = speed.file_run(engines[backend], clips[name]["path"], frames=config.n_frames,
                                scratch_dir=scratch, variant=variant)
        ceiling = results["io_ceiling"][name]["transcode_fps"]
        c = clips[name]
        rows.append({"clip": name, "variant": variant.label, "faces": c["faces"],
                     "resolution": c["resolution"], "sweep": c["sweep"], **record,
                     "share_of_ceiling": round(record["fps"] / ceiling, 4)})
        log(f"{backend} | {name} {variant.label}: {record['fps']:.1f} FPS "
            f"({record['faces_per_frame']:.2f} faces/frame)")
    return rows


def _live_runs(config, engines, primary, clips, log) -> list[dict]:
    plan = [(primary, TARGET_CLIP)]
    if not config.quick:
        plan += [(primary, REAL_CLIP)] + [(b, TARGET_CLIP) for b in engines if b != primary]
    rows = []
    for backend, name in plan:
        record = speed.live_run(engines[backend], clips[name]["path"], fps=CAMERA_FPS,
                                seconds=config.n_live_s)
        rows.append({"clip": name, **record})
        latency = record["capture_to_output_ms"] or {"p50": 0, "p95": 0}
        log(f"live {backend} | {name}: {record['fps']:.1f} FPS, latency p50/p95 "
            f"{latency['p50']:.0f}/{latency['p95']:.0f} ms, {record['frames_dropped']} dropped")
    return rows


def _quality(config: BenchConfig, engines, scratch: Path, log) -> dict[str, Any]:
    clip = config.data / MASKED
    frames = 75 if config.quick else None
    rows = []
    for variant in (speed.Variant(want_mask=True),
                    speed.Variant(want_mask=True, smoothing=False),
                    speed.Variant(want_mask=True, inpainter="telea")):
        pipeline = speed.make_pipeline(engines, variant)
        with pipeline:
            row = quality.temporal_stability(pipeline, clip, frames)
        name = variant.inpainter + (", smoothing on" if variant.smoothing else ", smoothing off")
        rows.append({"variant": name, **row})
        log(f"flicker {name}: {row['flicker']} (coverage {row['coverage']:.0%})")
    false_paints = []
    for scale in (1.0, 0.5):  # 0.5: hamilton's faces at 40-60 px, surveillance size
        pipeline = speed.make_pipeline(engines, speed.Variant(want_mask=True))
        with pipeline:  # the whole clip even when quick: at 75 frames one frame is 1.3%
            row = quality.unmasked_clip_marks(pipeline, config.data / HAMILTON, scale=scale)
        false_paints.append(row)
        log(f"unmasked hamilton x{scale:g}: {row['frames_painted']:.1%} of frames painted")
    log(f"evaluating on {config.n_eval} validation faces")
    evaluation, evaluation_md = quality.evaluation(config.data, scratch / "eval", config.n_eval)
    return {"clip": MASKED.name, "flicker": rows, "false_paints": false_paints,
            "evaluation": evaluation,
            "evaluation_md": evaluation_md}


def _targets(r: dict[str, Any], primary: str) -> list[dict[str, Any]]:
    def find(rows, **match):
        return next((row for row in rows if all(row.get(k) == v for k, v in match.items())),
                    None)

    main = find(r["speed"], backend=primary, clip=TARGET_CLIP, variant="")
    live = find(r["live"], backend=primary, clip=TARGET_CLIP)
    flicker = find(r["quality"]["flicker"], variant="gan, smoothing on")
    false_paints = r["quality"].get("false_paints") or []
    worst_false = max((row["frames_painted"] for row in false_paints), default=None)
    nets = (main["stages_ms"]["segment"]["p50"] + main["stages_ms"]["inpaint"]["p50"]
            if main else None)
    p95 = live["capture_to_output_ms"]["p95"] if live and live["capture_to_output_ms"] else None
    return [
        _target(f"FPS, 640x360, one face ({primary})", main and main["fps"], "FPS",
                f">= {FPS_TARGET}", lambda v: v >= FPS_TARGET),
        _target("segment + inpaint per face, p50", nets and round(nets, 2), "ms",
                f"<= {NETS_TARGET_MS} ms", lambda v: v <= NETS_TARGET_MS),
        _target(f"live {CAMERA_FPS:g} FPS camera, one face: capture-to-output p95", p95, "ms",
                f"<= {LATENCY_TARGET_MS} ms", lambda v: v <= LATENCY_TARGET_MS),
        _target("flicker on the real masked clip (smoothing on)",
                flicker and flicker["flicker"], "", f"<= {FLICKER_TARGET}",
                lambda v: v <= FLICKER_TARGET),
        _target("frames where an unmasked face was painted (hamilton, full and half size)",
                None if worst_false is None else round(100 * worst_false, 2), "%",
                f"<= {FALSE_PAINT_TARGET:.0%}", lambda v: v <= 100 * FALSE_PAINT_TARGET),
    ]


def _target(what: str, value, unit: str, target: str, ok) -> dict[str, Any]:
    return {"what": what, "value": value, "unit": unit, "target": target,
            "met": None if value is None else bool(ok(value))}


# ---------------------------------------------------------------------------------------------
# Command line


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="realtime-unmask bench",
        description="Measure speed (against the clip's I/O ceiling, per stage, by resolution "
                    "and faces per frame, per backend), live latency with a simulated 30 FPS "
                    "camera, warm-up, image quality and flicker, with the baselines (Telea, "
                    "smoothing off, eager PyTorch). Writes bench.json, report.md and "
                    "stages/fps/flicker PNG plots.")
    parser.add_argument("--quick", action="store_true",
                        help="a small run (about 1.5 minutes on a 2-core CPU): 60 frames per "
                             "clip, the full grid on the fastest backend only, 64 faces")
    parser.add_argument("--out", type=Path, metavar="DIR",
                        help="output folder (default: bench-YYYYmmdd-HHMMSS here)")
    parser.add_argument("--data", type=Path, metavar="DIR",
                        default=Path(os.environ.get("REALTIME_UNMASK_DATA",
                                                    REPO.parent / "shared" / "data")),
                        help="the data folder with videos/, faces/ and mask_templates/ "
                             "(default: ../shared/data beside the repository, or "
                             "$REALTIME_UNMASK_DATA)")
    parser.add_argument("--backends", nargs="+", choices=BACKENDS, default=list(BACKENDS),
                        help="backends to try (default: all; those that cannot run here are "
                             "reported as skipped)")
    parser.add_argument("--frames", type=int, metavar="N",
                        help="frames per file run (default: 60 quick, 300 full)")
    parser.add_argument("--live-seconds", type=float, metavar="S",
                        help="seconds per live run (default: 4 quick, 10 full)")
    parser.add_argument("--eval-faces", type=int, metavar="N",
                        help="validation faces for the quality evaluation (default: 64 quick, "
                             "400 full)")
    parser.add_argument("--soak", type=float, metavar="MINUTES",
                        help="instead of the benchmark: run the masked webcam clip as a 30 FPS "
                             "camera through one pipeline for MINUTES and report memory (RSS) "
                             "growth after warm-up (target < 5%%), frame-rate drift and dropped "
                             "frames; writes soak.json")
    parser.add_argument("--web-soak", type=float, metavar="MINUTES",
                        help="instead of the benchmark: serve the web demo and keep --sessions "
                             "browser sessions busy for MINUTES (pictures, webcam frames, the "
                             "sample video); reports errors, latency, the server's RSS growth "
                             "after warm-up (target < 5%%) and its temporary files; writes "
                             "web_soak.json")
    parser.add_argument("--sessions", type=int, default=4, metavar="N",
                        help="concurrent browser sessions of --web-soak (default: 4)")
    parser.add_argument("--webrtc", type=float, metavar="SECONDS",
                        help="instead of the benchmark: the web demo's WebRTC webcam in headless "
                             "Chromium, its fake camera playing the masked webcam clip at "
                             "640x480, 30 FPS; measures delivered FPS (target >= 20) and "
                             "glass-to-glass latency in the page for SECONDS; writes webrtc.json")
    return parser


def _soak(args: argparse.Namespace, out: Path, log: Callable[[str], None]) -> int:
    from benchmarks import soak

    clip = args.data / MASKED
    if args.soak <= 0:
        log(f"error: --soak takes a positive number of minutes, got {args.soak:g}")
        return 2
    if not clip.is_file():
        log(f"error: the soak clip {clip} is not there; pass --data DIR")
        return 1
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        result = soak.soak(clip, args.soak, out, cache_dir=Path(tmp) / "cache", log=log)
    for line in soak.report_lines(result):
        log(line)
    log(f"wrote {out / 'soak.json'}")
    return 0  # like the benchmark: a target not met is reported, not an error


def _web_soak(args: argparse.Namespace, out: Path, log: Callable[[str], None]) -> int:
    from benchmarks import web_soak

    if args.web_soak <= 0:
        log(f"error: --web-soak takes a positive number of minutes, got {args.web_soak:g}")
        return 2
    if not 1 <= args.sessions <= web_soak.MAX_SESSIONS:
        log(f"error: --sessions must be between 1 and {web_soak.MAX_SESSIONS}, "
            f"got {args.sessions}")
        return 2
    try:
        with tempfile.TemporaryDirectory(prefix="web-soak-") as tmp:
            result = web_soak.web_soak(args.web_soak, out, sessions=args.sessions,
                                       work=Path(tmp), log=log)
    except web_soak.ServerDidNotStart as exc:
        log(f"error: {exc}")
        return 1
    for line in web_soak.report_lines(result):
        log(line)
    log(f"wrote {out / 'web_soak.json'}")
    return 0  # like the benchmark: a target not met is reported, not an error


def main(argv: Sequence[str], log: Callable[[str], None] = print) -> int:
    args = build_parser().parse_args(list(argv))
    out = args.out or Path(f"bench-{datetime.now():%Y%m%d-%H%M%S}")
    if args.soak is not None:
        return _soak(args, out, log)
    if args.web_soak is not None:
        return _web_soak(args, out, log)
    if args.webrtc is not None:
        from benchmarks.webrtc_bench import command

        return command(args.webrtc, args.data, out, log)
    config = BenchConfig(out=out, data=args.data, quick=args.quick,
                         backends=tuple(dict.fromkeys(args.backends)), frames=args.frames,
                         live_seconds=args.live_seconds, eval_faces=args.eval_faces,
                         command=" ".join(["realtime-unmask bench", *argv]), log=log)
    results = run_bench(config)
    for t in results["targets"]:
        met = {True: "met", False: "NOT met", None: "n/a"}[t["met"]]
        log(f"{t['what']}: {t['value']} {t['unit']} (target {t['target']}: {met})")
    log(f"report: {out / 'report.md'}")
    return 0
