"""Real-time face-mask removal: the streaming pipeline and the ``realtime-unmask`` command.

    realtime-unmask demo                      # built-in sample, writes unmask_demo.mp4
    realtime-unmask --input clip.mp4 --output out.mp4
    realtime-unmask --camera 0

From Python (``realtime.api``)::

    from realtime import Unmasker

    with Unmasker() as unmasker:
        result = unmasker.process(frame_bgr)   # result.frame_bgr, result.faces
"""

from __future__ import annotations

__version__ = "0.1.0"


def __getattr__(name: str):
    # Lazy, so that `import realtime` (and the command line) stays free of the pipeline's
    # imports until an embedding program asks for the API.
    if name in {"Unmasker", "UnmaskerConfig", "Result", "FaceResult"}:
        from realtime import api

        return getattr(api, name)
    raise AttributeError(f"module 'realtime' has no attribute {name!r}")


__all__ = ["FaceResult", "Result", "Unmasker", "UnmaskerConfig", "__version__"]
