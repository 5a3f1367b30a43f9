"""The checks of the conformance kit, in the order `diffbench check` runs them.

contract    framework-free: presets with provenance, the config class, input_shapes (x, t, y iff
            num_classes > 0, nothing the entry does not declare), the process builds, the
            analytic count is positive and linear in the batch
forward:B   the raw call: output shaped like the process's data (x itself, or e.g. the phase
            space's C of [x, v]; 2x channels with learn_sigma), `(prediction,
            latents)` iff the entry declares "latents", finite
params      equal parameter counts in torch and jax
parity      perturbed torch weights -> Flax by bench/convert.py; outputs equal to 1e-5 of their scale
extras:B    every input but x changes the output (t, y, context, latents, ...): wired, not ignored
flops:B     each traced counter (own process) agrees with the analytic count within 2%
train_step:B  one process loss + backward + AdamW step: finite, and a second step's loss differs
sample:B    the process's sampler runs two steps end to end (latents carried, guidance): finite,
            shaped like x
params and parity are skipped (never faked) for an entry with one backend.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from architectures import registry
from bench.backends import framework_free
from bench.conformance.rules import BATCH, TOLERANCE, Fail, Skip, leaves


def contract(kit, _backend=None) -> str:
    entry, cfg = kit.entry, kit.config
    presets, cls = entry.load_presets(), entry.load_config_class()
    for name, preset in presets.items():
        if not isinstance(preset, registry.Preset) or not preset.provenance:
            raise Fail(f"preset {name!r}: not a Preset with a provenance")
        if not isinstance(preset.config, cls):
            raise Fail(f"preset {name!r}: config is {type(preset.config).__name__}, the entry says {cls.__name__}")
    if cfg.modality not in entry.modalities:
        raise Fail(f"modality {cfg.modality!r} not in the entry's modalities {list(entry.modalities)}")
    shapes = cfg.input_shapes(BATCH)
    if not {"x", "t"} <= set(shapes):
        raise Fail(f"input_shapes has {sorted(shapes)}; needs x and t")
    if ("y" in shapes) != (cfg.num_classes > 0):
        raise Fail(f"input 'y' present={'y' in shapes} but num_classes={cfg.num_classes}")
    undeclared = set(shapes) - {"x", "t", "y"} - set(entry.extras)
    if undeclared:
        raise Fail(f"inputs {sorted(undeclared)} are not declared in the entry's extras {list(entry.extras)}")
    framework_free.make_process(entry, cfg)
    one, three = (entry.load_flops()(cfg, b) for b in (1, 3))
    if not one or any(int(v) < 0 for v in one.values()) or sum(one.values()) <= 0:
        raise Fail(f"analytic forward_macs(config, 1) = {one}: needs non-negative counts, sum > 0")
    if {k: 3 * v for k, v in one.items()} != dict(three):
        raise Fail(f"analytic count not linear in the batch: 3 x {one} != {three}")
    return (f"{len(presets)} presets with provenance; inputs {', '.join(shapes)}; process {entry.process}; "
            f"analytic {2 * sum(one.values()) / 1e9:.4g} GFLOPs per image")


def _data_shapes(kit) -> list[tuple]:
    """The prediction/data shape of each x, as the process says (phase space: C of x's 2C)."""
    shapes = framework_free.make_process(kit.entry, kit.config).data_shape(framework_free.shape_tree(kit.inputs()["x"]))
    return [tuple(s) for s in shapes] if isinstance(shapes, list) else [tuple(shapes)]


def forward(kit, backend: str) -> str:
    out = kit.call(backend, kit.inputs())
    pred, latents = _split(kit, out)
    factor = 2 if getattr(kit.config, "learn_sigma", False) else 1
    xs, preds = _data_shapes(kit), leaves(pred)
    if len(xs) != len(preds):
        raise Fail(f"{len(preds)} prediction(s) for {len(xs)} input(s) x")
    for x, p in zip(xs, preds):
        want = (*x[:-1], factor * x[-1])
        if tuple(p.shape) != want:
            raise Fail(f"prediction {tuple(p.shape)}; expected {want} (data {x}"
                       f"{', learn_sigma: 2x channels' if factor == 2 else ''}), canonical channels-last")
    if latents is not None and tuple(latents.shape) != tuple(kit.inputs()["latents"].shape):
        raise Fail(f"output latents {tuple(latents.shape)}; input latents {tuple(kit.inputs()['latents'].shape)}")
    bad = [i for i, a in enumerate(leaves(out)) if not np.isfinite(a).all()]
    if bad:
        raise Fail(f"non-finite values in output(s) {bad}")
    shapes = ", ".join(str(tuple(p.shape)) for p in preds)
    return (f"prediction {shapes}{' (2x channels: learn_sigma)' if factor == 2 else ''}"
            f"{' + latents ' + str(tuple(latents.shape)) if latents is not None else ''}; finite")


def _split(kit, out):
    """(prediction, latents or None) by the entry's declared extras."""
    if "latents" in kit.entry.extras:
        if not isinstance(out, tuple) or len(out) != 2:
            raise Fail(f"the entry declares 'latents': expected (prediction, latents), got {type(out).__name__}")
        return out
    if isinstance(out, tuple):
        raise Fail(f"a tuple of {len(out)} outputs, but the entry declares no 'latents' extra")
    return out, None


def _both(kit) -> None:
    if len(kit.backends) < 2:
        only = ", ".join(kit.backends)
        reason = (f"only the {only} backend is registered" if len(kit.entry.backends) < 2
                  else f"only {only} selected")
        raise Skip(f"{reason}: nothing to compare")


def params(kit, _backend=None) -> str:
    _both(kit)
    counts = {b: kit.adapter(b).param_count(kit.adapter(b).build(kit.entry, kit.config, abstract=True))
              for b in kit.backends}
    if len(set(counts.values())) != 1:
        raise Fail(f"parameter counts differ: {counts}")
    return f"{counts['torch']:,} in both"


def parity(kit, _backend=None) -> str:
    _both(kit)  # the jax model holds the perturbed torch weights, moved by bench/convert.py
    t_out, j_out = leaves(kit.call("torch", kit.inputs())), leaves(kit.call("jax", kit.inputs()))
    errors = []
    for i, (a, b) in enumerate(zip(t_out, j_out)):
        scale = float(np.abs(a).max())
        if scale == 0:
            raise Fail(f"output {i} is all zeros with perturbed weights: parity would prove nothing")
        errors.append(float(np.abs(a - b).max()) / scale)
    if len(t_out) != len(j_out) or max(errors) >= TOLERANCE:
        raise Fail(f"max error {max(errors):.2e} of the output's scale (tolerance {TOLERANCE:g}); "
                   f"{len(t_out)} vs {len(j_out)} outputs")
    return f"torch -> flax weights; max error {max(errors):.1e} of the output's scale (< {TOLERANCE:g})"


def extras(kit, backend: str) -> str:
    base = leaves(kit.call(backend, kit.inputs()))
    rng, changed = np.random.default_rng(5), []
    for name, value in kit.inputs().items():
        if name == "x":
            continue
        other = dict(kit.inputs())
        other[name] = _another(name, value, rng, kit.config.num_classes)
        out = leaves(kit.call(backend, other))
        change = max(float(np.abs(a - b).max()) / max(float(np.abs(a).max()), 1e-12) for a, b in zip(base, out))
        if change < 1e-6:
            raise Fail(f"the output does not depend on input {name!r} (relative change {change:.1e})")
        changed.append(f"{name} {change:.2g}")
    return "output changes with every input: " + ", ".join(changed)


def _another(name: str, value, rng, num_classes: int):
    if isinstance(value, list):
        return [_another(name, v, rng, num_classes) for v in value]
    if name == "y":
        return ((value + 1) % (num_classes + 1)).astype(value.dtype)  # label num_classes: the null label
    if name == "t":
        return rng.uniform(0.0, 1.0, value.shape).astype(value.dtype)
    if name.endswith("_mask"):
        return np.ones_like(value)
    return rng.standard_normal(value.shape).astype(value.dtype)


def flops(kit, backend: str) -> str:
    from bench.measure.count_job import CountJob, run_counter
    from bench.measure.flops import COUNTERS, TOLERANCE as FLOP_TOLERANCE, analytic, counter_entries

    reference = 2 * analytic(kit.entry, kit.config, BATCH)["macs"] / 1e9
    modules = (*kit.plugins, kit.entry.config.partition(":")[0])  # the counter processes resolve the entry too
    job = CountJob(kit.entry.name, kit.preset, batch=BATCH, plugins=tuple(dict.fromkeys(modules)), train=False)
    with ThreadPoolExecutor(len(COUNTERS[backend])) as pool:  # each counter in its own process
        raw = dict(zip(COUNTERS[backend], pool.map(lambda m: run_counter(m, job), COUNTERS[backend])))
    shown = []
    for name, c in counter_entries(raw, reference).items():
        if c["error"]:
            raise Fail(f"counter {name} failed: {c['error'][:300]}")
        ratio = c.get("aligned_ratio", c["ratio_to_analytic"])
        if not c["agrees"]:
            raise Fail(f"{name} counts {ratio:.4f} x the analytic {reference:.4g} GFLOPs (tolerance {FLOP_TOLERANCE:.0%})")
        shown.append(f"{name} {ratio:.4f}x")
    return f"analytic {reference:.4g} GFLOPs (batch {BATCH}); " + ", ".join(shown)


def train_step(kit, backend: str) -> str:
    adapter = kit.adapter(backend)
    built = adapter.build(kit.entry, kit.config, seed=0)  # fresh: the step updates its weights
    arrays = kit.inputs()
    x0 = framework_free.train_data(built.process, kit.config.input_shapes(BATCH), arrays)  # the process's data shape
    draws = built.process.train_draws(np.random.default_rng(1), framework_free.shape_tree(x0))
    a = adapter.device_arrays(built, {"x0": x0, "y": arrays.get("y"), "context": arrays.get("context"),
                                      "context_mask": arrays.get("context_mask"), **draws})
    a = {k: v for k, v in a.items() if v is not None}
    trainer = adapter.Trainer(built)
    if backend == "jax":  # the harness's program, compiled for a run, not for timing (several times faster)
        trainer.compile_step(a, options=adapter.FAST_COMPILE)
    first, second = (float(adapter.sync(trainer.step(a))) for _ in range(2))
    if not (np.isfinite(first) and np.isfinite(second)):
        raise Fail(f"loss {first} then {second}: not finite")
    if first == second:
        raise Fail(f"the loss did not change after an AdamW step ({first}): no update reached the weights")
    passes = built.process.forward_passes_per_train_step("latents" in kit.entry.extras)
    return f"loss {first:.4g} -> {second:.4g} on the same draws after one AdamW step ({passes} forward pass(es) + backward)"


def sample(kit, backend: str) -> str:
    adapter = kit.adapter(backend)
    built, _ = kit.perturbed(backend)
    context = kit.inputs().get("context")  # frame-conditioned video: the given frames
    x = adapter.generate(built, BATCH, seed=0, steps=2, **({} if context is None else {"context": context}))
    xs, want = leaves(x), _data_shapes(kit)
    if [tuple(a.shape) for a in xs] != want:
        raise Fail(f"samples {[a.shape for a in xs]}; expected {want}")
    if not all(np.isfinite(a).all() for a in xs):
        raise Fail("non-finite samples")
    lo, hi = min(float(a.min()) for a in xs), max(float(a.max()) for a in xs)
    return f"2 sampler steps ({getattr(kit.config.process, 'sampler', '?')}): samples {tuple(xs[0].shape)}, finite, range [{lo:.3g}, {hi:.3g}]"


CHECKS = [  # (name, function, one per backend?)
    ("contract", contract, False),
    ("forward", forward, True),
    ("params", params, False),
    ("parity", parity, False),
    ("extras", extras, True),
    ("flops", flops, True),
    ("train_step", train_step, True),
    ("sample", sample, True),
]
