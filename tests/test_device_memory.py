"""Device peak memory over the same span in both backends (docs/measurement.md): torch resets its
peak before the timed steps; XLA cannot, so jax compares with the peak before them and labels an
upper bound as one. A fake device plays the GPU's memory_stats."""

from __future__ import annotations

import jax

import tests.precision_arch  # noqa: F401  (registers precision-tiny)
from architectures import registry
from bench.backends import jax_adapter as jb
from bench.backends import torch_adapter as tb


class FakeGpu:
    def __init__(self, peak: int):
        self.peak = peak

    def memory_stats(self):
        return {"peak_bytes_in_use": self.peak, "bytes_in_use": 10}

    def __str__(self):
        return "fake-gpu:0"


def test_jax_peak_is_the_steps_peak_when_it_rose_during_them():
    dev = FakeGpu(peak=1000)  # e.g. reached while compiling
    mark = jb.reset_peak_memory(dev)
    dev.peak = 1500  # the timed steps went higher
    assert jb.peak_memory_span(dev, mark) == {"bytes": 1500, "covers": "the timed steps (the process's peak rose during them)"}


def test_jax_peak_reached_before_the_steps_is_labelled_an_upper_bound():
    dev = FakeGpu(peak=1500)
    mark = jb.reset_peak_memory(dev)  # the steps stay below the earlier peak: their own is unknown
    span = jb.peak_memory_span(dev, mark)
    assert span["bytes"] == 1500 and span["covers"].startswith("upper bound")


def test_no_device_statistics_on_cpu():
    assert jb.peak_memory_span("cpu") == {"bytes": None, "covers": None}
    assert tb.peak_memory_span("cpu") == {"bytes": None, "covers": None}


def test_jax_steps_record_xla_program_peak():
    entry = registry.get("precision-tiny")
    built = jb.build(entry, entry.preset("precision-tiny").config, seed=0)
    train = jb.make_train_step(built, 2, seed=0)
    sample = jb.make_sample_step(built, 2, seed=0)
    params = sum(leaf.nbytes for leaf in jax.tree.leaves(built.params))
    assert train.info["xla_program_peak_bytes"] >= 2 * params  # parameters in and out at least
    assert sample.info["xla_program_peak_bytes"] >= params
    assert jb.make_train_step(built, 2, seed=0, compile=False).info["xla_program_peak_bytes"] is None
