"""A real RTSP server (GStreamer's gst-rtsp-server) that serves one H.264 MP4 clip, for tests.

    /usr/bin/python3 tests/realtime/rtsp_server.py CLIP.mp4 PORT [--on-cue]

Serves ``rtsp://127.0.0.1:PORT/clip`` and prints ``ready`` on stdout once it listens. Each
client gets the clip from its first frame, paced in real time, as its packets are (no
re-encoding: the server needs no x264). Runs until it is killed or sent SIGTERM.
``--on-cue`` loads everything but listens only once a line arrives on stdin: a test can
have the next server waiting while the first one runs, and start it the moment it wants.

It needs Python's GObject bindings and the RTSP server's typelib, which Debian packages for
its own Python (not for a virtual environment):

    apt-get install -y --no-install-recommends gir1.2-gst-rtsp-server-1.0 python3-gi \
        gstreamer1.0-plugins-good

so it imports nothing from this repository and nothing outside the standard library and gi.
"""

from __future__ import annotations

import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402  (after require_version)


def serve(clip: str, port: int, *, on_cue: bool) -> None:
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(port))
    factory = GstRtspServer.RTSPMediaFactory()
    # qtdemux hands rtph264pay the stored access units; config-interval=1 repeats SPS/PPS
    # with every keyframe, as a camera does, so a client that joins late can still decode.
    location = clip.replace("\\", "\\\\").replace('"', '\\"')
    factory.set_launch(f'( filesrc location="{location}" ! qtdemux ! '
                       "rtph264pay name=pay0 pt=96 config-interval=1 )")
    factory.set_shared(False)  # every connection starts its own playback from frame 0
    server.get_mount_points().add_factory("/clip", factory)
    if on_cue:
        sys.stdin.readline()
    if server.attach(None) == 0:
        sys.exit(f"cannot listen on 127.0.0.1:{port}")
    loop = GLib.MainLoop()
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGTERM, loop.quit)
    print("ready", flush=True)
    loop.run()


if __name__ == "__main__":
    serve(sys.argv[1], int(sys.argv[2]), on_cue="--on-cue" in sys.argv[3:])
