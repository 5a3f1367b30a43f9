"""The optax optimizers (AdamW, LAMB) with lr schedule and clipping, and the EMA update."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from bench.backends.framework_free import Built, adamw_settings


def make_optimizer(built: Built, opt=None, **overrides) -> optax.GradientTransformation:
    """opt None: optax.adamw with framework_free.ADAMW (same as torch.optim.AdamW in the torch
    adapter). opt (bench.training.optim.OptimSpec): AdamW or LAMB with its lr schedule and clipping.
    Weight decay never applies to 1-D parameters (biases, norm scales)."""
    mask = lambda params: jax.tree.map(lambda p: p.ndim > 1, params)
    h = adamw_settings(opt, **overrides)
    lr = h["lr"] if opt is None else (lambda count: opt.learning_rate(count, jnp))
    if opt is None or opt.optimizer == "adamw":
        tx = optax.adamw(lr, b1=h["b1"], b2=h["b2"], eps=h["eps"], weight_decay=h["weight_decay"], mask=mask)
    elif opt.adapt_1d:
        tx = optax.lamb(lr, b1=h["b1"], b2=h["b2"], eps=h["eps"], weight_decay=h["weight_decay"], mask=mask)
    else:  # optax.lamb's own chain with the trust ratio kept off 1-D tensors (TF-Addons' LAMB)
        tx = optax.chain(optax.scale_by_adam(b1=h["b1"], b2=h["b2"], eps=h["eps"]),
                         optax.add_decayed_weights(h["weight_decay"], mask=mask),
                         optax.masked(optax.scale_by_trust_ratio(), mask),
                         optax.scale_by_learning_rate(lr))
    return tx if opt is None or opt.clip is None else optax.chain(optax.clip_by_global_norm(opt.clip), tx)


def ema_update(ema, params, decay: float):
    """e = decay * e + (1 - decay) * p for every leaf."""
    return jax.tree.map(lambda e, p: decay * e + (1 - decay) * p, ema, params)
