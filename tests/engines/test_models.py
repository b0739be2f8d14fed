"""Forward and backward passes of every architecture on tiny inputs."""

from __future__ import annotations

import pytest
import torch

from engines.models import BUILDERS, GATE_SCALE, build_generator, build_segmenter


@pytest.mark.parametrize("size", [64, 128])
@pytest.mark.parametrize("batch", [1, 2])
def test_segmenter_shapes_and_gradients(size: int, batch: int) -> None:
    model = build_segmenter(width=8, depth=5)
    x = torch.randn(batch, 3, size, size, requires_grad=True)
    logits = model(x)
    assert logits.shape == (batch, 1, size, size)
    logits.mean().backward()
    assert torch.isfinite(logits).all()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    assert x.grad is not None and x.grad.abs().sum() > 0


@pytest.mark.parametrize("refine", [False, True])
def test_generator_paints_only_inside_the_mask(refine: bool) -> None:
    torch.manual_seed(0)
    model = build_generator(width=8, refine=refine)
    rgb = torch.rand(2, 3, 64, 64) * 2 - 1
    mask = torch.zeros(2, 1, 64, 64)
    mask[:, :, 32:, 16:48] = 1
    out = model(torch.cat([rgb * (1 - mask), mask], dim=1))
    assert out.shape == (2, 3, 64, 64)
    assert out.min() >= -1 and out.max() <= 1
    outside = (mask == 0).expand_as(out)
    assert torch.equal(out[outside], rgb[outside])
    assert not torch.equal(out[~outside], rgb[~outside])  # something was painted
    out.square().mean().backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


def test_generator_has_se_and_dilated_bottleneck() -> None:
    gen = build_generator(width=8)
    assert len(gen.coarse.se) == 3
    rates = [block.body[0].dilation[0] for block in gen.coarse.bottleneck]
    assert rates == [2, 4, 8, 16]
    convs = [m for m in gen.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size[0] > 1]
    # every spatial convolution is depthwise (one filter per channel)
    assert convs and all(m.groups == m.in_channels for m in convs)


def test_innermost_level_has_no_instance_norm_or_dropout() -> None:
    seg = build_segmenter(width=8, depth=7, dropout=0.5)
    innermost = seg.downs[-1].body
    assert not any(isinstance(m, torch.nn.InstanceNorm2d | torch.nn.Dropout2d) for m in innermost)
    # 128 px through 7 halvings reaches 1x1 and still runs in training mode
    seg.train()
    assert seg(torch.randn(2, 3, 128, 128)).shape == (2, 1, 128, 128)


def test_builders_map_names_to_functions() -> None:
    assert BUILDERS == {"segmenter": build_segmenter, "generator": build_generator}


@pytest.mark.parametrize("build", [build_segmenter, build_generator])
def test_default_nets_upsample_by_resizing_not_transposed_convs(build) -> None:
    """Transposed depthwise convs painted a checkerboard on every generated face."""
    model = build(width=8)
    assert not any(isinstance(m, torch.nn.ConvTranspose2d) for m in model.modules())
    assert any(isinstance(m, torch.nn.Upsample) for m in model.modules())
    legacy = build(width=8, upsample="transposed")
    assert any(isinstance(m, torch.nn.ConvTranspose2d) for m in legacy.modules())


def test_inverted_residual_blocks_add_capacity_and_keep_shapes() -> None:
    plain, wide = build_generator(width=8), build_generator(width=8, blocks=1)
    n_plain = sum(p.numel() for p in plain.parameters())
    n_wide = sum(p.numel() for p in wide.parameters())
    assert n_wide > 1.5 * n_plain
    x = torch.randn(2, 4, 64, 64)
    out = wide(x)
    assert out.shape == (2, 3, 64, 64) and torch.isfinite(out).all()
    out.mean().backward()
    assert all(torch.isfinite(p.grad).all() for p in wide.parameters() if p.grad is not None)


def test_checkpoints_written_before_the_new_arguments_load_as_they_were(tmp_path) -> None:
    """Their arch lacks ``upsample`` and ``blocks``: they were transposed, without blocks."""
    import json

    from safetensors import safe_open
    from safetensors.torch import save_file

    from engines.checkpoint import METADATA_KEY, load_checkpoint, save_checkpoint

    path = tmp_path / "old.safetensors"
    save_checkpoint(path, build_generator(width=8, upsample="transposed"), kind="generator",
                    arch={"width": 8, "upsample": "transposed"}, crop_size=128, meta={})
    with safe_open(str(path), framework="pt") as f:
        header, tensors = json.loads(f.metadata()[METADATA_KEY]), {
            k: f.get_tensor(k) for k in f.keys()}
    del header["arch"]["upsample"], header["arch"]["blocks"]  # as the first checkpoints had it
    save_file(tensors, str(path), metadata={METADATA_KEY: json.dumps(header)})
    model, _ = load_checkpoint(path, expected_kind="generator")
    assert any(isinstance(m, torch.nn.ConvTranspose2d) for m in model.modules())


def test_band_generator_repaints_the_ring_it_sees_and_nothing_outside() -> None:
    torch.manual_seed(0)
    plain, band = build_generator(width=8), build_generator(width=8, band=True)
    band.load_state_dict(plain.state_dict())  # a band adds no weights: plain ones warm-start it
    rgb = torch.rand(1, 3, 64, 64) * 2 - 1
    mask = torch.zeros(1, 1, 64, 64)
    mask[:, :, 32:, 16:48] = 1
    binary = torch.cat([rgb * (1 - mask), mask], dim=1)
    assert torch.equal(band(binary), plain(binary))  # {0, 1} masks: the same net
    ring = torch.zeros_like(mask)
    ring[:, :, 30:, 14:50] = 1
    ring = ring - mask
    channel = mask + 0.5 * ring
    out = band(torch.cat([rgb * (channel < 1), channel], dim=1))
    outside = (channel == 0).expand_as(out)
    assert torch.equal(out[outside], rgb[outside])
    on_ring = (ring > 0).expand_as(out)
    assert not torch.equal(out[on_ring], rgb[on_ring])  # the ring is repainted, not blended
    assert out.min() >= -1 and out.max() <= 1


def _ring_input(size: int = 64) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(net input, core, ring): a covering with the band's 0.5 ring around it."""
    rgb = torch.rand(1, 3, size, size) * 2 - 1
    core = torch.zeros(1, 1, size, size)
    core[:, :, 32:, 16:48] = 1
    ring = torch.zeros_like(core)
    ring[:, :, 29:, 13:51] = 1
    ring = ring - core
    channel = core + 0.5 * ring
    return torch.cat([rgb * (channel < 1), channel], dim=1), core, ring


@pytest.mark.parametrize("gate_bias, kept_on_ring", [(-30.0, True), (30.0, False)])
def test_gated_generator_blends_the_ring_by_its_gate(gate_bias: float,
                                                     kept_on_ring: bool) -> None:
    torch.manual_seed(0)
    gated = build_generator(width=8, band=True, gate=True)
    with torch.no_grad():
        gated.coarse.head.weight[3].zero_()
        gated.coarse.head.bias[3] = gate_bias / GATE_SCALE
    x, core, ring = _ring_input()
    out = gated(x)
    rgb = x[:, :3]
    outside = ((core + ring) == 0).expand_as(out)
    assert torch.equal(out[outside], rgb[outside])
    on_ring = (ring > 0).expand_as(out)
    assert torch.allclose(out[on_ring], rgb[on_ring], atol=1e-6) == kept_on_ring
    in_core = (core > 0).expand_as(out)
    assert not torch.allclose(out[in_core], rgb[in_core])  # the covering is always painted
    paint = torch.tanh(gated.coarse(x)[:, :3])
    assert torch.allclose(out[in_core], paint[in_core])


def test_a_gate_needs_band_masks_and_no_refine_stage() -> None:
    with pytest.raises(ValueError, match="band"):
        build_generator(width=8, gate=True)
    with pytest.raises(ValueError, match="refine"):
        build_generator(width=8, band=True, gate=True, refine=True)


def test_guided_generator_reads_its_guide_times_the_scale() -> None:
    torch.manual_seed(0)
    scaled = build_generator(guide=True, guide_scale=10.0).eval()
    plain = build_generator(guide=True).eval()
    plain.load_state_dict(scaled.state_dict())
    with torch.no_grad():
        plain.coarse.stem.weight[:, 4] *= 10.0  # the same net, reading an unscaled guide
        x = torch.rand(2, 5, 64, 64) * 2 - 1
        x[:, 3:4] = (torch.rand(2, 1, 64, 64) > 0.5).float()
        x[:, 4:5] = torch.rand(2, 1, 64, 64)
        torch.testing.assert_close(scaled(x), plain(x), rtol=1e-4, atol=1e-5)
        # and the scale is no no-op: without the stem's compensation the outputs differ
        plain.coarse.stem.weight[:, 4] /= 10.0
        assert (scaled(x) - plain(x)).abs().max() > 1e-3
