"""Real-time face-mask removal: the streaming pipeline and the ``realtime-unmask`` command.

    realtime-unmask demo                      # built-in sample, writes unmask_demo.mp4
    realtime-unmask --input clip.mp4 --output out.mp4
    realtime-unmask --camera 0
"""

from __future__ import annotations

__version__ = "0.1.0"
