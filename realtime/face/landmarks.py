"""Face-mesh landmarks on face crops, and carrying them from frame to frame by optical flow.

    from realtime.face.landmarks import CropLandmarker

    with CropLandmarker() as landmarker:        # tight face crops, e.g. to align training data
        landmarks_xy = landmarker(crop_rgb)     # (468, 2) in crop pixels, or None

``FaceTracker`` (realtime.tracking) uses the helpers here to run the mesh on crops around
detections and around a face's last landmarks.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np
from mediapipe.python.solutions.face_mesh import FaceMesh

from realtime.face.align import affine_points
from realtime.types import Closing

MESH_RIGHT_EYE = (33, 133, 159, 145)
"""Face-mesh indices around the subject's right eye (corners, upper and lower lid)."""
MESH_LEFT_EYE = (362, 263, 386, 374)
"""Face-mesh indices around the subject's left eye."""
MESH_NOSE_TIP = 4
"""Face-mesh index closest (median 6% of the box) to the detector's nose-tip keypoint."""
MESH_MOUTH = (13, 14)
"""Face-mesh indices of the inner lips, whose mean is the detector's mouth-centre keypoint."""
MESH_EAR_TRAGIONS = (127, 356)
"""Face-mesh indices nearest (median 9% of the box) the detector's ear keypoints."""
MESH_BOX_MARGINS = (0.09, 0.02, 0.09, -0.01)
"""Left, top, right, bottom margins of the detector's box around the landmarks' bounding box,
as fractions of its width and height (medians over 857 faces, made symmetric left-right)."""
NUM_LANDMARKS = 468


def _square_affine(center_xy: np.ndarray, side_px: float, out_px: int) -> np.ndarray:
    """2 x 3 affine taking the square of ``side_px`` around ``center_xy`` to an out_px image."""
    scale = out_px / side_px
    return np.array(
        [
            [scale, 0.0, out_px / 2 - scale * float(center_xy[0])],
            [0.0, scale, out_px / 2 - scale * float(center_xy[1])],
        ],
        dtype=np.float32,
    )


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
    mesh: FaceMesh, image_rgb: np.ndarray, center_xy: np.ndarray, side_px: float, out_px: int
) -> np.ndarray | None:
    """Mesh landmarks (468, 2) in image pixels for the face centred in a square, or None."""
    return mesh_in_crop(mesh, image_rgb, _square_affine(center_xy, side_px, out_px), out_px)


def mesh_in_crop(
    mesh: FaceMesh, image_rgb: np.ndarray, to_crop: np.ndarray, out_px: int
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
    result = mesh.process(crop_rgb)
    if not result.multi_face_landmarks:
        return None
    crop_xy = _normalized_xy(result.multi_face_landmarks[0]) * out_px
    if crop_xy.shape[0] < NUM_LANDMARKS:
        return None
    to_image = cv2.invertAffineTransform(to_crop)
    return affine_points(to_image, crop_xy[:NUM_LANDMARKS])


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
            landmarks_xy[list(MESH_RIGHT_EYE)].mean(axis=0),
            landmarks_xy[list(MESH_LEFT_EYE)].mean(axis=0),
            landmarks_xy[MESH_NOSE_TIP],
            landmarks_xy[list(MESH_MOUTH)].mean(axis=0),
            landmarks_xy[MESH_EAR_TRAGIONS[0]],
            landmarks_xy[MESH_EAR_TRAGIONS[1]],
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
    right_eye_xy = landmarks_xy[list(MESH_RIGHT_EYE)].mean(axis=0)
    left_eye_xy = landmarks_xy[list(MESH_LEFT_EYE)].mean(axis=0)
    error_px = max(
        float(np.linalg.norm(right_eye_xy - keypoints_xy[0])),
        float(np.linalg.norm(left_eye_xy - keypoints_xy[1])),
    )
    return error_px <= max_error * box_size


FLOW_UPPER_POINTS = (
    33, 133, 362, 263,  # eye corners
    159, 145, 386, 374,  # upper and lower lids
    70, 105, 107, 336, 334, 300,  # eyebrows
    168, 6, 197, 195, 4,  # nose bridge to tip
    116, 345, 50, 280,  # cheekbones
    127, 356, 234, 454, 162, 389,  # outline beside the eyes
)
"""Face-mesh indices optical flow follows: corners and edges with texture that no face mask
covers, spread over the face so that a similarity fit is well posed. Adding 13 jaw-outline
points (93, 323, 132, 361, 58, 288, 172, 397, 150, 379, 152, 148, 377) made the flow check fail
more often and, on turned faces in the hamilton clip, the fit worse (5% vs 4% of the eye
distance from the mesh's landmarks)."""
FLOW_PATCH_PX = 128
"""Side of the grayscale square optical flow runs on: a fixed size makes its cost (~2 ms a
face) independent of the face's and the frame's size."""
FLOW_PATCH_SCALE = 1.5
"""Patch side / the landmarks' longer extent: room for the face to move within it."""
FLOW_MIN_INLIERS = 0.6
"""Least fraction of the followed points that must move with the fitted similarity."""
_LK_PARAMS = {
    "winSize": (11, 11),
    "maxLevel": 3,
    "criteria": (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 20, 0.03),
}
"""Pyramidal Lucas-Kanade on the 128 px patch: an 11 px window is ~1/4 of the eye distance,
and 3 pyramid levels reach ~40 px (a third of the patch) of motion per frame."""


@dataclass(frozen=True)
class FlowPatch:
    """A grayscale square around a face in one frame, to follow its landmarks into the next."""

    to_patch: np.ndarray
    """float32 (2, 3) affine from frame pixels to patch pixels."""
    patch_gray: np.ndarray
    """uint8 (FLOW_PATCH_PX, FLOW_PATCH_PX) grayscale patch."""


def flow_patch(frame_rgb: np.ndarray, landmarks_xy: np.ndarray) -> FlowPatch:
    """The patch around a face's landmarks in this frame."""
    low_xy, high_xy = landmarks_xy.min(axis=0), landmarks_xy.max(axis=0)
    side_px = FLOW_PATCH_SCALE * float(max(high_xy - low_xy))
    to_patch = _square_affine((low_xy + high_xy) / 2, max(side_px, 1.0), FLOW_PATCH_PX)
    return FlowPatch(to_patch, _gray_patch(frame_rgb, to_patch))


def _gray_patch(frame_rgb: np.ndarray, to_patch: np.ndarray) -> np.ndarray:
    # Warping first converts 128 x 128 pixels to gray instead of the whole frame.
    patch_rgb = cv2.warpAffine(
        frame_rgb, to_patch, (FLOW_PATCH_PX, FLOW_PATCH_PX), flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE)
    return cv2.cvtColor(patch_rgb, cv2.COLOR_RGB2GRAY)


def propagate_landmarks(
    previous: FlowPatch,
    frame_rgb: np.ndarray,
    landmarks_xy: np.ndarray,
    *,
    max_error: float,
    max_scale_change: float,
    point_ids: tuple[int, ...] = FLOW_UPPER_POINTS,
) -> np.ndarray | None:
    """The face's landmarks (468, 2) moved into this frame by optical flow, or None.

    The points of ``point_ids`` are followed by Lucas-Kanade from ``previous`` into the same
    square of this frame and back; a similarity fitted with RANSAC to those that come back
    within ``max_error`` x the eye distance moves every landmark. None, so that the mesh runs
    instead, when too few points agree or the scale changed by more than ``max_scale_change``
    (a zoom that fast is more likely a tracking failure).
    """
    start_xy = affine_points(previous.to_patch, landmarks_xy[list(point_ids)])
    max_error_px = max_error * _eye_distance_px(start_xy, point_ids)
    end_xy, tracked = _tracked_points(
        previous.patch_gray, _gray_patch(frame_rgb, previous.to_patch), start_xy, max_error_px)
    min_inliers = FLOW_MIN_INLIERS * len(point_ids)
    if tracked.sum() < min_inliers:
        return None
    motion, inliers = cv2.estimateAffinePartial2D(
        start_xy[tracked], end_xy[tracked], method=cv2.RANSAC,
        ransacReprojThreshold=max_error_px)
    if motion is None or inliers.sum() < min_inliers:
        return None
    if abs(np.sqrt(abs(np.linalg.det(motion[:, :2]))) - 1.0) > max_scale_change:
        return None
    to_frame = cv2.invertAffineTransform(previous.to_patch)
    return affine_points(to_frame, affine_points(motion, affine_points(
        previous.to_patch, landmarks_xy)))


def _tracked_points(
    previous_gray: np.ndarray, gray: np.ndarray, start_xy: np.ndarray, max_error_px: float
) -> tuple[np.ndarray, np.ndarray]:
    """Where Lucas-Kanade moves ``start_xy``, and which points come back to within
    ``max_error_px`` of where they started when followed backwards (a point that drifted onto
    a different texture, or across an occlusion, does not)."""
    end_xy, found, _ = cv2.calcOpticalFlowPyrLK(previous_gray, gray, start_xy, None, **_LK_PARAMS)
    back_xy, found_back, _ = cv2.calcOpticalFlowPyrLK(
        gray, previous_gray, end_xy, None, **_LK_PARAMS)
    error_px = np.linalg.norm(back_xy - start_xy, axis=1)
    tracked = (found.ravel() == 1) & (found_back.ravel() == 1) & (error_px <= max_error_px)
    return end_xy, tracked


def _eye_distance_px(points_xy: np.ndarray, point_ids: tuple[int, ...]) -> float:
    """Distance between the outer eye corners, which every flow point set includes."""
    outer = [point_ids.index(MESH_RIGHT_EYE[0]), point_ids.index(MESH_LEFT_EYE[1])]
    return float(np.linalg.norm(points_xy[outer[0]] - points_xy[outer[1]]))

