"""One budgeted training run of a case (the `train` measurement), in the case's own process.

    budget -> steps (a FLOP budget through the counted training-step FLOPs) -> recipe + overrides
    -> OptimSpec -> data -> [init checkpoint] -> steps of adapter.Trainer -> checkpoint -> record

Every batch and every noise draw comes from numpy (seeded by the case), so the torch and jax
runs of one case see the same data and the same draws. Record schema: docs/training.md.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np

from bench.case import compile_flag
from bench.training import checkpoint
from bench.training.recipes import DEFAULT_RECIPE, find_recipe
from bench.training.spec import eval_steps, resolve

COUNTER = {"torch": "bench.measure.torch_count", "jax": "bench.measure.xla_count"}


def steps_for_budget(budget: dict, step_flops: int | None) -> int:
    """Steps a budget allows: {steps: n} -> n; {gflops: g} (an amount: g GFLOP) -> the most whole
    steps whose FLOPs (step_flops each, exact integers) stay within g * 1e9."""
    if "steps" in budget:
        return int(budget["steps"])
    if not step_flops:
        raise ValueError("a FLOP budget needs the training step's FLOP count, which is not available")
    steps = int(round(budget["gflops"] * 1e9)) // int(step_flops)
    if steps < 1:
        raise ValueError(f"budget of {budget['gflops']} GFLOP is below one training step "
                         f"({step_flops / 1e9:.6g} GFLOP at this batch)")
    return steps


def count_step_flops(case, entry, batch: int, levels: int = 0) -> dict:
    """FLOPs of one training step at `batch`, counted in a child process by the backend's own
    counter (bench.measure.flops.train_record: 2 x MACs of loss + backward); levels > 0: of the
    nest's innermost `levels` U-Nets alone (a stage, bench.training.stages)."""
    from bench.measure.count_job import CountJob, run_counter
    from bench.measure.flops import analytic, train_record
    from bench.suite_file import resolve_config

    module = COUNTER[case.backend]
    from bench.training.stage_spec import stage_config

    job = CountJob(case.arch, case.preset, case.overrides.to_dict(), batch, case.seed,
                   (entry.config.partition(":")[0],), train=True, compile=False, levels=levels)
    config = resolve_config(case)
    forward = 2 * analytic(entry, stage_config(config, levels) if levels else config, batch)["macs"] / 1e9
    rec = train_record({module: run_counter(module, job, case.timeout_s / 3)}, forward, batch)
    flop = None if rec["gflop"] is None else int(round(rec["gflop"] * 1e9))
    return {**rec, "flop": flop}


def training_data(train: dict, config, seed: int, process=None):
    """(x, y or None, context or None), numpy channels-last in [-1, 1], shaped like the process's
    data (the phase space's network input [x, v] has twice the data's channels) for the model
    (bench.data.load_dataset; a video model's conditioning frames are the first frames of a clip).
    A multi-resolution model (x a list, highest first) gets the highest side; the process pools.
    A token-conditioned model (context + context_mask) gets one drawn token sequence per example
    (no text encoder is run, as when sampling): context is then {"context", "context_mask"}."""
    from bench.backends.framework_free import random_inputs, x_shape as model_x_shape
    from bench.data import load_dataset

    shapes = config.input_shapes(1)
    x_shape = model_x_shape(shapes) if process is None else process.data_shape(model_x_shape(shapes))
    x_shape = x_shape[0] if isinstance(x_shape, list) else x_shape
    tokens = "context_mask" in shapes
    context_frames = shapes["context"][0][1] if "context" in shapes and not tokens else 0
    frames = x_shape[1] + context_frames if len(x_shape) == 5 else None
    ds = load_dataset(train["dataset"], root=train["root"], resolution=x_shape[-2], channels=x_shape[-1],
                      frames=frames, seed=seed, limit=train["limit"])
    x, y = ds.x, ds.y
    if x.shape[1:] != (*([frames] if frames else []), *x_shape[-3:]):
        raise ValueError(f"dataset {train['dataset']!r} gives examples of shape {x.shape[1:]}; the model takes "
                         f"{(frames, *x_shape[-3:]) if frames else x_shape[1:]}")
    context, x = (x[:, :context_frames], x[:, context_frames:]) if context_frames else (None, x)
    if config.num_classes > 0:
        if y is None:
            raise ValueError(f"dataset {train['dataset']!r} has no labels; the model is class-conditional "
                             f"(num_classes={config.num_classes})")
        if int(y.max()) >= config.num_classes:
            raise ValueError(f"dataset {train['dataset']!r} has labels up to {int(y.max())}; the model has "
                             f"num_classes={config.num_classes}")
    if tokens:
        drawn = random_inputs({k: ((len(x), *shapes[k][0][1:]), shapes[k][1]) for k in ("context", "context_mask")},
                              seed + 1, 0)
        context = {k: drawn[k] for k in ("context", "context_mask")}
    return x, (y if config.num_classes > 0 else None), context


def train_model(ctx, train: dict, count: dict, start, run_dir: str | None, checkpoint_name: str):
    """Train the model ctx.built() holds for `train`'s budget, from start(built) -> (checkpoint or
    None, inner depth). -> (record, trainer); ctx.built() ends holding the trained (EMA) weights."""
    case, entry, adapter = ctx.case, ctx.entry, ctx.adapter
    batch = train["batch"] or case.batch
    if count["flop"] is None and "gflops" in train["budget"]:
        raise ValueError(f"a FLOP budget needs the training step's FLOP count, which failed: {count['error']}")
    steps = steps_for_budget(train["budget"], count["flop"])
    recipe = find_recipe(entry, case.preset) if train["recipe"] == "paper" else DEFAULT_RECIPE
    opt, changed = resolve(train, recipe, steps)
    built = ctx.built()
    x, y, context = training_data(train, ctx.config, case.seed, built.process)
    init, depth = start(built)
    trainer = adapter.Trainer(built, opt=opt, compile=compile_flag(case))
    if init is not None and depth == 0 and init.ema is not None and trainer.ema is not None:
        trainer.load_ema(init.ema)
    evaluate = _evaluator(ctx, trainer, count["flop"])
    curve, seconds, compile_s, timed, points = _loop(trainer, adapter, built, (x, y, context), steps, batch,
                                                     train["log_every"], case.seed, evaluate, eval_steps(train, steps))
    ckpt_path = _save(trainer, adapter, built, run_dir, checkpoint_name, case, opt, recipe, train, steps, count)
    spent = None if count["flop"] is None else steps * count["flop"]
    record = {
        "steps": steps, "batch": batch, "examples_seen": steps * batch,
        "budget": train["budget"],
        "gflop_spent": None if spent is None else spent / 1e9,
        "step_gflop": count["gflop"], "step_flops": count, "duration_s": seconds, "compile_s": compile_s,
        "timed_steps": timed, "steps_per_s": timed / seconds if timed and seconds > 0 else None,
        "precision": built.policy.describe(),
        "loss_curve": curve, "final_loss": curve["loss"][-1] if curve["loss"] else None,
        "recipe": recipe.to_dict(), "recipe_changes": changed, "optim": opt.to_dict(),
        "dataset": {"name": train["dataset"], "root": train["root"], "examples": int(len(x))},
        "init": None if init is None else {"path": str(init.path), "step": init.meta.get("step"),
                                           "backend": init.meta.get("backend"), "inner_depth": depth},
        "checkpoint": ckpt_path, "weights_after": "ema" if trainer.ema is not None else "trained",
        **({"quality_curve": points} if points else {}),
    }
    return record, trainer


def _evaluator(ctx, trainer, step_flops: int | None):
    """evaluate(step, wall_s) -> one learning-curve point: the EMA (else current) weights are
    sampled and scored by the case's `quality` settings, then the training weights are put back."""
    from bench.quality.measure import score_now

    def evaluate(step: int, wall_s: float) -> dict:
        built, adapter = ctx.built(), ctx.adapter
        current = trainer.weights()
        adapter.load_weights(built, trainer.weights(ema=True) if trainer.ema is not None else current)
        try:
            point = score_now(ctx, ctx.quality_cache)
        finally:
            adapter.load_weights(built, current)
        return {"step": step, "train_gflop": None if step_flops is None else step * step_flops / 1e9,
                "wall_s": wall_s, "weights": "ema" if trainer.ema is not None else "trained", **point}
    return evaluate


def _start_from(path, arch: str, adapter, built):
    """(checkpoint or None, depth): depth >= 1 when it set a nest's inner U-Net (bench.training.progressive)."""
    if path is None:
        return None, 0
    from bench.training import progressive

    return progressive.start_from(built, path, arch)


def _loop(trainer, adapter, built, data, steps: int, batch: int, every: int, seed: int, evaluate=None,
          at: list[int] = ()):
    """steps updates on batches drawn with replacement across steps; the mean loss of each
    `every` steps. -> (curve, seconds of the timed steps, compile seconds, timed steps, curve points).
    Compile time stays out of the rate: jax compiles before the clock starts; torch.compile
    compiles in the first step, which is timed apart (compile + one step) and not counted. After
    each step in `at` (0: before the first), evaluate(step, training wall s so far) gives a
    learning-curve point; its time is kept off the training clock."""
    x, y, context = data
    rng = np.random.default_rng(seed + 2)
    draw = lambda: _batch(rng, x, y, context, batch, built.process)
    compile_s = None
    if hasattr(trainer, "compile_step"):
        first = adapter.device_arrays(built, draw())
        trainer.compile_step({k: v for k, v in first.items() if v is not None})
        compile_s, rng = trainer.compile_seconds, np.random.default_rng(seed + 2)
    lazy = getattr(trainer, "compiles_on_first_step", False)
    curve, window, points, paused = {"every": every, "step": [], "loss": []}, [], [], 0.0
    if 0 in at:
        points.append(evaluate(0, 0.0))
    start = time.perf_counter()
    for s in range(steps):
        a = adapter.device_arrays(built, draw())
        window.append(trainer.step({k: v for k, v in a.items() if v is not None}))
        if lazy and s == 0:
            adapter.sync(window[-1])
            compile_s, start = time.perf_counter() - start, time.perf_counter()
        if len(window) == every or s == steps - 1:
            curve["step"].append(s + 1)
            curve["loss"].append(float(np.mean([float(v) for v in window])))
            window = []
        if s + 1 in at:
            adapter.sync(trainer.params)
            t0 = time.perf_counter()
            points.append(evaluate(s + 1, t0 - start - paused))
            paused += time.perf_counter() - t0
    adapter.sync(trainer.params)
    return curve, time.perf_counter() - start - paused, compile_s, steps - 1 if lazy else steps, points


def _batch(rng, x, y, context, batch: int, process) -> dict:
    """A batch of examples and the process's draws for it (t, noise, ...)."""
    idx = rng.choice(len(x), batch, replace=len(x) < batch)
    out = {"x0": x[idx], **process.train_draws(rng, (batch, *x.shape[1:]))}
    out["y"] = None if y is None else y[idx]
    if isinstance(context, dict):  # conditioning tokens and their mask
        out.update({k: v[idx] for k, v in context.items()})
    else:
        out["context"] = None if context is None else context[idx]
    return out


def _save(trainer, adapter, built, run_dir, name: str, case, opt, recipe, train, steps: int, count) -> str | None:
    """Write the checkpoint; leave the model holding the EMA weights (or the trained ones)."""
    weights = trainer.weights()
    ema = trainer.weights(ema=True) if trainer.ema is not None else None
    adapter.load_weights(built, ema if ema is not None else weights)
    if run_dir is None:
        return None
    meta = {"arch": case.arch, "preset": case.preset, "overrides": case.overrides.to_dict(),
            "config": dataclasses.asdict(built.config), "backend": case.backend, "step": steps,
            "flops_spent": None if count["flop"] is None else steps * count["flop"],
            "ema_decay": opt.ema, "optim": opt.to_dict(), "recipe": recipe.name, "dataset": train["dataset"],
            "case_id": case.id, "seed": case.seed}
    path, n = Path(run_dir) / "checkpoints" / name, 1
    while path.exists():  # a re-run of the case (--resume) never overwrites an earlier checkpoint
        n += 1
        path = Path(run_dir) / "checkpoints" / f"{name}-{n}"
    path = checkpoint.write(path, weights, meta, ema)
    return str(path.relative_to(run_dir))
