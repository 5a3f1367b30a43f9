"""RIN in PyTorch (Jabri, Fleet, Chen 2023). Channels-first I/O; submodule names match rin_flax.py.

See docs/architectures/rin.md. The network's time input is the noise level gamma.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from architectures.layers_torch import timestep_embedding
from architectures.rin.config import RINConfig

EPS = 1e-6  # every LayerNorm, as in the official code


def _dense(d_in: int, d_out: int) -> nn.Linear:
    layer = nn.Linear(d_in, d_out)
    nn.init.xavier_uniform_(layer.weight)  # Keras' default glorot-uniform, zero bias
    nn.init.zeros_(layer.bias)
    return layer


def _mha_limit(d_in: int, heads: int, head_dim: int, d_out: int) -> tuple[float, float]:
    """Glorot-uniform limits of Keras-2 MultiHeadAttention (the official RIN's attention).

    Its EinsumDense kernels are 3-D: q/k/v (d_in, heads, head_dim), output (heads, head_dim,
    d_out). Keras-2's fans treat leading dims as a receptive field: fan_in + fan_out =
    d_in (heads + head_dim) for q/k/v and heads (head_dim + d_out) for the output, so
    limit = sqrt(6 / (fan_in + fan_out)) is 2-5x smaller than a 2-D xavier at RIN sizes.
    """
    return math.sqrt(6.0 / (d_in * (heads + head_dim))), math.sqrt(6.0 / (heads * (head_dim + d_out)))


def _mha_dense(d_in: int, d_out: int, limit: float) -> nn.Linear:
    layer = nn.Linear(d_in, d_out)
    nn.init.uniform_(layer.weight, -limit, limit)
    nn.init.zeros_(layer.bias)
    return layer


def _trunc_normal(*shape: int) -> nn.Parameter:
    return nn.Parameter(nn.init.trunc_normal_(torch.empty(*shape), std=0.02, a=-0.04, b=0.04))


def time_code(gamma: torch.Tensor, dim: int, scaling: float) -> torch.Tensor:
    """Sinusoid of gamma * scaling, dim values (sin half | cos half), standardized per vector (spec step 1)."""
    code = timestep_embedding(gamma.float() * scaling, dim, sin_first=True)
    centered = code - code.mean(-1, keepdim=True)
    return centered / centered.pow(2).mean(-1, keepdim=True).sqrt()


class Attention(nn.Module):
    """Multi-head attention, q/k/v/o with bias; output has the query's width. Init: Keras-2 MHA
    fans over its 3-D kernels (see _mha_limit)."""

    def __init__(self, d_q: int, d_kv: int, inner: int, heads: int):
        super().__init__()
        self.heads = heads
        head_dim = inner // heads
        q_limit, o_limit = _mha_limit(d_q, heads, head_dim, d_q)
        kv_limit, _ = _mha_limit(d_kv, heads, head_dim, d_q)
        self.q = _mha_dense(d_q, inner, q_limit)
        self.k, self.v = _mha_dense(d_kv, inner, kv_limit), _mha_dense(d_kv, inner, kv_limit)
        self.o = _mha_dense(inner, d_q, o_limit)

    def forward(self, x: torch.Tensor, ctx: torch.Tensor) -> torch.Tensor:
        split = lambda t: rearrange(t, "b n (h d) -> b h n d", h=self.heads)
        out = F.scaled_dot_product_attention(split(self.q(x)), split(self.k(ctx)), split(self.v(ctx)))
        return self.o(rearrange(out, "b h n d -> b n (h d)"))


class FeedForward(nn.Module):
    def __init__(self, dim: int, hidden: int, dropout: float = 0.0):
        super().__init__()
        self.fc1, self.fc2 = _dense(dim, hidden), _dense(hidden, dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.drop(F.gelu(self.fc1(x))))


class DropPath(nn.Module):
    """Stochastic depth: zero a residual branch per example, rescale the kept ones."""

    def __init__(self, rate: float):
        super().__init__()
        self.rate = rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.rate == 0.0:
            return x
        keep = torch.rand(x.shape[0], *([1] * (x.ndim - 1)), device=x.device, dtype=x.dtype) >= self.rate
        return x * keep / (1.0 - self.rate)


class Layer(nn.Module):
    """Pre-LN transformer layer: x <- x + MHA(LN(x), kv); x <- x + FFN(LN(x)). kv = LN(x) for self-attention."""

    def __init__(self, dim: int, d_kv: int, inner: int, heads: int, mlp_ratio: int,
                 dropout: float = 0.0, drop_path: float = 0.0, cross: bool = True):
        super().__init__()
        self.cross = cross
        self.attn_norm = nn.LayerNorm(dim, eps=EPS)
        self.attn = Attention(dim, d_kv, inner, heads)
        self.ffn_norm = nn.LayerNorm(dim, eps=EPS) if mlp_ratio > 0 else None
        self.ffn = FeedForward(dim, mlp_ratio * dim, dropout) if mlp_ratio > 0 else None
        self.skip_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor, kv: torch.Tensor | None = None) -> torch.Tensor:
        h = self.attn_norm(x)
        x = x + self.skip_path(self.attn(h, kv if self.cross else h))
        if self.ffn is not None:
            x = x + self.skip_path(self.ffn(self.ffn_norm(x)))
        return x


class Block(nn.Module):
    """Read (latents attend to the interface), K process layers on the latents, write (spec step 5)."""

    def __init__(self, c: RINConfig):
        super().__init__()
        self.read = Layer(c.latent_dim, c.interface_dim, c.rw_dim, c.rw_heads, c.latent_mlp_ratio)
        self.process = nn.ModuleList(
            Layer(c.latent_dim, c.latent_dim, c.latent_dim, c.latent_heads, c.latent_mlp_ratio,
                  c.dropout, c.drop_path, cross=False)
            for _ in range(c.process_layers))
        self.write = Layer(c.interface_dim, c.latent_dim, c.rw_dim, c.rw_heads, c.tape_mlp_ratio)

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.read(z, x)
        for layer in self.process:
            z = layer(z)
        return self.write(x, z), z


class SelfCondMLP(nn.Module):
    """MLP_res(z) = z + fc2(GELU(fc1(LN(z)))) on the previous step's latents (spec step 4)."""

    def __init__(self, dim: int, ratio: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim, eps=EPS)
        self.ffn = FeedForward(dim, ratio * dim)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return z + self.ffn(self.norm(z))


class TimeMLP(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.fc1, self.fc2 = _dense(dim // 4, dim), _dense(dim, dim)

    def forward(self, code: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.silu(self.fc1(code.to(self.fc1.weight.dtype))))  # the code is computed in float32


class RIN(nn.Module):
    """forward(x, t, y=None, context=None, latents=None) -> (prediction like x, latents (B, m, D_z))."""

    def __init__(self, config: RINConfig):
        super().__init__()
        c = self.config = config
        video = c.modality == "video"
        kernel = (c.temporal_patch, c.patch_size, c.patch_size) if video else (c.patch_size, c.patch_size)
        self.time_mlp = TimeMLP(c.latent_dim)
        self.class_emb = _dense(c.num_classes + 1, c.latent_dim)  # Dense of the one-hot label, null label last
        self.stem = (nn.Conv3d if video else nn.Conv2d)(c.channels, c.interface_dim, kernel, stride=kernel)
        nn.init.xavier_uniform_(self.stem.weight)
        nn.init.zeros_(self.stem.bias)
        self.stem_norm = nn.LayerNorm(c.interface_dim, eps=EPS)
        self.pos_emb = _trunc_normal(c.num_tokens + c.num_context_tokens, c.interface_dim)
        self.latents = _trunc_normal(c.num_latents - 2, c.latent_dim)
        self.sc_mlp = SelfCondMLP(c.latent_dim, c.latent_mlp_ratio)
        self.sc_norm = nn.LayerNorm(c.latent_dim, eps=EPS)
        nn.init.zeros_(self.sc_norm.weight)  # LN0 starts at zero: Z_prev has no effect at init
        self.blocks = nn.ModuleList(Block(c) for _ in range(c.num_blocks))
        self.readout_norm = nn.LayerNorm(c.interface_dim, eps=EPS)
        self.readout = _dense(c.interface_dim, c.patch_dim)

    def tokenize(self, x: torch.Tensor, offset: int) -> torch.Tensor:
        """Patch stem -> tokens -> LN -> + learned positions (spec step 3)."""
        if x.ndim == 5:  # zero-pad frames at the end to a multiple of s_t (TF 'SAME' for s_t <= 2)
            x = F.pad(x, (0, 0, 0, 0, 0, -x.shape[2] % self.config.temporal_patch))
        tokens = self.stem_norm(rearrange(self.stem(x), "b d ... -> b (...) d"))
        return tokens + self.pos_emb[offset:offset + tokens.shape[1]]

    def init_latents(self, t: torch.Tensor, y: torch.Tensor | None, prev: torch.Tensor | None) -> torch.Tensor:
        """Learned latents, time token, class token; + LN0(MLP_res(Z_prev)) (spec step 4)."""
        c = self.config
        batch = t.shape[0]
        time_tok = self.time_mlp(time_code(t, c.latent_dim // 4, c.time_scaling))
        if y is None:
            y = torch.full((batch,), c.num_classes, dtype=torch.long, device=t.device)
        class_tok = self.class_emb(F.one_hot(y.long(), c.num_classes + 1).to(time_tok.dtype))
        learned = self.latents[None].expand(batch, -1, -1)
        z = torch.cat([learned, time_tok[:, None], class_tok[:, None]], dim=1)
        if prev is None:
            prev = torch.zeros_like(z)
        return z + self.sc_norm(self.sc_mlp(prev))

    def readout_tokens(self, x: torch.Tensor, frames: int | None) -> torch.Tensor:
        c = self.config
        out = self.readout(self.readout_norm(x[:, :c.num_tokens]))
        if frames is None:
            return rearrange(out, "b (h w) (p q c) -> b c (h p) (w q)", h=c.grid, p=c.patch_size, q=c.patch_size)
        out = rearrange(out, "b (t h w) (s p q c) -> b c (t s) (h p) (w q)",
                        h=c.grid, w=c.grid, s=c.temporal_patch, p=c.patch_size, q=c.patch_size)
        return out[:, :, :frames]

    def forward(self, x, t, y=None, context=None, latents=None):
        c = self.config
        video = x.ndim == 5
        tape = self.tokenize(x, 0)
        if c.cond_frames:
            if context is None:
                raise ValueError(f"this RIN conditions on {c.cond_frames} frames: pass context (B, C, T, H, W)")
            tape = torch.cat([tape, self.tokenize(context, c.num_tokens)], dim=1)
        elif context is not None:
            raise ValueError("this RIN has no conditioning frames (cond_frames=0): context must be None")
        z = self.init_latents(t, y, latents)
        for block in self.blocks:
            tape, z = block(tape, z)
        return self.readout_tokens(tape, x.shape[2] if video else None), z
