"""The browser sessions of the web soak (``benchmarks.web_soak``): one thread per session.

    tally = Tally()
    inputs = SoakInputs(photos=[...], clip=clip, frames=[[...], [...]])  # frames per session
    session_loop(0, "http://127.0.0.1:7861/", inputs, downloads, stop, tally)

Each session is one ``gradio_client.Client`` (its own session hash, heartbeat and gr.State on
the server), cycling through ``SCHEDULE``: the Image tab's handler on the page's examples, the
Webcam tab's stream for a few frames, now and then the Video tab's handler on the sample clip.
Results are downloaded, as a browser fetches them. gradio_client 2.7 cannot consume a streaming
event (its status table lacks ``process_streaming``), so the webcam speaks the page's own queue
protocol over httpx, under the same session hash: join the queue, read its event stream, post
each frame to ``/stream/{event_id}``, then close it. Any exception, error message or missing
result counts as an error, with its message.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

Kind = Literal["image", "video", "webcam"]
WARMUP: tuple[Kind, ...] = ("image", "webcam", "video")
"""What every session does first: each tab's pipeline exists before memory is measured."""
SCHEDULE: tuple[Kind, ...] = ("image", "webcam", "image", "image", "webcam", "image", "image",
                              "video")
"""Then this, over and over; session i starts 2 i steps in, so videos do not come at once."""
WEBCAM_FRAMES = 5
"""Frames sent per webcam stream: the first opens it, the rest go through ``/stream``."""
TIMEOUT_S = 300.0
"""Longest wait for any one answer (a video on a loaded 2-core machine takes tens of seconds)."""


@dataclass(frozen=True)
class SoakInputs:
    """What the sessions upload (client-side copies: nothing comes from the network)."""

    photos: list[Path]
    """Pictures for the Image tab, used in turn."""
    clip: Path
    """The Video tab's sample clip."""
    frames: list[list[Path]]
    """Webcam frames (pictures of a face) for each session, sent in turn; session i uses
    ``frames[i % len(frames)]``. Each its own, as each user has a camera of their own:
    byte-identical results from two sessions at once share one path in Gradio's cache, and
    Gradio 6.31 rewrites that file in place (``save_pil_to_cache``) while the other session
    may be downloading it (a truncated read, seen in a 4-session trial)."""


@dataclass(frozen=True)
class Record:
    """One request: a picture, a video, or one webcam frame."""

    t_s: float
    """When it ended, on ``time.perf_counter``'s clock."""
    session: int
    kind: Kind
    latency_s: float
    error: str | None
    """None when it succeeded, else what went wrong."""


class Tally:
    """Every session's records, appended from the session threads."""

    def __init__(self) -> None:
        self.records: list[Record] = []
        self._lock = threading.Lock()

    def add(self, session: int, kind: Kind, latency_s: float, error: str | None = None) -> None:
        with self._lock:
            self.records.append(Record(time.perf_counter(), session, kind, latency_s, error))

    def since(self, start: int) -> list[Record]:
        with self._lock:
            return self.records[start:]


def session_loop(index: int, url: str, inputs: SoakInputs, downloads: Path,
                 stop: threading.Event, tally: Tally) -> None:
    """One browser session until ``stop`` is set; its requests and errors go into ``tally``."""
    from gradio_client import Client

    client = webcam = None
    try:
        client = Client(url, verbose=False, download_files=str(downloads),
                        httpx_kwargs={"timeout": TIMEOUT_S})
        webcam = _Webcam(client, url)
        cycle = itertools.islice(itertools.cycle(SCHEDULE), 2 * index, None)
        sent = Counter[str]()  # inputs are used in turn, per kind
        for kind in itertools.chain(WARMUP, cycle):
            if stop.is_set():
                break
            t0 = time.perf_counter()
            try:
                if kind == "webcam":
                    own = inputs.frames[index % len(inputs.frames)]
                    frames = [own[(sent["frame"] + k) % len(own)] for k in range(WEBCAM_FRAMES)]
                    sent["frame"] += WEBCAM_FRAMES
                    for latency_s in webcam.stream(frames):
                        tally.add(index, kind, latency_s)
                else:
                    photo = inputs.photos[sent["photo"] % len(inputs.photos)]
                    sent["photo"] += kind == "image"
                    _unmask(client, kind, inputs.clip if kind == "video" else photo)
                    tally.add(index, kind, time.perf_counter() - t0)
            except Exception as exc:  # every failure is counted, with its message
                tally.add(index, kind, time.perf_counter() - t0, _message(exc))
    except Exception as exc:  # the session could not open: counted, never hidden
        tally.add(index, "image", 0.0, f"session did not open: {_message(exc)}")
    finally:
        if webcam is not None:
            webcam.close()
        if client is not None:
            client.close()  # ends the heartbeat: the server sees the tab closed


def _unmask(client: Any, kind: Kind, path: Path) -> None:
    from gradio_client import handle_file

    api = "/video_fn" if kind == "video" else "/image_fn"
    outputs = client.predict(handle_file(str(path)), api_name=api)
    result = outputs[0]
    if not result or not Path(result).is_file() or Path(result).stat().st_size == 0:
        raise RuntimeError(f"{api} returned no result file ({result!r})")


class _Webcam:
    """The Webcam tab's stream, spoken as the page speaks it (see the module docstring)."""

    def __init__(self, client: Any, url: str) -> None:
        import httpx

        self.base = url.rstrip("/") + "/" + client.api_prefix.strip("/")
        self.session_hash = client.session_hash
        dependency = next(d for d in client.config["dependencies"]
                          if d.get("api_name") == "webcam_fn")
        self.fn_index = dependency["id"]
        parameters = client.view_api(return_format="dict", print_info=False)[
            "named_endpoints"]["/webcam_fn"]["parameters"]
        self.settings = [p["parameter_default"] for p in parameters[1:]]  # the page's own
        self.http = httpx.Client(timeout=TIMEOUT_S)

    def stream(self, frames: list[Path]) -> list[float]:
        """Sends ``frames`` as one stream; the seconds each took to come back."""
        latencies: list[float] = []
        t_sent = time.perf_counter()
        event_id = self._post("/queue/join", self._body(frames[0]))["event_id"]
        with self.http.stream("GET", f"{self.base}/queue/data",
                              params={"session_hash": self.session_hash}) as response:
            response.raise_for_status()
            for line in response.iter_lines():
                if not line.startswith("data:"):
                    continue
                msg = json.loads(line[5:])
                if msg.get("event_id") not in (None, event_id):
                    continue
                kind = msg.get("msg")
                if kind in ("process_streaming", "process_completed") and not msg.get(
                        "success", True):
                    raise RuntimeError(f"webcam: {_error_text(msg.get('output'))}")
                if kind == "unexpected_error":
                    raise RuntimeError(f"webcam: {msg.get('message')}")
                if kind == "process_streaming":
                    latencies.append(time.perf_counter() - t_sent)
                    self._fetch(msg["output"]["data"][0])
                    t_sent = time.perf_counter()
                    if len(latencies) < len(frames):
                        self._post(f"/stream/{event_id}", self._body(frames[len(latencies)]))
                    else:
                        self._post(f"/stream/{event_id}/close", None)
                elif kind in ("process_completed", "close_stream"):
                    break
        if len(latencies) < len(frames):
            raise RuntimeError(f"webcam: {len(latencies)} of {len(frames)} frames came back")
        return latencies

    def _body(self, frame: Path) -> dict[str, Any]:
        with frame.open("rb") as f:  # uploaded anew, as the browser does every frame
            (server_path,) = self._post("/upload", None, files={"files": (frame.name, f)})
        picture = {"path": server_path, "orig_name": frame.name,
                   "meta": {"_type": "gradio.FileData"}}
        return {"data": [None, picture, *self.settings], "fn_index": self.fn_index,
                "session_hash": self.session_hash, "event_data": None, "trigger_id": None}

    def _post(self, route: str, body: dict[str, Any] | None, **kwargs: Any) -> Any:
        response = self.http.post(self.base + route, json=body, **kwargs)
        response.raise_for_status()
        return response.json()

    def _fetch(self, picture: dict[str, Any] | None) -> None:
        if not picture or not picture.get("url"):
            raise RuntimeError(f"webcam: a frame came back without a picture ({picture!r})")
        response = self.http.get(picture["url"])
        response.raise_for_status()
        if not response.content:
            raise RuntimeError("webcam: a result frame was empty")

    def close(self) -> None:
        self.http.close()


def _message(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:300]}" if text else type(exc).__name__


def _error_text(output: Any) -> str:
    if isinstance(output, dict) and output.get("error"):
        return str(output["error"])
    return f"error response {output!r}"[:300]


def error_counts(records: list[Record]) -> list[dict[str, Any]]:
    """The distinct error messages, most frequent first."""
    counts = Counter(r.error for r in records if r.error is not None)
    return [{"message": message, "count": n} for message, n in counts.most_common()]
