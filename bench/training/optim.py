"""The optimizer, learning-rate schedule, clipping and EMA of one training run, framework-free.

Both backend adapters read an `OptimSpec` and implement exactly this math (torch: bench.training
.lamb_torch and torch.optim.AdamW; jax: optax), so one spec gives the same updates in both:

- AdamW (Loshchilov & Hutter 2019), decoupled weight decay: p -= lr * (adam(g) + wd * p).
- LAMB (You et al. 2020, Algorithm 2), as optax.lamb: u = adam(g) + wd * p, then per tensor
  u *= ||p|| / ||u|| (1 where either norm is 0), p -= lr * u. `adapt_1d` False keeps 1-D tensors
  (biases, norm scales) out of the layer adaptation as well as the weight decay, as TF-Addons'
  LAMB does with pix2seq's exclude_from_weight_decay='bias,beta,gamma'.
- Weight decay never applies to 1-D tensors (biases, norm scales).
- Global-norm clipping before the optimizer (optax.clip_by_global_norm): g *= c / ||g|| when ||g|| >= c.
- EMA of the weights after each update: e = d * e + (1 - d) * p, e starting at the initial weights.
- Schedule (pix2seq's WarmUpAndDecay, models/model_utils.py): lr(s) = base * s / W for s < W;
  afterwards constant, or cosine over a fraction f of the curve:
  base * ((1 - a) * 0.5 * (1 + cos(pi * min(s - W, D) / D)) + a) with D = (T - W) / f.
  pix2seq's "cosine@0.8" is f = 0.8 (the run ends at 9.5% of base), a its end_lr_factor.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

OPTIMIZERS = ("adamw", "lamb")
SCHEDULES = ("constant", "cosine")


@dataclass(frozen=True)
class OptimSpec:
    optimizer: str = "adamw"  # one of OPTIMIZERS
    lr: float = 1e-4  # peak learning rate
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8  # outside the square root (Adam paper, optax eps)
    weight_decay: float = 0.0  # decoupled; never on 1-D tensors
    schedule: str = "constant"  # one of SCHEDULES, after the warmup
    warmup: int = 0  # linear warmup steps from lr 0
    total_steps: int = 1  # T: the step count the cosine decays over
    cosine_fraction: float = 1.0  # f: the part of the cosine curve walked by step T
    end_lr_factor: float = 0.0  # a: cosine floor as a fraction of lr
    clip: float | None = None  # max global gradient norm; None: no clipping
    ema: float | None = None  # EMA decay of the weights; None: no EMA
    adapt_1d: bool = False  # LAMB: layer adaptation on 1-D tensors too (optax.lamb: True)

    def __post_init__(self):
        _one_of("optimizer", self.optimizer, OPTIMIZERS)
        _one_of("schedule", self.schedule, SCHEDULES)
        _check("lr", self.lr, self.lr > 0, "> 0")
        for name in ("b1", "b2"):
            _check(name, getattr(self, name), 0 <= getattr(self, name) < 1, "in [0, 1)")
        _check("eps", self.eps, self.eps >= 0, ">= 0")
        _check("weight_decay", self.weight_decay, self.weight_decay >= 0, ">= 0")
        _check("warmup", self.warmup, isinstance(self.warmup, int) and self.warmup >= 0, "an integer >= 0")
        _check("total_steps", self.total_steps, isinstance(self.total_steps, int) and self.total_steps >= 1,
               "an integer >= 1")
        _check("cosine_fraction", self.cosine_fraction, 0 < self.cosine_fraction <= 1, "in (0, 1]")
        _check("end_lr_factor", self.end_lr_factor, 0 <= self.end_lr_factor <= 1, "in [0, 1]")
        _check("clip", self.clip, self.clip is None or self.clip > 0, "> 0 or null")
        _check("ema", self.ema, self.ema is None or 0 <= self.ema < 1, "in [0, 1) or null")

    def learning_rate(self, step, xp=math):
        """lr at 0-based update `step` (the module docstring's formula). `xp`: math for Python
        numbers, jax.numpy inside a jitted step (optax passes its update count)."""
        base, w = self.lr, self.warmup
        warm = base * step / w if w else base
        if self.schedule == "constant":
            decayed = base
        else:
            span = max(self.total_steps - w, 1) / self.cosine_fraction
            frac = _minimum(xp, _maximum(xp, step - w, 0), span) / span
            decayed = base * ((1 - self.end_lr_factor) * 0.5 * (1 + xp.cos(math.pi * frac)) + self.end_lr_factor)
        if xp is math:
            return warm if step < w else decayed
        return xp.where(step < w, warm, decayed)

    def to_dict(self) -> dict:
        return asdict(self)


def _minimum(xp, a, b):
    return min(a, b) if xp is math else xp.minimum(a, b)


def _maximum(xp, a, b):
    return max(a, b) if xp is math else xp.maximum(a, b)


def _one_of(name, value, allowed):
    if value not in allowed:
        raise ValueError(f"{name}={value!r}; allowed: {', '.join(allowed)}")


def _check(name, value, ok: bool, allowed: str):
    if not ok:
        raise ValueError(f"{name}={value!r}; allowed: {allowed}")
