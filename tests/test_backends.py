"""Backend adapters on CPU: devices, threads, building, inputs, sample and train steps."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys

import numpy as np
import pytest

from architectures import registry
from architectures.processes.gaussian import GaussianProcess
from bench import backends
from bench.backends import framework_free
from bench.backends.framework_free import DeviceError

import jax  # noqa: E402 - hard dependencies: a broken install fails here, never skips
import torch  # noqa: E402
tb, jb = backends.get("torch"), backends.get("jax")
ADAPTERS = {"torch": tb, "jax": jb}
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def rin_micro(**process):
    """rin-tiny with one block: the smallest real RIN (keeps XLA compiles short)."""
    cfg = registry.get("rin").preset("rin-tiny").config
    return dataclasses.replace(cfg, num_blocks=1, process=dataclasses.replace(cfg.process, **process))


# -- devices and threads ------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["torch", "jax"])
def test_cpu_and_auto_resolve(name):
    a = ADAPTERS[name]
    assert "cpu" in str(a.resolve_device("cpu")).lower()
    if name == "torch" and not torch.cuda.is_available():
        assert a.resolve_device("auto").type == "cpu"
    desc = a.device_description(a.resolve_device("cpu"))
    assert desc["backend"] == name and "dtype" not in desc  # a step's dtype is its policy's (precision record)
    assert a.peak_memory(a.resolve_device("cpu")) is None  # CPU: the process RSS is measured instead


@pytest.mark.parametrize("name", ["torch", "jax"])
@pytest.mark.parametrize("spec", ["gpu", "cuda:x", "cpu:1", "npu", ""])
def test_unknown_device_names_the_allowed_ones(name, spec):
    with pytest.raises(DeviceError, match="allowed: cpu, cuda"):
        ADAPTERS[name].resolve_device(spec)


def test_torch_on_tpu_is_a_clear_error():
    with pytest.raises(DeviceError, match="torch backend does not run on TPU.*jax"):
        tb.resolve_device("tpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_torch_unavailable_cuda_says_what_was_found():
    with pytest.raises(DeviceError, match="sees no CUDA device"):
        tb.resolve_device("cuda:0")


@pytest.mark.parametrize("spec", ["cuda", "cuda:3", "tpu"])
def test_jax_unavailable_device_says_what_was_found(spec):
    platform = {"cuda": "gpu", "tpu": "tpu"}[spec.split(":")[0]]
    try:
        available = jax.devices(platform)
    except RuntimeError:
        available = []
    if spec == "cuda:3" and len(available) > 3 or spec != "cuda:3" and available:
        pytest.skip(f"{spec} exists here")
    with pytest.raises(DeviceError, match=r"unavailable: jax .*found .*cpu|unavailable: jax found"):
        jb.resolve_device(spec)


def test_adapters_do_not_import_the_other_framework():
    code = ("import sys, bench.backends.{mod}; bad = [m for m in {bad} if m in sys.modules]; "
            "assert not bad, bad")
    for mod, bad in [("torch_adapter", ["jax", "flax", "optax"]), ("jax_adapter", ["torch"])]:
        subprocess.run([sys.executable, "-c", code.format(mod=mod, bad=bad)], cwd=ROOT, check=True)
    subprocess.run([sys.executable, "-c", "import sys, bench.backends, bench.backends.framework_free; "
                    "assert 'torch' not in sys.modules and 'jax' not in sys.modules"], cwd=ROOT, check=True)


def test_thread_env_pinned_before_jax_import_is_recorded():
    code = ("from bench.backends import framework_free; framework_free.pin_threads(1); import os; "
            "from bench.backends import jax_adapter as jb; r = jb.set_threads(1); "
            "assert r['xla_threads_applied'] and r['xla_threads'] == 1 and r['cpu_affinity'] == 1, r; "
            "assert os.environ['OMP_NUM_THREADS'] == '1'")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, env={**os.environ, "XLA_FLAGS": ""})
    assert framework_free.thread_env(1)["XLA_FLAGS"].startswith("--xla_cpu_multi_thread_eigen=false")


def test_jax_threads_set_after_import_are_reported_not_applied():
    if framework_free.thread_env(1)["XLA_FLAGS"] in os.environ.get("XLA_FLAGS", ""):
        pytest.skip("this process was started with the 1-thread XLA flags")
    with pytest.warns(RuntimeWarning, match="not applied"):
        record = jb.set_threads(1)
    assert record["xla_threads_applied"] is False and record["xla_threads"] is None


def test_torch_set_threads():
    before = torch.get_num_threads()
    try:
        assert tb.set_threads(1)["torch_threads"] == 1
    finally:
        torch.set_num_threads(before)


# -- building and inputs -------------------------------------------------------------------------
@pytest.mark.parametrize("preset", ["rin-cifar10", "rin-micro"])
def test_abstract_and_real_builds_count_the_same_params(preset):
    entry = registry.get("rin")
    cfg = rin_micro() if preset == "rin-micro" else entry.preset(preset).config
    counts = {name: a.param_count(a.build(entry, cfg, seed=0, abstract=True)) for name, a in ADAPTERS.items()}
    assert counts["torch"] == counts["jax"] > 0
    if preset == "rin-micro":
        assert tb.param_count(tb.build(entry, cfg, seed=0)) == counts["torch"]
        assert jb.param_count(jb.build(entry, cfg, seed=0)) == counts["jax"]
    else:  # meta device / eval_shape: no memory allocated
        built = tb.build(entry, cfg, seed=0, abstract=True)
        assert all(p.is_meta for p in built.model.parameters())
        assert isinstance(jax.tree.leaves(jb.build(entry, cfg, seed=0, abstract=True).params)[0], jax.ShapeDtypeStruct)


def test_inputs_follow_the_contract_layouts():
    entry, cfg = registry.get("rin"), rin_micro()
    t_in = tb.make_inputs(tb.build(entry, cfg, seed=0, abstract=True), 3, seed=7)
    j_in = jb.make_inputs(jb.build(entry, cfg, seed=0, abstract=True), 3, seed=7)
    shapes = cfg.input_shapes(3)
    assert set(t_in) == set(j_in) == set(shapes)
    for name, (shape, dtype) in shapes.items():
        assert j_in[name].shape == shape and str(j_in[name].dtype) == dtype
    assert t_in["x"].shape == (3, cfg.channels, cfg.image_size, cfg.image_size)  # channels-first for torch
    assert t_in["x"].is_meta and t_in["y"].dtype == torch.int32


def test_device_arrays_transpose_only_data_shaped_arrays():
    entry, cfg = registry.get("rin"), rin_micro()
    built = tb.build(entry, cfg, seed=0)
    rng = np.random.default_rng(0)
    arrays = {"x0": rng.standard_normal((2, 4, 4, 3)).astype(np.float32),
              "latents": rng.standard_normal((2, 5, 3)).astype(np.float32), "y": None}
    a = tb.device_arrays(built, arrays)
    np.testing.assert_array_equal(a["x0"].numpy(), np.moveaxis(arrays["x0"], -1, 1))
    np.testing.assert_array_equal(a["latents"].numpy(), arrays["latents"])
    np.testing.assert_array_equal(tb.to_numpy(a["x0"]), arrays["x0"])
    assert a["y"] is None
    j = jb.make_inputs(jb.build(entry, cfg, seed=0, abstract=True), 2, seed=5)
    t = tb.make_inputs(built, 2, seed=5)
    for name in j:
        np.testing.assert_array_equal(tb.to_numpy(t[name]), np.asarray(j[name]))


# -- sample steps ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["torch", "jax"])
def test_sample_step_is_deterministic_given_the_seed_and_finite(name):
    a, entry = ADAPTERS[name], registry.get("rin")
    built = a.build(entry, rin_micro(sampler="ddpm"), seed=0)
    steps = [a.make_sample_step(built, 2, seed=1), a.make_sample_step(built, 2, seed=1)]
    first, again = ([a.to_numpy(o) for o in a.sync(s.fn())] for s in steps)
    for f, g in zip(first, again):
        np.testing.assert_array_equal(f, g)
    assert first[0].shape == (2, 16, 16, 3) and first[1].shape == (2, 16, 64)
    other = a.make_sample_step(built, 2, seed=2, compile=False).inputs  # another seed, other draws
    assert not np.allclose(a.to_numpy(other["noise"]), a.to_numpy(steps[0].inputs["noise"]))
    out = a.sync(steps[0].fn())
    assert a.all_finite(out) and steps[0].nfe == 1
    bad = torch.tensor([1.0, float("nan")]) if name == "torch" else jax.numpy.array([1.0, float("nan")])
    assert not a.all_finite((out[0], bad))
    if name == "jax":
        assert steps[0].compiled and steps[0].compile_seconds > 0


@pytest.mark.parametrize("mode", ["batched", "two_calls"])
def test_guidance_costs_a_second_network_evaluation(mode):
    """batched (the default, as DiT's forward_with_cfg): one call of batch 2B with labels [y; null];
    two_calls: a batch-B call with y, then one with the null label. 2 NFEs either way."""
    built = tb.build(registry.get("rin"), rin_micro(guidance_scale=1.0, guidance_mode=mode), seed=0)
    labels = []
    hook = built.model.register_forward_pre_hook(lambda m, args, kw: labels.append(kw["y"].clone()), with_kwargs=True)
    try:
        step = tb.make_sample_step(built, 3, seed=0)
        step.fn()
    finally:
        hook.remove()
    null = built.config.num_classes
    calls = [labels[0][:3], labels[0][3:]] if mode == "batched" else labels
    assert step.nfe == 2 and len(labels) == (1 if mode == "batched" else 2) and all(len(y) == 3 for y in calls)
    assert (calls[1] == null).all() and (calls[0] < null).all()


def test_sample_step_of_a_preset_on_the_unet():
    """Families without latents: the latents slot stays None through the step."""
    entry = registry.get("unet2d")
    cfg = entry.preset("unet2d-tiny").config
    x_next, latents = tb.make_sample_step(tb.build(entry, cfg, seed=0), 2, seed=0).fn()
    assert latents is None and tb.all_finite(x_next) and x_next.shape == (2, 3, 16, 16)


# -- train steps ----------------------------------------------------------------------------------
def test_torch_train_step_updates_weights_with_two_forward_passes():
    built = tb.build(registry.get("rin"), rin_micro(), seed=0)
    calls = []
    hook = built.model.register_forward_pre_hook(lambda m, args, kw: calls.append(kw["latents"].clone()),
                                                 with_kwargs=True)
    before = [p.detach().clone() for p in built.model.parameters()]
    try:
        step = tb.make_train_step(built, 4, seed=0)
        loss = step.fn()
    finally:
        hook.remove()
    assert step.nfe == 2 and len(calls) == 2 and not calls[0].any()  # pass 1 sees zero latents
    assert torch.isfinite(loss) and loss.ndim == 0
    assert any(not torch.equal(b, p) for b, p in zip(before, built.model.parameters()))


def test_adamw_is_the_same_update_in_both_backends():
    """One AdamW step on the same gradient moves the same weights the same way (framework_free.ADAMW)."""
    import optax
    rng = np.random.default_rng(0)
    w, g, b = rng.standard_normal((3, 4)), rng.standard_normal((3, 4)), rng.standard_normal(4)
    gb = rng.standard_normal(4)
    tw, tbias = torch.nn.Parameter(torch.tensor(w)), torch.nn.Parameter(torch.tensor(b))
    module = torch.nn.Module()
    module.w, module.b = tw, tbias
    fake = framework_free.Built("torch", None, None, module, None, "cpu", None, 0)
    opt = tb.make_optimizer(fake, lr=0.1)
    tw.grad, tbias.grad = torch.tensor(g), torch.tensor(gb)
    opt.step()
    jopt = jb.make_optimizer(framework_free.Built("jax", None, None, None, None, "cpu", None, 0), lr=0.1)
    params = {"w": jax.numpy.asarray(w), "b": jax.numpy.asarray(b)}
    updates, _ = jopt.update({"w": jax.numpy.asarray(g), "b": jax.numpy.asarray(gb)}, jopt.init(params), params)
    new = optax.apply_updates(params, updates)
    np.testing.assert_allclose(tw.detach().numpy(), np.asarray(new["w"]), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(tbias.detach().numpy(), np.asarray(new["b"]), rtol=1e-5, atol=1e-6)
    assert not np.allclose(tw.detach().numpy(), w - 0.1 * np.sign(g))  # weight decay acted on the matrix
    np.testing.assert_allclose(tbias.detach().numpy(), b - 0.1 * np.sign(gb), rtol=1e-5)  # not on the bias


@pytest.mark.parametrize("name", ["torch", "jax"])
def test_generate_runs_the_sampler_deterministically(name):
    a = ADAPTERS[name]
    built = a.build(registry.get("rin"), rin_micro(sample_steps=3, sampler="ddpm", guidance_scale=1.0), seed=0)
    first, again = a.generate(built, 2, seed=3), a.generate(built, 2, seed=3)
    assert first.shape == (2, 16, 16, 3) and np.abs(first).max() <= 1.0 and np.isfinite(first).all()
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, a.generate(built, 2, seed=4))


def test_same_weights_and_draws_give_the_same_numbers_in_both_backends():
    """torch weights moved to Flax (bench.convert): the loss with self-conditioning and label dropout,
    and one DDPM step with guidance and latent carry agree, since every random draw comes from
    framework_free.py."""
    from bench.convert import torch_to_flax

    entry, cfg = registry.get("rin"), rin_micro(sampler="ddpm", guidance_scale=0.5, cond_drop_prob=0.5)
    t_built = tb.build(entry, cfg, seed=0)
    j_built = jb.build(entry, cfg, seed=0, abstract=True)
    j_built.params = torch_to_flax(t_built.model.state_dict(), j_built.params)
    j_built.abstract = False
    host_arrays = framework_free.random_inputs(cfg.input_shapes(3), 0, cfg.num_classes)
    half = GaussianProcess(dataclasses.replace(cfg.process, self_condition_rate=0.5))
    draws = half.train_draws(np.random.default_rng(1), host_arrays["x"].shape)
    batch = {"x0": np.clip(host_arrays["x"], -1, 1), "y": host_arrays["y"], **draws}
    assert 0 < draws["keep"].sum() < 3  # some examples keep their pass-1 latents, some drop them
    assert 0 < draws["cond_keep"].sum() < 3  # some examples train on their label, some on the null label
    t_loss = tb.Trainer(t_built).loss(tb.device_arrays(t_built, batch))
    trainer = jb.Trainer(j_built)
    j_loss = jax.jit(trainer.loss)(trainer.params, jb.device_arrays(j_built, batch), trainer.key)
    assert float(t_loss.detach()) == pytest.approx(float(j_loss), rel=1e-4)
    t_out = [tb.to_numpy(o) for o in tb.make_sample_step(t_built, 3, seed=2).fn()]
    j_out = [np.asarray(o) for o in jb.sync(jb.make_sample_step(j_built, 3, seed=2).fn())]
    for t_arr, j_arr in zip(t_out, j_out):
        np.testing.assert_allclose(t_arr, j_arr, atol=1e-4, rtol=1e-4)


def test_jax_timed_steps_dispatch_one_compiled_call_and_transfer_nothing():
    """The timed region holds the compiled program only: no eager key op, no host->device copy
    (a per-step fold_in(key, count) used to add ~1 ms of eager dispatch and a transfer)."""
    built = jb.build(registry.get("rin"), rin_micro(), seed=0)
    steps = [jb.make_sample_step(built, 2, seed=0), jb.make_train_step(built, 2, seed=0)]
    for step in steps:
        jb.sync(step.fn())  # the first call may set up the executable
        with jax.transfer_guard("disallow"):
            first, second = jb.sync(step.fn()), jb.sync(step.fn())
        assert jb.all_finite(first) and jb.all_finite(second)
