"""The suite's `train:` mapping: strict checking at load, and its resolution into an OptimSpec.

    train:
      dataset: shapes            # required: a dataset name (bench.data)
      root: null                 # directory of a real dataset
      limit: null                # use the first N examples
      budget: {steps: 200}       # or {gflops: 5000}: an amount, 5000 GFLOP in all (counted train step)
      stages: null               # instead of budget: progressive training of a nest (stage_spec.py)
      eval_after_stages: null    # with stages: score each stage's model (but the last) after it
      recipe: paper              # paper (the family's recipe for the preset) | default
      batch: null                # training batch; null: the case's batch
      warmup: 20                 # override the recipe's warmup steps ...
      warmup_fraction: null      # ... or set it to a fraction of the run's steps (one of the two)
      log_every: 10              # loss-curve stride (steps)
      init: null                 # a diffbench checkpoint directory to start from
      eval_every: null           # learning curve: quality (the case's `quality:`) every N steps ...
      eval_at: null              # ... or at these fractions of the budget, e.g. [0, 0.25, 0.5]
      # any OptimSpec field overrides the recipe: optimizer, lr, b1, b2, eps, weight_decay,
      # schedule, cosine_fraction, end_lr_factor, clip, ema, adapt_1d

Standard library only (loaded by `diffbench plan` without torch or jax). docs/training.md.
"""

from __future__ import annotations

import math
from pathlib import Path

from bench.strict_yaml import SpecError, child, show
from bench.training import stage_spec
from bench.training.optim import OPTIMIZERS, SCHEDULES, OptimSpec
from bench.training.recipes import DEFAULT_RECIPE, RecipeError, find_recipe

RECIPES = ("paper", "default")
BUDGET_KEYS = ("steps", "gflops")
_OPTIM = ("optimizer", "lr", "b1", "b2", "eps", "weight_decay", "schedule", "cosine_fraction", "end_lr_factor",
          "clip", "ema", "adapt_1d")
EVAL_KEYS = ("eval_every", "eval_at")  # present in the normalized mapping only when set (case ids stay as they were)
STAGE_KEYS = ("stages", "eval_after_stages")  # like EVAL_KEYS: in the normalized mapping only when set
KEYS = ("dataset", "root", "limit", "budget", "recipe", "batch", "warmup", "warmup_fraction", "log_every", "init",
        *_OPTIM, *EVAL_KEYS, *STAGE_KEYS)
MAX_STEPS = 10**8  # at 1 ms a step, 28 hours; DiT-XL/2 trained 7M steps
MAX_GFLOPS = 1e12  # 1e21 FLOPs: ~4 months of a GPU sustaining 100 TFLOP/s
MAX_BATCH = 1 << 20  # as a case's batch (bench.case.MAX_BATCH)
DEFAULTS = {"root": None, "limit": None, "recipe": "default", "batch": None, "warmup": None, "warmup_fraction": None,
            "log_every": 10, "init": None, **{k: None for k in _OPTIM}}


def _int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _num(v) -> bool:
    return _int(v) or (isinstance(v, float) and math.isfinite(v))  # ints: isfinite overflows past 1e308


def _opt(check):
    return lambda v: v is None or check(v)


# key -> (accepts value, allowed values for the error line)
_CHECKS = {
    "dataset": (lambda v: isinstance(v, str) and v in dataset_names(), None),
    "root": (_opt(lambda v: isinstance(v, str) and v != ""), "a directory path, or null"),
    "limit": (_opt(lambda v: _int(v) and 1 <= v < 2**63), "an integer >= 1, or null"),
    "recipe": (lambda v: v in RECIPES, RECIPES),
    "batch": (_opt(lambda v: _int(v) and 1 <= v <= MAX_BATCH),
              f"an integer in [1, {MAX_BATCH}], or null (the case's batch)"),
    "warmup": (_opt(lambda v: _int(v) and 0 <= v <= MAX_STEPS),
               f"an integer number of steps in [0, {MAX_STEPS:,}], or null (the recipe's)"),
    "warmup_fraction": (_opt(lambda v: _num(v) and 0 <= v < 1), "a number in [0, 1), or null"),
    "log_every": (lambda v: _int(v) and 1 <= v <= MAX_STEPS, f"an integer in [1, {MAX_STEPS:,}]"),
    "init": (_opt(lambda v: isinstance(v, str) and v != ""), "a checkpoint directory path, or null"),
    "optimizer": (_opt(lambda v: v in OPTIMIZERS), OPTIMIZERS),
    "lr": (_opt(lambda v: _num(v) and v > 0), "a number > 0"),
    "b1": (_opt(lambda v: _num(v) and 0 <= v < 1), "a number in [0, 1)"),
    "b2": (_opt(lambda v: _num(v) and 0 <= v < 1), "a number in [0, 1)"),
    "eps": (_opt(lambda v: _num(v) and v >= 0), "a number >= 0"),
    "weight_decay": (_opt(lambda v: _num(v) and v >= 0), "a number >= 0"),
    "schedule": (_opt(lambda v: v in SCHEDULES), SCHEDULES),
    "cosine_fraction": (_opt(lambda v: _num(v) and 0 < v <= 1), "a number in (0, 1]"),
    "end_lr_factor": (_opt(lambda v: _num(v) and 0 <= v <= 1), "a number in [0, 1]"),
    "clip": (_opt(lambda v: _num(v) and v > 0), "a number > 0, or null (no clipping)"),
    "ema": (_opt(lambda v: _num(v) and 0 <= v < 1), "a number in [0, 1), or null (no EMA)"),
    "adapt_1d": (_opt(lambda v: isinstance(v, bool)), "true or false"),
}


def dataset_names() -> tuple[str, ...]:
    """The dataset names bench.data offers."""
    from bench.data import DATASETS

    return tuple(DATASETS)


def check(value, source: str, path: str) -> dict | None:
    """The normalized `train:` mapping (every key present), None for null, or one SpecError."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise SpecError(source, path, f"expected a mapping, got {show(value)}", KEYS)
    for key in value:
        if key not in KEYS:
            raise SpecError(source, child(path, key), f"unknown key {key!r}", KEYS)
    if "dataset" not in value:
        raise SpecError(source, path, "missing key 'dataset'", KEYS)
    value = {k: v for k, v in value.items() if not (k in STAGE_KEYS and v is None)}
    if "budget" in value and "stages" in value:
        raise SpecError(source, child(path, "stages"), "both budget and stages are set",
                        "one of them: budget (one model) or stages (progressive training of a nest)")
    if "budget" not in value and "stages" not in value:
        raise SpecError(source, path, "missing key 'budget'", "budget: {steps: N} or {gflops: X}, or stages: [...]")
    out = {**DEFAULTS, **value}
    if "budget" in value:
        out["budget"] = _budget(value["budget"], source, child(path, "budget"))
    else:
        out["stages"] = stage_spec.check_stages(value["stages"], source, child(path, "stages"), _budget, _CHECKS)
    for key, (ok, allowed) in _CHECKS.items():
        if not ok(out[key]):
            raise SpecError(source, child(path, key), f"bad {key} {show(out[key])}", allowed or dataset_names())
    from bench.data.suite_checks import check_count, check_source

    problem = check_source(out["dataset"], out["root"]) or \
        (out["limit"] is not None and check_count(out["dataset"], "limit", out["limit"]))
    if problem:
        key, text, allowed = problem
        raise SpecError(source, child(path, key), text, allowed)
    if out["init"] is not None and not (Path(out["init"]) / "meta.json").is_file():
        raise SpecError(source, child(path, "init"), f"no diffbench checkpoint at {out['init']!r} (no meta.json)",
                        "a checkpoint directory written by a train case (relative paths: to the working directory)")
    if out["warmup"] is not None and out["warmup_fraction"] is not None:
        raise SpecError(source, child(path, "warmup_fraction"), "both warmup and warmup_fraction are set",
                        "one of them")
    _check_eval(out, source, path)
    stage_spec.check_options(out, source, path)
    return {k: (float(v) if _num(v) and k in ("lr", "eps", "weight_decay", "clip", "ema") else v) for k, v in out.items()}


def _check_eval(out: dict, source: str, path: str) -> None:
    """eval_every (steps) or eval_at (budget fractions), not both; unset keys are dropped."""
    for key in EVAL_KEYS:
        if key in out and out[key] is None:
            del out[key]
    if "eval_every" in out and "eval_at" in out:
        raise SpecError(source, child(path, "eval_at"), "both eval_every and eval_at are set", "one of them")
    if "eval_every" in out and not (_int(out["eval_every"]) and out["eval_every"] >= 1):
        raise SpecError(source, child(path, "eval_every"), f"bad eval_every {show(out['eval_every'])}",
                        "an integer number of steps >= 1, or null")
    if "eval_at" in out:
        at = out["eval_at"]
        if not isinstance(at, list) or not at or not all(_num(f) and 0 <= f <= 1 for f in at) or len(set(at)) < len(at):
            raise SpecError(source, child(path, "eval_at"), f"bad eval_at {show(at)}",
                            "a non-empty list of distinct fractions of the budget in [0, 1]")
        out["eval_at"] = sorted(at)


def eval_steps(train: dict, steps: int) -> list[int]:
    """The training steps after which the learning curve scores the model (0 = before training);
    the end of the budget is left out: the case's own `quality` measurement scores it."""
    if train.get("eval_every"):
        points = range(train["eval_every"], steps, train["eval_every"])
    else:
        points = (int(round(f * steps)) for f in train.get("eval_at") or ())
    return sorted({s for s in points if 0 <= s < steps})


def _budget(value, source: str, path: str) -> dict:
    if not isinstance(value, dict) or len(value) != 1 or next(iter(value)) not in BUDGET_KEYS:
        raise SpecError(source, path, f"expected one of {{steps: N}} or {{gflops: X}}, got {show(value)}", BUDGET_KEYS)
    (key, n), = value.items()
    if key == "steps" and not (_int(n) and 1 <= n <= MAX_STEPS):
        raise SpecError(source, child(path, key), f"bad steps {show(n)}",
                        f"an integer in [1, {MAX_STEPS:,}] (at 1 ms a step, 10^8 steps take 28 hours)")
    if key == "gflops" and not (_num(n) and 0 < n <= MAX_GFLOPS):
        raise SpecError(source, child(path, key), f"bad gflops {show(n)}",
                        "a number in (0, 1e12] (1e21 FLOPs: months of a GPU at 100 TFLOP/s)")
    return {key: n}


def check_for_case(train: dict, entry, preset: str, measure: tuple, source: str, path: str) -> None:
    """What needs the case's architecture: a paper recipe exists, and the budget fits the warmup."""
    if ("train" in measure) != (train is not None):
        problem = "measure lists 'train' but the case has no `train:` mapping" if train is None else \
            "`train:` is given but measure does not list 'train'"
        raise SpecError(source, path, problem, "both or neither")
    if train is None:
        return
    if any(k in train for k in EVAL_KEYS) and "quality" not in measure:
        raise SpecError(source, child(path, next(k for k in EVAL_KEYS if k in train)),
                        "a learning curve scores the model with the case's `quality` measurement, which measure does "
                        "not list", "measure listing 'quality' (and a `quality:` mapping for its settings)")
    try:
        recipe = find_recipe(entry, preset) if train["recipe"] == "paper" else DEFAULT_RECIPE
    except RecipeError as err:
        raise SpecError(source, child(path, "recipe"), str(err), RECIPES) from None
    if "stages" in train:
        return stage_spec.check_for_case(train, entry, preset, measure, recipe, source, path, resolve)
    steps = train["budget"].get("steps")
    if steps is not None:
        try:
            resolve(train, recipe, steps)
        except ValueError as err:
            raise SpecError(source, path, str(err), "train.warmup or train.warmup_fraction below the budget") from None


def resolve(train: dict, recipe, total_steps: int) -> tuple[OptimSpec, dict]:
    """(OptimSpec for a run of total_steps, what was changed from the recipe and why)."""
    fields = {"warmup": 0, **recipe.optim}
    changed = {k: train[k] for k in _OPTIM if train[k] is not None and train[k] != fields.get(k)}
    fields.update(changed)
    if train["warmup"] is not None:
        fields["warmup"] = train["warmup"]
    elif train["warmup_fraction"] is not None:
        fields["warmup"] = int(train["warmup_fraction"] * total_steps)
    elif fields["warmup"] >= total_steps:
        raise ValueError(f"recipe {recipe.name!r} warms up over {fields['warmup']} steps but the budget is "
                         f"{total_steps} steps; set train.warmup or train.warmup_fraction explicitly")
    if fields.get("warmup") != recipe.optim.get("warmup", 0):
        changed["warmup"] = fields["warmup"]
    spec = OptimSpec(**{**fields, "total_steps": total_steps})
    return spec, changed
