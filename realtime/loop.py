"""The streaming loop: a source, the pipeline, and the sinks, with stats and a progress bar.

Threads live only at the edges (the source's reader, the video writer); this loop runs the
stages in order on the main thread.

    summary = run(RunConfig(source="clip.mp4", output="out.mp4"))
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from engines.config import EngineConfig
from realtime.picture import unmask_picture
from realtime.pipeline import Pipeline, PipelineConfig, build_pipeline
from realtime.present import PresentConfig, present
from realtime.stats import RunStats
from realtime.tracking import TrackerConfig
from realtime.types import Sink, SinkError, Source, StreamInfo


@dataclass(frozen=True)
class RunConfig:
    """Everything one ``realtime-unmask`` run needs: where frames come from and go, and the
    configs of its parts, each checked by its own class (``engines``, ``pipeline`` and
    ``tracker`` are unused when ``run`` is handed a pipeline already built)."""

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
    engines: EngineConfig = field(default_factory=EngineConfig)
    """Backend, crop size, batch (``--max-faces``), weights, cache folder and threads."""
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)
    """What happens to each face: crop size, inpainter, smoothing, covering check."""
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    """How faces are found and followed (``max_faces``)."""
    present: PresentConfig = field(default_factory=PresentConfig)
    """What is drawn on the frames: tint, side by side, and the 'reconstructed' tag, which
    goes on written frames and virtual cameras only (a window shows the picture bare)."""
    save_masks: bool = False
    """With image output: also write full-frame 0/255 masks as masks/<stem>.png."""
    stats_json: str | None = None
    """Write the run's statistics to this JSON file."""
    progress: bool = True
    """Show a progress bar for files and folders."""
    max_frames: int | None = None
    """Stop after this many frames (useful for live sources in scripts and tests)."""
    reconnect: bool | None = None
    """Network inputs: None reconnects live streams and ends finite ones (an HTTP file);
    True reconnects always, False never."""
    extra_sinks: tuple[Sink, ...] = field(default=())
    """Already-open sinks to feed as well (used by the web demo and tests)."""

    def __post_init__(self) -> None:
        if self.save_masks and self.output is None:
            raise ValueError("--save-masks needs --output (a folder for the images and masks)")
        if self.max_frames is not None and self.max_frames < 1:
            raise ValueError(f"--max-frames must be at least 1, got {self.max_frames}")
        if self.segment_seconds is not None and not self.segment_seconds > 0:
            raise ValueError(f"--segment-seconds must be > 0, got {self.segment_seconds:g}")
        if self.segment_seconds is not None and self.output is None:
            raise ValueError("--segment-seconds needs --output (a video file)")
        if (self.save_masks or self.present.show_mask) and not self.pipeline.want_mask:
            # Both need the pipeline's full-frame mask; asked for here, once.
            object.__setattr__(self, "pipeline", replace(self.pipeline, want_mask=True))


def run(config: RunConfig, log: Callable[[str], None] = print,
        pipeline: Pipeline | None = None, source: Source | None = None) -> dict:
    """Processes the whole source; returns the summary that ``--stats-json`` writes.

    ``pipeline`` and ``source`` may be passed already built (the web demo keeps one pipeline
    per session; tests and benchmarks feed simulated cameras); otherwise they come from
    ``config``.
    """
    from realtime.sinks import DisplaySink, open_sink
    from realtime.sources import open_source

    with contextlib.ExitStack() as stack:
        if source is None:
            source = open_source(config.source, reconnect=config.reconnect)
        source = stack.enter_context(source)
        info = source.info
        out_info = _output_info(info, config.present.side_by_side)
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
        if pipeline is None:  # built here, so closed here (its MediaPipe graphs)
            pipeline = stack.enter_context(build_pipeline(
                config.pipeline, engines=config.engines, tracker=config.tracker, log=log))
        stats = RunStats()
        interrupted = _drive(config, source, pipeline, written, sinks, stats)
        for sink in (*written, *sinks):
            sink.close()
        stats.finish()
        for sink in written:
            stats.stage_ms["encode"].extend(sink.encode_ms)
    summary = _summary(config, stats, info, pipeline, interrupted, source)
    files = [str(p) for sink in written for p in sink.written]
    summary["outputs"] = files if files or config.output is None else [config.output]
    if config.stats_json:
        _write_json(Path(config.stats_json), summary)
    log(_one_line(summary, config))
    return summary


def _drive(config: RunConfig, source: Source, pipeline: Pipeline, written: list[Sink],
           sinks: list[Sink], stats: RunStats) -> bool:
    """The frame loop; returns True if the user stopped it early."""
    progress = _progress_bar(config, source.info)
    images = source.info.kind == "images"
    bare = replace(config.present, label=False)
    try:
        for frame in source:
            # Unrelated pictures share no history; tight crops need a border (realtime.picture).
            result = unmask_picture(pipeline, frame) if images else pipeline.process(frame)
            if written:
                # Drawn on in place only when no window still needs the frame untagged.
                labelled = present(frame.bgr, result.out_bgr, result.mask_full_hw,
                                   config.present, in_place=not sinks)
                for sink in written:
                    sink.write(frame, labelled, result.mask_full_hw)
            if sinks:
                shown = present(frame.bgr, result.out_bgr, result.mask_full_hw, bare)
                for sink in sinks:
                    sink.write(frame, shown, result.mask_full_hw)
            if source.info.live:
                stats.latency_ms.append((time.perf_counter() - frame.t_capture) * 1000.0)
            stats.add_frame(len(result.faces), frame.timings_ms)
            if progress is not None:
                progress.update(1)
            if any(s.quit_requested for s in sinks):
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
    return replace(info, size_wh=(2 * w, h))


def _open_virtual_camera(device: bool | str, info: StreamInfo) -> Sink:
    from realtime.virtualcam import VirtualCameraSink

    return VirtualCameraSink(info, device=None if device is True else device)


def _abort_on_error(sink: Sink) -> Callable[..., bool]:
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


def _summary(config: RunConfig, stats: RunStats, info: StreamInfo, pipeline: Pipeline,
             interrupted: bool, source: Source) -> dict:
    summary = stats.summary()
    engines = pipeline.engines
    summary.update({
        "source": str(config.source),
        "output": config.output,
        "input_size_wh": list(info.size_wh),
        "input_fps": info.fps,
        "interrupted": interrupted,
        "backend": engines.backend,
        "inpainter": pipeline.config.inpainter,
        "crop_size": pipeline.config.crop_size,
        "warmup_ms": engines.warmup_ms,
        "frames_dropped": source.dropped,
        "images_failed": source.failed,
        "device": engines.telemetry(),
    })
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
