"""Face-mesh landmarks on face crops, and the detector-like box and keypoints derived from them.

    from realtime.face.landmarks import CropLandmarker

    with CropLandmarker() as landmarker:        # tight face crops, e.g. to align training data
        landmarks_xy = landmarker(crop_rgb)     # (468, 2) in crop pixels, or None

``FaceTracker`` (realtime.tracking) uses the helpers here to run the mesh on crops around
detections and around a face's last landmarks; ``realtime.face.flow`` moves landmarks between
mesh runs.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

import cv2
import numpy as np
from mediapipe.python.solutions.face_mesh import FaceMesh

from realtime.face import mesh
from realtime.face.align import affine_points, square_affine
from realtime.types import Closing

MESH_BOX_MARGINS = (0.09, 0.02, 0.09, -0.01)
"""Left, top, right, bottom margins of the detector's box around the landmarks' bounding box,
as fractions of its width and height (medians over 857 faces, made symmetric left-right)."""


_RECORD_BYTES = 17
"""A serialized NormalizedLandmark holding exactly x, y, z: field tag + float, three times."""
_RECORD_TAG_COLUMNS = [0, 1, 2, 7, 12]
_RECORD_TAGS = np.array([0x0A, 15, 0x0D, 0x15, 0x1D], dtype=np.uint8)
"""Message tag, message length, then the tags of x, y and z (proto2 wire format)."""
_RECORD_XY_COLUMNS = [3, 4, 5, 6, 8, 9, 10, 11]


def _normalized_xy(landmark_list: object) -> np.ndarray:
    """(N, 2) float32 normalized x, y of a NormalizedLandmarkList.

    Reading 468 protobuf objects one by one costs ~0.4 ms per face; parsing the serialized
    bytes costs ~20 us. Every tag byte is checked, and a layout that differs (a MediaPipe
    release that sets visibility, say) takes the slow path.
    """
    data = landmark_list.SerializeToString()  # type: ignore[attr-defined]
    if len(data) % _RECORD_BYTES == 0:
        records = np.frombuffer(data, dtype=np.uint8).reshape(-1, _RECORD_BYTES)
        if (records[:, _RECORD_TAG_COLUMNS] == _RECORD_TAGS).all():
            return records[:, _RECORD_XY_COLUMNS].copy().view("<f4").astype(np.float32)
    points = landmark_list.landmark  # type: ignore[attr-defined]
    return np.array([(p.x, p.y) for p in points], dtype=np.float32).reshape(-1, 2)


def mesh_on_square(
    face_mesh: FaceMesh, image_rgb: np.ndarray, center_xy: np.ndarray, side_px: float, out_px: int
) -> np.ndarray | None:
    """Mesh landmarks (468, 2) in image pixels for the face centred in a square, or None."""
    return mesh_in_crop(face_mesh, image_rgb, square_affine(center_xy, side_px, out_px), out_px)


def mesh_in_crop(
    face_mesh: FaceMesh, image_rgb: np.ndarray, to_crop: np.ndarray, out_px: int
) -> np.ndarray | None:
    """Mesh landmarks (468, 2) in image pixels for the face in an affine crop, or None.

    One warpAffine crops, scales, rotates and pads (replicating the border where the crop
    leaves the image): the mesh's internal detector needs the face upscaled and away from the
    edges.
    """
    crop_rgb = cv2.warpAffine(
        image_rgb,
        to_crop,
        (out_px, out_px),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )
    result = face_mesh.process(crop_rgb)
    if not result.multi_face_landmarks:
        return None
    crop_xy = _normalized_xy(result.multi_face_landmarks[0]) * out_px
    if crop_xy.shape[0] < mesh.NUM_LANDMARKS:
        return None
    to_image = cv2.invertAffineTransform(to_crop)
    return affine_points(to_image, crop_xy[:mesh.NUM_LANDMARKS])


def upright_affine(
    box_xyxy: np.ndarray, keypoints_xy: np.ndarray, scale: float, out_px: int
) -> np.ndarray:
    """2 x 3 affine taking ``scale`` x the box's longer side around its centre, turned so that
    the eyes are level, to an out_px image.

    MediaPipe's own graph turns its landmark crops upright too: the mesh is most at home with
    level eyes.
    """
    center_xy = (box_xyxy[:2] + box_xyxy[2:]) / 2
    side_px = scale * float(max(box_xyxy[2:] - box_xyxy[:2]))
    eyes_dx, eyes_dy = keypoints_xy[1] - keypoints_xy[0]
    angle_deg = float(np.degrees(np.arctan2(eyes_dy, eyes_dx)))
    to_crop = cv2.getRotationMatrix2D(
        (float(center_xy[0]), float(center_xy[1])), angle_deg, out_px / side_px
    )
    to_crop[:, 2] += out_px / 2 - center_xy
    return to_crop.astype(np.float32)


def geometry_from_landmarks(landmarks_xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Detector-like ``box_xyxy`` and 6 ``keypoints_xy`` derived from mesh landmarks, so that
    faces followed by the mesh alone look to downstream code like detected ones."""
    low_xy, high_xy = landmarks_xy.min(axis=0), landmarks_xy.max(axis=0)
    size_wh = high_xy - low_xy
    left, top, right, bottom = MESH_BOX_MARGINS
    box_xyxy = np.concatenate(
        [low_xy - np.array([left, top]) * size_wh, high_xy + np.array([right, bottom]) * size_wh]
    ).astype(np.float32)
    keypoints_xy = np.stack(
        [
            landmarks_xy[list(mesh.RIGHT_EYE)].mean(axis=0),
            landmarks_xy[list(mesh.LEFT_EYE)].mean(axis=0),
            landmarks_xy[mesh.NOSE_TIP],
            landmarks_xy[list(mesh.INNER_LIPS)].mean(axis=0),
            landmarks_xy[mesh.EAR_TRAGIONS[0]],
            landmarks_xy[mesh.EAR_TRAGIONS[1]],
        ]
    ).astype(np.float32)
    return box_xyxy, keypoints_xy


@contextlib.contextmanager
def quiet_native_stderr(active: bool = True) -> Iterator[None]:
    """Hides what MediaPipe's C++ side prints while its graphs start.

    Building and first running the graphs prints a dozen absl/TFLite lines (XNNPACK delegate,
    feedback tensors, NORM_RECT) that no environment variable silences and that say nothing
    to a user. Python exceptions are unaffected: they are raised, not printed, in here.
    """
    if not active:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def static_mesh() -> FaceMesh:
    """One mesh graph for every face the detector finds (crops around detector boxes).

    Its video mode skips the internal detector while it follows a face (2.3 vs 5 ms a face on
    the masked webcam mosaic), but on the crops ``FaceTracker`` follows faces in its landmarks
    lie 7% of the eye distance from those found on detector crops with one graph per face
    (12% with one graph shared by two faces), against 4% in static mode, about the
    frame-to-frame change; and a graph per face costs ~40 ms to build.
    """
    return FaceMesh(static_image_mode=True, max_num_faces=1, refine_landmarks=False)


class CropLandmarker(Closing):
    """Face-mesh landmarks on tight face crops (one face per crop), with one live mesh graph."""

    crop_px: int = 192
    """The crop is scaled so that its padded square is this many pixels wide."""
    pad_scale: float = 1.5
    """Padded square side / longer crop side: 99% success on tight celeba crops."""

    def __init__(self) -> None:
        self._mesh = static_mesh()

    def __call__(self, crop_rgb: np.ndarray) -> np.ndarray | None:
        """(468, 2) float32 landmarks in crop pixels, or None when no face is found."""
        check_image(crop_rgb, "crop_rgb")
        height, width = crop_rgb.shape[:2]
        center_xy = np.array([width / 2, height / 2], dtype=np.float32)
        side_px = self.pad_scale * max(height, width)
        return mesh_on_square(self._mesh, crop_rgb, center_xy, side_px, self.crop_px)

    def close(self) -> None:
        self._mesh.close()


def detect_landmarks_on_crop(
    crop_rgb: np.ndarray, landmarker: CropLandmarker | None = None
) -> np.ndarray | None:
    """(468, 2) float32 landmarks of the face in a tight crop, in crop pixels, or None.

    Pass a ``landmarker`` when calling this on many crops: building the graph costs ~40 ms.
    """
    if landmarker is not None:
        return landmarker(crop_rgb)
    with CropLandmarker() as owned:
        return owned(crop_rgb)


def check_image(image: np.ndarray, name: str) -> None:
    shape_ok = isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[2] == 3
    if not (shape_ok and image.dtype == np.uint8 and image.size > 0):
        got = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image)
        raise ValueError(f"{name} must be an H x W x 3 uint8 array, got {got}")



def eyes_agree(
    landmarks_xy: np.ndarray, keypoints_xy: np.ndarray, box_xyxy: np.ndarray, max_error: float
) -> bool:
    """True when the mesh eye centres lie within ``max_error`` x the box's longer side of the
    eye keypoints (a detector's, or those of the face's last landmarks)."""
    box_size = float(max(box_xyxy[2:] - box_xyxy[:2]))
    right_eye_xy = landmarks_xy[list(mesh.RIGHT_EYE)].mean(axis=0)
    left_eye_xy = landmarks_xy[list(mesh.LEFT_EYE)].mean(axis=0)
    error_px = max(
        float(np.linalg.norm(right_eye_xy - keypoints_xy[0])),
        float(np.linalg.norm(left_eye_xy - keypoints_xy[1])),
    )
    return error_px <= max_error * box_size
