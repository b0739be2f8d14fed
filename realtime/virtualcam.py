"""The output as a system camera that Zoom, Meet, OBS and browsers can pick (``pyvirtualcam``).

    realtime-unmask --camera 0 --virtual-camera                # the first free device
    realtime-unmask --input clip.mp4 --virtual-camera /dev/video10

    with VirtualCameraSink(source.info) as sink:
        sink.write(frame, out_bgr, mask_full_hw)

Linux needs a v4l2loopback device (``sudo modprobe v4l2loopback devices=1``); Windows and
macOS use OBS's virtual camera (install OBS and start its virtual camera once). The camera
runs at the input's size and rate; frames from a file are paced to that rate, while a live
input already arrives in real time.
"""

from __future__ import annotations

import logging
from typing import Any

import cv2
import numpy as np

from realtime.types import Frame, SinkContext, SinkError, StreamInfo

log = logging.getLogger(__name__)

INSTALL_HINT = ('pip install "realtime-unmask[virtualcam]"')
DEVICE_HINT = ("on Linux load v4l2loopback (sudo modprobe v4l2loopback devices=1); on Windows "
               "and macOS install OBS Studio and start its virtual camera once")


class VirtualCameraSink(SinkContext):
    """Sends every output frame, as RGB, to a virtual camera device."""

    def __init__(self, info: StreamInfo, device: str | None = None) -> None:
        if info.kind == "images":
            raise SinkError("a virtual camera needs a video, a camera or a stream as input "
                            "(pictures of a folder differ in size)")
        width, height = info.size_wh
        self.size_wh = info.size_wh
        self.pace = not info.live  # a file would otherwise play as fast as it decodes
        self._camera = _open_camera(width, height, info.fps, device)
        log.info("virtual camera: %s (%s), %dx%d at %.3g FPS", self._camera.device,
                 self._camera.backend, width, height, info.fps)

    @property
    def device(self) -> str:
        return str(self._camera.device) if self._camera is not None else ""

    def write(self, frame: Frame, out_bgr: np.ndarray, mask_full_hw: np.ndarray | None) -> None:
        if self._camera is None:
            raise SinkError("cannot send to the virtual camera: it is already closed")
        width, height = self.size_wh
        if out_bgr.shape != (height, width, 3) or out_bgr.dtype != np.uint8:
            raise SinkError(f"frame {frame.index} is {out_bgr.shape} {out_bgr.dtype}, but the "
                            f"virtual camera takes {height}x{width}x3 uint8")
        frame_rgb = cv2.cvtColor(out_bgr, cv2.COLOR_BGR2RGB)  # pyvirtualcam's default format
        self._camera.send(frame_rgb)
        if self.pace:
            self._camera.sleep_until_next_frame()

    def close(self) -> None:
        camera, self._camera = self._camera, None
        if camera is not None:
            camera.close()

    def abort(self) -> None:
        self.close()  # nothing is left behind by a camera: closing is all there is


def _open_camera(width: int, height: int, fps: float, device: str | None) -> Any:
    try:
        import pyvirtualcam
    except ImportError as exc:
        raise SinkError(f"--virtual-camera needs pyvirtualcam: {INSTALL_HINT}") from exc
    if not fps > 0:
        raise SinkError(f"cannot open a virtual camera at {fps} FPS")
    try:
        return pyvirtualcam.Camera(width=width, height=height, fps=fps,
                                   fmt=pyvirtualcam.PixelFormat.RGB, device=device)
    # pyvirtualcam raises RuntimeError with each backend's reason, one per line.
    except RuntimeError as exc:
        reasons = "; ".join(line.strip() for line in str(exc).splitlines() if line.strip())
        where = f"device {device}" if device else "virtual camera device"
        raise SinkError(f"no usable {where} ({reasons}): {DEVICE_HINT}") from exc
