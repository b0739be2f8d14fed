"""The browser demo's handlers (Gradio): photos, videos and the webcam through the pipeline.

    app = WebApp(WebConfig())
    shown, before_after, download, session = app.unmask_image(None, "photo.jpg", Settings())

The page that wires these to Gradio components, and the server, are ``realtime.web_page``
(``realtime-unmask web``); tests call the handlers directly, without a browser.

Engines (ONNX sessions) are built on first use and shared by all browser sessions; each session
owns its pipelines (one per tab: the MediaPipe tracker and mask smoothers hold per-face state)
in a ``gr.State``, closed when Gradio drops the session. Results get fixed names in a fresh
folder per request under one temporary root (upload names never choose a path); a request's
folder goes when the tab's next request starts, the rest with the session and the server.
"""

from __future__ import annotations

import contextlib
import logging
import math
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import cv2
import gradio as gr
import numpy as np
from PIL import Image, ImageOps

from engines import EngineConfig
from engines.config import check_backend, check_max_faces
from realtime.picture import unmask_picture
from realtime.pipeline import Pipeline, PipelineConfig, build_pipeline
from realtime.present import PresentConfig, present
from realtime.sinks import VIDEO_EXTENSIONS, SingleImageSink
from realtime.smoothing import smoothing_for
from realtime.types import Backend, Frame, SinkContext, UnmaskError

log = logging.getLogger(__name__)

IMAGE_FORMATS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "BMP": "bmp"}  # Pillow's names


@dataclass(frozen=True)
class WebConfig:
    """How ``realtime-unmask web`` serves the demo."""

    host: str = "127.0.0.1"
    """Address to listen on; the default keeps the demo on this machine."""
    port: int = 7860
    """TCP port."""
    share: bool = False
    """Also publish a temporary public gradio.live link."""
    backend: Backend = "auto"
    """Preselected inference backend (the Settings tab can change it per session)."""
    max_faces: int = 4
    """Preselected most faces per frame."""
    engines: EngineConfig = field(default_factory=EngineConfig)
    """Crop size, checkpoints and cache folder of the nets (backend and batch come from the
    Settings tab)."""
    max_file_mb: int = 50
    """Largest upload."""
    max_video_s: float = 60.0
    """Longest video."""
    max_image_mp: float = 20.0
    """Largest picture, in megapixels."""
    webcam_time_limit_s: int = 300
    """How long one webcam stream may run before the user has to start it again."""
    webcam_streams: int = 4
    """Webcam streams processed at once (each its own session and pipeline)."""
    ice_servers: tuple[str, ...] = ()
    """STUN/TURN servers for the WebRTC webcam (``stun:HOST:PORT``,
    ``turn:USER:PASSWORD@HOST:PORT``): none are needed on this machine or a LAN; a browser
    behind another NAT needs one (a TURN server where both sides are behind NAT)."""

    def __post_init__(self) -> None:
        from realtime.webrtc import ice_server


        if not 1 <= self.port <= 65535:
            raise ValueError(f"--port must be between 1 and 65535, got {self.port}")
        Settings(self.backend, self.max_faces)  # the same checks as the Settings tab's
        limits = (self.max_file_mb, self.max_video_s, self.max_image_mp,
                  self.webcam_time_limit_s, self.webcam_streams)
        if min(limits) <= 0:
            raise ValueError(f"web limits must be > 0, got {limits}")
        for url in self.ice_servers:
            ice_server(url)  # raises, saying what a server looks like


@dataclass(frozen=True)
class Settings:
    """What the Settings tab chose for one request."""

    backend: Backend = "auto"
    """Inference backend."""
    max_faces: int = 4
    """Most faces per frame."""
    show_mask: bool = False
    """Tint the painted region."""
    smoothing: float = 0.5
    """Weight of the newest frame in the mask average; 1 turns smoothing off."""
    label: bool = True
    """Tag results 'reconstructed'."""

    def __post_init__(self) -> None:
        check_backend(self.backend)
        check_max_faces(self.max_faces)
        smoothing_for(self.smoothing)

    def pipeline_config(self, crop_size: int) -> PipelineConfig:
        """The pipeline these settings ask for (full-frame masks where the tint needs them)."""
        return PipelineConfig(crop_size=crop_size, smoothing=smoothing_for(self.smoothing),
                              want_mask=self.show_mask)

    def view(self) -> PresentConfig:
        """What is drawn on the results (``realtime.present``)."""
        return PresentConfig(label=self.label, show_mask=self.show_mask)

    @classmethod
    def from_page(cls, backend: str, max_faces: float, show_mask: bool, smoothing: float,
                  label: bool) -> Settings:
        """The raw values of the Settings components, in the order ``build_blocks`` wires."""
        return cls(backend, int(max_faces), bool(show_mask), float(smoothing), bool(label))


class Session:
    """One browser session: its pipelines (one per tab) and its result folders."""

    def __init__(self, build: Callable[[Settings], Pipeline], root: Path) -> None:
        self._build = build
        self.root = Path(tempfile.mkdtemp(prefix="session-", dir=root))
        self._pipelines: dict[str, tuple[Settings | None, Pipeline | None]] = {}
        self._request_dirs: dict[str, Path] = {}
        self._lock = threading.Lock()
        self.last_frame_s: float | None = None
        self.fps: float | None = None

    def pipeline(self, tab: str, settings: Settings) -> Pipeline:
        """This tab's pipeline, rebuilt when the settings changed (label aside)."""
        wanted = replace(settings, label=True)
        with self._lock:
            key, pipeline = self._pipelines.get(tab, (None, None))
            if key != wanted:
                if pipeline is not None:
                    pipeline.close()
                pipeline = self._build(wanted)
                self._pipelines[tab] = (wanted, pipeline)
            return pipeline

    def request_dir(self, tab: str) -> Path:
        """A fresh folder for one request; the tab's previous one (already copied into
        Gradio's cache when its request finished) is removed."""
        with self._lock:
            old = self._request_dirs.pop(tab, None)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
            self._request_dirs[tab] = Path(tempfile.mkdtemp(prefix=f"{tab}-", dir=self.root))
            return self._request_dirs[tab]

    def tick(self) -> float:
        """Frames per second of the webcam stream so far (an exponential average)."""
        now = time.perf_counter()
        if self.last_frame_s is not None and 0 < now - self.last_frame_s < 2.0:
            fps = 1.0 / (now - self.last_frame_s)
            self.fps = fps if self.fps is None else 0.8 * self.fps + 0.2 * fps
        self.last_frame_s = now
        return self.fps or 0.0

    def close(self) -> None:
        with self._lock:
            for _, pipeline in self._pipelines.values():
                pipeline.close()
            self._pipelines.clear()
        shutil.rmtree(self.root, ignore_errors=True)


class WebApp:
    """The handlers behind the page, usable without a browser (tests call them directly)."""

    def __init__(self, config: WebConfig, engines: Any | None = None) -> None:
        """``engines``: already-loaded engines for every setting (tests pass stand-ins)."""
        self.config = config
        self.root = Path(tempfile.mkdtemp(prefix="realtime-unmask-web-"))
        self._given_engines = engines
        self._engines: dict[tuple[str, int], Any] = {}
        self._engines_lock = threading.Lock()

    def new_session(self) -> Session:
        return Session(self._build_pipeline, self.root)

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def _build_pipeline(self, settings: Settings) -> Pipeline:
        from realtime.tracking import TrackerConfig

        return build_pipeline(settings.pipeline_config(self.config.engines.crop_size),
                              engines=self._shared_engines(settings),
                              tracker=TrackerConfig(max_faces=settings.max_faces))

    def _shared_engines(self, settings: Settings) -> Any:
        from engines import load_engines

        if self._given_engines is not None:
            return self._given_engines
        key = (settings.backend, settings.max_faces)
        with self._engines_lock:  # one build per key, even when two sessions ask at once
            if key not in self._engines:
                config = replace(self.config.engines, backend=settings.backend,
                                 max_batch=settings.max_faces)
                self._engines[key] = load_engines(config, log=log.info)
            return self._engines[key]

    def unmask_image(self, session: Session | None, upload: Any, settings: Settings
                     ) -> tuple[str | None, tuple[str, str] | None, str | None, Session]:
        """A picture -> (result PNG for display, (upright input, result) for the before/after
        slider, the result again to download, session)."""
        session = session or self.new_session()
        if upload is None:
            return None, None, None, session
        with _friendly_errors((session.root, "(server)")):
            image_bgr = self._read_picture(self._uploaded(upload))
            pipeline = session.pipeline("image", settings)
            unmasked = _unmask_picture(pipeline, image_bgr)
            if unmasked is None:
                raise _user_error("No face found in this picture. Try one where the face is "
                                  "larger, frontal and well lit.")
            folder = session.request_dir("image")
            out_path, before_path = folder / "unmasked.png", folder / "input.jpg"
            labelled_bgr = present(image_bgr, *unmasked, settings.view())
            with SingleImageSink(out_path) as sink:
                sink.write(Frame(0, time.perf_counter(), image_bgr), labelled_bgr, None)
            # Upright (EXIF applied), so both sides of the slider line up with the result.
            cv2.imwrite(str(before_path), image_bgr, [cv2.IMWRITE_JPEG_QUALITY, 95])
        return str(out_path), (str(before_path), str(out_path)), str(out_path), session

    def _read_picture(self, path: Path) -> np.ndarray:
        names = ", ".join(IMAGE_FORMATS.values())
        try:
            with Image.open(path) as image:
                if image.format not in IMAGE_FORMATS:
                    raise _user_error(f"Unsupported picture type ({image.format}); use {names}.")
                megapixels = image.width * image.height / 1e6
                if megapixels > self.config.max_image_mp:
                    raise _user_error(f"The picture has {megapixels:.0f} megapixels; the limit "
                                      f"is {self.config.max_image_mp:g}.")
                image_rgb = np.asarray(ImageOps.exif_transpose(image).convert("RGB"))
        except (OSError, Image.DecompressionBombError) as exc:
            raise _user_error(f"This file could not be read as a picture ({names}): "
                              "it is broken or of another type.") from exc
        return cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR)

    def _uploaded(self, upload: Any) -> Path:
        """The file Gradio stored (a path, or its file payload when not preprocessed)."""
        path = Path(upload.get("path") or "") if isinstance(upload, dict) else Path(upload)
        if not path.is_file():
            raise _user_error("The upload did not arrive; please try again.")
        size_mb = path.stat().st_size / 1e6
        if size_mb > self.config.max_file_mb:
            raise _user_error(f"The file has {size_mb:.1f} MB; the limit is "
                              f"{self.config.max_file_mb} MB.")
        return path

    def unmask_video(self, session: Session | None, upload: Any, settings: Settings,
                     progress: Callable[..., Any] | None = None
                     ) -> tuple[str | None, str | None, Session]:
        """A video -> (result mp4 with the input's audio, the same file to download, session)."""
        from realtime.loop import RunConfig, run
        from realtime.sources import VideoFileSource

        session = session or self.new_session()
        path = self._uploaded(upload) if upload is not None else None
        if path is None or path.suffix.lower() not in VIDEO_EXTENSIONS:
            names = ", ".join(sorted(e[1:] for e in VIDEO_EXTENSIONS))
            raise _user_error(f"Upload a video ({names}).")
        with _friendly_errors((path, "the uploaded file"), (session.root, "(server)")):
            source = VideoFileSource(path)
            try:
                fps, frames = source.info.fps, source.info.frame_count or 0
                if frames > self.config.max_video_s * fps + 1:
                    raise _user_error(f"The video lasts {frames / fps:.0f} s; the limit is "
                                      f"{self.config.max_video_s:g} s.")
                out_path = session.request_dir("video") / "unmasked.mp4"
                pipeline = session.pipeline("video", settings)
                pipeline.reset()
                config = RunConfig(
                    source=str(path), output=str(out_path), display=False,
                    present=settings.view(), progress=False,
                    max_frames=math.ceil(self.config.max_video_s * fps) + 1,  # length unknown
                    extra_sinks=(_ProgressSink(progress, frames or None),))
                if progress is not None:
                    progress(0.0, desc="Starting")
                summary = run(config, log=log.info, pipeline=pipeline, source=source)
            finally:
                source.close()  # run closes it too; this covers the refusals before it
        if summary["interrupted"]:
            gr.Warning(f"Only the first {self.config.max_video_s:g} s were processed.")
        if summary["frames_with_faces"] == 0:
            gr.Warning("No face was found in this video; it comes back unchanged.")
        return str(out_path), str(out_path), session

    def unmask_webcam(self, session: Session | None, frame_rgb: np.ndarray | None,
                      settings: Settings) -> tuple[np.ndarray | None, str, Session]:
        """One webcam picture -> (the result, a line with the frame rate, session)."""
        session = session or self.new_session()
        if frame_rgb is None:
            return None, "", session
        with _friendly_errors():
            pipeline = session.pipeline("webcam", settings)
            frame = Frame(0, time.perf_counter(), cv2.cvtColor(frame_rgb, cv2.COLOR_RGB2BGR))
            result = pipeline.process(frame)
        out_bgr = present(frame.bgr, result.out_bgr, result.mask_full_hw, settings.view())
        busy_ms = (time.perf_counter() - frame.t_capture) * 1000.0
        faces = len(result.faces)
        speed = (f"{session.tick():.1f} FPS · {busy_ms:.0f} ms per frame · "
                 f"{faces} face{'' if faces == 1 else 's'}")
        return cv2.cvtColor(out_bgr, cv2.COLOR_BGR2RGB), speed, session


def progress_line(done: int, total: int | None, elapsed_s: float) -> str:
    """What the page says while a video is processed: frames done and, once the speed is
    known, the seconds left at that speed ("Unmasking 30/75 frames, about 9 s left")."""
    line = f"Unmasking {done}/{total} frames" if total else f"Unmasking {done} frames"
    if total and 0 < done < total and elapsed_s > 0:
        line += f", about {math.ceil((total - done) * elapsed_s / done)} s left"
    return line


class _ProgressSink(SinkContext):
    """Feeds the page's progress bar from inside ``run`` (given as one of its extra sinks)."""

    def __init__(self, progress: Callable[..., Any] | None, total: int | None) -> None:
        self.progress, self.total, self.done = progress, total, 0
        self.started_s = time.perf_counter()  # the nets are loaded by now: run's own pace

    def write(self, frame: Frame, out_bgr: np.ndarray, mask_full_hw: np.ndarray | None) -> None:
        self.done += 1
        if self.progress is not None:
            desc = progress_line(self.done, self.total, time.perf_counter() - self.started_s)
            self.progress((self.done, self.total), desc=desc, unit="frames")

    def close(self) -> None: ...

    def abort(self) -> None: ...


def _unmask_picture(pipeline: Pipeline, image_bgr: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray | None] | None:
    """The unmasked picture and its full-frame mask (None unless the pipeline makes masks), or
    None without a face (``realtime.picture``: tight crops are padded, then cut back)."""
    result = unmask_picture(pipeline, Frame(0, time.perf_counter(), image_bgr))
    return (result.out_bgr, result.mask_full_hw) if result.faces else None


def _user_error(message: str) -> gr.Error:
    return gr.Error(message, print_exception=False)


@contextlib.contextmanager
def _friendly_errors(*names: tuple[Path, str]) -> Iterator[None]:
    """Problems a user can act on become a message in the page instead of a generic error;
    ``names`` replace server paths in it (``(upload_path, "the uploaded file")``)."""
    from engines import EngineError

    try:
        yield
    except gr.Error:  # already worded for the page (and a ValueError too)
        raise
    except (UnmaskError, EngineError, ValueError) as exc:
        message = str(exc)
        for path, name in names:
            message = message.replace(str(path), name)
        raise _user_error(message) from exc
