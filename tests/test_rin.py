"""RIN: presets, shapes and param counts in both backends, torch/flax parity, self-conditioning, FLOPs."""

from __future__ import annotations

import functools
import math
from dataclasses import replace

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from architectures import registry
from architectures.rin import rin_flax, rin_torch
from architectures.rin.config import PRESETS, RINConfig
from architectures.rin.flops import forward_macs
from bench.convert import torch_to_flax

TINY = PRESETS["rin-tiny"].config
TINY_VIDEO = replace(TINY, image_size=8, frames=5, cond_frames=2, temporal_patch=2, num_classes=0)
CHANNELS_FIRST = ("x", "context")


def numpy_inputs(config: RINConfig, batch: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Canonical channels-last inputs; latents non-zero (a previous step's output)."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, (shape, dtype) in config.input_shapes(batch).items():
        if dtype == "int32":
            out[name] = rng.integers(0, config.num_classes + 1, shape).astype(np.int32)
        elif name == "t":
            out[name] = rng.uniform(0.0, 1.0, shape).astype(np.float32)
        else:
            out[name] = rng.standard_normal(shape).astype(np.float32)
    return out


def to_torch(inputs: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    out = {}
    for name, array in inputs.items():
        tensor = torch.from_numpy(array)
        out[name] = tensor.movedim(-1, 1) if name in CHANNELS_FIRST else tensor
    return out


def torch_model(config: RINConfig, seed: int = 0, perturb: float = 0.02) -> rin_torch.RIN:
    """A torch RIN whose every parameter (zero-init biases and LN0 included) is moved off its init."""
    torch.manual_seed(seed)
    model = rin_torch.RIN(config).eval()
    with torch.no_grad():
        for param in model.parameters():
            param.add_(perturb * torch.randn_like(param))
    return model


def flax_params_from(model: rin_torch.RIN, config: RINConfig, inputs: dict[str, np.ndarray]):
    abstract = jax.eval_shape(lambda a: rin_flax.RIN(config).init(jax.random.PRNGKey(0), **a), inputs)
    return torch_to_flax(model.state_dict(), abstract)


def flax_apply(config: RINConfig, params, inputs, train: bool = False):
    """Eager apply: real flax init compiles one RNG kernel per parameter shape, so tests take torch's weights."""
    args = {k: jnp.asarray(v) for k, v in inputs.items()}
    return rin_flax.RIN(config).apply(params, **args, train=train, rngs={"dropout": jax.random.PRNGKey(1)})


def run_both(model, params, config, inputs):
    with torch.no_grad():
        pred_t, z_t = model(**to_torch(inputs))
    pred_f, z_f = flax_apply(config, params, inputs)
    return pred_t.movedim(1, -1).numpy(), z_t.numpy(), np.asarray(pred_f), np.asarray(z_f)


def assert_rel_close(actual, expected, rel=1e-5):
    err = np.abs(actual - expected).max()
    assert err <= rel * np.abs(expected).max(), f"max abs err {err:.3g}, scale {np.abs(expected).max():.3g}"


# ---------------------------------------------------------------- presets, shapes, param counts

@functools.cache
def torch_meta_forward(config: RINConfig):
    with torch.device("meta"):
        model = rin_torch.RIN(config)
        inputs = {}
        for name, (shape, dtype) in config.input_shapes(1).items():
            tensor = torch.zeros(shape, dtype=torch.int64 if dtype == "int32" else torch.float32)
            inputs[name] = tensor.movedim(-1, 1) if name in CHANNELS_FIRST else tensor
        pred, latents = model(**inputs)
    count = sum(p.numel() for p in model.parameters())
    return tuple(pred.movedim(1, -1).shape), tuple(latents.shape), count


def flax_abstract_forward(config: RINConfig):
    args = {k: jax.ShapeDtypeStruct(s, jnp.dtype(d)) for k, (s, d) in config.input_shapes(1).items()}
    model = rin_flax.RIN(config)
    variables = jax.eval_shape(lambda a: model.init(jax.random.PRNGKey(0), **a), args)
    pred, latents = jax.eval_shape(lambda v, a: model.apply(v, **a), variables, args)
    count = sum(math.prod(leaf.shape) for leaf in jax.tree_util.tree_leaves(variables))
    return tuple(pred.shape), tuple(latents.shape), count


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_shapes_and_param_counts_agree_across_backends(name):
    config = PRESETS[name].config
    shapes = config.input_shapes(1)
    pred_t, z_t, count_t = torch_meta_forward(config)
    pred_f, z_f, count_f = flax_abstract_forward(config)
    assert pred_t == pred_f == shapes["x"][0]
    assert z_t == z_f == shapes["latents"][0] == (1, config.num_latents, config.latent_dim)
    assert count_t == count_f


def dense(d_in: int, d_out: int) -> int:
    return d_in * d_out + d_out


def closed_form_params(c: RINConfig) -> int:
    """Parameter count from the spec's layer list, written out independently of both model files."""
    dz, dx, r, h = c.latent_dim, c.interface_dim, c.rw_dim, c.latent_mlp_ratio * c.latent_dim
    ffn = lambda d, hidden: 2 * d + dense(d, hidden) + dense(hidden, d) if hidden else 0  # with its pre-LN
    read = 2 * dz + dense(dz, r) + 2 * dense(dx, r) + dense(r, dz) + ffn(dz, h)
    process = 2 * dz + 4 * dense(dz, dz) + ffn(dz, h)
    write = 2 * dx + dense(dx, r) + 2 * dense(dz, r) + dense(r, dx) + ffn(dx, c.tape_mlp_ratio * dx)
    stem = dense(c.patch_dim, dx) + 2 * dx + (c.num_tokens + c.num_context_tokens) * dx
    latent_init = (c.num_latents - 2) * dz + dense(dz // 4, dz) + dense(dz, dz) + dense(c.num_classes + 1, dz)
    self_cond = ffn(dz, h) + 2 * dz
    readout = 2 * dx + dense(dx, c.patch_dim)
    blocks = c.num_blocks * (read + c.process_layers * process + write)
    return stem + latent_init + self_cond + blocks + readout


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_param_count_matches_closed_form(name):
    config = PRESETS[name].config
    assert torch_meta_forward(config)[2] == closed_form_params(config)


def test_cifar10_param_count_matches_paper():
    *_, count = torch_meta_forward(PRESETS["rin-cifar10"].config)
    assert 30.5e6 < count < 31.5e6  # Jabri et al. 2023 report 31M parameters for CIFAR-10


def test_presets_have_provenance_and_labels():
    for name, preset in PRESETS.items():
        assert preset.provenance, name
        config = preset.config
        assert config.process.time_input == "gamma" and config.process.self_condition_rate == 0.9
        expected = {"rin-cifar10": 10, "rin-tiny": 10, "rin-kinetics": 0}.get(name, 1000)
        assert config.num_classes == expected, name
        assert ("y" in config.input_shapes(2)) == (expected > 0)
    kinetics = PRESETS["rin-kinetics"].config
    assert kinetics.modality == "video" and kinetics.input_shapes(2)["context"][0] == (2, 5, 64, 64, 3)
    cifar = PRESETS["rin-cifar10"].config.process
    assert (cifar.schedule, cifar.start, cifar.end, cifar.tau) == ("sigmoid", -3.0, 3.0, 0.9)


def test_registry_resolves_rin():
    entry = registry.get("rin")
    assert entry.load_model_class("torch") is rin_torch.RIN
    assert entry.load_model_class("jax") is rin_flax.RIN
    assert entry.load_presets() is PRESETS and entry.load_flops() is forward_macs


@pytest.mark.parametrize("change, field", [
    (dict(image_size=30, patch_size=4), "image_size"),
    (dict(latent_heads=5), "latent_heads"),
    (dict(rw_heads=3), "rw_heads"),
    (dict(num_latents=2), "num_latents"),
    (dict(dropout=1.0), "dropout"),
    (dict(cond_frames=2), "cond_frames"),
    (dict(frames=4, cond_frames=4), "cond_frames"),
    (dict(latent_dim=60, latent_heads=4), "latent_dim"),
])
def test_config_validation_names_the_field(change, field):
    with pytest.raises(ValueError, match=field):
        replace(TINY, **change)


# ---------------------------------------------------------------- parity torch <-> flax

@pytest.mark.parametrize("config", [TINY, TINY_VIDEO], ids=["image", "video"])
@pytest.mark.parametrize("given_latents", [False, True])
def test_torch_flax_parity(config, given_latents):
    inputs = numpy_inputs(config, batch=2)
    if not given_latents:
        inputs.pop("latents")
    model = torch_model(config)
    params = flax_params_from(model, config, inputs)
    pred_t, z_t, pred_f, z_f = run_both(model, params, config, inputs)
    assert pred_t.shape == inputs["x"].shape and np.isfinite(pred_t).all()
    assert_rel_close(pred_f, pred_t)
    assert_rel_close(z_f, z_t)


def test_video_context_is_read_and_not_output():
    inputs = numpy_inputs(TINY_VIDEO, batch=2)
    model = torch_model(TINY_VIDEO)
    base, _ = model(**to_torch(inputs))
    inputs["context"] = inputs["context"] + 1.0
    moved, _ = model(**to_torch(inputs))
    assert base.shape == (2, 3, TINY_VIDEO.out_frames, 8, 8)
    assert not torch.allclose(base, moved)
    with pytest.raises(ValueError, match="context"):
        model(**{k: v for k, v in to_torch(inputs).items() if k != "context"})
    image_inputs = to_torch(numpy_inputs(TINY, batch=2))
    with pytest.raises(ValueError, match="context"):
        torch_model(TINY)(**image_inputs, context=torch.zeros(2, 3, 2, 16, 16))


# ---------------------------------------------------------------- self-conditioning, labels, time

def test_self_conditioning_wiring():
    """LN0 starts at zero, so Z_prev has no effect at init; once LN0 moves, it does (both backends)."""
    inputs = numpy_inputs(TINY, batch=2)
    without = {k: v for k, v in inputs.items() if k != "latents"}
    torch.manual_seed(1)
    model = rin_torch.RIN(TINY).eval()
    assert torch.count_nonzero(model.sc_norm.weight) == 0 and torch.count_nonzero(model.sc_norm.bias) == 0
    with torch.no_grad():
        assert torch.equal(model(**to_torch(inputs))[0], model(**to_torch(without))[0])
        model.sc_norm.weight.normal_()
        assert not torch.allclose(model(**to_torch(inputs))[0], model(**to_torch(without))[0])
    with torch.no_grad():
        model.sc_norm.weight.zero_()
    variables = flax_params_from(model, TINY, without)
    apply = lambda v, a: np.asarray(flax_apply(TINY, v, a)[0])
    assert np.array_equal(apply(variables, inputs), apply(variables, without))
    variables["params"]["sc_norm"]["scale"] = jnp.ones_like(variables["params"]["sc_norm"]["scale"])
    assert not np.allclose(apply(variables, inputs), apply(variables, without))


def test_flax_init_zeroes_ln0():
    """Flax's own init (only the latent-init parameters, to keep RNG compiles few) starts LN0 at zero."""
    model = rin_flax.RIN(TINY)
    t, y = jnp.full((2,), 0.5), jnp.zeros((2,), jnp.int32)
    params = model.init(jax.random.PRNGKey(0), t, y, None, method=rin_flax.RIN.init_latents)["params"]
    assert not np.any(params["sc_norm"]["scale"]) and not np.any(params["sc_norm"]["bias"])
    assert np.any(params["sc_mlp"]["ffn"]["fc1"]["kernel"]) and params["latents"].shape == (14, 64)


def test_missing_label_is_the_null_label():
    inputs = numpy_inputs(TINY, batch=2)
    model = torch_model(TINY)
    null = dict(inputs, y=np.full(2, TINY.num_classes, np.int32))
    other = dict(inputs, y=np.zeros(2, np.int32))
    without = {k: v for k, v in inputs.items() if k != "y"}
    with torch.no_grad():
        out = {name: model(**to_torch(a))[0] for name, a in [("null", null), ("none", without), ("other", other)]}
    assert torch.equal(out["null"], out["none"]) and not torch.allclose(out["null"], out["other"])


def reference_time_code(gamma: np.ndarray, dim: int, scaling: float) -> np.ndarray:
    """The official construction: angle rate 10000^(-2 (i//2) / dim); sin of even i | cos of odd i; standardized."""
    i = np.arange(dim)
    angles = (gamma * scaling)[:, None] / np.power(10000.0, 2 * (i // 2) / dim)[None]
    code = np.concatenate([np.sin(angles[:, 0::2]), np.cos(angles[:, 1::2])], axis=-1)
    return (code - code.mean(-1, keepdims=True)) / code.std(-1, keepdims=True)


def test_time_code_matches_reference():
    gamma = np.array([0.0, 1e-4, 0.3, 1.0])
    expected = reference_time_code(gamma, 16, 1000.0)
    got_t = rin_torch.time_code(torch.tensor(gamma, dtype=torch.float32), 16, 1000.0).numpy()
    got_f = np.asarray(rin_flax.time_code(jnp.asarray(gamma, jnp.float32), 16, 1000.0))
    np.testing.assert_allclose(got_t, expected, atol=2e-5)
    np.testing.assert_allclose(got_f, expected, atol=2e-5)
    np.testing.assert_allclose(expected[0], np.r_[-np.ones(8), np.ones(8)])  # gamma = 0: sin 0, cos 1


# ---------------------------------------------------------------- dropout and drop-path

STOCHASTIC = replace(TINY, dropout=0.5, drop_path=0.5)


def test_dropout_and_drop_path_only_in_process_layers():
    model = rin_torch.RIN(STOCHASTIC)
    for name, module in model.named_modules():
        rate = getattr(module, "p", None) if isinstance(module, torch.nn.Dropout) else getattr(module, "rate", None)
        if rate:
            assert ".process." in f".{name}", name
    assert any(".process." in name and isinstance(m, rin_torch.DropPath) for name, m in model.named_modules())


def test_train_mode_is_stochastic_only_with_rates():
    inputs = numpy_inputs(TINY, batch=2)
    for config, stochastic in [(STOCHASTIC, True), (TINY, False)]:
        model = torch_model(config)
        with torch.no_grad():
            eval_out = model(**to_torch(inputs))[0]
            train_out = model.train()(**to_torch(inputs))[0]
        assert (not torch.allclose(eval_out, train_out)) == stochastic
        variables = flax_params_from(model.eval(), config, inputs)
        det = flax_apply(config, variables, inputs)[0]
        rnd = flax_apply(config, variables, inputs, train=True)[0]
        assert (not np.allclose(det, rnd)) == stochastic


# ---------------------------------------------------------------- FLOPs

@pytest.mark.parametrize("config", [TINY, TINY_VIDEO], ids=["image", "video"])
def test_forward_macs_match_torch_flop_counter(config):
    """FlopCounterMode counts 2 * MACs of every mm/bmm/conv; the MATH sdpa path exposes QK^T and AV as bmm."""
    model = rin_torch.RIN(config).eval()
    inputs = to_torch(numpy_inputs(config, batch=2))
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter, torch.no_grad():
        model(**inputs)
    counts = {str(op): n for op, n in counter.get_flop_counts()["Global"].items()}
    macs = forward_macs(config, 2)
    assert counter.get_total_flops() == 2 * sum(macs.values())
    assert counts["aten.convolution"] == 2 * macs["conv"]
    assert counts["aten.bmm"] == 2 * macs["attention"]
    assert forward_macs(config, 6) == {k: 3 * v for k, v in macs.items()}


# -- init: Keras-2 MultiHeadAttention fans over 3-D kernels ------------------------------------
def keras2_mha_limits(d_q: int, d_kv: int, heads: int, head_dim: int) -> dict[str, float]:
    """Keras-2 glorot-uniform on EinsumDense kernels q/k/v (d_in, heads, head_dim) and o (heads,
    head_dim, d_q): leading dims are a receptive field (keras initializers_v2._compute_fans)."""
    def limit(shape):
        receptive = math.prod(shape[:-2])
        return math.sqrt(6.0 / (shape[-2] * receptive + shape[-1] * receptive))
    return {"q": limit((d_q, heads, head_dim)), "k": limit((d_kv, heads, head_dim)),
            "v": limit((d_kv, heads, head_dim)), "o": limit((heads, head_dim, d_q))}


CIFAR = PRESETS["rin-cifar10"].config
# (d_q, d_kv, inner, heads) of the read, process and write attentions at rin-cifar10 sizes
CIFAR_ATTENTIONS = [(CIFAR.latent_dim, CIFAR.interface_dim, CIFAR.rw_dim, CIFAR.rw_heads),
                    (CIFAR.latent_dim, CIFAR.latent_dim, CIFAR.latent_dim, CIFAR.latent_heads),
                    (CIFAR.interface_dim, CIFAR.latent_dim, CIFAR.rw_dim, CIFAR.rw_heads)]


def check_uniform(w: np.ndarray, limit: float, d_in: int, d_out: int):
    """uniform(-l, l): |w| <= l and std l / sqrt(3) (sampling error of the std ~ 0.5/sqrt(n))."""
    assert np.abs(w).max() <= limit
    assert np.std(w) == pytest.approx(limit / math.sqrt(3), rel=0.03)
    assert math.sqrt(6 / (d_in + d_out)) / limit > 1.9  # and not the 2-D xavier it replaced


@pytest.mark.parametrize("d_q, d_kv, inner, heads", CIFAR_ATTENTIONS)
def test_torch_attention_init_is_keras2_mha(d_q, d_kv, inner, heads):
    torch.manual_seed(0)
    attn = rin_torch.Attention(d_q, d_kv, inner, heads)
    limits = keras2_mha_limits(d_q, d_kv, heads, inner // heads)
    for name in "qkvo":
        layer = getattr(attn, name)
        check_uniform(layer.weight.detach().numpy(), limits[name], layer.in_features, layer.out_features)
        assert not layer.bias.detach().any()


@pytest.mark.parametrize("d_q, d_kv, inner, heads", CIFAR_ATTENTIONS)
def test_flax_attention_init_is_keras2_mha(d_q, d_kv, inner, heads):
    x, ctx = jnp.zeros((1, 2, d_q)), jnp.zeros((1, 3, d_kv))
    params = jax.jit(rin_flax.Attention(d_q, inner, heads).init)(jax.random.PRNGKey(0), x, ctx)["params"]
    limits = keras2_mha_limits(d_q, d_kv, heads, inner // heads)
    for name in "qkvo":
        kernel = np.asarray(params[name]["kernel"])
        check_uniform(kernel, limits[name], *kernel.shape)
        assert not np.asarray(params[name]["bias"]).any()


def test_rin_models_use_the_mha_init():
    """The whole model's attentions (torch weights; flax kernels from an abstract init) take the rule."""
    model = rin_torch.RIN(TINY)
    limits = keras2_mha_limits(TINY.latent_dim, TINY.interface_dim, TINY.rw_heads, TINY.rw_dim // TINY.rw_heads)
    assert np.abs(model.blocks[0].read.attn.k.weight.detach().numpy()).max() <= limits["k"]
    shapes = jax.eval_shape(lambda a: rin_flax.RIN(TINY).init(jax.random.PRNGKey(0), **a), numpy_inputs(TINY, 1))
    attn = shapes["params"]["blocks_0"]["read"]["attn"]
    assert set(attn) == {"q", "k", "v", "o"} and attn["k"]["kernel"].shape == (TINY.interface_dim, TINY.rw_dim)


@pytest.mark.parametrize("name, steps", [("rin-cifar10", 1000), ("rin-imagenet64", 1000), ("rin-imagenet64-p4", 1000),
                                         ("rin-kinetics", 1000), ("rin-tiny", 100)])
def test_presets_sample_as_the_official_eval(name, steps):
    """DDPM on the cosine schedule, continuous time, at the evaluated step count (pix2seq eval sweeps)."""
    p = PRESETS[name].config.process
    assert (p.sampler, p.sample_schedule, p.timesteps, p.sample_steps) == ("ddpm", "cosine", 0, steps)
    assert name == "rin-tiny" or str(steps) in PRESETS[name].provenance
