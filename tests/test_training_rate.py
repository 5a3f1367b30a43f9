"""The `train` measurement's throughput leaves compile time out in both backends: jax compiles
before the clock starts, torch.compile compiles inside its first step, which is timed apart.
A fake clock that only the fake trainer advances makes the seconds exact (no timing threshold)."""

from __future__ import annotations

import numpy as np
import pytest

from bench.training import run

CLOCK = [0.0]
COMPILE, STEP = 100.0, 1.0


class FakeProcess:
    @staticmethod
    def train_draws(rng, shape):
        return {"t": rng.uniform(size=shape[:1])}


class FakeAdapter:
    @staticmethod
    def device_arrays(built, arrays):
        return arrays

    @staticmethod
    def sync(x):
        return x


class LazyTrainer:
    """torch.compile: the first step compiles, then runs."""
    compiles_on_first_step = True
    params = None

    def __init__(self):
        self.calls = 0

    def step(self, a):
        self.calls += 1
        CLOCK[0] += STEP + (COMPILE if self.calls == 1 else 0.0)
        return 0.5


class AheadTrainer(LazyTrainer):
    """jax: compile_step compiles ahead of time; every step is a plain step."""
    compiles_on_first_step = False

    def compile_step(self, a):
        CLOCK[0] += COMPILE
        self.compile_seconds = COMPILE

    def step(self, a):
        CLOCK[0] += STEP
        return 0.5


class Built:
    process = FakeProcess()


@pytest.mark.parametrize("trainer,compile_s,timed", [
    (LazyTrainer(), COMPILE + STEP, 4),  # the first call (compile + one step), as in the timing records
    (AheadTrainer(), COMPILE, 5),
])
def test_compile_time_is_apart_from_the_steps_per_second(trainer, compile_s, timed, monkeypatch):
    monkeypatch.setattr(run.time, "perf_counter", lambda: CLOCK[0])
    data = (np.zeros((8, 2, 2, 3), np.float32), None, None)
    curve, seconds, compiling, counted, _ = run._loop(trainer, FakeAdapter(), Built(), data, 5, 2, 10, 0)
    assert compiling == compile_s and counted == timed and seconds == timed * STEP
    assert curve["step"] == [5] and len(curve["loss"]) == 1


def test_torch_trainer_says_when_it_compiles_lazily():
    from architectures import registry
    from bench.backends import torch_adapter as tb

    entry = registry.get("unet2d")
    built = tb.build(entry, entry.preset("unet2d-tiny").config, seed=0)
    assert tb.Trainer(built, compile="default").compiles_on_first_step  # torch.compile wraps, compiles on call
    assert not tb.Trainer(built, compile=False).compiles_on_first_step
