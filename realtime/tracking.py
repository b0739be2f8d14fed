"""Face detection, face-mesh landmarks and stable track ids, with MediaPipe.

    from realtime.tracking import FaceTracker, TrackerConfig

    with FaceTracker(TrackerConfig(max_faces=2)) as tracker:
        for frame_bgr in frames:
            faces = tracker.update(frame_bgr)   # list[Face], sorted by track_id
        tracker.reset()                         # before an unrelated image

    python -m benchmarks.tracking clip.mp4      # per-frame timings and success rates

The full-range face detector finds faces the face mesh's own short-range detector misses
(91% vs 16% of frames of a masked street clip), so the detector runs on the whole frame and
the mesh only on a square crop around each detection, upscaled and padded with a replicated
border (the mesh then finds landmarks on 99% of tight face crops). The full-range model in
turn misses most large close-up faces (a webcam at arm's length), which the short-range model
finds, so that one fills in whenever fewer faces are found than are being tracked.

Between detections each face with landmarks is followed the way MediaPipe's own face-mesh
graph does it: the next crop is predicted from the last landmarks (centred, scaled and turned
upright) and only the mesh runs there. The full-range detector (~7 ms at 640 x 360) then runs
every ``detect_every`` frames, plus on any frame where a face is not followed (its mesh
failed or it has none, or it is held), so that a lost face is looked for at once.

The mesh (~9 ms a face, as static mode runs MediaPipe's detector inside the crop too) then
runs on a followed face only every ``mesh_every`` frames; in between, optical flow on a few
textured landmarks moves all of them by a similarity (``realtime.face.flow``), and the mesh
runs after all where the flow's check fails.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import cv2
import numpy as np
from mediapipe.python.solutions.face_detection import FaceDetection

from engines.config import check_max_faces
from realtime.detection import Detection, detect, greedy_match, iou_matrix, unmatched
from realtime.face.flow import FlowPatch, flow_patch, propagate_landmarks
from realtime.face.landmarks import (
    check_image,
    eyes_agree,
    geometry_from_landmarks,
    mesh_in_crop,
    mesh_on_square,
    quiet_native_stderr,
    static_mesh,
    upright_affine,
)
from realtime.types import Closing, Face


@dataclass(frozen=True)
class TrackerConfig:
    """How faces are detected, refined with the face mesh and followed across frames."""

    max_faces: int = 4
    """Most faces returned per frame (highest detector scores first), 1..16 (``MAX_FACES``)."""
    min_confidence: float = 0.5
    """Detector score below which a detection is ignored, 0.05..0.95."""
    hold_frames: int = 3
    """Frames a lost face is still returned (with its last geometry) before it is dropped."""
    use_mesh: bool = True
    """Run the 468-point face mesh on each detected face (False: keypoints only, faster)."""
    mesh_crop_px: int = 192
    """Side of the square crop the mesh runs on, in pixels."""
    mesh_crop_scale: float = 1.6
    """Crop side as a multiple of the detector box's longer side (context for the mesh)."""
    mesh_max_eye_error: float = 0.25
    """Mesh landmarks are kept only if each mesh eye centre lies within this fraction of the
    box size from the detector's eye keypoint; a larger error means the mesh fit another face
    or the background."""
    iou_match: float = 0.3
    """Least box IoU for a detection to continue an existing track."""
    mesh_backoff_max: int = 8
    """After the mesh fails on a track, skip it there for 1, 3, 7... frames, at most this many
    (0: retry every frame). A failed mesh costs as much as a good one (~5 ms), and on small or
    turned faces it fails for long runs (47% of attempts on the hamilton clip)."""
    close_range: bool = True
    """Also run the short-range detector (~2 ms) when the full-range one finds fewer faces
    than are being tracked: it finds large close-up faces (webcams) that the full-range model
    misses in most frames."""
    detect_every: int = 5
    """Run the full-frame detector (~7 ms at 640 x 360) on every this many frames; in between,
    faces with landmarks are followed by the mesh alone, on a crop predicted from their last
    landmarks. The detector also runs on any frame where a tracked face could not be followed
    (its mesh failed or it has none, or it is held) or no face is tracked. The price: a new
    face entering beside followed ones is found up to this many frames late (1: detect on
    every frame). Ignored without the mesh."""
    mesh_every: int = 3
    """Run the mesh on a followed face every this many frames; in between its last landmarks
    are moved by optical flow (~2 ms a face against ~9 ms for the mesh), and the mesh runs
    anyway where the flow's check fails (1: mesh on every frame). On the masked webcam clip 3
    takes the tracker from 9.4 to 5.1 ms a frame (2: 5.9 ms), with flowed landmarks 3.5% of
    the eye distance from the mesh's (its own jitter: 3-4%) and no more flicker."""
    flow_max_error: float = 0.03
    """Optical flow keeps a point only if following it forward and back returns it to within
    this fraction of the eye distance, and fits the face's motion to such points within it."""
    flow_max_scale_change: float = 0.1
    """Largest change of the face's size from one frame to the next that optical flow may
    report; a faster zoom is more likely a flow failure, so the mesh runs instead."""

    def __post_init__(self) -> None:
        check_max_faces(self.max_faces, "max_faces")
        _check_between("min_confidence", self.min_confidence, 0.05, 0.95)
        _check_between("hold_frames", self.hold_frames, 0, 30)
        _check_between("mesh_crop_px", self.mesh_crop_px, 64, 512)
        _check_between("mesh_crop_scale", self.mesh_crop_scale, 1.0, 3.0)
        _check_between("mesh_max_eye_error", self.mesh_max_eye_error, 0.01, 1.0)
        _check_between("iou_match", self.iou_match, 0.05, 0.95)
        _check_between("mesh_backoff_max", self.mesh_backoff_max, 0, 64)
        _check_between("detect_every", self.detect_every, 1, 30)
        _check_between("mesh_every", self.mesh_every, 1, 10)
        _check_between("flow_max_error", self.flow_max_error, 0.005, 0.5)
        _check_between("flow_max_scale_change", self.flow_max_scale_change, 0.01, 0.5)


def _check_between(name: str, value: float, low: float, high: float) -> None:
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low} and {high}, got {value}")


@dataclass(frozen=True)
class _Track:
    """One tracked face and what following it needs from one frame to the next."""

    face: Face
    mesh_backoff: tuple[int, int] = (0, 0)
    """(consecutive mesh failures on its detections, detections still to pass over without
    the mesh)."""
    frames_flowed: int = 0
    """Consecutive frames, up to the last one, its landmarks came from optical flow."""
    flow_patch: FlowPatch | None = None
    """The face's patch in the last frame, for optical flow into this one; None when the
    mesh is due instead (or the face has no fresh landmarks)."""


class FaceTracker(Closing):
    """Detects faces, adds mesh landmarks and keeps track ids stable across frames.

    The MediaPipe graphs are built once here and live until ``close()``.
    """

    def __init__(self, config: TrackerConfig | None = None) -> None:
        self.config = config if config is not None else TrackerConfig()
        with quiet_native_stderr():
            self._detector = FaceDetection(
                model_selection=1, min_detection_confidence=self.config.min_confidence
            )
            self._mesh = static_mesh() if self.config.use_mesh else None
            self._short_detector = (
                FaceDetection(
                    model_selection=0, min_detection_confidence=self.config.min_confidence
                )
                if self.config.close_range
                else None
            )
        self._graphs_started = False
        self._tracks: dict[int, _Track] = {}
        """track id -> the live track: everything kept about a face lives and goes with it."""
        self._next_id = 0
        self._frames_undetected = 0
        """Consecutive frames, up to the last one, that did not run the detector."""
        self.last_timings_ms: dict[str, float] = {}
        """Milliseconds spent on the last ``update``: ``detect`` and ``mesh``."""
        self.last_detected = False
        """Whether the last ``update`` ran the full-frame detector."""
        self.last_flowed_ids: set[int] = set()
        """Track ids whose landmarks the last ``update`` moved by optical flow, not the mesh."""

    def update(self, frame_bgr: np.ndarray) -> list[Face]:
        """Faces in this frame (followed, detected and held), sorted by track id."""
        check_image(frame_bgr, "frame_bgr")
        start = time.perf_counter()
        frame_rgb = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2RGB)  # MediaPipe wants RGB
        detect_ms = 0.0
        with quiet_native_stderr(not self._graphs_started):
            followed = self._follow(frame_rgb)
            found = list(followed)
            self.last_detected = self._detection_due({t.face.track_id for t in found})
            if self.last_detected:
                detect_start = time.perf_counter()
                detections = self._detect(frame_rgb)
                detect_ms = (time.perf_counter() - detect_start) * 1e3
                found += self._detected_tracks(frame_rgb, detections, found)
        self._frames_undetected = 0 if self.last_detected else self._frames_undetected + 1
        # Following needs landmarks from the static mesh first, so then every graph has run.
        self._graphs_started = self._graphs_started or bool(followed)
        kept = (found + self._held({t.face.track_id for t in found}))[: self.config.max_faces]
        self._tracks = {t.face.track_id: self._with_flow_patch(frame_rgb, t) for t in kept}
        self.last_timings_ms = {
            "detect": detect_ms,
            "mesh": (time.perf_counter() - start) * 1e3 - detect_ms,
        }
        return sorted((t.face for t in self._tracks.values()), key=lambda face: face.track_id)

    def reset(self) -> None:
        """Forget all tracks, e.g. between unrelated images; new ids still never repeat."""
        self._tracks = {}

    def close(self) -> None:
        self.reset()
        self._detector.close()
        if self._short_detector is not None:
            self._short_detector.close()
        if self._mesh is not None:
            self._mesh.close()

    def _follow(self, frame_rgb: np.ndarray) -> list[_Track]:
        """Tracks found again without the detector: moved by optical flow from their last
        landmarks, or by the mesh alone in crops predicted from them.

        A face is followed only while the flow's check passes or the mesh finds a face whose
        eyes lie near its last ones; one that moved onto an already followed face is left to
        the detector.
        """
        followed: list[_Track] = []
        self.last_flowed_ids = set()
        for track in self._tracks.values():
            face = track.face
            if self._mesh is None or face.age > 0 or face.landmarks_xy is None:
                continue
            landmarks_xy = self._flow_landmarks(frame_rgb, track)
            if landmarks_xy is not None:
                self.last_flowed_ids.add(face.track_id)
            else:
                landmarks_xy = self._followed_mesh_landmarks(frame_rgb, face)
            if landmarks_xy is None:
                continue
            box_xyxy, keypoints_xy = geometry_from_landmarks(landmarks_xy)
            if followed and iou_matrix(
                box_xyxy[None], np.stack([t.face.box_xyxy for t in followed])
            ).max() >= self.config.iou_match:
                continue
            followed.append(replace(track, face=replace(
                face, box_xyxy=box_xyxy, keypoints_xy=keypoints_xy, landmarks_xy=landmarks_xy)))
        return followed

    def _flow_landmarks(self, frame_rgb: np.ndarray, track: _Track) -> np.ndarray | None:
        """The face's last landmarks moved by optical flow, when the mesh is not due and the
        flow's check passes; else None."""
        if track.flow_patch is None or track.frames_flowed + 1 >= self.config.mesh_every:
            return None
        return propagate_landmarks(
            track.flow_patch, frame_rgb, track.face.landmarks_xy,
            max_error=self.config.flow_max_error,
            max_scale_change=self.config.flow_max_scale_change)

    def _followed_mesh_landmarks(self, frame_rgb: np.ndarray, face: Face) -> np.ndarray | None:
        """Mesh landmarks in the upright crop predicted from the face's last landmarks, if
        their eyes lie near the last ones."""
        to_crop = upright_affine(
            face.box_xyxy, face.keypoints_xy, self.config.mesh_crop_scale,
            self.config.mesh_crop_px)
        landmarks_xy = mesh_in_crop(self._mesh, frame_rgb, to_crop, self.config.mesh_crop_px)
        if landmarks_xy is None or not eyes_agree(
            landmarks_xy, face.keypoints_xy, face.box_xyxy, self.config.mesh_max_eye_error
        ):
            return None
        return landmarks_xy

    def _with_flow_patch(self, frame_rgb: np.ndarray, track: _Track) -> _Track:
        """The track as the next frame needs it: its count of frames from flow, and this
        frame's patch around the face if flow is to follow it there (~0.1 ms a face)."""
        flowed = track.frames_flowed + 1 if track.face.track_id in self.last_flowed_ids else 0
        face = track.face
        due = (face.age == 0 and face.landmarks_xy is not None
               and flowed + 1 < self.config.mesh_every)
        return replace(track, frames_flowed=flowed,
                       flow_patch=flow_patch(frame_rgb, face.landmarks_xy) if due else None)

    def _detection_due(self, followed_ids: set[int]) -> bool:
        """Whether this frame runs the detector: on schedule, or for a face not followed."""
        if self._frames_undetected + 1 >= self.config.detect_every or not self._tracks:
            return True
        return any(track_id not in followed_ids for track_id in self._tracks)

    def _detected_tracks(
        self, frame_rgb: np.ndarray, detections: list[Detection], followed: list[_Track]
    ) -> list[_Track]:
        """Tracks for the detections that are not followed faces, with mesh landmarks.

        A detection on a followed face only refreshes its score (in ``followed``, in place).
        """
        if followed and detections:
            iou = iou_matrix(
                np.stack([d.box_xyxy for d in detections]),
                np.stack([t.face.box_xyxy for t in followed]),
            )
            pairs = greedy_match(iou, self.config.iou_match)
            for index, column in pairs.items():
                track = followed[column]
                followed[column] = replace(
                    track, face=replace(track.face, score=detections[index].score))
            detections = [d for i, d in enumerate(detections) if i not in pairs]
        followed_ids = {t.face.track_id for t in followed}
        free_ids = [t for t in self._tracks if t not in followed_ids]
        tracks = []
        for track_id, detection in self._assign_ids(detections, free_ids):
            previous = self._tracks.get(track_id)
            landmarks_xy, backoff = self._landmarks(
                frame_rgb, detection, previous.mesh_backoff if previous else (0, 0))
            face = Face(track_id=track_id, box_xyxy=detection.box_xyxy,
                        keypoints_xy=detection.keypoints_xy, landmarks_xy=landmarks_xy,
                        score=detection.score)
            tracks.append(replace(previous, face=face, mesh_backoff=backoff) if previous
                          else _Track(face, mesh_backoff=backoff))
        return tracks

    def _detect(self, frame_rgb: np.ndarray) -> list[Detection]:
        """Full-range detections, completed by short-range ones where a face may be missing."""
        detections = detect(self._detector, frame_rgb)
        if self._short_detector is not None and len(detections) < max(1, len(self._tracks)):
            # The short-range model's keypoints are worse on small faces, so its detections
            # only fill places where the full-range model found nothing.
            detections += unmatched(detect(self._short_detector, frame_rgb), detections)
        detections.sort(key=lambda d: d.score, reverse=True)
        return detections[: self.config.max_faces]

    def _assign_ids(
        self, detections: list[Detection], track_ids: list[int]
    ) -> list[tuple[int, Detection]]:
        """Continue the track (of ``track_ids``) each detection overlaps most, or open one."""
        pairs: dict[int, int] = {}
        if detections and track_ids:
            iou = iou_matrix(
                np.stack([d.box_xyxy for d in detections]),
                np.stack([self._tracks[t].face.box_xyxy for t in track_ids]),
            )
            pairs = greedy_match(iou, self.config.iou_match)
        assigned = []
        for index, detection in enumerate(detections):
            if index in pairs:
                track_id = track_ids[pairs[index]]
            else:
                track_id, self._next_id = self._next_id, self._next_id + 1
            assigned.append((track_id, detection))
        return assigned

    def _held(self, found_ids: set[int]) -> list[_Track]:
        """Tracks missed in this frame that are still young enough to return, youngest first."""
        held = [
            replace(track, face=replace(track.face, age=track.face.age + 1))
            for track_id, track in self._tracks.items()
            if track_id not in found_ids and track.face.age < self.config.hold_frames
        ]
        return sorted(held, key=lambda track: track.face.age)

    def _landmarks(
        self, frame_rgb: np.ndarray, detection: Detection, backoff: tuple[int, int]
    ) -> tuple[np.ndarray | None, tuple[int, int]]:
        """Mesh landmarks of a detected face (or None), and its mesh back-off after this try:
        after the mesh fails, the next 1, 3, 7... detections go without it."""
        if self._mesh is None:
            return None, backoff
        failures, skip = backoff
        if skip > 0:
            return None, (failures, skip - 1)
        landmarks_xy = self._mesh_landmarks(frame_rgb, detection)
        if landmarks_xy is None and self.config.mesh_backoff_max > 0:
            failures += 1
            return None, (failures, min(2**failures - 1, self.config.mesh_backoff_max))
        return landmarks_xy, (0, 0)

    def _mesh_landmarks(self, frame_rgb: np.ndarray, detection: Detection) -> np.ndarray | None:
        box_xyxy = detection.box_xyxy
        center_xy = (box_xyxy[:2] + box_xyxy[2:]) / 2
        side_px = self.config.mesh_crop_scale * float(max(box_xyxy[2:] - box_xyxy[:2]))
        landmarks_xy = mesh_on_square(
            self._mesh, frame_rgb, center_xy, side_px, self.config.mesh_crop_px
        )
        if landmarks_xy is None or not eyes_agree(
            landmarks_xy, detection.keypoints_xy, box_xyxy, self.config.mesh_max_eye_error
        ):
            return None
        return landmarks_xy
