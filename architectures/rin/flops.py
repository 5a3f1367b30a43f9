"""Analytic multiply-accumulates of one RIN forward pass (one NFE). Standard library only.

Counts every Dense and the stem conv (bias adds excluded) and attention's QK^T and AV; norms,
activations, softmax and elementwise ops are excluded. gflop = 2 * sum(values) / 1e9.
"""

from __future__ import annotations

from architectures.rin.config import RINConfig


def _layer(q_tokens: int, q_dim: int, kv_tokens: int, kv_dim: int, inner: int, mlp_ratio: int) -> dict[str, int]:
    """One pre-LN layer: q/k/v/o projections, attention, FFN of hidden mlp_ratio * q_dim."""
    linear = q_tokens * q_dim * inner * 2 + kv_tokens * kv_dim * inner * 2  # q, o ; k, v
    linear += q_tokens * q_dim * mlp_ratio * q_dim * 2  # fc1, fc2 (0 when the FFN is skipped)
    return {"linear": linear, "attention": 2 * q_tokens * kv_tokens * inner}  # QK^T, AV


def _add(total: dict[str, int], part: dict[str, int], times: int = 1) -> None:
    for key, value in part.items():
        total[key] = total.get(key, 0) + value * times


def _embeddings(c: RINConfig) -> int:
    """Per example: time MLP, class Dense of the one-hot, self-conditioning MLP, readout."""
    d, m = c.latent_dim, c.num_latents
    time = (d // 4) * d + d * d
    label = (c.num_classes + 1) * d
    self_cond = m * d * c.latent_mlp_ratio * d * 2
    readout = c.num_tokens * c.interface_dim * c.patch_dim
    return time + label + self_cond + readout


def forward_macs(config: RINConfig, batch: int) -> dict[str, int]:
    c = config
    n = c.num_tokens + c.num_context_tokens  # the whole interface is read and written
    m, dz, dx = c.num_latents, c.latent_dim, c.interface_dim
    total = {"linear": _embeddings(c), "conv": n * c.patch_dim * dx, "attention": 0}
    _add(total, _layer(m, dz, n, dx, c.rw_dim, c.latent_mlp_ratio), c.num_blocks)  # read
    _add(total, _layer(m, dz, m, dz, dz, c.latent_mlp_ratio), c.num_blocks * c.process_layers)  # process
    _add(total, _layer(n, dx, m, dz, c.rw_dim, c.tape_mlp_ratio), c.num_blocks)  # write
    return {key: value * batch for key, value in total.items()}
