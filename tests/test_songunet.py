"""SongUNet (EDM's DDPM++ / NCSN++, AGM's CIFAR-10 backbone): param counts of the official
configs, the FIR resampling against EDM's convolution definitions, torch vs Flax by weight
transfer and the analytic count vs fvcore over the config's options, and config errors.
songunet-tiny's parity, params and traced FLOPs: the conformance kit (tests/test_conformance.py).
Equality with the official modules (ml-agm, EDM) needs their source: scripts/compare_ml_agm.py,
numbers in docs/architectures/songunet.md."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from architectures import registry
from architectures.songunet import layout, songunet_flax, songunet_torch
from bench import convert
from bench.backends import torch_adapter as tb
from bench.measure.fvcore_count import fvcore_macs

SONG = registry.get("songunet")
TINY = SONG.preset("songunet-tiny").config


def _params(entry, config) -> int:
    return tb.param_count(tb.build(entry, config, abstract=True))


def test_agm_cifar10_is_the_official_ncsnpp_and_the_adm_variant_is_kept():
    """ml-agm's CIFAR-10 SongUNet has 56,405,891 parameters (networks/edm/ncsnpp.py with
    get_edm_NCSNpp_config, counted by scripts/compare_ml_agm.py); EDM's ncsnpp / ddpmpp without
    the augmentation input 56,395,523 / 55,732,739; the ADM variant 54,235,139."""
    agm = registry.get("phase_space")
    cfg = agm.preset("agm-cifar10").config
    assert cfg.backbone == "songunet" and _params(SONG, cfg.network) == 56_405_891
    assert _params(agm, cfg) == 56_405_891  # the phase-space model builds the backbone itself
    adm = agm.preset("agm-cifar10-adm").config
    assert adm.backbone == "unet2d" and _params(agm, adm) == 54_235_139
    assert _params(SONG, SONG.preset("ncsnpp-cifar10").config) == 56_395_523
    assert _params(SONG, SONG.preset("ddpmpp-cifar10").config) == 55_732_739


@pytest.mark.parametrize("taps", [(1, 1), (1, 3, 3, 1), (1, 2, 2, 1), (1, 3, 3, 3, 3, 1)])
def test_fir_resampling_equals_edms_depthwise_convolutions(taps):
    """EDM Conv2d: down = conv2d(x, outer(f, f) / sum^2, stride 2, padding p); up =
    conv_transpose2d(x, 4 outer(f, f) / sum^2, stride 2, padding p); fused down = the conv padded
    by its reach + p, then the filter without padding. Ours: separable shifted sums, both backends."""
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.standard_normal((2, 3, 8, 8)).astype(np.float32))
    f = torch.tensor(taps, dtype=torch.float32)
    f2 = (torch.outer(f, f) / f.sum() ** 2)[None, None].tile(3, 1, 1, 1)
    pad = (len(taps) - 1) // 2
    n = [t / sum(taps) for t in taps]
    want_down = F.conv2d(x, f2, stride=2, padding=pad, groups=3)
    want_up = F.conv_transpose2d(x, 4 * f2, stride=2, padding=pad, groups=3)
    w = torch.from_numpy(rng.standard_normal((5, 3, 3, 3)).astype(np.float32))
    want_fused = F.conv2d(F.conv2d(x, w, padding=1 + pad), f2[:1].tile(5, 1, 1, 1), stride=2, groups=5)
    got_fused = songunet_torch.fir_down(F.conv2d(x, w, padding=1 + pad), n, 0)
    for want, got in [(want_down, songunet_torch.fir_down(x, n, pad)), (want_up, songunet_torch.fir_up(x, n, pad)),
                      (want_fused, got_fused)]:
        assert got.shape == want.shape
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    xl = x.permute(0, 2, 3, 1).numpy()
    for want, got in [(want_down, songunet_flax.fir_down(xl, n, pad)), (want_up, songunet_flax.fir_up(xl, n, pad))]:
        np.testing.assert_allclose(np.moveaxis(np.asarray(got), -1, 1), want.numpy(), rtol=1e-5, atol=1e-6)


VARIANTS = {  # every option of the config at tiny size, with perturbed weights
    "ncsnpp-3-levels": dataclasses.replace(TINY, image_size=16, channel_mult=(1, 2, 2), attn_resolutions=(8, 4)),
    "ddpmpp": dataclasses.replace(TINY, embedding_type="positional", channel_mult_noise=1, encoder_type="standard",
                                  resample_filter=(1, 1), time_scaling=1000.0),
    "phase-space-in-out": dataclasses.replace(TINY, in_channels=6, output_channels=3, num_classes=0, num_blocks=2),
}


def _torch_model(cfg):
    model = tb.build(SONG, cfg, seed=0).model.eval()
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen))
    return model


def _inputs(cfg, batch: int = 2):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((batch, cfg.image_size, cfg.image_size, cfg.in_channels)).astype(np.float32)
    t = rng.uniform(0, 1, batch).astype(np.float32)
    y = rng.integers(0, cfg.num_classes + 1, batch).astype(np.int32) if cfg.num_classes else None
    return x, t, y


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_torch_and_flax_agree_after_weight_transfer(name):
    import jax

    cfg = VARIANTS[name]
    model, (x, t, y) = _torch_model(cfg), _inputs(cfg)
    with torch.no_grad():
        want = model(torch.from_numpy(x).permute(0, 3, 1, 2), torch.from_numpy(t),
                     None if y is None else torch.from_numpy(y)).permute(0, 2, 3, 1).numpy()
    net = songunet_flax.SongUNet(cfg)
    variables = jax.eval_shape(lambda: net.init(jax.random.key(0), x, t, y))
    got = np.asarray(net.apply(convert.torch_to_flax(model.state_dict(), variables), x, t, y))
    assert got.shape == (*x.shape[:-1], cfg.out_channels)
    assert np.abs(got - want).max() < 1e-5 * np.abs(want).max()
    assert sum(a.size for a in jax.tree.leaves(variables)) == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_analytic_count_equals_fvcore(name):
    cfg = VARIANTS[name]
    model, (x, t, y) = _torch_model(cfg), _inputs(cfg, batch=3)
    args = (torch.from_numpy(x).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(t))
    if y is not None:
        args += (torch.from_numpy(y),)
    with torch.no_grad():
        counted = fvcore_macs(model, args)
    assert counted["macs"] == sum(SONG.load_flops()(cfg, 3).values()), counted["by_operator"]


def test_the_plan_follows_edms_names_and_skip_stack():
    cfg = registry.get("phase_space").preset("agm-cifar10").config.network
    enc, dec = layout.encoder(cfg), layout.decoder(cfg)
    assert [n.name for n in enc[:7]] == ["32x32_conv", *[f"32x32_block{i}" for i in range(4)], "16x16_down",
                                         "16x16_aux_residual"]
    assert [n.name for n in dec[:2]] == ["8x8_in0", "8x8_in1"] and dec[0].attention and not dec[1].attention
    assert sum(n.concat for n in dec) == len(layout.skip_channels(cfg)) == 3 * 5
    assert [n.name for n in dec[-2:]] == ["32x32_aux_norm", "32x32_aux_conv"] and dec[-1].cout == 3


@pytest.mark.parametrize("change,message", [
    ({"attn_resolutions": (12,)}, "matches no level"),
    ({"resample_filter": (1, 2, 1)}, "even number"),
    ({"model_channels": 18}, "GroupNorm"),
    ({"embedding_type": "sinusoid"}, "embedding_type"),
    ({"encoder_type": "skip"}, "encoder_type"),
])
def test_bad_configs_name_the_field(change, message):
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(TINY, **change)


def test_unconditional_model_rejects_labels():
    cfg = VARIANTS["phase-space-in-out"]
    x, t, _ = _inputs(cfg)
    with pytest.raises(ValueError, match="unconditional"):
        songunet_torch.SongUNet(cfg)(torch.from_numpy(x).permute(0, 3, 1, 2), torch.from_numpy(t),
                                     torch.zeros(2, dtype=torch.long))


def test_fourier_frequencies_stay_float32_exact_when_the_weights_are_cast():
    """bf16-pure casts the model: the frequencies (~16 N(0, 1)) in bfloat16 would move 2 pi f t
    by radians and the torch model away from the Flax one, which keeps them as float32 constants."""
    model = songunet_torch.SongUNet(TINY).to(torch.bfloat16)
    freqs = layout.fourier_frequencies(1024)
    assert all(float(np.float32(f)) == f for f in freqs) and 15 < np.std(freqs) < 17  # float32-exact, N(0, 16^2)
    want = torch.tensor(freqs[:TINY.noise_channels // 2], dtype=torch.float32)
    assert model.frequencies().dtype == torch.float32 and torch.equal(model.frequencies(), want)
