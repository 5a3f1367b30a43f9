"""DiT (Peebles & Xie 2023): params and FLOPs of every paper preset against the paper, the fixed
position code and time sinusoid against the official numpy formulas, adaLN-Zero's identity at
init, and patchify/unpatchify layout. Parity, shapes and traced FLOPs of dit-tiny: the
conformance kit (tests/test_conformance.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from architectures import registry
from architectures.dit import dit_flax, dit_torch
from bench.backends import torch_adapter as tb
from bench.measure.flops import analytic

DIT = registry.get("dit")
# Table 4 (and Table 1 for the p=4 column): params (M), "Gflops" = GMACs of one forward pass at
# 256x256 (a 32x32x4 latent); DiT-XL/2 at 512x512 (64x64x4) is 524.6 Gflops (Sec. 5).
PAPER = {
    "dit-s-2": (33, 6.06), "dit-s-4": (33, 1.41), "dit-s-8": (33, 0.36),
    "dit-b-2": (130, 23.01), "dit-b-4": (130, 5.56), "dit-b-8": (130, 1.42),
    "dit-l-2": (458, 80.71), "dit-l-4": (458, 19.70), "dit-l-8": (458, 5.01),
    "dit-xl-2": (675, 118.64), "dit-xl-4": (675, 29.05), "dit-xl-8": (675, 7.39),
    "dit-xl-2-512": (675, 524.60),
}


@pytest.mark.parametrize("preset", sorted(PAPER))
def test_params_and_flops_match_the_paper_within_1_percent(preset):
    """Params counted on the meta device (no memory); the paper's Gflops are MACs, so our
    headline gflop (2 x MACs) is twice the table's number."""
    params_m, gmac = PAPER[preset]
    config = DIT.preset(preset).config
    params = tb.param_count(tb.build(DIT, config, abstract=True))
    counted = analytic(DIT, config, 1)["macs"] / 1e9
    assert params / 1e6 == pytest.approx(params_m, rel=0.01)
    assert counted == pytest.approx(gmac, rel=0.01)


def test_xl2_params_equal_the_official_count_less_the_frozen_position_code():
    """The official model holds its fixed sin-cos code as a frozen nn.Parameter: 675,129,632
    = ours + 256 tokens x 1152 (ours is a non-persistent buffer, not a parameter)."""
    params = tb.param_count(tb.build(DIT, DIT.preset("dit-xl-2").config, abstract=True))
    assert params + 256 * 1152 == 675_129_632


def _official_pos_embed(dim: int, grid: int) -> np.ndarray:
    """facebookresearch/DiT get_2d_sincos_pos_embed, in float64 numpy."""
    def one_d(d, pos):
        omega = 1.0 / 10000 ** (np.arange(d // 2, dtype=np.float64) / (d / 2.0))
        out = np.einsum("m,d->md", pos.reshape(-1), omega)
        return np.concatenate([np.sin(out), np.cos(out)], axis=1)

    gw, gh = np.meshgrid(np.arange(grid, dtype=np.float32), np.arange(grid, dtype=np.float32))
    return np.concatenate([one_d(dim // 2, gw), one_d(dim // 2, gh)], axis=1)


def test_position_code_and_time_sinusoid_match_the_official_formulas():
    want = _official_pos_embed(64, 5)
    np.testing.assert_allclose(dit_torch.sincos_2d(64, 5).numpy(), want, atol=1e-5)
    np.testing.assert_allclose(np.asarray(dit_flax.sincos_2d(64, 5)), want, atol=1e-5)
    t = np.array([0.0, 3.5, 999.0], np.float32)
    half = 8
    freqs = np.exp(-math.log(10000) * np.arange(half) / half)
    want = np.concatenate([np.cos(t[:, None] * freqs), np.sin(t[:, None] * freqs)], axis=1)  # GLIDE: [cos | sin]
    np.testing.assert_allclose(dit_torch.timestep_embedding(torch.from_numpy(t), 16).numpy(), want, atol=1e-4)
    np.testing.assert_allclose(np.asarray(dit_flax.timestep_embedding(t, 16)), want, atol=1e-4)


def test_adaln_zero_blocks_start_as_the_identity_and_the_output_as_zero():
    config = DIT.preset("dit-tiny").config
    model = dit_torch.DiT(config)
    h, c = torch.randn(2, config.num_tokens, config.hidden_size), torch.randn(2, config.hidden_size)
    for block in model.blocks:
        torch.testing.assert_close(block(h, c), h, rtol=0, atol=0)
    x = torch.randn(2, config.in_channels, config.input_size, config.input_size)
    out = model(x, torch.rand(2), torch.tensor([0, config.num_classes]))  # a label and the null label
    assert out.shape == (2, 2 * config.in_channels, config.input_size, config.input_size)
    assert float(out.detach().abs().max()) == 0.0  # zero-initialized final layer


def test_unpatchify_places_each_tokens_patch_at_its_grid_position():
    """With a final linear that copies its input, token (i, j)'s features (p, q, c) land at pixel
    (i*p + p', j*p + q', channel c): the official einsum 'nhwpqc->nchpwq'."""
    from dataclasses import replace

    config = replace(DIT.preset("dit-tiny").config, patch_size=2, hidden_size=32, learn_sigma=False)
    model = dit_torch.DiT(config)
    p, ch, g = config.patch_size, config.out_channels, config.grid
    with torch.no_grad():
        lin = model.final_layer.linear
        lin.weight.zero_()
        lin.weight[: p * p * ch, : p * p * ch] = torch.eye(p * p * ch)
        model.blocks = torch.nn.ModuleList()
        model.final_layer.forward = lambda h, c: lin(h)
        tokens = torch.arange(g * g * p * p * ch, dtype=torch.float32).reshape(1, g * g, p * p * ch)
        tokens = torch.nn.functional.pad(tokens, (0, config.hidden_size - p * p * ch))
        model.x_embedder.forward = lambda x: tokens.transpose(1, 2).reshape(1, config.hidden_size, g, g)
        model.pos_embed.zero_()
        out = model(torch.zeros(1, 4, 8, 8), torch.zeros(1), torch.zeros(1, dtype=torch.long))[0]
    i, j, pp, qq, c = 1, 2, 1, 0, 3
    assert float(out[c, i * p + pp, j * p + qq]) == float(((i * g + j) * p * p + pp * p + qq) * ch + c)
