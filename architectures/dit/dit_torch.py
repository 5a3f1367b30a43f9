"""DiT in PyTorch (Peebles & Xie 2023). Channels-first I/O; class and submodule names match
dit_flax.py, so bench/convert.py moves weights between them.

Patchify (conv, kernel = stride = p) + fixed 2D sin-cos positions -> N adaLN-Zero blocks
conditioned on c = t_emb + y_emb -> adaLN final layer -> unpatchify. The time input is ADM's
integer step k in [0, T) (every preset is discrete-time, time_scaling 1); only a process override
with timesteps 0 gives continuous t in [0, 1], scaled by 1000 before the sinusoid.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from architectures.dit.config import DiTConfig
from architectures.layers_torch import timestep_embedding  # GLIDE's [cos | sin], as the official TimestepEmbedder

EPS = 1e-6  # every LayerNorm (no affine parameters), as in the official code


def _dense(d_in: int, d_out: int, std: float | None = None, zero: bool = False) -> nn.Linear:
    """xavier-uniform weights (normal(std) or zeros when asked), zero bias: the official init."""
    layer = nn.Linear(d_in, d_out)
    if zero:
        nn.init.zeros_(layer.weight)
    elif std is not None:
        nn.init.normal_(layer.weight, std=std)
    else:
        nn.init.xavier_uniform_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


def sincos_2d(dim: int, grid: int) -> torch.Tensor:
    """Fixed (grid^2, dim) position code (MAE's get_2d_sincos_pos_embed): first half encodes the
    column, second half the row, each [sin | cos] with omega_i = 10^(-4 i / (dim/4))."""
    omega = 1.0 / 10000 ** (torch.arange(dim // 4, dtype=torch.float32) / (dim / 4))
    rows, cols = torch.meshgrid(torch.arange(grid, dtype=torch.float32), torch.arange(grid, dtype=torch.float32),
                                indexing="ij")

    def code(pos):
        out = pos.reshape(-1)[:, None] * omega[None]
        return torch.cat([torch.sin(out), torch.cos(out)], dim=1)

    return torch.cat([code(cols), code(rows)], dim=1)


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale[:, None]) + shift[:, None]


class TimestepEmbedder(nn.Module):
    def __init__(self, cfg: DiTConfig):
        super().__init__()
        self.freq, self.scaling = cfg.frequency_embedding_size, cfg.time_scaling
        self.fc1 = _dense(self.freq, cfg.hidden_size, std=0.02)
        self.fc2 = _dense(cfg.hidden_size, cfg.hidden_size, std=0.02)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.silu(self.fc1(timestep_embedding(t * self.scaling, self.freq))))


class LabelEmbedder(nn.Module):
    """num_classes + 1 rows: the last is the null label of classifier-free guidance."""

    def __init__(self, cfg: DiTConfig):
        super().__init__()
        self.embedding_table = nn.Embedding(cfg.num_classes + 1, cfg.hidden_size)
        nn.init.normal_(self.embedding_table.weight, std=0.02)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.embedding_table(y)


class Attention(nn.Module):
    """timm's ViT attention: one qkv projection laid out (3, heads, head_dim), then proj."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv, self.proj = _dense(dim, 3 * dim), _dense(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = rearrange(self.qkv(x), "b n (three h d) -> three b h n d", three=3, h=self.heads)
        return self.proj(rearrange(F.scaled_dot_product_attention(q, k, v), "b h n d -> b n (h d)"))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1, self.fc2 = _dense(dim, hidden), _dense(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


class DiTBlock(nn.Module):
    """adaLN-Zero (Sec. 3.2): SiLU(c) -> 6 modulation vectors; the zero init makes the block the identity."""

    def __init__(self, cfg: DiTConfig):
        super().__init__()
        d = cfg.hidden_size
        self.attn, self.mlp = Attention(d, cfg.num_heads), Mlp(d, cfg.mlp_hidden)
        self.adaLN_modulation = _dense(d, 6 * d, zero=True)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = self.adaLN_modulation(F.silu(c)).chunk(6, dim=1)
        d = x.shape[-1]
        x = x + gate_msa[:, None] * self.attn(modulate(F.layer_norm(x, (d,), eps=EPS), shift_msa, scale_msa))
        return x + gate_mlp[:, None] * self.mlp(modulate(F.layer_norm(x, (d,), eps=EPS), shift_mlp, scale_mlp))


class FinalLayer(nn.Module):
    def __init__(self, cfg: DiTConfig):
        super().__init__()
        d = cfg.hidden_size
        self.adaLN_modulation = _dense(d, 2 * d, zero=True)
        self.linear = _dense(d, cfg.patch_size ** 2 * cfg.out_channels, zero=True)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift, scale = self.adaLN_modulation(F.silu(c)).chunk(2, dim=1)
        return self.linear(modulate(F.layer_norm(x, (x.shape[-1],), eps=EPS), shift, scale))


class DiT(nn.Module):
    def __init__(self, config: DiTConfig):
        super().__init__()
        cfg = self.config = config
        p, d = cfg.patch_size, cfg.hidden_size
        self.x_embedder = nn.Conv2d(cfg.in_channels, d, p, stride=p)
        nn.init.xavier_uniform_(self.x_embedder.weight.view(d, -1))  # as a Linear over the flattened patch
        nn.init.zeros_(self.x_embedder.bias)
        self.register_buffer("pos_embed", sincos_2d(d, cfg.grid), persistent=False)
        self.t_embedder = TimestepEmbedder(cfg)
        self.y_embedder = LabelEmbedder(cfg) if cfg.num_classes > 0 else None
        self.blocks = nn.ModuleList([DiTBlock(cfg) for _ in range(cfg.depth)])
        self.final_layer = FinalLayer(cfg)

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, C, I, I), t (B,) the step k (module docstring), y (B,) labels (num_classes = null) -> (B, out_channels, I, I)."""
        cfg = self.config
        h = rearrange(self.x_embedder(x), "b d gh gw -> b (gh gw) d") + self.pos_embed
        c = self.t_embedder(t)
        if self.y_embedder is not None:
            c = c + self.y_embedder(y)
        for block in self.blocks:
            h = block(h, c)
        h = self.final_layer(h, c)
        return rearrange(h, "b (gh gw) (p q c) -> b c (gh p) (gw q)", gh=cfg.grid, p=cfg.patch_size, q=cfg.patch_size)
