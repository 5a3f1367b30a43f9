"""Progressive training of a nest in one case (`train: {stages: [...]}`, bench.training.stage_spec):
Matryoshka Diffusion (Gu et al. 2024) Sec. 3.3, as ml-mdm trains it (`initialize_inner_with_pretrained`).

Stage k trains the model built from the case config's levels[-levels_k:] (every other field the
case's; the process's loss weights sliced the same way) with the case's recipe and a fresh
optimizer, as a case chained by `train.init` would: stage 1 starts from its seeded init (or
`train.init`), stage k from stage k-1's final trained weights, set into its inner U-Net at depth
levels_k - levels_{k-1} when the nest grew (bench.training.progressive.set_inner), or into the whole
model (and its EMA) when it did not. The last stage is the case's own model: ctx.built() ends
holding its weights. docs/training.md, "Stages".
"""

from __future__ import annotations

import dataclasses

from bench.training import checkpoint, progressive, run
from bench.training.stage_spec import stage_config, stage_train


def train_stages(ctx, run_dir: str | None, checkpoint_name: str) -> dict:
    """Run the case's stages; -> the `train` record (whole-run totals, `stages`: one entry each)."""
    train, n = ctx.case.train.to_dict(), len(getattr(ctx.config, "levels", ()))
    stages = train["stages"]
    if not n or stages[-1]["levels"] != n or any(s["levels"] > n for s in stages):
        raise ValueError(f"train.stages {[s['levels'] for s in stages]} do not fit {ctx.case.arch}'s nest of "
                         f"{n or 'no'} levels (the last stage must be the whole nest)")
    entries, records, prev = [], [], None
    for k, stage in enumerate(stages):
        last = k == len(stages) - 1
        sctx = ctx if last else _stage_context(ctx, stage_config(ctx.config, stage["levels"]))
        one = stage_train(train, stage)
        batch = one["batch"] or ctx.case.batch
        count = run.count_step_flops(ctx.case, ctx.entry, batch, 0 if last else stage["levels"])
        start = _from_case_init(train, ctx) if prev is None else \
            _from_stage(prev, stage["levels"] - prev["levels"], ctx.adapter)
        rec, trainer = run.train_model(sctx, one, count, start, run_dir, f"{checkpoint_name}-stage{k + 1}")
        prev = {"stage": k + 1, "levels": stage["levels"], "steps": rec["steps"], "checkpoint": rec["checkpoint"],
                "weights": trainer.weights(), "ema": trainer.weights(ema=True) if trainer.ema is not None else None}
        del trainer
        entry = _entry(k, stage, sctx.config, rec)
        if train.get("eval_after_stages") and not last:
            entry["quality"] = _score(sctx, rec["weights_after"])
        entries.append(entry)
        records.append(rec)
    return _totals(records, entries)


def _stage_context(ctx, config):
    """A context holding a stage's own model (built on first use, with the case's settings) and
    its own quality cache (its reference images are at its side)."""
    return dataclasses.replace(ctx, config=config, _built=None, quality_cache={}, device_peak_bytes=[],
                               device_peak_covers=[])


def _from_case_init(train: dict, ctx):
    return lambda built: run._start_from(train["init"], ctx.case.arch, ctx.adapter, built)


def _from_stage(prev: dict, depth: int, adapter):
    """start(built) for the next stage: the previous stage's trained weights into the nest's inner
    U-Net at `depth` (its EMA is not carried, as with `train.init`), or into the whole model and EMA."""
    def start(built):
        if depth:
            progressive.set_inner(built, prev["weights"], depth)
        else:
            adapter.load_weights(built, prev["weights"])
        where = prev["checkpoint"] or f"stage {prev['stage']} (not written: no run directory)"
        meta = {"step": prev["steps"], "backend": built.backend}
        return checkpoint.Checkpoint(where, meta, prev["weights"], None if depth else prev["ema"]), depth
    return start


def _entry(k: int, stage: dict, config, rec: dict) -> dict:
    init = rec["init"]
    if init is not None:
        init = {**init, "from": "train.init" if k == 0 else f"stage {k}"}
    keys = ("budget", "steps", "batch", "examples_seen", "gflop_spent", "step_gflop", "duration_s", "compile_s",
            "timed_steps", "steps_per_s", "loss_curve", "final_loss", "optim", "recipe_changes", "checkpoint",
            "weights_after")
    return {"stage": k + 1, "levels": stage["levels"], "resolution": config.levels[0].resolution,
            **{key: rec[key] for key in keys}, "init": init}


def _score(sctx, weights: str) -> dict:
    """The stage's model (EMA, else trained weights), sampled at its own side and scored by the
    case's `quality` settings (bench.quality.measure.score_now)."""
    from bench.quality.measure import score_now

    point = score_now(sctx, sctx.quality_cache)
    return {"resolution": sctx.config.levels[0].resolution, "weights": weights, **point}


def _totals(records: list[dict], entries: list[dict]) -> dict:
    """The whole run: sums of steps, examples, FLOPs and time; the last stage's model, loss and
    checkpoint; the first stage's init."""
    spent = [r["gflop_spent"] for r in records]
    compiled = [r["compile_s"] for r in records if r["compile_s"] is not None]
    timed, seconds = sum(r["timed_steps"] for r in records), sum(r["duration_s"] for r in records)
    return {**records[-1], "steps": sum(r["steps"] for r in records),
            "examples_seen": sum(r["examples_seen"] for r in records), "budget": None,
            "gflop_spent": None if None in spent else sum(spent), "duration_s": seconds,
            "compile_s": sum(compiled) if compiled else None, "timed_steps": timed,
            "steps_per_s": timed / seconds if timed and seconds > 0 else None,
            "init": records[0]["init"], "stages": entries}
