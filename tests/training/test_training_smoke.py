"""Tiny training runs: checkpoints load, and --resume continues exactly.

The segmenter runs as ``python -m`` subprocesses (the real entry point); the other runs call
``main`` in-process, which saves ~8 s of imports each on a busy 2-core machine.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from engines.checkpoint import load_checkpoint
from training import train_inpainter, train_segmenter
from training.common import Budget

REPO = Path(__file__).resolve().parents[2]


def run_module(module: str, *args: str) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", module, *args], cwd=REPO,
                            capture_output=True, text=True, timeout=180, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


NO_VGG = ("--perceptual-weight", "0")
"""The VGG16 weights are a training download (``python -m training.vgg convert``), not in CI;
test_vgg.py covers the perceptual loss."""


def tiny_args(face_dir: Path, masks_root: Path, tmp_path: Path, out: Path) -> list[str]:
    return ["--data", str(face_dir), "--masks", str(masks_root), "--cache",
            str(tmp_path / "cache"), "--out", str(out), "--batch-size", "2", "--width", "8",
            "--val-every", "2", "--val-samples", "2", "--no-progress"]


def losses_by_step(out: Path, key: str) -> dict[int, float]:
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return {row["step"]: row[key] for row in lines if key in row}


@pytest.mark.slow
def test_segmenter_trains_saves_and_resumes_exactly(
    face_dir: Path, masks_root: Path, tmp_path: Path
) -> None:
    args = tiny_args(face_dir, masks_root, tmp_path, tmp_path / "seg")
    run_module("training.train_segmenter", *args, "--steps", "2")
    _, meta = load_checkpoint(tmp_path / "seg" / "segmenter.safetensors",
                                  expected_kind="segmenter")
    assert {"width": 8, "depth": 6}.items() <= meta["arch"].items()
    assert meta["crop_size"] == 128
    assert meta["meta"]["step"] == 2
    assert meta["meta"]["data"]["train"] == 6 and meta["meta"]["data"]["validation"] == 2
    assert set(meta["meta"]["val_metrics"]) == {"val_loss", "val_iou", "val_f1"}
    assert list((tmp_path / "seg" / "samples").glob("step_000002.png"))

    run_module("training.train_segmenter", *args, "--steps", "4", "--resume")
    _, meta = load_checkpoint(tmp_path / "seg" / "last.safetensors")
    assert meta["meta"]["step"] == 4
    _, best = load_checkpoint(tmp_path / "seg" / "segmenter.safetensors")
    scores = {row["step"]: train_segmenter.selection_score(row) for row in (
        json.loads(line) for line in (tmp_path / "seg" / "metrics.jsonl").read_text()
        .splitlines()) if "val_iou" in row}
    assert sorted(scores) == [2, 4]
    assert best["meta"]["step"] == max(scores, key=scores.get)  # the best, across the resume
    resumed = losses_by_step(tmp_path / "seg", "loss")
    assert sorted(resumed) == [1, 2, 3, 4]  # continued from step 2, nothing repeated

    straight = tiny_args(face_dir, masks_root, tmp_path, tmp_path / "straight")
    assert train_segmenter.main([*straight, "--steps", "4"]) == 0  # in-process: faster
    assert losses_by_step(tmp_path / "straight", "loss") == resumed


@pytest.mark.slow
def test_inpainter_trains_with_both_discriminators_and_resumes(
    face_dir: Path, masks_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An empty user cache: no VGG16 for LPIPS, no ArcFace, on every machine alike.
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "user-cache"))
    out = tmp_path / "gen"
    args = [*tiny_args(face_dir, masks_root, tmp_path, out), "--disc-width", "8",
            "--region-start", "0.5", *NO_VGG]
    assert train_inpainter.main([*args, "--steps", "2"]) == 0  # in-process: subprocess above
    state = json.loads((out / "train_state.json").read_text())
    assert state["step"] == 2 and state["region_step"] == 1  # 1/2 of the run: region D joins
    assert losses_by_step(out, "d_r")[1] == 0.0 and losses_by_step(out, "d_r")[2] > 0
    assert train_inpainter.main([*args, "--steps", "3", "--resume"]) == 0
    _, meta = load_checkpoint(out / "last.safetensors", expected_kind="generator")
    assert {"width": 8, "depth": 4, "refine": False}.items() <= meta["arch"].items()
    assert meta["meta"]["step"] == 3 and "code_revision" in meta["meta"]
    _, best = load_checkpoint(out / "generator.safetensors", expected_kind="generator")
    best_psnr = max(json.loads(line)["val_psnr_mask"] for line in
                    (out / "metrics.jsonl").read_text().splitlines() if "val_psnr_mask" in line)
    assert best["meta"]["val_metrics"]["val_psnr_mask"] == best_psnr  # no LPIPS: by PSNR
    assert set(meta["meta"]["val_metrics"]) == {"val_psnr", "val_ssim", "val_psnr_mask",
                                                "val_ssim_mask", "val_rec"}
    assert sorted(losses_by_step(out, "rec")) == [1, 2, 3]


def test_bad_flags_exit_with_a_message(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert train_segmenter.main(["--out", str(tmp_path), "--crop", "200"]) == 1
    assert "--crop must be 128 or 256, got 200" in capsys.readouterr().err
    assert train_inpainter.main(["--out", str(tmp_path), "--lr-gen", "0"]) == 1
    assert "learning rates must be in (0, 1)" in capsys.readouterr().err


def test_a_spent_budget_still_allows_the_invocations_first_step() -> None:
    spent = Budget(0.0, first_step=7)  # a resumed run at step 7 with no time at all
    assert spent.spent()
    assert spent.allows(7) and not spent.allows(8)
    unlimited = Budget(None, first_step=7)
    assert unlimited.allows(7) and unlimited.allows(10**6)


def test_warm_start_and_time_budget(face_dir: Path, masks_root: Path, tmp_path: Path,
                                    capsys: pytest.CaptureFixture) -> None:
    first = tmp_path / "first"
    args = [*tiny_args(face_dir, masks_root, tmp_path, first), "--disc-width", "8", *NO_VGG]
    # A budget far below one step: one step is taken, validated and saved, then it stops.
    assert train_inpainter.main([*args, "--steps", "1000", "--minutes", "0.0001"]) == 0
    assert json.loads((first / "train_state.json").read_text())["step"] == 1
    warm = [*tiny_args(face_dir, masks_root, tmp_path, tmp_path / "warm"), *NO_VGG,
            "--disc-width", "8",
            "--steps", "1", "--init", str(first / "generator.safetensors")]
    assert train_inpainter.main(warm) == 0
    assert train_inpainter.main([*warm, "--refine"]) == 1  # another architecture
    assert "does not match the requested architecture" in capsys.readouterr().err
    refine = [*tiny_args(face_dir, masks_root, tmp_path, tmp_path / "refine"), *NO_VGG,
              "--refine",
              "--disc-width", "8", "--steps", "1"]
    assert train_inpainter.main(refine) == 0
    _, meta = load_checkpoint(tmp_path / "refine" / "generator.safetensors")
    assert meta["arch"]["refine"] is True
    band = [*tiny_args(face_dir, masks_root, tmp_path, tmp_path / "band"), *NO_VGG,
            "--disc-width", "8", "--steps", "1", "--band",
            "--init", str(first / "generator.safetensors")]
    assert train_inpainter.main(band) == 0  # a band adds no weights: a plain one warm-starts
    _, meta = load_checkpoint(tmp_path / "band" / "last.safetensors")
    assert meta["arch"]["band"] is True
    gated = [*tiny_args(face_dir, masks_root, tmp_path, tmp_path / "gated"), *NO_VGG,
             "--disc-width", "8", "--steps", "1", "--band", "--gate",
             "--init", str(tmp_path / "band" / "last.safetensors")]
    assert train_inpainter.main(gated) == 0  # a band checkpoint warm-starts its gated twin
    model, meta = load_checkpoint(tmp_path / "gated" / "last.safetensors")
    assert meta["arch"]["gate"] is True and model.gate
    no_band = [a for a in gated if a != "--band"]
    assert train_inpainter.main(no_band) == 1
    assert "--gate needs --band" in capsys.readouterr().err
    grown = [*tiny_args(face_dir, masks_root, tmp_path, tmp_path / "grown"), *NO_VGG,
             "--disc-width", "8", "--steps", "1", "--grown",
             "--init", str(first / "generator.safetensors")]
    assert train_inpainter.main(grown) == 0  # a plain net on the pipeline's grown masks
    assert load_checkpoint(tmp_path / "grown" / "last.safetensors")[1]["arch"]["band"] is False
    assert train_inpainter.main([*grown[:-2], "--band"]) == 1
    assert "--grown is for plain generators" in capsys.readouterr().err


def test_guided_generator_trains_from_a_plain_checkpoint(face_dir: Path, masks_root: Path,
                                                         tmp_path: Path) -> None:
    plain = [*tiny_args(face_dir, masks_root, tmp_path, tmp_path / "plain"), *NO_VGG,
             "--disc-width", "8", "--steps", "1"]
    assert train_inpainter.main(plain) == 0
    guided = [*tiny_args(face_dir, masks_root, tmp_path, tmp_path / "guided"), *NO_VGG,
              "--disc-width", "8", "--steps", "2", "--guide",
              "--init", str(tmp_path / "plain" / "generator.safetensors")]
    assert train_inpainter.main(guided) == 0
    model, meta = load_checkpoint(tmp_path / "guided" / "last.safetensors")
    assert meta["arch"]["guide"] is True and model.coarse.stem.in_channels == 5
    assert meta["arch"]["guide_scale"] == model.guide_scale == 10.0
    _, plain_meta = load_checkpoint(tmp_path / "plain" / "generator.safetensors")
    assert plain_meta["arch"]["guide_scale"] == 1.0  # the builder's default: unread


def test_resume_refuses_another_architecture(face_dir: Path, masks_root: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "guided"
    guided = [*tiny_args(face_dir, masks_root, tmp_path, out), *NO_VGG, "--disc-width", "8",
              "--guide", "--guide-scale", "4"]
    assert train_inpainter.main([*guided, "--steps", "1"]) == 0
    # The same tensors, read 10x as strongly: only the recorded architecture can tell.
    assert train_inpainter.main([*guided, "--steps", "2", "--resume", "--guide-scale",
                                 "10"]) == 1
    err = capsys.readouterr().err
    assert "guide_scale=4.0 (this command: 10.0)" in err and "start a new --out" in err
    assert json.loads((out / "train_state.json").read_text())["step"] == 1  # untouched
    assert train_inpainter.main([*guided, "--steps", "2", "--resume"]) == 0
    assert json.loads((out / "train_state.json").read_text())["arch"]["guide_scale"] == 4.0

    # A state saved before the record: the shapes still refuse a wider net, in one line.
    state = json.loads((out / "train_state.json").read_text())
    del state["arch"]
    (out / "train_state.json").write_text(json.dumps(state))
    assert train_inpainter.main([*guided, "--steps", "3", "--resume", "--width", "12"]) == 1
    err = capsys.readouterr().err
    assert "has another architecture than this command's flags" in err
    assert len(err.strip().splitlines()) == 1


def test_segmenter_selection_weighs_false_marks_on_bare_faces() -> None:
    covers_more = {"val_iou": 0.90, "val_false_share": 0.003}
    marks_less = {"val_iou": 0.89, "val_false_share": 0.0005}
    assert train_segmenter.selection_score(marks_less) > train_segmenter.selection_score(
        covers_more)
    assert train_segmenter.selection_score({"val_iou": 0.9}) == 0.9
