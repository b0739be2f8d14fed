"""The browser demo's page (Gradio): its tabs wired to ``realtime.web``'s handlers, and the server.

    realtime-unmask web                               # http://127.0.0.1:7860, this machine only
    realtime-unmask web --host 0.0.0.0 --port 8080    # reachable from the network
    realtime-unmask web --share --backend onnx --max-faces 2

    demo = build_blocks(WebApp(WebConfig()))          # the gr.Blocks, e.g. to mount elsewhere
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import get_args

import gradio as gr

from realtime.types import Backend
from realtime.web import Session, Settings, WebApp, WebConfig

NOTICE = ("The painted lower face is a plausible guess made by a neural network, not the hidden "
          "face: it must not be used to identify anyone. Downloads say so in their metadata.")
NOTE = ("**Reconstructed:** the painted lower face is a plausible guess, not the hidden face. "
        "Do not use it to identify anyone.")
"""Shown under every result, where the eye is when the result appears."""
VIEW_PX = 480
"""Height of every picture and video box: small uploads are scaled up to it, not left tiny."""
CSS = """
.big-view img, .big-view video { width: 100%; height: 100%; object-fit: contain; }
.rtc-box { position: relative; background: #111; }
.rtc-box #rtc-output { width: 100%; height: 100%; object-fit: contain; }
.rtc-box #rtc-camera { position: absolute; right: 8px; bottom: 8px; width: 160px;
                       border: 2px solid #fff; }
#rtc-readout { padding: 6px 0; font-variant-numeric: tabular-nums; }
.provenance { padding: 6px 10px; border-left: 4px solid #d97706; background: #fffbeb;
               color: #78350f; }
"""
"""Gradio's own style shrinks a picture to its natural size ("scale-down"); this fills the box
and keeps the aspect ratio. ``serve`` passes it to ``launch`` (where Gradio 6 takes CSS)."""
RTC_VIEW = f"""
<div class="rtc-box" style="height: {VIEW_PX}px">
  <video id="rtc-output" autoplay playsinline muted></video>
  <video id="rtc-camera" autoplay playsinline muted title="your camera, as sent"></video>
</div>
<div id="rtc-readout">Press "Start the camera": it streams over WebRTC to this server and back,
unmasked. The strip of squares in the top-left corner stamps each frame with its capture time,
so that the page can measure the delay from camera to screen.</div>
"""
"""The WebRTC result, with the camera as sent (stamp included) in its corner."""


def build_blocks(app: WebApp) -> gr.Blocks:
    """The page: Image, Video, Webcam and Settings tabs wired to ``app``'s handlers, with
    one-click examples made from the built-in sample (written into ``app``'s temporary root)."""
    from realtime.web_examples import write_examples

    c = app.config
    examples = write_examples(app.root / "examples")
    big = {"height": VIEW_PX, "elem_classes": "big-view"}
    # Every 5 min, cached files older than 30 min go (Gradio stores every webcam frame).
    with gr.Blocks(title="realtime-unmask", analytics_enabled=False,
                   delete_cache=(300, 1800)) as demo:
        ui = SimpleNamespace(session=gr.State(None, delete_callback=_close_session))
        gr.Markdown(f"# realtime-unmask\nRemoves face masks from photos, videos and your "
                    f"webcam. {NOTICE}")
        with gr.Tab("Image"):
            with gr.Row(equal_height=False):
                with gr.Column():
                    ui.image_in = gr.Image(label="Masked photo (jpg, png, webp, bmp)",
                                           type="filepath", sources=["upload", "clipboard"],
                                           elem_id="image-input", **big)
                    ui.image_examples = gr.Examples(
                        [[path] for path in examples.photos], [ui.image_in],
                        label="No masked photo at hand? Click one (built-in samples)",
                        elem_id="image-examples")
                with gr.Column():
                    ui.image_out = gr.Image(label="Result", format="png", interactive=False,
                                            elem_id="image-output", **big)
                    gr.Markdown(NOTE, elem_classes="provenance", elem_id="image-note")
                    ui.image_overlay = gr.Checkbox(label="Tint the painted region",
                                                   elem_id="image-overlay")
                    ui.image_file = gr.File(label="Download (PNG)", elem_id="image-file")
            ui.image_slider = gr.ImageSlider(label="Before / after: drag the line",
                                             type="filepath", interactive=False,
                                             elem_id="image-slider", **big)
        with gr.Tab("Video"), gr.Row(equal_height=False):
            with gr.Column():
                ui.video_in = gr.Video(label=f"Masked video (mp4, mov, mkv, webm, avi; up to "
                                             f"{c.max_video_s:g} s)", sources=["upload"],
                                       include_audio=True, elem_id="video-input", **big)
                ui.video_examples_at = gr.Column()  # filled once the handler exists (_wire)
            with gr.Column():
                ui.video_button = gr.Button("Unmask video", variant="primary",
                                            elem_id="video-button")
                ui.video_out = gr.Video(label="Result", interactive=False,
                                        elem_id="video-output", **big)
                gr.Markdown(NOTE, elem_classes="provenance", elem_id="video-note")
                ui.video_overlay = gr.Checkbox(label="Tint the painted region",
                                               elem_id="video-overlay")
                ui.video_file = gr.File(label="Download (MP4)", elem_id="video-file")
        with gr.Tab("Webcam"):
            _webrtc_view(ui)
            with gr.Accordion("No video above? The fallback: pictures over HTTP (slower, "
                              "but works wherever the page does, --share included)",
                              open=False, elem_id="webcam-fallback"), gr.Row(equal_height=False):
                ui.webcam_in = gr.Image(label="Camera", sources=["webcam"], streaming=True,
                                        elem_id="webcam-input")
                with gr.Column():
                    ui.webcam_out = gr.Image(label="Result", format="jpeg", interactive=False,
                                             elem_id="webcam-output", **big)
                    gr.Markdown(NOTE, elem_classes="provenance", elem_id="webcam-note")
                    ui.webcam_speed = gr.Markdown(elem_id="webcam-speed")
        with gr.Tab("Settings"):
            ui.settings = [  # in the order of Settings.from_page
                gr.Dropdown(list(get_args(Backend)), value=c.backend, label="Inference backend"),
                gr.Slider(1, 16, value=c.max_faces, step=1, label="Most faces per frame"),
                gr.Checkbox(label="Tint the painted region"),
                gr.Slider(0.05, 1.0, value=0.5, step=0.05, label="Mask smoothing: weight of "
                          "the newest frame (lower is steadier, 1 is off)"),
                gr.Checkbox(value=True, label="Tag results 'reconstructed'")]
        _wire(app, ui, examples.clip)
    return demo


def _wire(app: WebApp, ui: SimpleNamespace, clip: Path) -> None:
    from realtime.web_examples import CLIP_SECONDS

    def image_fn(state, upload, show_mask, backend, faces, _overlay, smoothing, label):
        page = Settings.from_page(backend, faces, show_mask, smoothing, label)
        return app.unmask_image(state, upload, page)

    # Gradio finds the progress bar by this default argument, so it has to be a call.
    def video_fn(state, upload, *values, progress=gr.Progress()):  # noqa: B008
        return app.unmask_video(state, upload, Settings.from_page(*values), progress)

    def webcam_fn(state, frame_rgb, *values):
        return app.unmask_webcam(state, frame_rgb, Settings.from_page(*values))

    # Unpreprocessed, the picture reaches the handler as the stored file, so a broken or
    # unsupported upload gets a clear message instead of Pillow's error inside Gradio.
    # An example click sets the input, which is a change too: it runs like an upload.
    gr.on([ui.image_in.change, ui.image_overlay.input], image_fn,
          [ui.session, ui.image_in, ui.image_overlay, *ui.settings],
          [ui.image_out, ui.image_slider, ui.image_file, ui.session], preprocess=False)
    _same_value([ui.image_overlay, ui.video_overlay, ui.settings[2]])
    video_inputs = [ui.session, ui.video_in, *ui.settings]
    video_outputs = [ui.video_out, ui.video_file, ui.session]
    ui.video_button.click(video_fn, video_inputs, video_outputs)
    with ui.video_examples_at:  # a click loads the clip and runs it, as the button would
        caption = f"Sample clip: masked face, moving camera ({CLIP_SECONDS:g} s)"
        gr.Examples([[None, clip, *[None] * len(ui.settings)]], video_inputs, video_outputs,
                    fn=video_fn, run_on_click=True, cache_examples=False,
                    label="No masked video at hand? Click this", example_labels=[caption],
                    elem_id="video-examples")
    # The browser sends the next frame once the last one is back, on this clock's next tick.
    # The WebRTC client gets the Settings tab's values when it starts (webrtc_client.js).
    ui.rtc_start.click(None, ui.settings, None, js="(...s) => window.realtimeUnmask.start(s)")
    ui.rtc_stop.click(None, None, None, js="() => window.realtimeUnmask.stop()")
    ui.webcam_in.stream(webcam_fn, [ui.session, ui.webcam_in, *ui.settings],
                        [ui.webcam_out, ui.webcam_speed, ui.session], stream_every=0.05,
                        time_limit=app.config.webcam_time_limit_s, show_progress="hidden",
                        concurrency_limit=app.config.webcam_streams)


def _webrtc_view(ui: SimpleNamespace) -> None:
    """The WebRTC webcam: the result large, the camera small in its corner, start/stop, and
    the frame rate and glass-to-glass latency measured in the page (``webrtc_client.js``)."""
    with gr.Row():
        ui.rtc_start = gr.Button("Start the camera", variant="primary", elem_id="rtc-start")
        ui.rtc_stop = gr.Button("Stop", elem_id="rtc-stop")
    gr.HTML(RTC_VIEW, elem_id="rtc-view")
    gr.Markdown(NOTE, elem_classes="provenance", elem_id="rtc-note")


def rtc_head(app: WebApp) -> str:
    """The page's <head> addition: the ICE servers (none unless ``--ice-server``) and the
    WebRTC client."""
    from realtime.webrtc import ice_server

    config = {"iceServers": [ice_server(url) for url in app.config.ice_servers]}
    client = Path(__file__).with_name("webrtc_client.js").read_text()
    return (f"<script>window.REALTIME_UNMASK_RTC = {json.dumps(config)};</script>\n"
            f"<script>{client}</script>")


def _same_value(boxes: list[gr.Checkbox]) -> None:
    """The tabs' overlay boxes and the Settings one stay in step: ticking one ticks all."""
    copies = len(boxes) - 1
    for box in boxes:
        others = [other for other in boxes if other is not box]
        box.input(lambda value: [value] * copies, box, others, queue=False)


def _close_session(session: Session | None) -> None:
    if session is not None:
        session.close()


def serve(config: WebConfig) -> None:
    """Builds the page and serves it until interrupted; temporary files go with it."""
    from realtime.webrtc import RtcServer

    app = WebApp(config)
    rtc = RtcServer(app)
    try:
        demo = build_blocks(app)
        demo.queue(max_size=32)
        demo.launch(server_name=config.host, server_port=config.port, share=config.share,
                    max_file_size=f"{config.max_file_mb}mb", ssr_mode=False, css=CSS,
                    head=rtc_head(app), app_kwargs={"routes": rtc.routes(),
                                                    "lifespan": rtc.lifespan})
    finally:
        app.close()
