"""DiT in Flax linen (Peebles & Xie 2023). Channels-last I/O; class and submodule names match
dit_torch.py, so bench/convert.py moves weights between them.

Patchify (conv, kernel = stride = p) + fixed 2D sin-cos positions -> N adaLN-Zero blocks
conditioned on c = t_emb + y_emb -> adaLN final layer -> unpatchify. The time input is ADM's
integer step k in [0, T) (every preset is discrete-time, time_scaling 1); only a process override
with timesteps 0 gives continuous t in [0, 1], scaled by 1000 before the sinusoid.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
from einops import rearrange

from architectures.dit.config import DiTConfig
from architectures.layers_flax import timestep_embedding  # GLIDE's [cos | sin], as the official TimestepEmbedder

EPS = 1e-6  # every LayerNorm (no affine parameters), as in the official code
_xavier = nn.initializers.xavier_uniform()
# the patchify conv is initialized as a Linear over the flattened (p, p, C) patch
_patch_init = nn.initializers.variance_scaling(1.0, "fan_avg", "uniform", in_axis=(0, 1, 2), out_axis=-1)


def _dense(features: int, std: float | None = None, zero: bool = False) -> nn.Dense:
    """xavier-uniform kernel (normal(std) or zeros when asked), zero bias: the official init."""
    init = nn.initializers.zeros if zero else nn.initializers.normal(std) if std is not None else _xavier
    return nn.Dense(features, kernel_init=init)


def _norm(x):
    """LayerNorm without affine parameters (nothing to convert)."""
    mean = x.mean(-1, keepdims=True)
    return (x - mean) * jax.lax.rsqrt(((x - mean) ** 2).mean(-1, keepdims=True) + EPS)


def sincos_2d(dim: int, grid: int):
    """Fixed (grid^2, dim) position code (MAE's get_2d_sincos_pos_embed): first half encodes the
    column, second half the row, each [sin | cos] with omega_i = 10^(-4 i / (dim/4))."""
    omega = 1.0 / 10000 ** (jnp.arange(dim // 4, dtype=jnp.float32) / (dim / 4))
    rows, cols = jnp.meshgrid(jnp.arange(grid, dtype=jnp.float32), jnp.arange(grid, dtype=jnp.float32), indexing="ij")

    def code(pos):
        out = pos.reshape(-1)[:, None] * omega[None]
        return jnp.concatenate([jnp.sin(out), jnp.cos(out)], axis=1)

    return jnp.concatenate([code(cols), code(rows)], axis=1)


def modulate(x, shift, scale):
    return x * (1 + scale[:, None]) + shift[:, None]


class TimestepEmbedder(nn.Module):
    cfg: DiTConfig

    def setup(self):
        self.fc1 = _dense(self.cfg.hidden_size, std=0.02)
        self.fc2 = _dense(self.cfg.hidden_size, std=0.02)

    def __call__(self, t):
        cfg = self.cfg
        return self.fc2(nn.silu(self.fc1(timestep_embedding(t * cfg.time_scaling, cfg.frequency_embedding_size))))


class LabelEmbedder(nn.Module):
    """num_classes + 1 rows: the last is the null label of classifier-free guidance."""

    cfg: DiTConfig

    def setup(self):
        self.embedding_table = nn.Embed(self.cfg.num_classes + 1, self.cfg.hidden_size,
                                        embedding_init=nn.initializers.normal(0.02))

    def __call__(self, y):
        return self.embedding_table(y)


class Attention(nn.Module):
    """timm's ViT attention: one qkv projection laid out (3, heads, head_dim), then proj."""

    dim: int
    heads: int

    def setup(self):
        self.qkv, self.proj = _dense(3 * self.dim), _dense(self.dim)

    def __call__(self, x):
        q, k, v = rearrange(self.qkv(x), "b n (three h d) -> three b n h d", three=3, h=self.heads)
        return self.proj(rearrange(jax.nn.dot_product_attention(q, k, v), "b n h d -> b n (h d)"))


class Mlp(nn.Module):
    dim: int
    hidden: int

    def setup(self):
        self.fc1, self.fc2 = _dense(self.hidden), _dense(self.dim)

    def __call__(self, x):
        return self.fc2(nn.gelu(self.fc1(x), approximate=True))


class DiTBlock(nn.Module):
    """adaLN-Zero (Sec. 3.2): SiLU(c) -> 6 modulation vectors; the zero init makes the block the identity."""

    cfg: DiTConfig

    def setup(self):
        d = self.cfg.hidden_size
        self.attn, self.mlp = Attention(d, self.cfg.num_heads), Mlp(d, self.cfg.mlp_hidden)
        self.adaLN_modulation = _dense(6 * d, zero=True)

    def __call__(self, x, c):
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = jnp.split(
            self.adaLN_modulation(nn.silu(c)), 6, axis=1)
        x = x + gate_msa[:, None] * self.attn(modulate(_norm(x), shift_msa, scale_msa))
        return x + gate_mlp[:, None] * self.mlp(modulate(_norm(x), shift_mlp, scale_mlp))


class FinalLayer(nn.Module):
    cfg: DiTConfig

    def setup(self):
        cfg = self.cfg
        self.adaLN_modulation = _dense(2 * cfg.hidden_size, zero=True)
        self.linear = _dense(cfg.patch_size ** 2 * cfg.out_channels, zero=True)

    def __call__(self, x, c):
        shift, scale = jnp.split(self.adaLN_modulation(nn.silu(c)), 2, axis=1)
        return self.linear(modulate(_norm(x), shift, scale))


class DiT(nn.Module):
    config: DiTConfig

    def setup(self):
        cfg, p = self.config, self.config.patch_size
        self.x_embedder = nn.Conv(cfg.hidden_size, (p, p), strides=(p, p), padding="VALID", kernel_init=_patch_init)
        self.t_embedder = TimestepEmbedder(cfg)
        self.y_embedder = LabelEmbedder(cfg) if cfg.num_classes > 0 else None
        self.blocks = [DiTBlock(cfg) for _ in range(cfg.depth)]
        self.final_layer = FinalLayer(cfg)

    def __call__(self, x, t, y=None, train: bool = False):
        """x (B, I, I, C), t (B,) the step k (module docstring), y (B,) labels (num_classes = null) -> (B, I, I, out_channels).
        `train` is accepted for the harness; DiT has no dropout."""
        cfg = self.config
        h = rearrange(self.x_embedder(x), "b gh gw d -> b (gh gw) d") + sincos_2d(cfg.hidden_size, cfg.grid)
        c = self.t_embedder(t)
        if self.y_embedder is not None:
            c = c + self.y_embedder(y)
        for block in self.blocks:
            h = block(h, c)
        h = self.final_layer(h, c)
        return rearrange(h, "b (gh gw) (p q c) -> b (gh p) (gw q) c", gh=cfg.grid, p=cfg.patch_size, q=cfg.patch_size)
