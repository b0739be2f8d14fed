"""The streaming loop: a source, the pipeline, and the sinks, with stats and a progress bar.

Threads live only at the edges (the source's reader, the video writer); this loop runs the
stages in order on the main thread.

    summary = run(RunConfig(source="clip.mp4", output="out.mp4"))
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from realtime.composite import side_by_side
from realtime.covering import CoveringConfig
from realtime.pipeline import Pipeline, PipelineConfig
from realtime.smoothing import SmoothingConfig
from realtime.stats import RunStats
from realtime.types import Backend, Inpainter, SinkError, StreamInfo


@dataclass(frozen=True)
class RunConfig:
    """Everything one ``realtime-unmask`` run needs."""

    source: str | int
    """A camera index, a video or image file, a folder of images, or an rtsp/http(s) URL."""
    output: str | None = None
    """A video file, an image file or a folder; None writes nothing."""
    segment_seconds: float | None = None
    """Cut a video output into numbered files of this many seconds (``out_000.mp4``...)."""
    virtual_camera: bool | str = False
    """Also send the output to a virtual camera: True picks the first free device, a string
    names one (``/dev/video10``, ``OBS Virtual Camera``)."""
    display: bool | None = None
    """Show a window; None means: on for cameras, off otherwise."""
    backend: Backend = "auto"
    """Which inference backend runs the nets."""
    max_faces: int = 4
    """Most faces processed per frame."""
    crop_size: int = 128
    """Side of the aligned face crop."""
    inpainter: Inpainter = "gan"
    """'gan' (the generator) or 'telea' (OpenCV baseline)."""
    smoothing_alpha: float | None = 0.5
    """Weight of the newest frame in the mask average; None turns smoothing (of masks and
    painted faces) off."""
    show_mask: bool = False
    """Tint the painted region."""
    covering_check: bool = True
    """Paint only faces judged to wear a covering, and only the covering
    (``realtime.covering``); False paints whatever the segmenter marks below the eyes."""
    side_by_side: bool = False
    """Write the input and the output next to each other."""
    label: bool = True
    """Draw a small 'reconstructed' tag on written frames."""
    save_masks: bool = False
    """With image output: also write full-frame 0/255 masks as masks/<stem>.png."""
    stats_json: str | None = None
    """Write the run's statistics to this JSON file."""
    segmenter_checkpoint: Path | None = None
    """Segmenter weights (.safetensors); None uses the bundled ones."""
    generator_checkpoint: Path | None = None
    """Generator weights (.safetensors); None uses the bundled ones."""
    random_weights: bool = False
    """Use deterministic random weights instead of the bundled ones (speed and shape checks)."""
    cache_dir: Path | None = None
    """Where compiled engines are kept; None uses the platform's user cache."""
    progress: bool = True
    """Show a progress bar for files and folders."""
    max_frames: int | None = None
    """Stop after this many frames (useful for live sources in scripts and tests)."""
    reconnect: bool | None = None
    """Network inputs: None reconnects live streams and ends finite ones (an HTTP file);
    True reconnects always, False never."""
    extra_sinks: tuple = field(default=())
    """Already-open sinks to feed as well (used by the web demo and tests)."""
    threads: int | None = None
    """CPU threads per inference call; None: the engines' default (1). ``batch`` sets it so
    that its workers together use the cores once."""

    def __post_init__(self) -> None:
        if not 1 <= self.max_faces <= 16:
            raise ValueError(f"--max-faces must be between 1 and 16, got {self.max_faces}")
        if self.crop_size not in (128, 256):
            raise ValueError(f"--crop must be 128 or 256, got {self.crop_size}")
        if self.save_masks and self.output is None:
            raise ValueError("--save-masks needs --output (a folder for the images and masks)")
        if self.max_frames is not None and self.max_frames < 1:
            raise ValueError(f"--max-frames must be at least 1, got {self.max_frames}")
        if self.segment_seconds is not None and not self.segment_seconds > 0:
            raise ValueError(f"--segment-seconds must be > 0, got {self.segment_seconds:g}")
        if self.segment_seconds is not None and self.output is None:
            raise ValueError("--segment-seconds needs --output (a video file)")


def build_pipeline(config: RunConfig, log: Callable[[str], None], *,
                   want_mask: bool = False) -> Pipeline:
    """Loads the engines and the tracker (slow: seconds on first use, cached after);
    ``want_mask`` returns full-frame masks even without ``--save-masks`` (``realtime.api``)."""
    from engines import EngineConfig, load_engines
    from realtime.tracking import FaceTracker, TrackerConfig

    engines = load_engines(
        EngineConfig(backend=config.backend, crop_size=config.crop_size,
                     max_batch=config.max_faces,
                     segmenter_checkpoint=config.segmenter_checkpoint,
                     generator_checkpoint=config.generator_checkpoint,
                     random_weights=config.random_weights, cache_dir=config.cache_dir,
                     threads=config.threads),
        log=log,
    )
    smoothing = (SmoothingConfig(alpha=config.smoothing_alpha)
                 if config.smoothing_alpha is not None else None)
    pipeline_config = PipelineConfig(crop_size=config.crop_size, inpainter=config.inpainter,
                                     smoothing=smoothing, show_mask=config.show_mask,
                                     want_mask=config.save_masks or want_mask,
                                     covering=CoveringConfig() if config.covering_check
                                     else None)
    tracker = FaceTracker(TrackerConfig(max_faces=config.max_faces))
    return Pipeline(pipeline_config, engines=engines, tracker=tracker)


def run(config: RunConfig, log: Callable[[str], None] = print,
        pipeline: Pipeline | None = None, source=None) -> dict:
    """Processes the whole source; returns the summary that ``--stats-json`` writes.

    ``pipeline`` and ``source`` may be passed already built (the web demo keeps one pipeline
    per session; tests and benchmarks feed simulated cameras); otherwise they come from
    ``config``.
    """
    from realtime.sinks import DisplaySink, draw_label, open_sink
    from realtime.sources import open_source

    with contextlib.ExitStack() as stack:
        if source is None:
            source = open_source(config.source, reconnect=config.reconnect)
        source = stack.enter_context(source)
        info = source.info
        out_info = _output_info(info, config.side_by_side)
        sinks, written = [], []
        if config.output is not None:
            sink = open_sink(config.output, out_info, save_masks=config.save_masks,
                             segment_seconds=config.segment_seconds)
            stack.push(_abort_on_error(sink))
            written.append(sink)
        if config.virtual_camera is not False:  # among the written: its viewers see the tag
            written.append(_open_virtual_camera(config.virtual_camera, out_info))
            stack.push(_abort_on_error(written[-1]))
        display = config.display if config.display is not None else info.kind == "camera"
        if display:
            window = DisplaySink()
            stack.push(_abort_on_error(window))
            sinks.append(window)
        sinks.extend(config.extra_sinks)
        if pipeline is None:
            pipeline = build_pipeline(config, log)
        stats = RunStats()
        interrupted = _drive(config, source, pipeline, written, sinks, stats, draw_label)
        for sink in (*written, *sinks):
            sink.close()
        stats.finish()
        for sink in written:
            stats.stage_ms["encode"].extend(getattr(sink, "encode_ms", []))
    summary = _summary(config, stats, info, pipeline, interrupted, source)
    files = [str(p) for sink in written for p in getattr(sink, "written", [])]
    summary["outputs"] = files if files or config.output is None else [config.output]
    if config.stats_json:
        _write_json(Path(config.stats_json), summary)
    log(_one_line(summary, config))
    return summary


def presented(input_bgr: np.ndarray, out_bgr: np.ndarray, *, side: bool,
              tag: Callable[[np.ndarray], np.ndarray] | None = None,
              in_place: bool = False) -> np.ndarray:
    """The frame as written: the output, or input | output side by side, with ``tag`` drawn on
    the painted picture (in side-by-side, on its right half, never on the input). ``in_place``
    lets the tag draw on ``out_bgr`` itself when nothing else needs it untagged."""
    if tag is not None:
        out_bgr = tag(out_bgr if in_place and not side else out_bgr.copy())
    return side_by_side(input_bgr, out_bgr) if side else out_bgr


def _drive(config, source, pipeline, written, sinks, stats, draw_label) -> bool:
    """The frame loop; returns True if the user stopped it early."""
    progress = _progress_bar(config, source.info)
    images = source.info.kind == "images"
    try:
        for frame in source:
            if images:
                pipeline.reset()  # unrelated pictures share no history
            result = pipeline.process(frame)
            if written:
                # Copy only when a window still needs the frame without the tag.
                labelled = presented(frame.bgr, result.out_bgr, side=config.side_by_side,
                                     tag=draw_label if config.label else None,
                                     in_place=not sinks)
                for sink in written:
                    sink.write(frame, labelled, result.mask_full_hw)
            if sinks:
                shown = presented(frame.bgr, result.out_bgr, side=config.side_by_side)
                for sink in sinks:
                    sink.write(frame, shown, result.mask_full_hw)
            if source.info.live:
                stats.latency_ms.append((time.perf_counter() - frame.t_capture) * 1000.0)
            stats.add_frame(len(result.faces), frame.timings_ms)
            if progress is not None:
                progress.update(1)
            if any(getattr(s, "quit_requested", False) for s in sinks):
                return True
            if config.max_frames is not None and stats.frames >= config.max_frames:
                return True
    except KeyboardInterrupt:
        return True
    finally:
        if progress is not None:
            progress.close()
    return False


def _output_info(info: StreamInfo, sbs: bool) -> StreamInfo:
    if not sbs:
        return info
    w, h = info.size_wh
    return dataclasses.replace(info, size_wh=(2 * w, h))


def _open_virtual_camera(device: bool | str, info: StreamInfo):
    from realtime.virtualcam import VirtualCameraSink

    return VirtualCameraSink(info, device=None if device is True else device)


def _abort_on_error(sink):
    """An ExitStack callback that aborts the sink (removing partial output) on any error."""
    def callback(exc_type, exc, tb) -> bool:
        if exc_type is not None:
            sink.abort()
        return False
    return callback


def _progress_bar(config: RunConfig, info: StreamInfo):
    if not config.progress or info.live or not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=info.frame_count, unit="frame", dynamic_ncols=True, leave=False)


def _summary(config, stats: RunStats, info: StreamInfo, pipeline, interrupted: bool,
             source) -> dict:
    summary = stats.summary()
    engines = pipeline.engines
    summary.update({
        "source": str(config.source),
        "output": config.output,
        "input_size_wh": list(info.size_wh),
        "input_fps": info.fps,
        "interrupted": interrupted,
        "backend": getattr(engines, "backend", None),
        "inpainter": config.inpainter,
        "crop_size": config.crop_size,
        "warmup_ms": getattr(engines, "warmup_ms", None),
        "frames_dropped": getattr(source, "dropped", 0) if info.live else 0,
        "images_failed": getattr(source, "failed", 0) if info.kind == "images" else 0,
    })
    if engines is not None and hasattr(engines, "telemetry"):
        summary["device"] = engines.telemetry()
    return summary


def _write_json(path: Path, data: dict) -> None:
    try:
        tmp = path.with_name(f".{path.name}.partial")
        tmp.write_text(json.dumps(data, indent=2) + "\n")
        os.replace(tmp, path)
    except OSError as e:
        raise SinkError(f"cannot write stats to {path}: {e.strerror or e}") from e


def _one_line(summary: dict, config: RunConfig) -> str:
    line = (f"{summary['frames']} frames ({summary['frames_with_faces']} with faces) in "
            f"{summary['elapsed_s']:.1f} s: {summary['fps']:.1f} FPS on {summary['backend']}")
    if summary.get("capture_to_output_ms"):
        line += f", latency p95 {summary['capture_to_output_ms']['p95']:.0f} ms"
    outputs = summary.get("outputs", [])
    if len(outputs) > 1:  # segments
        line += f"; wrote {len(outputs)} files, {outputs[0]} to {Path(outputs[-1]).name}"
    elif config.output:
        line += f"; wrote {config.output}"
    if summary["images_failed"]:
        line += f"; {summary['images_failed']} unreadable image(s) skipped"
    if summary["interrupted"]:
        line += " (stopped early)"
    return line
