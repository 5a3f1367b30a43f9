"""Analytic multiply-accumulates of one DiT forward pass (one NFE). Standard library only.

Counts the patchify conv, every Linear (bias adds excluded) and attention's QK^T and AV; the
label lookup, norms, modulation, activations, softmax and elementwise ops are free.
gflop = 2 * sum(values) / 1e9. The paper's "Gflops" (Table 4: DiT-XL/2 118.6) are these MACs.
"""

from __future__ import annotations

from architectures.dit.config import DiTConfig


def forward_macs(config: DiTConfig, batch: int) -> dict[str, int]:
    c = config
    d, n, patch = c.hidden_size, c.num_tokens, c.patch_size ** 2
    time = c.frequency_embedding_size * d + d * d  # t MLP, once per example
    block = 6 * d * d + n * d * 3 * d + n * d * d + 2 * n * d * c.mlp_hidden  # adaLN, qkv, proj, MLP
    final = 2 * d * d + n * d * patch * c.out_channels  # adaLN, linear
    total = {
        "conv": n * patch * c.in_channels * d,
        "linear": time + c.depth * block + final,
        "attention": c.depth * 2 * n * n * d,  # QK^T and AV over all heads
    }
    return {key: value * batch for key, value in total.items()}
