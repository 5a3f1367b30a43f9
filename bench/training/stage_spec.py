"""`train: {stages: [...]}`: progressive training of a nest (Matryoshka Diffusion, Gu et al. 2024,
Sec. 3.3) in one case, checked at load. Standard library only. docs/training.md, "Stages".

    train:
      dataset: shapes
      stages:                    # instead of `budget:`
        - {levels: 1, budget: {steps: 200}}            # the innermost U-Net alone
        - {levels: 2, budget: {gflops: 50}, lr: 5e-5}  # the whole nest (the last stage must be)
      eval_after_stages: true    # score each stage's model (but the last) with the case's `quality`

A stage trains the model built from the case config's levels[-levels:]; stage k starts from
stage k-1's final weights. Keys of a stage: levels, budget (required), batch, lr, warmup (override
the case's `train:` for that stage). Every other `train:` key applies to every stage.
"""

from __future__ import annotations

import dataclasses

from bench.strict_yaml import SpecError, child, show

STAGE_KEYS = ("levels", "budget", "batch", "lr", "warmup")
_OPTIONAL = ("batch", "lr", "warmup")
MAX_STAGES = 16


def check_stages(value, source: str, path: str, check_budget, checks: dict) -> list[dict]:
    """The normalized list of stages (every key present) or one SpecError. `check_budget` and
    `checks` are the `train:` checks (bench.training.spec) the per-stage keys share."""
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_STAGES:
        raise SpecError(source, path, f"expected a list of 1 to {MAX_STAGES} stages, got {show(value)}",
                        "a list of mappings {levels: N, budget: {steps: N} or {gflops: X}}")
    out = []
    for i, stage in enumerate(value):
        here = child(path, i)
        if not isinstance(stage, dict):
            raise SpecError(source, here, f"expected a mapping, got {show(stage)}", STAGE_KEYS)
        for key in stage:
            if key not in STAGE_KEYS:
                raise SpecError(source, child(here, key), f"unknown key {key!r}", STAGE_KEYS)
        for key in ("levels", "budget"):
            if key not in stage:
                raise SpecError(source, here, f"missing key {key!r}", STAGE_KEYS)
        levels = stage["levels"]
        if not (isinstance(levels, int) and not isinstance(levels, bool) and levels >= 1):
            raise SpecError(source, child(here, "levels"), f"bad levels {show(levels)}",
                            "an integer >= 1: how many innermost U-Nets of the nest train in this stage")
        if out and levels < out[-1]["levels"]:
            raise SpecError(source, child(here, "levels"), f"levels {levels} below the previous stage's "
                            f"{out[-1]['levels']}", f"an integer >= {out[-1]['levels']} (a nest only grows)")
        norm = {"levels": levels, "budget": check_budget(stage["budget"], source, child(here, "budget")),
                **{k: stage.get(k) for k in _OPTIONAL}}
        for key in _OPTIONAL:
            ok, allowed = checks[key]
            if not ok(norm[key]):
                raise SpecError(source, child(here, key), f"bad {key} {show(norm[key])}", allowed)
        if norm["lr"] is not None:
            norm["lr"] = float(norm["lr"])
        out.append(norm)
    return out


def check_options(out: dict, source: str, path: str) -> None:
    """eval_after_stages only with stages (dropped when unset); no learning curve within stages."""
    if out.get("eval_after_stages") is None:
        out.pop("eval_after_stages", None)
    elif not isinstance(out["eval_after_stages"], bool):
        raise SpecError(source, child(path, "eval_after_stages"), f"bad eval_after_stages "
                        f"{show(out['eval_after_stages'])}", "true or false")
    elif "stages" not in out:
        raise SpecError(source, child(path, "eval_after_stages"), "eval_after_stages without stages",
                        "eval_after_stages together with train.stages")
    if "stages" in out:
        for key in ("eval_every", "eval_at"):
            if out.get(key) is not None:
                raise SpecError(source, child(path, key), f"{key} within stages is not supported",
                                "eval_after_stages: true (each stage's model is scored after the stage)")


def stage_train(train: dict, stage: dict) -> dict:
    """The one-model `train:` mapping a stage runs: the case's, with the stage's budget and keys."""
    out = {k: v for k, v in train.items() if k not in ("stages", "eval_after_stages")}
    out["budget"] = stage["budget"]
    for key in _OPTIONAL:
        if stage.get(key) is not None:
            out[key] = stage[key]
    if stage.get("warmup") is not None:
        out["warmup_fraction"] = None  # the stage's warmup wins over the case's fraction
    return out


def check_for_case(train: dict, entry, preset: str, measure: tuple, recipe, source: str, path: str,
                   resolve) -> None:
    """What needs the architecture: a nest (a config with `levels`), quality for eval_after_stages,
    and each step budget against the warmup (resolve: bench.training.spec.resolve, passed in so
    the two modules do not import each other)."""

    config = entry.load_presets()[preset].config
    if not hasattr(config, "levels"):
        raise SpecError(source, child(path, "stages"), f"{entry.name} ({type(config).__name__}) has no `levels`: "
                        "only a nest trains in stages", "train.budget for this model; stages for nested_unet presets")
    if train.get("eval_after_stages") and "quality" not in measure:
        raise SpecError(source, child(path, "eval_after_stages"), "scoring a stage's model uses the case's `quality` "
                        "measurement, which measure does not list", "measure listing 'quality'")
    for i, stage in enumerate(train["stages"]):
        steps = stage["budget"].get("steps")
        if steps is not None:
            try:
                resolve(stage_train(train, stage), recipe, steps)
            except ValueError as err:
                raise SpecError(source, child(child(path, "stages"), i), str(err),
                                "warmup below the stage's steps (stage or train warmup / warmup_fraction)") from None


def nest_problem(train: dict, config):
    """(key path under `train`, problem, allowed) when the stages do not fit the case's nest (its
    overrides applied), else None: every stage within the nest, the last one the whole nest."""
    n = len(getattr(config, "levels", ()))
    if not n or "stages" not in train:
        return None
    stages = train["stages"]
    for i, stage in enumerate(stages):
        if stage["levels"] > n:
            return ("stages", i, "levels"), f"levels {stage['levels']} but the nest has {n}", f"1 to {n}"
    if stages[-1]["levels"] != n:
        return ("stages", len(stages) - 1, "levels"), \
            f"the last stage trains {stages[-1]['levels']} of the nest's {n} levels", f"{n} (the whole nest)"
    return None


def stage_config(config, levels: int):
    """The model of a stage: the nest's `levels` innermost U-Nets, everything else the same."""
    process = dataclasses.replace(config.process, weights=tuple(config.process.weights[-levels:]), resolutions=())
    return dataclasses.replace(config, levels=tuple(config.levels[-levels:]), process=process)
