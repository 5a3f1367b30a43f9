"""ADM U-Net (2D) and shared U-Net checks: preset shapes and params in both backends, zero-init,
weight-transfer parity, attention against a numpy transcription of ADM's QKV attention, and
analytic MACs against torch's FlopCounterMode."""

from __future__ import annotations

import dataclasses
import math

import jax
import numpy as np
import pytest
import torch

from architectures import registry
from architectures.layers_torch import timestep_embedding
from architectures.unet import flops
from architectures.unet.blocks_torch import Attention
from architectures.unet.config import PRESETS_2D, PRESETS_3D, UNetConfig
from architectures.unet.unet_flax import UNet as FlaxUNet
from architectures.unet.unet_torch import UNet as TorchUNet
from bench.convert import flax_to_torch
from tests.unet_cases import (canonical_inputs, flax_params_from, init_flax, randomized_torch, relative_error,
                              run_flax, run_torch, torch_inputs, torch_macs)

ALL = {**PRESETS_2D, **PRESETS_3D}
TINY = PRESETS_2D["unet2d-tiny"].config
# Unconditional, dropout (inactive in eval), plain-add embedding, conv resampling vs ResBlock resampling, head dim, new qkv order.
VARIANTS = {
    "tiny-class": TINY,
    "uncond-updown-newattn": dataclasses.replace(
        TINY, num_classes=0, dropout=0.3, use_scale_shift_norm=False, resblock_updown=True, learn_sigma=True,
        use_new_attention_order=True, num_head_channels=8, channel_mult=(1, 2, 2), attention_resolutions=(8, 4),
        process=dataclasses.replace(TINY.process, timesteps=1000)),  # learned variance: discrete time
}


MINI = dataclasses.replace(TINY, channel_mult=(1,), attention_resolutions=(16,))  # one level: fast Flax compiles


def n_params_torch(cfg: UNetConfig) -> int:
    with torch.device("meta"):
        return sum(p.numel() for p in TorchUNet(cfg).parameters())


@pytest.mark.parametrize("name", sorted(ALL))
def test_preset_shapes_and_params_agree_across_backends(name):
    cfg = ALL[name].config
    abstract = {k: jax.ShapeDtypeStruct(s, d) for k, (s, d) in cfg.input_shapes(2).items()}
    out, variables = jax.eval_shape(
        lambda kw: FlaxUNet(cfg).init_with_output(jax.random.PRNGKey(0), **kw), abstract)
    n_flax = sum(math.prod(a.shape) for a in jax.tree_util.tree_leaves(variables["params"]))
    assert n_flax == n_params_torch(cfg)
    expected = (*cfg.input_shapes(2)["x"][0][:-1], cfg.out_channels)
    assert out.shape == expected
    with torch.device("meta"):
        inputs = {k: torch.empty(s, dtype=getattr(torch, d)) for k, (s, d) in cfg.input_shapes(2).items()}
        x = inputs.pop("x")
        x = torch.movedim(x, -1, 1)
        if "context" in inputs:
            inputs["context"] = torch.movedim(inputs["context"], -1, 1)
        y = TorchUNet(cfg)(x, **inputs)
    assert tuple(torch.movedim(y, 1, -1).shape) == expected


def test_registry_entries_resolve_to_unet():
    for arch, presets in (("unet2d", PRESETS_2D), ("unet3d", PRESETS_3D)):
        entry = registry.get(arch)
        assert entry.load_presets() is presets and entry.load_config_class() is UNetConfig
        assert entry.load_model_class("torch") is TorchUNet and entry.load_model_class("jax") is FlaxUNet
        assert {p.config.modality for p in presets.values()} == set(entry.modalities)


def test_ddpm_cifar10_has_the_papers_35_7m_params():
    assert abs(n_params_torch(PRESETS_2D["ddpm-cifar10"].config) / 35.7e6 - 1) < 0.005


def test_adm_imagenet256_has_554m_params():
    # DiT (Peebles & Xie 2023) Table 4 lists ADM-256 at 554M params.
    assert abs(n_params_torch(PRESETS_2D["adm-imagenet256"].config) / 554e6 - 1) < 0.005


@pytest.mark.parametrize("preset", [TINY, PRESETS_3D["unet3d-tiny"].config], ids=["2d", "3d"])
def test_fresh_models_output_exactly_zero(preset):
    cfg = dataclasses.replace(preset, channel_mult=(1,), attention_resolutions=(16,))
    inputs = canonical_inputs(cfg, 2)
    torch.manual_seed(0)
    model = TorchUNet(cfg).eval()
    zero_init = {n: p for n, p in model.named_parameters() if n.split(".")[-2] in ("out_conv", "proj")}
    assert len(zero_init) > 4 and all(torch.count_nonzero(p) == 0 for p in zero_init.values())
    assert np.all(run_torch(model, inputs) == 0)
    if not cfg.frames:
        return  # the video model holds every Flax block type: one Flax compile is enough
    out, params = init_flax(cfg, inputs)
    flat = jax.tree_util.tree_flatten_with_path(params)[0]
    zeros = [a for path, a in flat if path[-2].key in ("out_conv", "proj")]
    assert len(zeros) == len(zero_init) and all(np.all(np.asarray(a) == 0) for a in zeros)
    assert np.all(out == 0)


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_torch_to_flax_parity(name):
    cfg = VARIANTS[name]
    inputs = canonical_inputs(cfg, 2, seed=1)
    model = randomized_torch(cfg)
    expected = run_torch(model, inputs)
    got = run_flax(cfg, flax_params_from(model, cfg, inputs), inputs)
    assert got.shape == expected.shape == (2, 16, 16, cfg.out_channels)
    assert np.abs(expected).max() > 1e-2  # the random zero-init layers make the output non-trivial
    assert relative_error(got, expected) < 1e-5


def test_flax_to_torch_round_trip_is_exact():
    inputs = canonical_inputs(TINY, 1)
    model = randomized_torch(TINY)
    state = flax_to_torch(flax_params_from(model, TINY, inputs), model)
    assert state.keys() == model.state_dict().keys()
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())


def test_missing_label_is_the_null_label():
    inputs = canonical_inputs(TINY, 2)
    model = randomized_torch(TINY)
    tensors = torch_inputs(inputs)
    with torch.no_grad():
        null = model(tensors["x"], tensors["t"], torch.full((2,), TINY.num_classes))
        none = model(tensors["x"], tensors["t"])
        real = model(tensors["x"], tensors["t"], tensors["y"])
    assert torch.equal(null, none) and not torch.allclose(null, real)


def test_unconditional_model_rejects_labels():
    cfg = VARIANTS["uncond-updown-newattn"]
    with pytest.raises(ValueError, match="unconditional"):
        TorchUNet(cfg)(torch.zeros(1, 3, 16, 16), torch.zeros(1), torch.zeros(1, dtype=torch.long))


def test_dropout_acts_in_training():
    cfg = dataclasses.replace(MINI, dropout=0.5)
    inputs = canonical_inputs(cfg, 2)
    model = randomized_torch(cfg)
    params = flax_params_from(model, cfg, inputs)
    evaluated = run_torch(model, inputs)  # eval-mode parity across backends: test_torch_to_flax_parity
    trained = run_flax(cfg, params, inputs, train=True, rngs={"dropout": jax.random.PRNGKey(1)})
    assert relative_error(trained, evaluated) > 1e-3
    model.train()
    assert relative_error(run_torch(model, inputs), evaluated) > 1e-3


def test_timestep_embedding_closed_form():
    t = np.array([0.0, 0.37, 1.0])
    dim, half = 10, 5
    freqs = 10000.0 ** (-np.arange(half) / half)
    expected = np.concatenate([np.cos(1000 * t[:, None] * freqs), np.sin(1000 * t[:, None] * freqs)], axis=1)
    got = timestep_embedding(torch.tensor(t * 1000, dtype=torch.float32), dim).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-4)


def adm_qkv_attention(qkv: np.ndarray, heads: int, new_order: bool) -> np.ndarray:
    """numpy transcription of ADM's QKVAttention (new order) / QKVAttentionLegacy on (N, 3*C, L)."""
    n, width, length = qkv.shape
    ch = width // (3 * heads)
    if new_order:  # chunk into q, k, v first, then split heads
        q, k, v = (a.reshape(n * heads, ch, length) for a in np.split(qkv, 3, axis=1))
    else:  # split heads first, then q, k, v within each head
        q, k, v = np.split(qkv.reshape(n * heads, 3 * ch, length), 3, axis=1)
    logits = np.einsum("bct,bcs->bts", q, k) / math.sqrt(ch)
    weights = np.exp(logits - logits.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    return np.einsum("bts,bcs->bct", weights, v).reshape(n, -1, length)


@pytest.mark.parametrize("new_order", [False, True])
def test_attention_block_matches_adm_reference(new_order):
    torch.manual_seed(0)
    block = Attention(8, heads=2, groups=2, new_order=new_order)
    with torch.no_grad():
        for p in block.parameters():
            p.normal_(0, 0.5)
        x = torch.randn(2, 8, 3, 4)
        got = block(x).numpy()
        normed = block.norm(x).flatten(2).numpy()  # (N, C, L)
    w_qkv, b_qkv = block.qkv.weight.detach().numpy(), block.qkv.bias.detach().numpy()
    w_proj, b_proj = block.proj.weight.detach().numpy(), block.proj.bias.detach().numpy()
    qkv = np.einsum("oc,ncl->nol", w_qkv, normed) + b_qkv[:, None]  # ADM's 1x1 conv
    h = np.einsum("oc,ncl->nol", w_proj, adm_qkv_attention(qkv, 2, new_order)) + b_proj[:, None]
    np.testing.assert_allclose(got, x.numpy() + h.reshape(x.shape), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_analytic_macs_equal_flop_counter(name):
    cfg = VARIANTS[name]
    macs = flops.forward_macs(cfg, 2)
    assert set(macs) == {"conv", "linear", "attention"} and all(v > 0 for v in macs.values())
    assert sum(macs.values()) == torch_macs(cfg)


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="norm_groups"):
        dataclasses.replace(TINY, norm_groups=32)
    with pytest.raises(ValueError, match="num_head_channels"):
        dataclasses.replace(TINY, num_head_channels=12)
    with pytest.raises(ValueError, match="cond_frames"):
        dataclasses.replace(TINY, cond_frames=1)
    with pytest.raises(ValueError, match="time_input"):
        dataclasses.replace(TINY, process=dataclasses.replace(TINY.process, time_input="gamma"))


def test_valid_tap_macs_bound_xla_cost_analysis():
    """XLA's HloCostAnalysis counts only conv taps that land on the image, plus elementwise ops."""
    cfg = TINY
    abstract = {k: jax.ShapeDtypeStruct(s, d) for k, (s, d) in cfg.input_shapes(2).items()}
    model = FlaxUNet(cfg)
    params = jax.eval_shape(lambda kw: model.init(jax.random.PRNGKey(0), **kw), abstract)
    cost = jax.jit(lambda p, kw: model.apply(p, **kw)).lower(params, abstract).cost_analysis()
    xla_flops = (cost[0] if isinstance(cost, list) else cost)["flops"]
    valid = sum(flops.forward_macs(cfg, 2, padded_taps=False).values())
    assert 1.0 < xla_flops / (2 * valid) < 1.05  # the excess is norms, activations and biases
    assert valid < sum(flops.forward_macs(cfg, 2).values())


def test_ddpm_linear_schedule_matches_discrete_ddpm():
    """Continuous ddpm_linear: gamma(i / 1000) ~ prod_{j <= i} (1 - beta_j), betas 1e-4 .. 0.02; the
    DDPM/ADM presets run the discrete chain itself."""
    from architectures.processes.gaussian import GaussianProcess
    from architectures.processes.schedules import gamma

    betas = np.linspace(1e-4, 0.02, 1000)
    alpha_bar = np.cumprod(1 - betas)
    steps = np.array([100, 300, 500, 700, 999])
    process = PRESETS_2D["ddpm-cifar10"].config.process
    got = gamma((steps + 1) / 1000.0, dataclasses.replace(process, timesteps=0))
    np.testing.assert_allclose(np.log(got), np.log(alpha_bar[steps]), rtol=0.02)
    np.testing.assert_allclose(GaussianProcess(process).gamma(steps.astype(float)), alpha_bar[steps], rtol=1e-12)


# -- ADM's process: discrete time, cosine s = 0.008, learned variance -----------------------------
ADM_PRESETS = {"ddpm-cifar10": ("ddpm_linear", 1000, 1000, False), "iddpm-32": ("cosine_iddpm", 4000, 4000, True),
               "adm-imagenet64": ("cosine_iddpm", 1000, 250, False), "adm-imagenet128": ("ddpm_linear", 1000, 250, False),
               "adm-imagenet256": ("ddpm_linear", 1000, 250, False)}


@pytest.mark.parametrize("name", sorted(ADM_PRESETS))
def test_adm_presets_run_the_official_discrete_process(name):
    """Schedule, T, sampling steps and timestep rescale as the official flags (script_util defaults)."""
    p = PRESETS_2D[name].config.process
    assert (p.schedule, p.timesteps, p.sample_steps, p.rescale_timesteps) == ADM_PRESETS[name]
    assert PRESETS_2D[name].config.time_scaling == 1.0 and str(p.sample_steps) in PRESETS_2D[name].provenance


def test_unet_time_input_is_the_integer_step_when_discrete():
    """Discrete time: the embedding sees k itself (ADM); continuous t is scaled by 1000."""
    discrete = dataclasses.replace(MINI, process=dataclasses.replace(MINI.process, timesteps=1000))
    assert discrete.time_scaling == 1.0 and MINI.time_scaling == 1000.0
    inputs = canonical_inputs(MINI, 2)
    model = randomized_torch(MINI)
    with_k = dict(inputs, t=np.array([0.0, 999.0], np.float32))
    as_t = dict(inputs, t=np.array([0.0, 0.999], np.float32))
    model_k = randomized_torch(discrete)
    np.testing.assert_allclose(run_torch(model_k, with_k), run_torch(model, as_t), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="discrete"):
        dataclasses.replace(MINI, learn_sigma=True)


ADM_TINY = dataclasses.replace(MINI, learn_sigma=True, process=dataclasses.replace(
    MINI.process, schedule="cosine_iddpm", timesteps=1000, sample_steps=2, guidance_scale=1.5))


def test_hybrid_loss_and_learned_variance_agree_across_backends():
    """The same weights (torch -> flax by bench/convert.py) give the same L_hybrid, sampler step and
    sampling run in both adapters; the run reports the NFE it made (guidance: 2 per step)."""
    from bench.backends import framework_free, jax_adapter, torch_adapter

    entry, cfg = registry.get("unet2d"), ADM_TINY
    inputs = canonical_inputs(cfg, 3, seed=2)
    model = randomized_torch(cfg)
    params = {"params": flax_params_from(model, cfg, inputs)}
    built_t = torch_adapter.build(entry, cfg)
    built_t.model.load_state_dict(model.state_dict())
    built_j = framework_free.Built("jax", entry, cfg, FlaxUNet(cfg), params, jax.devices("cpu")[0], built_t.process, 0)
    process = built_t.process
    draws = process.train_draws(np.random.default_rng(3), inputs["x"].shape)
    draws["t"][0] = 0.0  # the decoder-NLL term too
    arrays = {"x0": np.clip(inputs["x"], -1, 1), "y": inputs["y"], **draws}
    a_t, a_j = torch_adapter.device_arrays(built_t, arrays), jax_adapter.device_arrays(built_j, arrays)
    loss_t = torch_adapter.Trainer(built_t).loss(a_t).detach()
    loss_j = jax.jit(jax_adapter.Trainer(built_j, compile=False).loss)(params["params"], a_j, None)
    assert float(loss_t) == pytest.approx(float(loss_j), rel=1e-5)
    net = torch_adapter.denoiser(built_t, built_t.model)
    with torch.no_grad():
        mse = process.training_loss(lambda *a: (net(*a)[0][0], None), a_t["x0"], a_t["t"], a_t["eps"], a_t["y"])
    assert float(loss_t) > float(mse) + 1e-3  # the VLB term is in
    run_t, run_j = (b.sampling_run(built, 2, seed=4) for b, built in [(torch_adapter, built_t), (jax_adapter, built_j)])
    assert run_t.nfe == run_j.nfe == 2 * 2 == process.nfe_per_sample(True)
    assert relative_error(run_j.x, run_t.x) < 1e-4


def test_attention_resolutions_must_match_a_level():
    """ADM's convention: r is the feature-map size of a level (ds = image_size // r). A value
    matching no level (a resolution sweep that kept the old value) is an error, not dropped."""
    from architectures.unet import layout
    from architectures.unet.config import UNetConfig

    cfg = UNetConfig(image_size=32, model_channels=16, channel_mult=(1, 2, 2), norm_groups=4, attention_resolutions=(16,))
    assert [s.size for s in layout.encoder(cfg) if s.attn] == [16, 16]  # level 1's two ResBlocks
    for bad in [(64,), (12,), (16, 2)]:  # above the image, not a level size, below the last level (8)
        with pytest.raises(ValueError, match="matches no level"):
            dataclasses.replace(cfg, attention_resolutions=bad)
    with pytest.raises(ValueError, match=r"allowed: values in \[64, 32\]"):
        dataclasses.replace(cfg, image_size=64, channel_mult=(1, 2))
