"""FLOP counting: training-step counts in both frameworks for every registered tiny preset,
plus closed forms for the handles and walkers the counters rely on. The forward count of every
tiny preset against each traced counter is the conformance kit's `flops` check
(tests/test_conformance.py)."""

from __future__ import annotations

import json
import math
from concurrent.futures import ThreadPoolExecutor

import pytest

from architectures import registry
from bench.measure.count_job import CountJob, run_counter
from bench.measure.flops import analytic, counter_entries, nfe_per_sample

TINY = [(e.name, p, b) for e in registry.entries() for p in sorted(e.load_presets()) if p.endswith("-tiny")
        for b in sorted(e.backends)]


@pytest.mark.parametrize("arch,preset", sorted({(a, p) for a, p, _ in TINY}))
def test_training_step_counts_agree_across_frameworks(arch, preset):
    """One training step (RIN: self-conditioning, 2 forward passes + 1 backward) counted by
    FlopCounterMode in torch and by the jaxpr walk in jax: two independent traces."""
    job = CountJob(arch, preset, batch=2, train=True, compile=False)
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda m: run_counter(m, job), ["bench.measure.torch_count", "bench.measure.xla_count"]))
    torch_train, jax_train = (r["train"] for r in results)
    entry = registry.get(arch)
    passes = 2 if "latents" in entry.extras else 1
    assert torch_train["forward_passes"] == jax_train["forward_passes"] == passes
    assert jax_train["jaxpr_flops"] == pytest.approx(torch_train["flops"], rel=1e-3)
    forward = 2 * analytic(entry, entry.preset(preset).config, 2)["macs"]
    # the no-grad passes + the last pass + its backward (~2x, less the input-side grads nobody needs)
    assert passes + 1.5 < torch_train["flops"] / forward < passes + 2.0


def test_counter_failure_is_recorded_not_dropped():
    job = CountJob("rin", "rin-tiny", batch=1, train=False)
    missing = run_counter("bench.measure.no_such_counter", job)
    timed_out = run_counter("bench.measure.xla_count", job, timeout_s=0.05)
    assert "exit code" in missing["error"] and "timed out" in timed_out["error"]
    entries = counter_entries({"bench.measure.xla_count": timed_out, "bench.measure.fvcore_count": missing}, 1.0)
    assert set(entries) == {"xla", "jaxpr", "fvcore"}
    assert all(e["value"] is None and e["error"] for e in entries.values())


def test_full_size_presets_count_without_running():
    """Every preset has an analytic count; ADM-256 is 1120 GMACs per image (DiT, Table 4 lists
    its 'Gflops' as 1120, which are MACs)."""
    for entry in registry.entries():
        for name, preset in entry.load_presets().items():
            a = analytic(entry, preset.config, 1)
            assert a["macs"] > 0 and set(a["breakdown_macs"]) >= {"linear"}, name
            assert analytic(entry, preset.config, 3)["macs"] == 3 * a["macs"], name
    adm = registry.get("unet2d").preset("adm-imagenet256").config
    assert analytic(registry.get("unet2d"), adm, 1)["macs"] / 1e9 == pytest.approx(1120, rel=0.01)


def test_nfe_per_sample_counts_guidance():
    from dataclasses import replace

    cfg = registry.get("rin").preset("rin-tiny").config
    steps = cfg.process.sample_steps
    assert nfe_per_sample(cfg, "gaussian") == steps
    guided = replace(cfg, process=replace(cfg.process, guidance_scale=1.5))
    assert nfe_per_sample(guided, "gaussian") == 2 * steps  # conditional + unconditional pass per step


def test_fvcore_sdpa_and_einsum_handles_closed_form():
    import torch
    import torch.nn.functional as F

    from bench.measure.fvcore_count import fvcore_macs

    class M(torch.nn.Module):
        def forward(self, q, k, v, a, b):
            return F.scaled_dot_product_attention(q, k, v), torch.einsum("bid,bjd->bij", a, b)

    q, k, v = torch.randn(2, 3, 5, 8), torch.randn(2, 3, 7, 8), torch.randn(2, 3, 7, 4)
    a, b = torch.randn(3, 17, 13), torch.randn(3, 19, 13)
    counted = fvcore_macs(M(), (q, k, v, a, b))
    assert counted["by_operator"]["scaled_dot_product_attention"] == 2 * 3 * 5 * 7 * (8 + 4)
    assert counted["by_operator"]["einsum"] == 3 * 17 * 19 * 13  # exact, not 4 significant digits


def test_jaxpr_and_hlo_count_all_conv_taps_and_scan_iterations():
    import jax
    import jax.numpy as jnp

    from bench.measure.hlo_count import hlo_macs
    from bench.measure.jaxpr_count import count_fn

    def conv(x, w):
        return jax.lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))

    def f(x, w, m):
        z, _ = jax.lax.scan(lambda c, _: (jnp.tanh(c @ m), None), conv(x, w).reshape(-1, 8), None, length=3)
        return z

    x, w, m = jnp.ones((2, 6, 6, 4)), jnp.ones((3, 3, 4, 8)), jnp.ones((8, 8))
    taps = 2 * 6 * 6 * 8 * 4 * 9  # every output sums over 4 in-features x 9 taps, padding included
    dots = 3 * (2 * 6 * 6) * 8 * 8
    assert count_fn(f, x, w, m) == {"conv_general_dilated": taps, "dot_general": dots}
    compiled = jax.jit(conv).lower(x, w).compile()
    assert hlo_macs(compiled.as_text())["convolution"] == taps
    assert compiled.cost_analysis()["flops"] < 2 * taps  # XLA's own count drops the padded taps


def test_counts_refuse_loops_without_a_static_trip_count():
    import jax
    import jax.numpy as jnp

    from bench.measure.hlo_count import hlo_macs
    from bench.measure.jaxpr_count import count_fn

    def f(c, m, n):
        return jax.lax.while_loop(lambda s: s[1] < n, lambda s: (s[0] @ m, s[1] + 1), (c, 0))[0]

    args = (jnp.ones((4, 4)), jnp.ones((4, 4)), 3)
    with pytest.raises(NotImplementedError, match="while"):
        count_fn(f, *args)
    with pytest.raises(NotImplementedError, match="while"):
        hlo_macs(jax.jit(f).lower(*args).compile().as_text())


def test_flops_report_json_schema():
    """`diffbench flops --json` prints this dict: params, gflop, gmac, one entry per counter."""
    from bench.measure.flops import flops_report, format_flops_report

    r = flops_report("rin", "rin-tiny", backend="torch", batch=2)
    r = json.loads(json.dumps(r))
    assert r["params"] > 0 and r["params_agree"]
    assert r["gflop"] == pytest.approx(2 * r["gmac"]) and r["gflop_per_image"] == pytest.approx(r["gflop"] / 2)
    assert math.isclose(sum(r["breakdown_gmac"].values()), r["gmac"])
    for c in r["counters"].values():
        assert {"method", "value", "convention", "error", "version"} <= set(c)
    assert r["train_step"]["gflop"] > r["gflop"] and r["agreement"]["ok"]
    assert "fvcore" in format_flops_report(r)


def test_disagreement_beyond_tolerance_is_flagged():
    from bench.measure.flops import agreement

    raw = {"bench.measure.torch_count": {"method": "m", "version": "v", "params": 1,
                                         "forward": {"flops": 1.05e9, "by_operator": {}}},
           "bench.measure.fvcore_count": {"method": "m", "version": "v", "traced_batch": 1, "skipped_ops": {},
                                          "forward": {"flops": 1.01e9, "macs": 5.05e8, "by_operator": {}}}}
    counters = counter_entries(raw, 1.0)
    flag = agreement(counters)
    assert not flag["ok"] and flag["disagreeing"] == {"torch_flop_counter": pytest.approx(1.05)}
    assert counters["fvcore"]["agrees"] and not counters["torch_flop_counter"]["agrees"]


def test_hlo_count_follows_conditional_branches_like_the_jaxpr_walk():
    import jax
    import jax.numpy as jnp

    from bench.measure.hlo_count import hlo_macs
    from bench.measure.jaxpr_count import count_fn

    def cond(p, x, m):
        return jax.lax.cond(p > 0, lambda x: jnp.tanh(x @ m) @ m, lambda x: x @ m, x)

    def switch(i, x, m):
        return jax.lax.switch(i, [lambda x: x @ m, lambda x: jnp.tanh(x @ m) @ m, lambda x: x], x)

    x, m = jnp.ones((64, 64)), jnp.ones((64, 64))
    for f, first in ((cond, 1.0), (switch, 1)):
        worst = 2 * 64 ** 3  # the two-matmul branch
        assert count_fn(f, first, x, m) == {"dot_general": worst}
        assert hlo_macs(jax.jit(f).lower(first, x, m).compile().as_text())["dot"] == worst  # was 0


def test_jaxpr_count_of_a_strided_conv_input_gradient_is_its_forward_cost():
    """The input gradient of a stride-2 conv is a conv over an input with inserted zeros: the
    same MACs as the forward (FlopCounterMode's count too), not 4x."""
    import jax
    import jax.numpy as jnp

    from bench.measure.jaxpr_count import count_fn

    def conv(x, w):
        return jax.lax.conv_general_dilated(x, w, (2, 2), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))

    x, w = jnp.ones((2, 16, 16, 8)), jnp.ones((3, 3, 8, 4))
    forward = count_fn(conv, x, w)["conv_general_dilated"]
    assert forward == 2 * 8 * 8 * 4 * 8 * 9
    with_input_grad = count_fn(jax.grad(lambda x: conv(x, w).sum()), x)["conv_general_dilated"]
    assert with_input_grad == 2 * forward  # forward + input gradient (was 5 x forward)


def _expected_nfe(entry, config) -> int:
    """NFE per sample of each process family, written out here (not asked of the process):
    gaussian and multires: steps x (2 with classifier-free guidance of a conditional model: class
    labels or, NestedUNet, text tokens); phase space: one force evaluation per step."""
    p = config.process
    conditional = config.num_classes > 0 or getattr(config, "cond_dim", 0) > 0
    if entry.process in ("gaussian", "multires"):
        return p.sample_steps * (2 if p.guidance_scale > 0 and conditional else 1)
    return {"phase_space": p.sample_steps}[entry.process]


@pytest.mark.parametrize("arch", registry.names())
def test_analytic_only_flops_runs_for_every_preset_of_every_entry(arch, capsys):
    """`diffbench flops ARCH --preset P --analytic-only` for every registry entry and preset: exit 0,
    and the per-sample cost uses the entry's own process family (it crashed for multires and
    phase space, which were handed the gaussian process)."""
    from bench.cli import main

    entry = registry.get(arch)
    for name, preset in sorted(entry.load_presets().items()):
        assert main(["flops", arch, "--preset", name, "--analytic-only", "--json"]) == 0, name
        r = json.loads(capsys.readouterr().out)
        nfe = _expected_nfe(entry, preset.config)
        assert r["nfe_per_sample"] == nfe, name
        assert r["gflop_per_sample"] == pytest.approx(nfe * 2 * analytic(entry, preset.config, 1)["macs"] / 1e9), name
