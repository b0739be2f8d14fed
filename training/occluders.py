"""Face coverings and holes drawn onto aligned faces: MaskTheFace templates (re-coloured,
textured, patterned), black rectangles and free-form strokes.

Templates are the segmenter's positives and the generator's main holes; rectangles and strokes
are holes for the generator only (a segmenter taught them would mark anything foreign on a
face). Every function takes its randomness from the ``rng`` it is given.

    occluders = load_occluders(Path("../shared/data/mask_templates/masktheface/masks"), 128)
    rgb, alpha = template_occluder(landmarks_xy, 128, occluders, TemplateStyle(), rng)
"""

from __future__ import annotations

import configparser
import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from realtime.face import mesh

Pose = Literal["front", "left", "right"]



@dataclass(frozen=True)
class TemplateStyle:
    """How templates are placed and coloured (the ``OcclusionConfig`` fields of templates)."""

    pose_by_yaw: bool = True
    misplace: float = 0.03
    texture_p: float = 0.25
    tint_p: float = 0.30
    pattern_p: float = 0.0
    """Share painted with a procedural print (stripes, dots, checks) or a solid black, white
    or grey, as real cloth masks are; drawn after texture and tint."""
    photo_p: float = 0.0
    """Share printed with a window of a photo (``Occluders.photos_rgb``: hair, clothes,
    scenery, skin): real masks carry prints no procedural pattern covers; drawn last."""
    template_scale: tuple[float, float] = (0.95, 1.08)
    template_grow: float = 0.0
    hem_p: float = 0.0
    """Share of templates given a hem along the upper edge (``add_hem``)."""
    loop_p: float = 0.0
    """Share of templates given ear loops (``add_ear_loops``)."""

    @property
    def print_edges(self) -> tuple[float, ...]:
        """Upper edges on [0, 1) of texture, tint, print and photo print, in the order they
        are drawn; the last is the share recoloured at all (at most 1)."""
        return tuple(itertools.accumulate((self.texture_p, self.tint_p, self.pattern_p,
                                           self.photo_p)))


@dataclass(frozen=True)
class MaskTemplate:
    name: str
    rgba: np.ndarray
    """(H, W, 4) uint8 RGBA, pre-shrunk to about twice the crop size (less aliasing)."""
    anchors_xy: np.ndarray
    """(6, 2) float32 anchor points a..f in template pixels."""
    pose: Pose


@dataclass(frozen=True)
class Occluders:
    templates: tuple[MaskTemplate, ...]
    textures_rgb: tuple[np.ndarray, ...]
    """Textures as (S, S, 3) uint8, resized to the crop size."""
    photos_rgb: np.ndarray | None = None
    """(N, S, S, 3) uint8 photos whose windows ``photo_p`` prints on templates (the training
    faces themselves); None: no photo prints."""


def _read_template(root: Path, name: str, section: configparser.SectionProxy,
                   crop_size: int) -> MaskTemplate:
    image = cv2.imread(str(root.parent / section["template"]), cv2.IMREAD_UNCHANGED)
    if image is None or image.ndim != 3 or image.shape[2] != 4:
        raise ValueError(f"template {name} is not an RGBA image: {section['template']}")
    anchors_xy = np.array([[float(v) for v in section[f"mask_{k}"].split(",")]
                           for k in "abcdef"], dtype=np.float32)
    scale = min(1.0, 2 * crop_size / max(image.shape[:2]))
    image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    pose: Pose = ("left" if name.endswith("_left")
                  else "right" if name.endswith("_right") else "front")
    rgba = np.concatenate([cv2.cvtColor(image[..., :3], cv2.COLOR_BGR2RGB), image[..., 3:]], 2)
    return MaskTemplate(name, rgba, anchors_xy * scale, pose)


def load_occluders(masks_root: Path, crop_size: int) -> Occluders:
    """Templates listed in ``masks_root/masks.cfg`` and textures under ``masks_root/textures``.

    ``masks_root`` is MaskTheFace's ``masks`` folder; the cfg's paths are relative to its
    parent.
    """
    cfg_path = masks_root / "masks.cfg"
    if not cfg_path.is_file():
        raise FileNotFoundError(f"mask templates not found: {cfg_path}")
    cfg = configparser.ConfigParser()
    cfg.read(cfg_path)
    templates = tuple(_read_template(masks_root, name, cfg[name], crop_size)
                      for name in cfg.sections() if "template" in cfg[name])
    textures = []
    for path in sorted((masks_root / "textures").rglob("*")):
        image = cv2.imread(str(path), cv2.IMREAD_COLOR) if path.is_file() else None
        if image is not None:
            image = cv2.resize(image, (crop_size, crop_size), interpolation=cv2.INTER_AREA)
            textures.append(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
    if not templates:
        raise ValueError(f"no templates in {cfg_path}")
    return Occluders(templates, tuple(textures))


def head_pose(landmarks_xy: np.ndarray, threshold: float = 0.12) -> Pose:
    """'left' when the nose tip is left of the outline's middle (the head turned towards the
    image's left), 'right' for the mirror case, else 'front'."""
    x_left, x_right = landmarks_xy[list(mesh.OUTLINE_AT_EYES), 0]
    ratio = (landmarks_xy[mesh.NOSE_TIP, 0] - x_left) / max(x_right - x_left, 1e-6)
    if ratio < 0.5 - threshold:
        return "left"
    return "right" if ratio > 0.5 + threshold else "front"


def face_box_xyxy(landmarks_xy: np.ndarray, crop_size: int) -> tuple[int, int, int, int]:
    """The landmarks' bounding box in whole crop pixels, clipped to the crop."""
    x0, y0 = np.floor(landmarks_xy.min(axis=0)).astype(int)
    x1, y1 = np.ceil(landmarks_xy.max(axis=0)).astype(int)
    x0, y0 = max(int(x0), 0), max(int(y0), 0)
    x1, y1 = min(int(x1), crop_size), min(int(y1), crop_size)
    if x1 - x0 < 4 or y1 - y0 < 4:  # degenerate landmarks: fall back to the whole crop
        return 0, 0, crop_size, crop_size
    return x0, y0, x1, y1


def print_pattern(size: int, rng: np.random.Generator) -> np.ndarray:
    """(S, S, 3) float32 RGB of a random print: stripes, dots, checks, or a solid black, white
    or grey."""
    colours = rng.uniform(0, 255, size=(2, 3)).astype(np.float32)
    kind = int(rng.integers(4))
    if kind == 3:  # solid: black, white or grey (the commonest cloth masks)
        return np.full((size, size, 3), rng.choice([rng.uniform(10, 45), rng.uniform(200, 250),
                                                    rng.uniform(90, 160)]), np.float32)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    angle = rng.uniform(0, np.pi)
    u = xx * np.cos(angle) + yy * np.sin(angle)
    v = -xx * np.sin(angle) + yy * np.cos(angle)
    period = rng.uniform(4, 16)
    if kind == 0:
        on = (u % period) < period * rng.uniform(0.3, 0.7)
    elif kind == 1:
        on = np.hypot(u % period - period / 2, v % period - period / 2) < period * 0.3
    else:
        on = ((u // period) + (v // period)) % 2 == 0
    return np.where(on[..., None], colours[0], colours[1])


def photo_print(photos_rgb: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """(S, S, 3) float32: a random window (a quarter to 60% of the side) of a random photo,
    resized to ``size``, mirrored half the time."""
    photo = photos_rgb[rng.integers(len(photos_rgb))]
    h, w = photo.shape[:2]
    side = max(4, int(rng.uniform(0.25, 0.6) * min(h, w)))
    y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
    window = cv2.resize(photo[y:y + side, x:x + side], (size, size),
                        interpolation=cv2.INTER_LINEAR).astype(np.float32)
    return window[:, ::-1] if rng.random() < 0.5 else window


def _colour_template(rgb: np.ndarray, alpha: np.ndarray, occluders: Occluders,
                     config: TemplateStyle, rng: np.random.Generator) -> np.ndarray:
    """The warped template's RGB re-coloured: texture, tint, print or as is, then brightness;
    the template's own shading is kept."""
    rgb = rgb.astype(np.float32)
    luma = rgb.mean(axis=2, keepdims=True)
    inside = alpha > 0.5
    shade = np.clip(luma / max(float(luma[inside].mean()) if inside.any() else 1.0, 1.0),
                    0.3, 1.3)
    texture_to, tint_to, pattern_to, photo_to = config.print_edges
    u = rng.random()
    if u < texture_to and occluders.textures_rgb:
        texture = occluders.textures_rgb[rng.integers(len(occluders.textures_rgb))]
        rgb = texture.astype(np.float32) * shade
    elif u < tint_to:
        rgb = rng.uniform(20, 240, size=3).astype(np.float32) * shade
    elif u < pattern_to:
        rgb = print_pattern(rgb.shape[0], rng) * shade
    elif u < photo_to and occluders.photos_rgb is not None and len(occluders.photos_rgb):
        rgb = photo_print(occluders.photos_rgb, rgb.shape[0], rng) * shade
    return np.clip(rgb * rng.uniform(0.7, 1.2), 0, 255)


def template_occluder(landmarks_xy: np.ndarray, crop_size: int, occluders: Occluders,
                      config: TemplateStyle, rng: np.random.Generator,
                      ) -> tuple[np.ndarray, np.ndarray]:
    """(occluder RGB float32 (S,S,3), alpha float32 (S,S)) of a template warped onto the face."""
    pose = head_pose(landmarks_xy) if config.pose_by_yaw else rng.choice(["front", "left",
                                                                          "right"])
    choices = [t for t in occluders.templates if t.pose == pose] or list(occluders.templates)
    template = choices[rng.integers(len(choices))]
    dst_xy = landmarks_xy[list(mesh.TEMPLATE_ANCHORS)].astype(np.float64)
    centre = dst_xy.mean(axis=0)
    dst_xy = (dst_xy - centre) * rng.uniform(*config.template_scale) + centre
    if config.template_grow > 0:  # a larger mask: lower edge further down, sides further out
        grow = rng.uniform(0, config.template_grow)
        dst_xy[3:] = dst_xy[1] + (dst_xy[3:] - dst_xy[1]) * (1 + grow)
        dst_xy[:, 0] = centre[0] + (dst_xy[:, 0] - centre[0]) * (1 + grow / 2)
    dst_xy += rng.uniform(-1, 1, size=2) * config.misplace * crop_size  # worn off-centre
    dst_xy += rng.normal(0, 0.25 * config.misplace * crop_size, size=(6, 2))
    homography, _ = cv2.findHomography(template.anchors_xy.astype(np.float64), dst_xy, 0)
    if homography is None:  # collinear anchors (broken landmarks): a plain affine fit
        affine, _ = cv2.estimateAffine2D(template.anchors_xy, dst_xy.astype(np.float32))
        homography = np.vstack([affine, [0, 0, 1]])
    warped = cv2.warpPerspective(template.rgba, homography, (crop_size, crop_size),
                                 flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                                 borderValue=0)
    alpha = warped[..., 3].astype(np.float32) / 255.0
    rgb = _colour_template(warped[..., :3], alpha, occluders, config, rng)
    if config.hem_p > 0 and rng.random() < config.hem_p:
        rgb, alpha = add_hem(rgb, alpha, rng)
    if config.loop_p > 0 and rng.random() < config.loop_p:
        rgb, alpha = add_ear_loops(rgb, alpha, landmarks_xy, rng)
    return rgb, alpha


def _trim_colour(rgb: np.ndarray, alpha: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A hem's or loop's colour: off-white (the commonest binding and elastic), or the mask's
    own colour lighter or darker (a fold, a seam)."""
    if rng.random() < 0.6:
        return np.clip(rng.uniform(195, 250) + rng.normal(0, 6, 3), 0, 255).astype(np.float32)
    inside = alpha > 0.5
    mean = rgb[inside].mean(axis=0) if inside.any() else np.full(3, 128.0)
    return np.clip(mean * rng.choice([rng.uniform(1.15, 1.45), rng.uniform(0.6, 0.8)]),
                   0, 255).astype(np.float32)


def add_hem(rgb: np.ndarray, alpha: np.ndarray, rng: np.random.Generator,
            ) -> tuple[np.ndarray, np.ndarray]:
    """The template with a hem: its upper edge raised by 1-4.5 px (at 128 px) in a trim colour,
    as real masks' bound top edge is (the templates stop at the fabric). A segmenter taught
    only the templates leaves that light line on real photos."""
    size = alpha.shape[0]
    height = rng.uniform(0.01, 0.035) * size
    def shifted(a: np.ndarray, dy: float) -> np.ndarray:
        m = np.float32([[1, 0, 0], [0, 1, dy]])
        return cv2.warpAffine(a, m, (size, size), flags=cv2.INTER_LINEAR, borderValue=0)
    raised = np.maximum(alpha, shifted(alpha, -height))
    band = np.clip(raised - shifted(alpha, 1.0), 0, 1)[..., None]  # the raise and 1 px below
    colour = _trim_colour(rgb, alpha, rng)
    shade = rng.uniform(0.9, 1.05, size=(1, size, 1)).astype(np.float32)  # uneven along it
    out = rgb * (1 - band) + np.clip(colour * shade, 0, 255) * band
    return out.astype(np.float32), raised


def add_ear_loops(rgb: np.ndarray, alpha: np.ndarray, landmarks_xy: np.ndarray,
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The template with elastic loops, 1-2 px wide at 128 px, from its side corners towards
    the ears: on turned faces they cross the cheek, where a segmenter that never saw them
    leaves them as strings."""
    size = alpha.shape[0]
    ys, xs = np.nonzero(alpha > 0.5)
    if len(xs) < 16:
        return rgb, alpha
    top, bottom = ys.min(), ys.max()
    layer = np.zeros((size, size), np.uint8)
    thickness = max(1, round(size * rng.uniform(0.008, 0.016)))
    for side, ear in enumerate(mesh.EAR_TRAGIONS):  # the image's left ear, then right
        ear_xy = landmarks_xy[ear]
        for frac in (rng.uniform(0.1, 0.3), rng.uniform(0.6, 0.85)):  # upper and lower loop
            row = int(top + frac * (bottom - top))
            cols = xs[np.abs(ys - row) <= 1]
            if len(cols) == 0:
                continue
            start = np.array([cols.min() if side == 0 else cols.max(), row], np.float64)
            middle = (start + ear_xy) / 2 + rng.normal(0, 0.02 * size, 2)
            t = np.linspace(0, 1, 12)[:, None]
            curve = (1 - t) ** 2 * start + 2 * (1 - t) * t * middle + t ** 2 * ear_xy
            cv2.polylines(layer, [np.rint(curve * 4).astype(np.int32)], False, 255,
                          thickness, cv2.LINE_AA, shift=2)
    loops = layer.astype(np.float32) / 255 * (alpha < 0.5)  # over the mask, the mask stays
    colour = _trim_colour(rgb, alpha, rng)
    out = rgb * (1 - loops[..., None]) + colour * loops[..., None]
    return out.astype(np.float32), np.maximum(alpha, loops)


def rectangle_mask(landmarks_xy: np.ndarray, crop_size: int, coverage: tuple[float, float],
                   rng: np.random.Generator) -> np.ndarray:
    """(S, S) float32 mask of one axis-aligned rectangle inside the face box, covering a
    fraction in ``coverage`` of the box."""
    x0, y0, x1, y1 = face_box_xyxy(landmarks_xy, crop_size)
    box_w, box_h = x1 - x0, y1 - y0
    area = rng.uniform(*coverage) * box_w * box_h
    w = min(np.sqrt(area * rng.uniform(0.5, 2.0)), box_w)
    h = min(area / w, box_h)
    w, h = max(round(w), 1), max(round(h), 1)
    left = x0 + int(rng.integers(0, box_w - w + 1))
    top = y0 + int(rng.integers(0, box_h - h + 1))
    mask_hw = np.zeros((crop_size, crop_size), np.float32)
    mask_hw[top:top + h, left:left + w] = 1.0
    return mask_hw


def freeform_occluder(landmarks_xy: np.ndarray, crop_size: int, rng: np.random.Generator,
                      ) -> tuple[np.ndarray, np.ndarray]:
    """(occluder RGB float32, mask float32) of random thick strokes and blobs on the face."""
    x0, y0, x1, y1 = face_box_xyxy(landmarks_xy, crop_size)
    occluder_rgb = np.zeros((crop_size, crop_size, 3), np.float32)
    mask_u8 = np.zeros((crop_size, crop_size), np.uint8)
    for _ in range(int(rng.integers(1, 5))):
        layer = np.zeros_like(mask_u8)
        if rng.random() < 0.6:
            n = int(rng.integers(2, 6))
            pts = np.stack([rng.uniform(x0, x1, n), rng.uniform(y0, y1, n)], 1).astype(np.int32)
            thickness = max(2, int(crop_size * rng.uniform(0.04, 0.12)))
            cv2.polylines(layer, [pts], False, 255, thickness, cv2.LINE_8)
        else:
            centre = (int(rng.uniform(x0, x1)), int(rng.uniform(y0, y1)))
            axes = tuple(int(crop_size * a) for a in rng.uniform(0.05, 0.18, 2))
            cv2.ellipse(layer, centre, axes, float(rng.uniform(0, 180)), 0, 360, 255, -1)
        on = layer > 0
        occluder_rgb[on] = rng.uniform(0, 255, size=3)
        mask_u8 |= layer
    return occluder_rgb, (mask_u8 > 0).astype(np.float32)


