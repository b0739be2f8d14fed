"""The face tracker alone on a video: detection and mesh/flow timings and success rates.

    python -m benchmarks.tracking clip.mp4 [FRAMES]     # the first 300 frames by default
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from realtime.tracking import FaceTracker


def main(argv: list[str]) -> None:
    """Print detection and mesh/flow timings and success rates on the first frames of a
    video."""
    import av

    path, max_frames = Path(argv[0]), int(argv[1]) if len(argv) > 1 else 300
    faces_per_frame, meshed, flowed, detect_ms, mesh_ms = [], 0, 0, [], []
    with av.open(str(path)) as container, FaceTracker() as tracker:
        for _, frame in zip(range(max_frames), container.decode(video=0), strict=False):
            faces = [f for f in tracker.update(frame.to_ndarray(format="bgr24")) if f.age == 0]
            faces_per_frame.append(len(faces))
            meshed += sum(face.landmarks_xy is not None for face in faces)
            flowed += len(tracker.last_flowed_ids)
            detect_ms.append(tracker.last_timings_ms["detect"])
            mesh_ms.append(tracker.last_timings_ms["mesh"])
    found = sum(faces_per_frame)
    print(
        f"{path.name}: {len(faces_per_frame)} frames, a face in "
        f"{np.mean(np.array(faces_per_frame) > 0):.0%}, landmarks on {meshed}/{found} faces "
        f"({flowed} by optical flow)\n"
        f"per frame (median, p95): detect {np.median(detect_ms):.1f}, "
        f"{np.percentile(detect_ms, 95):.1f} ms; mesh and flow {np.median(mesh_ms):.1f}, "
        f"{np.percentile(mesh_ms, 95):.1f} ms; per face {sum(mesh_ms) / max(found, 1):.1f} ms"
    )


if __name__ == "__main__":
    main(sys.argv[1:])
