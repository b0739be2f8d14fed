"""Faces found by a MediaPipe detector, and boxes matched across frames by overlap.

    from mediapipe.python.solutions.face_detection import FaceDetection

    detector = FaceDetection(model_selection=1, min_detection_confidence=0.5)
    detections = detect(detector, frame_rgb)                   # list[Detection]
    pairs = greedy_match(iou_matrix(boxes_a_xyxy, boxes_b_xyxy), threshold=0.3)

``FaceTracker`` (realtime.tracking) keeps track ids with these.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from mediapipe.python.solutions.face_detection import FaceDetection


@dataclass(frozen=True)
class Detection:
    """One face the detector found, in frame pixels."""

    box_xyxy: np.ndarray
    """float32 (4,) box."""
    keypoints_xy: np.ndarray
    """float32 (6, 2): right eye, left eye, nose tip, mouth centre, right and left ear."""
    score: float


def detect(detector: FaceDetection, frame_rgb: np.ndarray) -> list[Detection]:
    """All detections of one detector, in frame pixels."""
    height, width = frame_rgb.shape[:2]
    result = detector.process(frame_rgb)
    found = []
    for detection in result.detections or ():
        location = detection.location_data
        rel = location.relative_bounding_box
        box_xyxy = np.array(
            [rel.xmin, rel.ymin, rel.xmin + rel.width, rel.ymin + rel.height], dtype=np.float32
        ) * np.array([width, height, width, height], dtype=np.float32)
        keypoints_xy = np.array(
            [(k.x * width, k.y * height) for k in location.relative_keypoints], dtype=np.float32
        )
        found.append(Detection(box_xyxy, keypoints_xy, float(detection.score[0])))
    return found


def unmatched(extra: list[Detection], found: list[Detection]) -> list[Detection]:
    """Detections in ``extra`` that overlap none in ``found`` (IoU under 0.3)."""
    if not extra or not found:
        return extra
    iou = iou_matrix(np.stack([d.box_xyxy for d in extra]), np.stack([d.box_xyxy for d in found]))
    return [d for d, overlap in zip(extra, iou.max(axis=1), strict=True) if overlap < 0.3]


def iou_matrix(boxes_a_xyxy: np.ndarray, boxes_b_xyxy: np.ndarray) -> np.ndarray:
    """(len(a), len(b)) intersection over union of two box arrays."""
    top_left = np.maximum(boxes_a_xyxy[:, None, :2], boxes_b_xyxy[None, :, :2])
    bottom_right = np.minimum(boxes_a_xyxy[:, None, 2:], boxes_b_xyxy[None, :, 2:])
    inter = np.clip(bottom_right - top_left, 0, None).prod(axis=2)
    area_a = (boxes_a_xyxy[:, 2:] - boxes_a_xyxy[:, :2]).prod(axis=1)
    area_b = (boxes_b_xyxy[:, 2:] - boxes_b_xyxy[:, :2]).prod(axis=1)
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-6)


def greedy_match(iou: np.ndarray, threshold: float) -> dict[int, int]:
    """Row -> column pairs, best IoU first, each row and column used once."""
    pairs: dict[int, int] = {}
    used_cols: set[int] = set()
    for flat in np.argsort(-iou, axis=None):
        row, col = divmod(int(flat), iou.shape[1])
        if iou[row, col] < threshold:
            break
        if row not in pairs and col not in used_cols:
            pairs[row] = col
            used_cols.add(col)
    return pairs
