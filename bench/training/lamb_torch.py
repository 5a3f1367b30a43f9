"""LAMB for torch (You et al. 2020, "Large Batch Optimization for Deep Learning", Algorithm 2),
the same math as optax.lamb (scale_by_adam -> add_decayed_weights -> scale_by_trust_ratio ->
scale by -lr), so the torch and jax adapters take the same step from the same gradients.

Per parameter group: `weight_decay` and `adapt` (apply the trust ratio ||p|| / ||u||).
"""

from __future__ import annotations

import torch


class LAMB(torch.optim.Optimizer):
    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-6, weight_decay: float = 0.0,
                 adapt: bool = True):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, adapt=adapt))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None if closure is None else closure()
        for group in self.param_groups:
            b1, b2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["m"], state["v"] = torch.zeros_like(p), torch.zeros_like(p)
                state["step"] += 1
                t, m, v = state["step"], state["m"], state["v"]
                m.mul_(b1).add_(p.grad, alpha=1 - b1)  # Adam moments (Alg. 2, lines 6-7)
                v.mul_(b2).addcmul_(p.grad, p.grad, value=1 - b2)
                update = (m / (1 - b1**t)) / ((v / (1 - b2**t)).sqrt() + group["eps"])
                if group["weight_decay"]:
                    update = update + group["weight_decay"] * p
                if group["adapt"]:  # layer-wise trust ratio (line 9); 1 where a norm is 0, as optax
                    p_norm, u_norm = torch.linalg.vector_norm(p), torch.linalg.vector_norm(update)
                    ratio = torch.where((p_norm > 0) & (u_norm > 0), p_norm / u_norm, torch.ones_like(p_norm))
                    update = update * ratio
                p.add_(update, alpha=-group["lr"])
        return loss
