"""A case's `train:` measurement: one budgeted run (bench.training.run) or a nest's stages
(bench.training.stages); both sit below this module, so neither imports the other's caller."""

from __future__ import annotations

from bench.training.run import _start_from, count_step_flops, train_model
from bench.training.stages import train_stages


def train_case(ctx, run_dir: str | None, checkpoint_name: str) -> dict:
    """Run the case's `train:` budget (or its stages); ctx.built() ends holding the trained (EMA) weights."""
    train = ctx.case.train.to_dict()
    if "stages" in train:
        return train_stages(ctx, run_dir, checkpoint_name)
    count = count_step_flops(ctx.case, ctx.entry, train["batch"] or ctx.case.batch)
    start = lambda built: _start_from(train["init"], ctx.case.arch, ctx.adapter, built)  # noqa: E731
    return train_model(ctx, train, count, start, run_dir, checkpoint_name)[0]
