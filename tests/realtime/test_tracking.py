"""Face tracker on real clips and crops from ../shared/data.

pytest tests/realtime/test_tracking.py
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import pytest

from realtime import tracking
from realtime.detection import iou_matrix
from realtime.face import mesh
from realtime.face.landmarks import geometry_from_landmarks
from realtime.tracking import FaceTracker, TrackerConfig
from realtime.types import Face

OUTER_EYE_CORNERS = (mesh.RIGHT_EYE[0], mesh.LEFT_EYE[1])


def read_frames_bgr(path: Path, count: int) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        frames = container.decode(video=0)
        return [
            frame.to_ndarray(format="bgr24") for _, frame in zip(range(count), frames, strict=False)
        ]


@pytest.fixture(scope="module")
def hamilton_faces(hamilton_clip: Path) -> list[list[Face]]:
    with FaceTracker() as tracker:
        return [tracker.update(frame_bgr) for frame_bgr in read_frames_bgr(hamilton_clip, 60)]


@pytest.fixture(scope="module")
def tracker() -> Iterator[FaceTracker]:
    with FaceTracker(TrackerConfig(hold_frames=2)) as shared:
        yield shared


def test_hamilton_faces_found_in_most_frames(hamilton_faces: list[list[Face]]) -> None:
    detected = [any(face.age == 0 for face in faces) for faces in hamilton_faces]
    assert np.mean(detected) >= 0.9
    meshed = [face.landmarks_xy is not None for faces in hamilton_faces[:20] for face in faces]
    assert np.mean(meshed) >= 0.8  # the first shot is a frontal face


def test_hamilton_ids_stable(hamilton_faces: list[list[Face]]) -> None:
    for before, after in itertools.pairwise(hamilton_faces):
        for face in after:
            overlaps = [
                f for f in before if iou_matrix(f.box_xyxy[None], face.box_xyxy[None]) > 0.5
            ]
            assert all(f.track_id == face.track_id for f in overlaps)
    first_shot_ids = {face.track_id for faces in hamilton_faces[:20] for face in faces}
    assert first_shot_ids == {0}


def test_hamilton_geometry(hamilton_faces: list[list[Face]]) -> None:
    for faces in hamilton_faces:
        assert [f.track_id for f in faces] == sorted(f.track_id for f in faces)
        for face in faces:
            assert face.box_xyxy.dtype == np.float32 and face.box_xyxy.shape == (4,)
            assert face.keypoints_xy.dtype == np.float32 and face.keypoints_xy.shape == (6, 2)
            # eyes, nose and mouth lie in the box; the ear points may stick out on profiles
            inner_xy = face.keypoints_xy[:4]
            assert (inner_xy >= face.box_xyxy[:2] - 1).all()
            assert (inner_xy <= face.box_xyxy[2:] + 1).all()
            if face.landmarks_xy is not None:
                assert face.landmarks_xy.shape == (mesh.NUM_LANDMARKS, 2)
                assert face.landmarks_xy.dtype == np.float32


def test_held_face_then_dropped(tracker: FaceTracker, face_frame_bgr: np.ndarray) -> None:
    tracker.reset()
    blank_bgr = np.zeros_like(face_frame_bgr)
    [seen] = tracker.update(face_frame_bgr)
    assert seen.age == 0
    for age in (1, 2):  # hold_frames = 2
        [held] = tracker.update(blank_bgr)
        assert (held.track_id, held.age) == (seen.track_id, age)
        np.testing.assert_array_equal(held.box_xyxy, seen.box_xyxy)
    assert tracker.update(blank_bgr) == []
    [again] = tracker.update(face_frame_bgr)
    assert again.track_id > seen.track_id  # ids are never reused


def test_reset_forgets_tracks(tracker: FaceTracker, face_frame_bgr: np.ndarray) -> None:
    [first] = tracker.update(face_frame_bgr)
    tracker.reset()
    [second] = tracker.update(face_frame_bgr)
    assert second.track_id > first.track_id and second.age == 0


@pytest.mark.parametrize("max_faces, expected", [(1, 1), (2, 2), (4, 3)])
def test_max_faces(face_frame_bgr: np.ndarray, max_faces: int, expected: int) -> None:
    tiled_bgr = np.hstack([face_frame_bgr] * 3)
    with FaceTracker(TrackerConfig(max_faces=max_faces)) as tracker:
        faces = tracker.update(tiled_bgr)
    assert len(faces) == expected
    assert len({face.track_id for face in faces}) == expected


@pytest.mark.parametrize("size_wh", [(640, 360), (1, 1), (64, 480)])
def test_blank_frame_has_no_faces(tracker: FaceTracker, size_wh: tuple[int, int]) -> None:
    tracker.reset()
    assert tracker.update(np.zeros((size_wh[1], size_wh[0], 3), np.uint8)) == []


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((10, 10), np.uint8),
        np.zeros((10, 10, 4), np.uint8),
        np.zeros((10, 10, 3)),
        np.zeros((0, 10, 3), np.uint8),
    ],
)
def test_bad_frame_rejected(tracker: FaceTracker, bad: np.ndarray) -> None:
    with pytest.raises(ValueError, match="frame_bgr must be an H x W x 3 uint8 array"):
        tracker.update(bad)


@pytest.mark.parametrize(
    "field, value",
    [
        ("max_faces", 0),
        ("max_faces", 17),
        ("hold_frames", -1),
        ("hold_frames", 31),
        ("min_confidence", 0.0),
        ("min_confidence", 1.0),
        ("mesh_crop_px", 32),
        ("mesh_crop_scale", 0.5),
        ("mesh_max_eye_error", 0.0),
        ("iou_match", 0.0),
        ("detect_every", 0),
        ("detect_every", 31),
        ("mesh_every", 0),
        ("mesh_every", 11),
        ("flow_max_error", 0.0),
        ("flow_max_scale_change", 0.0),
        ("flow_max_scale_change", 0.6),
    ],
)
def test_config_validation(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=rf"^{field} must be between .* got {value}$"):
        TrackerConfig(**{field: value})


def test_masked_webcam_detected(masked_clip: Path) -> None:
    with FaceTracker() as tracker:
        results = [tracker.update(frame_bgr) for frame_bgr in read_frames_bgr(masked_clip, 30)]
    assert np.mean([any(face.age == 0 for face in faces) for faces in results]) >= 0.8
    assert {face.track_id for faces in results for face in faces} == {0}


def test_mesh_backs_off_after_failures_and_resumes_after_success(
    face_frame_bgr: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    succeed = {"now": False}
    clock = {"frame": 0}
    real = FaceTracker._mesh_landmarks

    def flaky(self, frame_rgb, detection):
        calls.append(clock["frame"])
        return real(self, frame_rgb, detection) if succeed["now"] else None

    monkeypatch.setattr(FaceTracker, "_mesh_landmarks", flaky)
    with FaceTracker(TrackerConfig(mesh_backoff_max=4)) as tracker:
        for clock["frame"] in range(16):
            faces = tracker.update(face_frame_bgr)
            assert len(faces) == 1 and faces[0].landmarks_xy is None
        # failures skip 1, 3, then at most 4 frames: tries on frames 0, 2, 6, 11
        assert calls == [0, 2, 6, 11]
        succeed["now"] = True
        calls.clear()
        for clock["frame"] in range(16, 24):
            faces = tracker.update(face_frame_bgr)
            assert faces[0].landmarks_xy is not None
        assert calls == [16]  # tried at once, then the face is followed from its landmarks


FLOWED = "last_flowed_ids"


def track_clip(frames_bgr: list[np.ndarray], config: TrackerConfig, *,
               record: str = "last_detected") -> tuple[list, list]:
    """Faces per frame, and the tracker's ``record`` attribute after each frame (whether the
    detector ran, or ``last_flowed_ids``: the faces followed by optical flow)."""
    faces, recorded = [], []
    with FaceTracker(config) as tracker:
        for frame_bgr in frames_bgr:
            faces.append(tracker.update(frame_bgr))
            recorded.append(getattr(tracker, record))
    return faces, recorded


@pytest.fixture(scope="module")
def masked_frames_bgr(masked_clip: Path) -> list[np.ndarray]:
    return read_frames_bgr(masked_clip, 60)


def test_mesh_follows_faces_between_detections(masked_frames_bgr: list[np.ndarray]) -> None:
    every_frame, detected_always = track_clip(masked_frames_bgr, TrackerConfig(detect_every=1))
    followed, detected = track_clip(masked_frames_bgr, TrackerConfig(detect_every=5))
    assert all(detected_always)
    assert np.mean(detected) <= 0.3  # 1 in 5, plus frames where the mesh lost the face
    fresh = [[f for f in faces if f.age == 0] for faces in followed]
    fresh_always = [[f for f in faces if f.age == 0] for faces in every_frame]
    assert [len(f) >= len(g) for f, g in zip(fresh, fresh_always, strict=True)] == [True] * 60
    assert {face.track_id for faces in followed for face in faces} == {0}


def test_followed_landmarks_match_detector_crops(masked_frames_bgr: list[np.ndarray]) -> None:
    every_frame, _ = track_clip(masked_frames_bgr, TrackerConfig(detect_every=1))
    followed, detected = track_clip(masked_frames_bgr, TrackerConfig(detect_every=5))
    errors = []
    for faces_a, faces_b, ran in zip(every_frame, followed, detected, strict=True):
        if ran or not faces_a or not faces_b:
            continue
        landmarks_a, landmarks_b = faces_a[0].landmarks_xy, faces_b[0].landmarks_xy
        if landmarks_a is not None and landmarks_b is not None:
            eye_distance = np.linalg.norm(np.subtract(*landmarks_a[list(OUTER_EYE_CORNERS)]))
            errors.append(np.linalg.norm(landmarks_a - landmarks_b, axis=1).mean() / eye_distance)
    assert len(errors) >= 30 and np.mean(errors) < 0.06  # ~4%, as from frame to frame


def testgeometry_from_landmarks_matches_detector(masked_frames_bgr: list[np.ndarray]) -> None:
    faces, _ = track_clip(masked_frames_bgr[:1], TrackerConfig())
    [face] = faces[0]
    box_xyxy, keypoints_xy = geometry_from_landmarks(face.landmarks_xy)
    assert box_xyxy.dtype == keypoints_xy.dtype == np.float32 and keypoints_xy.shape == (6, 2)
    assert iou_matrix(box_xyxy[None], face.box_xyxy[None])[0, 0] > 0.7
    box_size = float(max(face.box_xyxy[2:] - face.box_xyxy[:2]))
    assert (np.linalg.norm(keypoints_xy - face.keypoints_xy, axis=1) < 0.15 * box_size).all()


def test_face_leaving_is_looked_for_at_once_then_dropped(face_frame_bgr: np.ndarray) -> None:
    blank_bgr = np.zeros_like(face_frame_bgr)
    config = TrackerConfig(hold_frames=2, detect_every=10)
    with FaceTracker(config) as tracker:
        for _ in range(4):
            [seen] = tracker.update(face_frame_bgr)
        assert not tracker.last_detected and seen.landmarks_xy is not None
        for age in (1, 2):
            [held] = tracker.update(blank_bgr)
            assert tracker.last_detected  # a lost face runs the detector on the same frame
            assert (held.track_id, held.age) == (seen.track_id, age)
        assert tracker.update(blank_bgr) == []


@pytest.mark.parametrize("detect_every", [1, 3, 5])
def test_new_face_found_within_detect_every(face_frame_bgr: np.ndarray, detect_every: int) -> None:
    blank_bgr = np.zeros_like(face_frame_bgr)
    one_bgr, two_bgr = np.hstack([face_frame_bgr, blank_bgr]), np.hstack([face_frame_bgr] * 2)
    with FaceTracker(TrackerConfig(detect_every=detect_every)) as tracker:
        for _ in range(7):  # the first face is followed, the schedule at any phase
            [first] = tracker.update(one_bgr)
        counts = [len(tracker.update(two_bgr)) for _ in range(detect_every)]
        faces = tracker.update(two_bgr)
        assert counts[-1] == 2 and len(faces) == 2
        assert faces[0].track_id == first.track_id and faces[1].track_id > first.track_id


@pytest.mark.parametrize("mesh_every", [2, 3])
def test_mesh_every_replaces_mesh_by_flow(
    masked_frames_bgr: list[np.ndarray], mesh_every: int
) -> None:
    meshed, never_flowed = track_clip(masked_frames_bgr, TrackerConfig(mesh_every=1), record=FLOWED)
    faces, flowed = track_clip(masked_frames_bgr, TrackerConfig(mesh_every=mesh_every),
                               record=FLOWED)
    assert not any(never_flowed)
    assert [len(fs) for fs in faces] == [len(fs) for fs in meshed] == [1] * 60
    fresh = [sum(f.age == 0 and f.landmarks_xy is not None for f in fs) for fs in faces]
    fresh_meshed = [sum(f.age == 0 and f.landmarks_xy is not None for f in fs) for fs in meshed]
    assert sum(fresh) >= sum(fresh_meshed) - 2  # the mesh fails on a few frames either way
    share = sum(len(ids) for ids in flowed) / sum(fresh)
    # At most (mesh_every - 1) / mesh_every of the frames; fewer where the flow check fails.
    assert 0.8 * (mesh_every - 1) / mesh_every <= share <= (mesh_every - 1) / mesh_every
    assert all(len(ids) <= 1 for ids in flowed)
    for before, now in itertools.pairwise(flowed):
        assert not (before and now) or mesh_every > 2  # mesh_every=2 never flows twice in a row


def test_flowed_landmarks_match_the_mesh(masked_frames_bgr: list[np.ndarray],
                                         eye_distances) -> None:
    meshed, _ = track_clip(masked_frames_bgr, TrackerConfig(mesh_every=1), record=FLOWED)
    faces, flowed = track_clip(masked_frames_bgr, TrackerConfig(mesh_every=2), record=FLOWED)
    errors = np.array([
        eye_distances(fs_mesh[0].landmarks_xy, fs[0].landmarks_xy)
        for fs_mesh, fs, ids in zip(meshed, faces, flowed, strict=True)
        if ids and fs_mesh and fs_mesh[0].landmarks_xy is not None
    ])
    assert len(errors) >= 20
    # ~3.6% and 9% here; the unmoved last landmarks are off by 7% and 16%, the mesh jitters ~4%
    assert errors.mean() < 0.05 and np.percentile(errors, 95) < 0.12


def test_failed_flow_check_falls_back_to_mesh(
    masked_frames_bgr: list[np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    attempts: list[int] = []

    def failing(*args: object, **kwargs: object) -> None:
        attempts.append(1)

    meshed, _ = track_clip(masked_frames_bgr[:20], TrackerConfig(mesh_every=1), record=FLOWED)
    monkeypatch.setattr(tracking, "propagate_landmarks", failing)
    faces, flowed = track_clip(masked_frames_bgr[:20], TrackerConfig(mesh_every=3), record=FLOWED)
    assert len(attempts) >= 10 and not any(flowed)
    for fs, fs_meshed in zip(faces, meshed, strict=True):  # exactly as if the mesh always ran
        assert [f.track_id for f in fs] == [f.track_id for f in fs_meshed]
        for face, face_meshed in zip(fs, fs_meshed, strict=True):
            np.testing.assert_array_equal(face.landmarks_xy, face_meshed.landmarks_xy)


def test_reset_forgets_previous_frame(face_frame_bgr: np.ndarray) -> None:
    with FaceTracker(TrackerConfig(mesh_every=3, detect_every=10)) as tracker:
        for _ in range(2):  # detected, then flowed (and due to flow in the next frame)
            tracker.update(face_frame_bgr)
        assert tracker.last_flowed_ids
        assert [t.flow_patch is not None for t in tracker._tracks.values()] == [True]
        tracker.reset()
        assert not tracker._tracks  # and with them their patches and flow counts
        tracker.update(face_frame_bgr)
        assert tracker.last_flowed_ids == set()  # detected and meshed afresh
