"""Things on or around a face that are NOT face coverings: the segmenter's negatives.

Burned-in analytics overlays (boxes, labels, scores, timestamps, lines), glasses and
sunglasses, beards and moustaches, lipstick, hands and microphones near the mouth, hair over
the face and strong shadows. Each is drawn onto an aligned crop with its mesh landmarks and
leaves the mask label untouched: a segmenter must learn that none of them is to be painted.

    crop_rgb = draw_distractors(crop_rgb, landmarks_xy, rng, count=2, with_covering=False)
    python -m training.data ../shared/data/faces/celebahq_192 --segmenter-mix --grid g.png
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from realtime.face import mesh

EYES = (mesh.RIGHT_EYE, mesh.LEFT_EYE)
"""Per eye, in image order: its corners (image order), upper and lower lid."""
OVERLAY_COLOURS = ((0, 255, 0), (255, 0, 0), (255, 255, 0), (0, 128, 255), (255, 255, 255),
                   (255, 0, 255), (0, 255, 255), (255, 128, 0))
HAIR_COLOURS = ((25, 20, 18), (60, 40, 25), (110, 80, 50), (150, 140, 130), (200, 170, 110))


def _pts(landmarks_xy: np.ndarray, ids: tuple[int, ...]) -> np.ndarray:
    return np.round(landmarks_xy[list(ids)]).astype(np.int32)


def _eye_distance(landmarks_xy: np.ndarray) -> float:
    left = landmarks_xy[list(EYES[0][:2])].mean(0)
    right = landmarks_xy[list(EYES[1][:2])].mean(0)
    return max(float(np.linalg.norm(right - left)), 4.0)


def _blend(image: np.ndarray, colour_rgb: np.ndarray, alpha_hw: np.ndarray) -> np.ndarray:
    a = alpha_hw[..., None].astype(np.float32)
    return image * (1 - a) + colour_rgb * a


def overlay(image: np.ndarray, landmarks_xy: np.ndarray, rng: np.random.Generator,
            ) -> np.ndarray:
    """Analytics overlays burned into video: a box around (or across) the face, a label with
    a score, a timestamp or camera name, a tripwire line."""
    out = np.ascontiguousarray(image.astype(np.uint8))
    size = out.shape[0]
    colour = tuple(int(c) for c in OVERLAY_COLOURS[rng.integers(len(OVERLAY_COLOURS))])
    thickness = int(rng.integers(1, 5))
    lo, hi = landmarks_xy.min(0), landmarks_xy.max(0)
    centre, half = (lo + hi) / 2, (hi - lo) / 2 * rng.uniform(0.7, 1.4, 2)
    centre = centre + rng.normal(0, 0.08, 2) * (hi - lo)
    p0, p1 = np.round(centre - half).astype(int), np.round(centre + half).astype(int)
    font = cv2.FONT_HERSHEY_SIMPLEX if rng.random() < 0.7 else cv2.FONT_HERSHEY_PLAIN
    scale = rng.uniform(0.25, 0.6)
    for _ in range(int(rng.integers(1, 4))):
        kind = rng.integers(5)
        if kind <= 1:  # box, or corner brackets
            if kind == 0:
                cv2.rectangle(out, tuple(map(int, p0)), tuple(map(int, p1)), colour, thickness)
            else:
                arm = int(max(3, (p1 - p0).min() * rng.uniform(0.15, 0.35)))
                for cx, sx in ((p0[0], 1), (p1[0], -1)):
                    for cy, sy in ((p0[1], 1), (p1[1], -1)):
                        cv2.line(out, (int(cx), int(cy)), (int(cx + sx * arm), int(cy)),
                                 colour, thickness)
                        cv2.line(out, (int(cx), int(cy)), (int(cx), int(cy + sy * arm)),
                                 colour, thickness)
        elif kind == 2:  # label with a score, above or inside the box
            text = rng.choice(["person", "face", "ID", "mask", "no_mask", "head"])
            text = f"{text} {rng.uniform(0.3, 1.0):.2f}"
            y = int(p0[1] - 2) if rng.random() < 0.5 else int(p0[1] + 10 * scale * 3)
            cv2.putText(out, text, (int(p0[0]), y), font, scale, colour, 1, cv2.LINE_AA)
        elif kind == 3:  # timestamp / camera name anywhere in the crop
            text = (f"2026-{rng.integers(1, 13):02d}-{rng.integers(1, 29):02d} "
                    f"{rng.integers(24):02d}:{rng.integers(60):02d}:{rng.integers(60):02d}"
                    if rng.random() < 0.6 else f"CAM {rng.integers(1, 40):02d}")
            org = (int(rng.integers(0, size // 2)), int(rng.integers(8, size)))
            cv2.putText(out, text, org, font, scale, colour, 1, cv2.LINE_AA)
        else:  # a line across the crop
            a, b = rng.uniform(0, size, 2), rng.uniform(0, size, 2)
            a[0], b[0] = 0, size  # left to right edge
            cv2.line(out, tuple(np.round(a).astype(int)), tuple(np.round(b).astype(int)),
                     colour, thickness)
    return out.astype(np.float32)


def glasses(image: np.ndarray, landmarks_xy: np.ndarray, rng: np.random.Generator,
            ) -> np.ndarray:
    """Spectacles (thin frames) or sunglasses (dark lenses) over the eyes."""
    iod = _eye_distance(landmarks_xy)
    lens = np.zeros(image.shape[:2], np.uint8)
    frame = np.zeros_like(lens)
    thickness = int(rng.integers(1, 4))
    axes = (int(iod * rng.uniform(0.28, 0.4)), int(iod * rng.uniform(0.2, 0.3)))
    centres = []
    for eye in EYES:
        c = np.round(landmarks_xy[list(eye)].mean(0)).astype(int)
        centres.append(c)
        cv2.ellipse(lens, tuple(map(int, c)), axes, 0, 0, 360, 255, -1)
        cv2.ellipse(frame, tuple(map(int, c)), axes, 0, 0, 360, 255, thickness)
    (lx, ly), (rx, ry) = centres
    cv2.line(frame, (int(lx + axes[0]), int(ly)), (int(rx - axes[0]), int(ry)), 255, thickness)
    temple_left, temple_right = _pts(landmarks_xy, mesh.OUTLINE_AT_EYES)
    cv2.line(frame, (int(lx - axes[0]), int(ly)), tuple(temple_left), 255, thickness)
    cv2.line(frame, (int(rx + axes[0]), int(ry)), tuple(temple_right), 255, thickness)
    out = image
    if rng.random() < 0.4:  # sunglasses
        tint = rng.uniform(5, 70, 3).astype(np.float32)
        out = _blend(out, tint, lens / 255.0 * rng.uniform(0.75, 0.97))
    frame_colour = (rng.uniform(0, 60, 3) if rng.random() < 0.7
                    else rng.uniform(120, 230, 3)).astype(np.float32)
    return _blend(out, frame_colour, frame / 255.0)


def beard(image: np.ndarray, landmarks_xy: np.ndarray, rng: np.random.Generator,
          ) -> np.ndarray:
    """A beard along the jaw and chin and/or a moustache above the lips, in hair colours."""
    region = np.zeros(image.shape[:2], np.uint8)
    if rng.random() < 0.75:  # beard: the jaw outline closed through the mouth corners
        jaw = _pts(landmarks_xy, mesh.JAW_OUTLINE)
        lower = jaw[2:-2] if rng.random() < 0.5 else jaw[5:-5]  # full or chin beard
        mouth_corners = _pts(landmarks_xy, mesh.MOUTH_CORNERS)
        cv2.fillPoly(region, [np.concatenate([lower, mouth_corners[::-1]])], 255)
    if rng.random() < 0.7:  # moustache: between the nose and the upper lip
        top = landmarks_xy[mesh.SUBNASALE]
        corners = landmarks_xy[list(mesh.MOUTH_CORNERS)]
        lip = landmarks_xy[mesh.UPPER_LIP]
        poly = np.stack([corners[0], top + (corners[0] - lip) * 0.4, top,
                         top + (corners[1] - lip) * 0.4, corners[1], lip])
        cv2.fillPoly(region, [np.round(poly).astype(np.int32)], 255)
    cv2.fillPoly(region, [_pts(landmarks_xy, mesh.LIPS_OUTER)], 0)  # the lips stay visible
    noise = rng.random(image.shape[:2]).astype(np.float32)
    density = cv2.GaussianBlur(region.astype(np.float32) / 255, (0, 0), 1.5)
    alpha = density * np.clip(0.45 + 0.6 * noise, 0, 1) * rng.uniform(0.55, 0.95)
    colour = np.array(HAIR_COLOURS[rng.integers(len(HAIR_COLOURS))], np.float32)
    return _blend(image, colour * rng.uniform(0.8, 1.2), alpha)


def lipstick(image: np.ndarray, landmarks_xy: np.ndarray, rng: np.random.Generator,
             ) -> np.ndarray:
    region = np.zeros(image.shape[:2], np.uint8)
    cv2.fillPoly(region, [_pts(landmarks_xy, mesh.LIPS_OUTER)], 255)
    alpha = cv2.GaussianBlur(region.astype(np.float32) / 255, (0, 0), 0.8)
    colour = np.array([rng.uniform(120, 230), rng.uniform(0, 60), rng.uniform(20, 120)],
                      np.float32)
    return _blend(image, colour, alpha * rng.uniform(0.35, 0.7))


def _skin_colour(image: np.ndarray, landmarks_xy: np.ndarray) -> np.ndarray:
    xy = np.clip(_pts(landmarks_xy, mesh.CHEEKBONES), 2, image.shape[0] - 3)
    return np.mean([image[y - 2:y + 3, x - 2:x + 3].reshape(-1, 3).mean(0) for x, y in xy],
                   axis=0).astype(np.float32)


def hand(image: np.ndarray, landmarks_xy: np.ndarray, rng: np.random.Generator,
         ) -> np.ndarray:
    """A hand over the mouth or chin: a palm and fingers in a skin colour near the face's."""
    iod = _eye_distance(landmarks_xy)
    region = np.zeros(image.shape[:2], np.uint8)
    mouth = landmarks_xy[list(mesh.MOUTH_CORNERS)].mean(0)
    palm = mouth + np.array([rng.uniform(-0.8, 0.8), rng.uniform(0.3, 1.2)]) * iod
    angle = rng.uniform(-60, 60)
    cv2.ellipse(region, tuple(np.round(palm).astype(int)),
                (int(iod * rng.uniform(0.45, 0.7)), int(iod * rng.uniform(0.55, 0.8))),
                angle, 0, 360, 255, -1)
    direction = np.array([np.sin(np.radians(angle)), -np.cos(np.radians(angle))])
    normal = np.array([direction[1], -direction[0]])
    for k in range(int(rng.integers(2, 5))):
        base = palm + normal * (k - 1.5) * iod * 0.22 + direction * iod * 0.4
        tip = base + direction * iod * rng.uniform(0.5, 0.9)
        cv2.line(region, tuple(np.round(base).astype(int)), tuple(np.round(tip).astype(int)),
                 255, max(2, int(iod * 0.18)))
    skin = _skin_colour(image, landmarks_xy) * rng.uniform(0.8, 1.15)
    shade = cv2.GaussianBlur(rng.random(image.shape[:2]).astype(np.float32), (0, 0), 4)
    colour = skin[None, None] * (0.85 + 0.3 * shade[..., None])
    alpha = cv2.GaussianBlur(region.astype(np.float32) / 255, (0, 0), 0.8)
    return image * (1 - alpha[..., None]) + colour * alpha[..., None]


def microphone(image: np.ndarray, landmarks_xy: np.ndarray, rng: np.random.Generator,
               ) -> np.ndarray:
    """A handheld microphone near the mouth: a grille ball and a handle."""
    iod = _eye_distance(landmarks_xy)
    mouth = landmarks_xy[list(mesh.MOUTH_CORNERS)].mean(0)
    centre = mouth + np.array([rng.uniform(-0.9, 0.9), rng.uniform(0.1, 0.9)]) * iod
    radius = int(iod * rng.uniform(0.3, 0.55))
    region = np.zeros(image.shape[:2], np.uint8)
    c = tuple(np.round(centre).astype(int))
    end = np.round(centre + np.array([rng.uniform(-1, 1), 2.5]) * radius).astype(int)
    cv2.line(region, c, tuple(end), 255, max(2, radius))
    cv2.circle(region, c, radius, 255, -1)
    grey = rng.uniform(20, 140)
    yy, xx = np.mgrid[0:image.shape[0], 0:image.shape[1]]
    grille = ((xx + yy) % 3 == 0) | ((xx - yy) % 3 == 0)
    colour = (grey * (0.7 + 0.5 * grille))[..., None].astype(np.float32) * np.ones(3, np.float32)
    alpha = region.astype(np.float32) / 255
    return image * (1 - alpha[..., None]) + colour * alpha[..., None]


def hair(image: np.ndarray, landmarks_xy: np.ndarray, rng: np.random.Generator,
         ) -> np.ndarray:
    """Strands of hair falling over one side of the face."""
    iod = _eye_distance(landmarks_xy)
    region = np.zeros(image.shape[:2], np.uint8)
    side = rng.choice([-1.0, 1.0])
    eye = landmarks_xy[list(EYES[0 if side < 0 else 1][:2])].mean(0)
    top = eye + np.array([0.0, -1.2 * iod])
    for _ in range(int(rng.integers(15, 50))):
        start = top + np.array([rng.uniform(-0.6, 0.6) * iod, rng.uniform(-0.3, 0.3) * iod])
        length = iod * rng.uniform(0.8, 2.4)
        bend = rng.uniform(-0.3, 0.3) * iod
        mid = start + np.array([bend, length / 2])
        end = start + np.array([bend * 2 + side * rng.uniform(0, 0.4) * iod, length])
        curve = np.round(np.stack([start, mid, end])).astype(np.int32)
        cv2.polylines(region, [curve], False, 255, int(rng.integers(1, 3)), cv2.LINE_AA)
    colour = np.array(HAIR_COLOURS[rng.integers(len(HAIR_COLOURS))], np.float32)
    return _blend(image, colour, region.astype(np.float32) / 255 * rng.uniform(0.6, 1.0))


def shadow(image: np.ndarray, landmarks_xy: np.ndarray, rng: np.random.Generator,
           ) -> np.ndarray:
    """A hard or soft shadow: one side of a line through the face, darkened."""
    size = image.shape[0]
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    centre = landmarks_xy.mean(0) + rng.normal(0, 0.1 * size, 2)
    signed = (xx - centre[0]) * np.cos(angle) + (yy - centre[1]) * np.sin(angle)
    softness = rng.uniform(1, 0.15 * size)
    dark = 1 / (1 + np.exp(np.clip(-signed / softness, -60, 60)))
    gain = 1 - dark * rng.uniform(0.35, 0.7)
    return image * gain[..., None]


DISTRACTORS: dict[str, Callable[[np.ndarray, np.ndarray, np.random.Generator], np.ndarray]] = {
    "overlay": overlay, "glasses": glasses, "beard": beard, "lipstick": lipstick,
    "hand": hand, "microphone": microphone, "hair": hair, "shadow": shadow,
}
"""Each distractor by name (a literal table: the order is part of the random stream)."""
WITH_COVERING = ("overlay", "glasses", "hair", "shadow")
"""Those that also appear on a masked face (a beard or lipstick under a mask is invisible;
a hand or microphone over a mask would hide the covering the label says is there)."""


def draw_distractors(image_rgb: np.ndarray, landmarks_xy: np.ndarray,
                     rng: np.random.Generator, *, count: int, with_covering: bool,
                     ) -> tuple[np.ndarray, list[str]]:
    """(uint8 crop with ``count`` distractors drawn, their names)."""
    names = list(WITH_COVERING if with_covering else DISTRACTORS)
    chosen = [names[i] for i in rng.choice(len(names), size=min(count, len(names)),
                                           replace=False)]
    out = image_rgb.astype(np.float32)
    for name in chosen:
        out = DISTRACTORS[name](out, landmarks_xy, rng)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8), chosen
