"""Metrics on known cases, the baselines, the fixed inputs, and whole evaluation runs on a few
faces (random-weight checkpoints). The LPIPS and ArcFace checks on the real weights skip, with
the command that fetches them, where those files are absent."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from realtime.pipeline import PipelineConfig
from training.eval_inputs import negative_crop, paper_rectangle
from training.eval_metrics import (
    PSNR_CAP_DB,
    Scorers,
    checkerboard_score,
    colour_error,
    image_metrics,
    lpips_hole,
    mask_iou,
    mse_per_image,
    product_masks,
    psnr_from_mse,
    score_outputs,
    telea,
)
from training.eval_report import PAPER_BANDS, Tally, band_of, group_of, markdown
from training.evaluate import EvalConfig, load_scorers, main


def smooth_image(n: int = 2, size: int = 64, seed: int = 0) -> torch.Tensor:
    """(n, 3, size, size) in [0.2, 0.8]: blurred noise, little energy at the Nyquist rate."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, size // 8, size // 8, generator=gen)
    x = torch.nn.functional.interpolate(x, size=(size, size), mode="bicubic",
                                        align_corners=False)
    return 0.2 + 0.6 * x.clamp(0, 1)


def box_mask(n: int = 2, size: int = 64, box: tuple[int, int, int, int] = (20, 44, 16, 48),
             ) -> torch.Tensor:
    mask = torch.zeros(n, 1, size, size)
    mask[..., box[0]:box[1], box[2]:box[3]] = 1
    return mask


def test_identical_images_give_capped_psnr_and_ssim_one() -> None:
    torch.manual_seed(0)
    a = torch.rand(3, 3, 32, 32)
    mask = (torch.rand(3, 1, 32, 32) > 0.5).float()
    m = image_metrics(a, a.clone(), mask)
    assert (m["mse"] == 0).all() and (m["mse_mask"] == 0).all()
    assert (m["psnr"] == PSNR_CAP_DB).all() and (m["psnr_mask"] == PSNR_CAP_DB).all()
    assert torch.allclose(m["ssim"], torch.ones(3), atol=1e-5)
    assert torch.allclose(m["ssim_mask"], torch.ones(3), atol=1e-5)


@pytest.mark.parametrize("sigma", [0.01, 0.05, 0.1])
def test_gaussian_noise_psnr_follows_the_formula(sigma: float) -> None:
    gen = torch.Generator().manual_seed(1)
    clean = 0.3 + 0.4 * torch.rand(2, 3, 64, 64, generator=gen)  # no clipping at +-3 sigma
    noisy = clean + sigma * torch.randn(clean.shape, generator=gen)
    m = image_metrics(noisy, clean, torch.ones(2, 1, 64, 64))
    mse = ((noisy - clean) ** 2).flatten(1).mean(1)
    torch.testing.assert_close(m["psnr"], 10 * torch.log10(1 / mse))
    assert m["psnr"].mean().item() == pytest.approx(-20 * math.log10(sigma), abs=0.1)
    torch.testing.assert_close(m["psnr_mask"], m["psnr"])  # a full mask is the whole crop


def test_mask_metrics_only_see_the_mask() -> None:
    clean = torch.full((1, 3, 32, 32), 0.5)
    mask = torch.zeros(1, 1, 32, 32)
    mask[..., 16:, :] = 1
    out = clean.clone()
    out[..., :16, :] = 0.0  # wrong only outside the mask
    m = image_metrics(out, clean, mask)
    assert m["psnr_mask"].item() == PSNR_CAP_DB and m["mse_mask"].item() == 0
    assert m["mse"].item() == pytest.approx(0.125)  # half the pixels off by 0.5
    assert mse_per_image(out, clean, torch.zeros_like(mask)).item() == 0  # empty mask: no NaN


def test_psnr_cap_and_iou_edge_cases() -> None:
    assert psnr_from_mse(torch.tensor([0.0, 1e-12, 1.0])).tolist() == [100.0, 100.0, 0.0]
    a = torch.zeros(3, 1, 4, 4)
    b = torch.zeros(3, 1, 4, 4)
    a[1, :, :2] = 1
    b[1, :, :1] = 1  # half of a
    a[2, :, :2] = 1
    b[2, :, 2:] = 1  # disjoint
    assert mask_iou(a, b).tolist() == [1.0, 0.5, 0.0]


@pytest.mark.parametrize(("ratio", "band"), [(0.05, "0%-10%"), (0.1, "10%-15%"),
                                             (0.149, "10%-15%"), (0.17, "15%-20%"),
                                             (0.25, "20%-30%"), (0.3, ">30%"), (1.0, ">30%")])
def test_ratio_bands(ratio: float, band: str) -> None:
    assert band_of(ratio) == band


def test_checkerboard_score_is_one_for_identical_images() -> None:
    truth = smooth_image()
    scores = checkerboard_score(truth, truth.clone(), box_mask())
    torch.testing.assert_close(scores, torch.ones(2))


@pytest.mark.parametrize("amplitude", [0.01, 0.03, 0.1])
def test_checkerboard_score_flags_a_grid_in_the_hole(amplitude: float) -> None:
    truth, mask = smooth_image(), box_mask()
    yy, xx = torch.meshgrid(torch.arange(64), torch.arange(64), indexing="ij")
    grid = torch.where((yy + xx) % 2 == 0, amplitude, -amplitude)
    out = truth + grid * mask  # (+a, -a) only inside the hole
    assert (checkerboard_score(out, truth, mask) > 2).all()
    stripes = truth + torch.where(xx % 2 == 0, amplitude, -amplitude) * mask
    assert (checkerboard_score(stripes, truth, mask) > 2).all()
    outside = truth + grid * (1 - mask)  # a grid outside the hole's box is not seen
    torch.testing.assert_close(checkerboard_score(outside, truth, mask), torch.ones(2))


def test_checkerboard_score_ignores_smooth_errors_and_empty_masks() -> None:
    truth, mask = smooth_image(), box_mask()
    blurred = torch.nn.functional.avg_pool2d(truth, 3, 1, 1)
    assert (checkerboard_score(blurred, truth, mask) < 1.5).all()
    empty = torch.zeros_like(mask)
    assert checkerboard_score(truth + 0.1, truth, empty).tolist() == [1.0, 1.0]


@pytest.mark.parametrize("levels", [0.0, 1.0, 5.0, 20.0])
def test_colour_error_is_the_mean_shift_in_levels(levels: float) -> None:
    truth, mask = smooth_image(), box_mask()
    shifted = truth + levels / 255 * mask  # the hole only
    torch.testing.assert_close(colour_error(shifted, truth, mask),
                               torch.full((2,), levels), atol=1e-3, rtol=0)
    one_channel = truth.clone()
    one_channel[:, 0] += 3 * levels / 255 * mask[:, 0]
    torch.testing.assert_close(colour_error(one_channel, truth, mask),
                               torch.full((2,), levels), atol=1e-3, rtol=0)
    assert colour_error(truth + 0.2 * (1 - mask), truth, mask).abs().max() < 1e-4
    assert colour_error(shifted, truth, torch.zeros_like(mask)).tolist() == [0.0, 0.0]


def hole_box_lpips(lpips, out: torch.Tensor, target: torch.Tensor, mask: torch.Tensor,
                   size: int = 64) -> torch.Tensor:
    """The plain reference: one image at a time through LPIPS, inside each mask's box."""
    values = []
    for o, t, m in zip(out, target, mask, strict=True):
        rows, cols = torch.nonzero(m[0] > 0.5, as_tuple=True)
        if len(rows) == 0:
            values.append(out.new_zeros(()))
            continue
        box = (slice(None), slice(int(rows.min()), int(rows.max()) + 1),
               slice(int(cols.min()), int(cols.max()) + 1))
        pair = [torch.nn.functional.interpolate(v[box][None], size=(size, size), mode="area")
                for v in (o, t)]
        values.append(lpips(*pair)[0])
    return torch.stack(values)


def test_lpips_hole_equals_lpips_of_each_box_alone() -> None:
    from training.vgg import LPIPS, VGG16Features

    torch.manual_seed(0)
    lpips = LPIPS(VGG16Features())  # random weights: the computation is what is compared
    target = torch.rand(3, 3, 48, 48) * 2 - 1
    outs = [target + 0.3 * torch.randn(3, 3, 48, 48), torch.rand(3, 3, 48, 48) * 2 - 1]
    mask = torch.zeros(3, 1, 48, 48)
    mask[0, :, 10:30, 5:40] = 1
    mask[1, :, 20:22, 30:47] = 1  # a thin box, upsampled
    with torch.no_grad():
        ours = lpips_hole(lpips, outs, target, mask)  # the third mask is empty: 0
        for out, value in zip(outs, ours, strict=True):
            torch.testing.assert_close(value, hole_box_lpips(lpips, out, target, mask),
                                       atol=1e-5, rtol=1e-4)
            assert value[2] == 0 and (value[:2] > 0).all()


def covering_logits(size: int = 128) -> torch.Tensor:
    """Logits of a surgical-mask-like region over the mouth and nose, and of a forehead blob."""
    from realtime.covering import MOUTH_NOSE_XY

    logits = torch.full((2, 1, size, size), -5.0)
    cx, cy = (round(f * size) for f in MOUTH_NOSE_XY)
    logits[0, 0, cy - 20:cy + 30, cx - 35:cx + 35] = 5.0
    logits[1, 0, 8:20, cx - 10:cx + 10] = 5.0  # above the eyes: never a covering
    return logits


def test_product_masks_paint_what_the_pipeline_paints() -> None:
    logits = covering_logits()
    crops = torch.zeros(2, 3, 128, 128)  # flat grey: no rim to follow past the fixed grow
    painted, covered, segmented = product_masks(logits, crops)
    assert covered.tolist() == [True, False]
    raw = (logits[0] > 0).float()
    assert painted.shape == logits.shape and painted[1].sum() == 0
    assert (painted[0] >= raw).all() and painted[0].sum() > raw.sum()  # grown by 2 px
    from realtime.covering import CoveringConfig, below_eyes, plausible_covering
    from realtime.edges import grow

    kept_hw, _ = plausible_covering(raw[0].numpy(), CoveringConfig())
    np.testing.assert_array_equal(painted[0, 0].numpy(),
                                  grow(kept_hw[None], 2)[0] * below_eyes(128))
    no_grow = PipelineConfig(grow_px=0, grow_reach_px=0)
    crisp = PipelineConfig(grow_px=2, grow_min_prob=0.1)   # the logits' edge is a step
    by_prob = product_masks(logits, crops, crisp)[0][0, 0].numpy()
    assert (by_prob >= kept_hw).all() and (by_prob <= raw[0].numpy()).all()  # no skin taken
    assert product_masks(logits, crops, no_grow)[0][0].sum() == kept_hw.sum()  # opened corners
    np.testing.assert_array_equal(segmented[0, 0].numpy(), kept_hw * below_eyes(128))


def test_telea_fills_only_the_mask() -> None:
    image = np.full((32, 32, 3), 120, np.uint8)
    masked = image.copy()
    masked[10:20, 10:20] = 0
    mask_hw = np.zeros((32, 32), np.float32)
    mask_hw[10:20, 10:20] = 1
    filled = telea(masked, mask_hw)
    np.testing.assert_array_equal(filled[mask_hw == 0], image[mask_hw == 0])
    assert np.abs(filled[10:20, 10:20].astype(int) - 120).max() <= 2


def test_scores_count_only_the_pixels_the_photo_has() -> None:
    clean = torch.rand(2, 3, 64, 64) * 2 - 1
    mask, valid = torch.zeros(2, 1, 64, 64), torch.ones(2, 1, 64, 64)
    mask[..., 30:, 10:54] = 1  # a covering down to the crop's bottom
    valid[..., 48:, :] = 0  # the photo ends at row 48: below it the crop is padding
    wrong_below = torch.where(valid > 0.5, clean, -clean)  # wrong only where no photo is
    wrong_above = torch.where((mask > 0.5) & (valid > 0.5), -clean, clean)
    outputs = {"clean": clean, "wrong below": wrong_below, "wrong above": wrong_above}
    tally = Tally()
    score_outputs(outputs, {"clean": clean, "mask": mask, "valid": valid},
                  Scorers(torch.nn.Identity(), {}, 64), tally, ["all"] * 2)
    s = {m: cells["all"] for m, cells in tally.summary().items()}
    assert s["wrong below"]["psnr_mask"] == s["clean"]["psnr_mask"]
    assert s["wrong below"]["colour_error"] == pytest.approx(0, abs=1e-4)
    assert s["wrong above"]["psnr_mask"] < s["clean"]["psnr_mask"] - 20
    without = Tally()  # no validity given: every pixel counts
    score_outputs(outputs, {"clean": clean, "mask": mask}, Scorers(torch.nn.Identity(), {}, 64),
                  without, ["all"] * 2)
    assert without.summary()["wrong below"]["all"]["psnr_mask"] < s["clean"]["psnr_mask"] - 20


def test_tally_groups_by_band_and_overall() -> None:
    tally = Tally()
    tally.add("m", ["10%-15%", "20%-30%", "10%-15%"], {"psnr": torch.tensor([10.0, 20.0, 30.0])})
    summary = tally.summary()["m"]
    assert summary["10%-15%"] == {"psnr": 20.0, "count": 2}
    assert summary["all"]["psnr"] == 20.0 and summary["all"]["count"] == 3
    tally.add("k", [("template", "0%-10%"), ("rectangle", "0%-10%")],
              {"x": torch.tensor([1.0, 3.0])})
    k = tally.summary()["k"]
    assert k["template"]["x"] == 1 and k["rectangle"]["x"] == 3
    assert k["0%-10%"] == {"x": 2.0, "count": 2} and k["all"]["count"] == 2


@pytest.mark.parametrize(("name", "group"), [("white_25_m_0001.webp", "white"),
                                             ("indian_3_f_9.webp", "indian"),
                                             ("other_80_m_1.webp", "other"),
                                             ("val_00012.png", "unknown"), ("", "unknown")])
def test_group_of_reads_utkface_names(name: str, group: str) -> None:
    assert group_of(name) == group


def test_paper_rectangles_land_in_their_band(faces) -> None:
    shares = {band: [] for band in PAPER_BANDS}
    for i in range(len(faces)):
        for band in PAPER_BANDS:
            rng = np.random.default_rng([0, i])
            mask_hw = paper_rectangle(faces.landmarks_xy[i], 128, band[:2], rng)
            assert set(np.unique(mask_hw)) == {0.0, 1.0}
            shares[band].append(float(mask_hw.mean()))
    for (lo, hi, _), values in shares.items():
        inside = [lo <= v < hi for v in values]
        assert sum(inside) >= len(values) - 1, values


def test_negatives_are_seeded_and_leave_bare_faces_alone(faces) -> None:
    np.testing.assert_array_equal(negative_crop(faces, 0, "clean", 1), faces.crops_rgb[0])
    for condition in ("overlays", "distractors"):
        a, b = (negative_crop(faces, 0, condition, 1) for _ in range(2))
        assert a.dtype == np.uint8 and a.shape == faces.crops_rgb[0].shape
        np.testing.assert_array_equal(a, b)
        assert not np.array_equal(a, faces.crops_rgb[0])


def random_checkpoints(folder: Path) -> dict[str, Path]:
    from engines.checkpoint import random_model, save_checkpoint

    paths = {}
    for name, kind, seed in (("generator", "generator", 0), ("baseline", "generator", 1),
                             ("segmenter", "segmenter", 0)):
        model, meta = random_model(kind, width=8, seed=seed)
        paths[name] = folder / f"{name}.safetensors"
        save_checkpoint(paths[name], model, kind=kind, arch=meta["arch"], crop_size=128,
                        meta={"step": 0})
    return paths


def test_skip_flags_load_no_metric_networks(tmp_path: Path) -> None:
    paths = random_checkpoints(tmp_path)
    config = EvalConfig(out=tmp_path, data=(tmp_path,), masks=tmp_path, cache=tmp_path,
                        generator=paths["generator"], segmenter=paths["segmenter"],
                        baseline_generator=paths["generator"], skip_lpips=True,
                        skip_identity=True)
    logged: list[str] = []
    scorers = load_scorers(config, logged.append)
    assert scorers.lpips is None and scorers.arcface is None and not logged
    assert list(scorers.generators) == ["generator"]  # the same file: no second row
    assert any("--skip-lpips" in n for n in scorers.notes)
    assert any("--skip-identity" in n for n in scorers.notes)


@pytest.fixture()
def utk_dir(tmp_path: Path, shared_data: Path) -> Path:
    """60 UTKFace images (links): split_faces holds out the 50th, one validation face."""
    source = sorted((shared_data / "faces" / "utkface_160").iterdir())[:60]
    folder = tmp_path / "utkface_160"
    folder.mkdir()
    for p in source:
        (folder / p.name).symlink_to(p)
    return folder


def test_evaluation_run_writes_every_section(face_dir: Path, utk_dir: Path, masks_root: Path,
                                            tmp_path: Path,
                                            capsys: pytest.CaptureFixture) -> None:
    paths = random_checkpoints(tmp_path)
    out = tmp_path / "eval"
    rc = main(["--out", str(out), "--data", str(face_dir), str(utk_dir), "--masks",
               str(masks_root), "--cache", str(tmp_path / "cache"), "--generator",
               str(paths["generator"]), "--baseline-generator", str(paths["baseline"]),
               "--segmenter", str(paths["segmenter"]), "--batch-size", "4", "--limit", "4",
               "--rectangles", "4", "--vgg", str(tmp_path / "no_vgg.safetensors"),
               "--arcface", str(tmp_path / "no_arcface.onnx"), "--no-progress"])
    assert rc == 0
    warnings = [line for line in capsys.readouterr().err.splitlines()
                if line.startswith("warning:")]
    assert len(warnings) == 2 and "LPIPS" in warnings[0] and "ArcFace" in warnings[1]
    result = json.loads((out / "eval.json").read_text())
    assert result["faces"] == 2 and result["set"] == "faces"  # the two validation_* faces
    summary = result["generator"]["faces"]["results"]
    assert result["results"] == summary  # the primary set, where benchmarks read it
    assert set(summary) == {"masked input", "telea (true mask)", "telea (segmenter mask)",
                            "previous generator (true mask)",
                            "previous generator (segmenter mask)", "generator (true mask)",
                            "generator (segmenter mask)", "segmenter"}
    telea_all = summary["telea (true mask)"]["all"]
    assert telea_all["count"] == 2 and 0 < telea_all["psnr"] < PSNR_CAP_DB
    assert telea_all["psnr_mask"] > summary["masked input"]["all"]["psnr_mask"]
    assert telea_all["checkerboard"] > 0 and telea_all["colour_error"] >= 0
    assert "lpips_hole" not in telea_all and "arcface" not in telea_all  # omitted, not faked
    assert 0 <= summary["segmenter"]["all"]["iou"] <= 1
    seg = result["segmenter"]["faces"]["results"]
    assert set(seg) == {"template", "clean", "overlays", "distractors"}
    assert 0 <= seg["template"]["missed"] <= 1 and 0 <= seg["clean"]["marked"] <= 1
    groups = result["groups"]
    assert groups["faces"] == 1 and len(groups["groups"]) == 1 and groups["spread_psnr_mask"] == 0
    paper = result["paper"]
    assert paper["faces"] == 4 and paper["paper_psnr_db"] == {"10%-15%": 35.51, "20%-30%": 30.33}
    assert sum(c["count"] for b, c in paper["results"]["masked input"].items() if b != "all") == 4
    table = (out / "eval.md").read_text()
    for heading in ("## Segmenter", "## Generator on faces (2 faces)", "### faces: all occlusions",
                    "## By group", "## The seed paper's setting", "How to read"):
        assert heading in table, heading
    assert "| previous generator | segmenter |" in table and "LPIPS omitted" in table
    partial = markdown({**result, "groups": None, "paper": None, "notes": []})
    assert "## By group" not in partial and "## The seed paper" not in partial
    assert "## Generator on faces" in partial and "Notes:" not in partial


def test_evaluation_reports_a_missing_checkpoint(tmp_path: Path, face_dir: Path) -> None:
    rc = main(["--out", str(tmp_path), "--data", str(face_dir),
               "--generator", str(tmp_path / "nope.safetensors")])
    assert rc == 1


def test_evaluation_reports_missing_data(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    rc = main(["--out", str(tmp_path), "--data", str(tmp_path / "nowhere")])
    assert rc == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "nowhere" in err[0]


def real_weights() -> tuple[Path, Path]:
    from training.identity import default_arcface_path
    from training.vgg import default_weights_path

    vgg, arcface = default_weights_path(), default_arcface_path()
    if not vgg.is_file():
        pytest.skip(f"LPIPS weights not in the cache ({vgg}); run "
                    "`python -m training.vgg convert --download`")
    if not arcface.is_file():
        pytest.skip(f"ArcFace model not in the cache ({arcface}); run "
                    "`python -m training.identity fetch`")
    return vgg, arcface


def test_lpips_and_identity_on_the_real_weights(faces) -> None:
    from training.eval_metrics import telea_batch
    from training.identity import ArcFace
    from training.vgg import load_vgg

    vgg, arcface = real_weights()
    clean = torch.from_numpy(faces.crops_rgb[:4]).permute(0, 3, 1, 2).float() / 127.5 - 1
    mask = torch.zeros(4, 1, 128, 128)
    mask[..., 70:110, 30:98] = 1  # the mouth and chin
    masked = clean * (1 - mask)
    outputs = {"masked input": masked, "telea (true mask)": telea_batch(masked, mask),
               "clean": clean, "someone else": clean.roll(1, dims=0)}
    scorers = Scorers(torch.nn.Identity(), {}, 128, lpips=load_vgg(vgg)[1],
                      arcface=ArcFace(arcface))
    tally = Tally()
    with torch.no_grad():
        score_outputs(outputs, {"clean": clean, "mask": mask}, scorers, tally, ["all"] * 4)
    s = {m: cells["all"] for m, cells in tally.summary().items()}
    assert "lpips_hole" not in s["masked input"]
    assert s["clean"]["lpips_hole"] < 1e-4 and 0.05 < s["telea (true mask)"]["lpips_hole"] < 1
    assert s["clean"]["arcface"] > 0.99 and s["someone else"]["arcface"] < 0.5
    for method in ("masked input", "telea (true mask)"):
        assert 0.3 < s[method]["arcface"] < 0.99  # the same person, less certain


def test_the_covering_rule_on_real_video(shared_data, tmp_path) -> None:
    """A few frames of each real clip through the product, both ways round."""
    from training.eval_video import video_markdown, video_section

    rows = video_section(shared_data / "videos", segmenter=None, generator=None,
                         cache_dir=tmp_path / "engines", frames=12)
    assert [(r["clip"], r["scale"], r["masked"]) for r in rows] == [
        ("hamilton_clip_640x360.mp4", 1.0, False), ("hamilton_clip_640x360.mp4", 0.5, False),
        ("masked_webcam_256.mp4", 1.0, True)]
    assert all(r["frames"] == 12 and r["faces_per_frame"] >= 1 for r in rows)
    assert rows[2]["frames_painted"] > 0.5  # the masked face is painted
    text = "\n".join(video_markdown(rows))
    assert "| masked_webcam_256.mp4 | 1 | yes | 12 |" in text
