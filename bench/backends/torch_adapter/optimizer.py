"""The torch optimizers (AdamW, LAMB), global-norm clipping and the EMA update."""

from __future__ import annotations

import torch

from bench.backends.framework_free import Built, adamw_settings
from bench.training.lamb_torch import LAMB


def make_optimizer(built: Built, opt=None, **overrides) -> torch.optim.Optimizer:
    """opt None: torch.optim.AdamW with framework_free.ADAMW (same as optax.adamw in the jax
    adapter). opt (bench.training.optim.OptimSpec): AdamW or LAMB with its settings. Weight decay
    never applies to 1-D parameters (biases, norm scales)."""
    params = [p for p in built.model.parameters() if p.requires_grad]
    matrices, vectors = [p for p in params if p.ndim > 1], [p for p in params if p.ndim <= 1]
    if opt is None or opt.optimizer == "adamw":
        h = adamw_settings(opt, **overrides)
        fused = True if built.policy is not None and built.policy.fused_adamw else None  # None: torch's default
        groups = [{"params": matrices, "weight_decay": h["weight_decay"]}, {"params": vectors, "weight_decay": 0.0}]
        return torch.optim.AdamW(groups, lr=h["lr"], betas=(h["b1"], h["b2"]), eps=h["eps"], fused=fused)
    groups = [{"params": matrices, "weight_decay": opt.weight_decay, "adapt": True},
              {"params": vectors, "weight_decay": 0.0, "adapt": opt.adapt_1d}]
    return LAMB(groups, lr=opt.lr, betas=(opt.b1, opt.b2), eps=opt.eps)


def clip_global_norm(params, max_norm: float) -> torch.Tensor:
    """optax.clip_by_global_norm: g *= max_norm / ||g|| when ||g|| >= max_norm; returns ||g||."""
    grads = [p.grad for p in params if p.grad is not None]
    norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
    if norm >= max_norm:
        for g in grads:
            g.mul_(max_norm / norm)
    return norm


@torch.no_grad()
def ema_update(ema: dict[str, torch.Tensor], params: dict[str, torch.Tensor], decay: float) -> None:
    """e = decay * e + (1 - decay) * p, in place, for every named parameter."""
    for name, e in ema.items():
        e.mul_(decay).add_(params[name], alpha=1 - decay)
