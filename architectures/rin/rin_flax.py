"""RIN in Flax linen (Jabri, Fleet, Chen 2023). Channels-last I/O; submodule names match rin_torch.py.

See docs/architectures/rin.md. The network's time input is the noise level gamma.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
from einops import rearrange

from architectures.layers_flax import timestep_embedding
from architectures.rin.config import RINConfig
from architectures.row_dense import RowDense

EPS = 1e-6  # every LayerNorm, as in the official code
_glorot = nn.initializers.xavier_uniform()  # Keras' default glorot-uniform, zero bias


def _dense(features: int, name: str | None = None) -> nn.Dense:
    return RowDense(features, kernel_init=_glorot, name=name)  # tokens folded into rows: faster XLA:CPU grads


def _mha_limit(d_in: int, heads: int, head_dim: int, d_out: int) -> tuple[float, float]:
    """Glorot-uniform limits of Keras-2 MultiHeadAttention (the official RIN's attention).

    Its EinsumDense kernels are 3-D: q/k/v (d_in, heads, head_dim), output (heads, head_dim,
    d_out). Keras-2's fans treat leading dims as a receptive field: fan_in + fan_out =
    d_in (heads + head_dim) for q/k/v and heads (head_dim + d_out) for the output, so
    limit = sqrt(6 / (fan_in + fan_out)) is 2-5x smaller than a 2-D xavier at RIN sizes.
    """
    return math.sqrt(6.0 / (d_in * (heads + head_dim))), math.sqrt(6.0 / (heads * (head_dim + d_out)))


def _uniform(limit: float):
    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -limit, limit)
    return init


def _norm(name: str | None = None, zero: bool = False) -> nn.LayerNorm:
    scale_init = nn.initializers.zeros if zero else nn.initializers.ones
    return nn.LayerNorm(epsilon=EPS, use_fast_variance=False, scale_init=scale_init, name=name)


def _trunc_normal(key, shape, dtype=jnp.float32):
    return 0.02 * jax.random.truncated_normal(key, -2.0, 2.0, shape, dtype)


def time_code(gamma: jax.Array, dim: int, scaling: float) -> jax.Array:
    """Sinusoid of gamma * scaling, dim values (sin half | cos half), standardized per vector (spec step 1)."""
    code = timestep_embedding(gamma.astype(jnp.float32) * scaling, dim, sin_first=True)
    centered = code - code.mean(-1, keepdims=True)
    return centered / jnp.sqrt(jnp.mean(centered**2, -1, keepdims=True))


class Attention(nn.Module):
    """Multi-head attention, q/k/v/o with bias; output has the query's width. Init: Keras-2 MHA
    fans over its 3-D kernels (see _mha_limit); the key/value input width is read at init. q/k/v/o
    are RowDense (tokens folded into rows, like every other projection here: faster XLA:CPU grads)."""

    d_q: int
    inner: int
    heads: int

    @nn.compact
    def __call__(self, x, ctx):
        head_dim = self.inner // self.heads
        q_limit, o_limit = _mha_limit(x.shape[-1], self.heads, head_dim, self.d_q)
        kv_limit, _ = _mha_limit(ctx.shape[-1], self.heads, head_dim, self.d_q)
        q = RowDense(self.inner, kernel_init=_uniform(q_limit), name="q")(x)
        k = RowDense(self.inner, kernel_init=_uniform(kv_limit), name="k")(ctx)
        v = RowDense(self.inner, kernel_init=_uniform(kv_limit), name="v")(ctx)
        split = lambda t: rearrange(t, "b n (h d) -> b n h d", h=self.heads)
        out = jax.nn.dot_product_attention(split(q), split(k), split(v))
        return RowDense(self.d_q, kernel_init=_uniform(o_limit), name="o")(rearrange(out, "b n h d -> b n (h d)"))


class FeedForward(nn.Module):
    dim: int
    hidden: int
    dropout: float = 0.0

    def setup(self):
        self.fc1, self.fc2 = _dense(self.hidden), _dense(self.dim)
        self.drop = nn.Dropout(self.dropout)

    def __call__(self, x, train: bool = False):
        return self.fc2(self.drop(nn.gelu(self.fc1(x), approximate=False), deterministic=not train))


class Layer(nn.Module):
    """Pre-LN transformer layer: x <- x + MHA(LN(x), kv); x <- x + FFN(LN(x)). kv = LN(x) for self-attention."""

    dim: int
    inner: int
    heads: int
    mlp_ratio: int
    dropout: float = 0.0
    drop_path: float = 0.0
    cross: bool = True

    def setup(self):
        self.attn_norm = _norm()
        self.attn = Attention(self.dim, self.inner, self.heads)
        if self.mlp_ratio > 0:
            self.ffn_norm = _norm()
            self.ffn = FeedForward(self.dim, self.mlp_ratio * self.dim, self.dropout)
        self.skip_path = nn.Dropout(self.drop_path, broadcast_dims=(1, 2))  # stochastic depth, per example

    def __call__(self, x, kv=None, train: bool = False):
        h = self.attn_norm(x)
        x = x + self.skip_path(self.attn(h, kv if self.cross else h), deterministic=not train)
        if self.mlp_ratio > 0:
            x = x + self.skip_path(self.ffn(self.ffn_norm(x), train), deterministic=not train)
        return x


class Block(nn.Module):
    """Read (latents attend to the interface), K process layers on the latents, write (spec step 5)."""

    config: RINConfig

    def setup(self):
        c = self.config
        self.read = Layer(c.latent_dim, c.rw_dim, c.rw_heads, c.latent_mlp_ratio)
        self.process = [Layer(c.latent_dim, c.latent_dim, c.latent_heads, c.latent_mlp_ratio,
                              c.dropout, c.drop_path, cross=False) for _ in range(c.process_layers)]
        self.write = Layer(c.interface_dim, c.rw_dim, c.rw_heads, c.tape_mlp_ratio)

    def __call__(self, x, z, train: bool = False):
        z = self.read(z, x)
        for layer in self.process:
            z = layer(z, train=train)
        return self.write(x, z), z


class SelfCondMLP(nn.Module):
    """MLP_res(z) = z + fc2(GELU(fc1(LN(z)))) on the previous step's latents (spec step 4)."""

    dim: int
    ratio: int

    def setup(self):
        self.norm = _norm()
        self.ffn = FeedForward(self.dim, self.ratio * self.dim)

    def __call__(self, z):
        return z + self.ffn(self.norm(z))


class TimeMLP(nn.Module):
    dim: int

    def setup(self):
        self.fc1, self.fc2 = _dense(self.dim), _dense(self.dim)

    def __call__(self, code):
        return self.fc2(nn.silu(self.fc1(code)))


class RIN(nn.Module):
    """__call__(x, t, y=None, context=None, latents=None, train=False) -> (prediction like x, latents (B, m, D_z))."""

    config: RINConfig

    def setup(self):
        c = self.config
        kernel = (c.temporal_patch, c.patch_size, c.patch_size) if c.modality == "video" else (c.patch_size,) * 2
        self.time_mlp = TimeMLP(c.latent_dim)
        self.class_emb = _dense(c.latent_dim)  # Dense of the one-hot label, null label last
        self.stem = nn.Conv(c.interface_dim, kernel, strides=kernel, padding="VALID", kernel_init=_glorot)
        self.stem_norm = _norm()
        self.pos_emb = self.param("pos_emb", _trunc_normal, (c.num_tokens + c.num_context_tokens, c.interface_dim))
        self.latents = self.param("latents", _trunc_normal, (c.num_latents - 2, c.latent_dim))
        self.sc_mlp = SelfCondMLP(c.latent_dim, c.latent_mlp_ratio)
        self.sc_norm = _norm(zero=True)  # LN0 starts at zero: Z_prev has no effect at init
        self.blocks = [Block(c) for _ in range(c.num_blocks)]
        self.readout_norm = _norm()
        self.readout = _dense(c.patch_dim)

    def tokenize(self, x, offset: int):
        """Patch stem -> tokens -> LN -> + learned positions (spec step 3)."""
        if x.ndim == 5:  # zero-pad frames at the end to a multiple of s_t (TF 'SAME' for s_t <= 2)
            x = jnp.pad(x, ((0, 0), (0, -x.shape[1] % self.config.temporal_patch), (0, 0), (0, 0), (0, 0)))
        tokens = self.stem_norm(rearrange(self.stem(x), "b ... d -> b (...) d"))
        return tokens + self.pos_emb[offset:offset + tokens.shape[1]]

    def init_latents(self, t, y, prev):
        """Learned latents, time token, class token; + LN0(MLP_res(Z_prev)) (spec step 4)."""
        c = self.config
        batch = t.shape[0]
        time_tok = self.time_mlp(time_code(t, c.latent_dim // 4, c.time_scaling))
        if y is None:
            y = jnp.full((batch,), c.num_classes, dtype=jnp.int32)
        class_tok = self.class_emb(jax.nn.one_hot(y, c.num_classes + 1, dtype=time_tok.dtype))
        learned = jnp.broadcast_to(self.latents[None], (batch, *self.latents.shape))
        z = jnp.concatenate([learned, time_tok[:, None], class_tok[:, None]], axis=1)
        if prev is None:
            prev = jnp.zeros_like(z)
        return z + self.sc_norm(self.sc_mlp(prev))

    def readout_tokens(self, x, frames: int | None):
        c = self.config
        out = self.readout(self.readout_norm(x[:, :c.num_tokens]))
        if frames is None:
            return rearrange(out, "b (h w) (p q c) -> b (h p) (w q) c", h=c.grid, p=c.patch_size, q=c.patch_size)
        out = rearrange(out, "b (t h w) (s p q c) -> b (t s) (h p) (w q) c",
                        h=c.grid, w=c.grid, s=c.temporal_patch, p=c.patch_size, q=c.patch_size)
        return out[:, :frames]

    def __call__(self, x, t, y=None, context=None, latents=None, train: bool = False):
        c = self.config
        video = x.ndim == 5
        tape = self.tokenize(x, 0)
        if c.cond_frames:
            if context is None:
                raise ValueError(f"this RIN conditions on {c.cond_frames} frames: pass context (B, T, H, W, C)")
            tape = jnp.concatenate([tape, self.tokenize(context, c.num_tokens)], axis=1)
        elif context is not None:
            raise ValueError("this RIN has no conditioning frames (cond_frames=0): context must be None")
        z = self.init_latents(t, y, latents)
        for block in self.blocks:
            tape, z = block(tape, z, train)
        return self.readout_tokens(tape, x.shape[1] if video else None), z
