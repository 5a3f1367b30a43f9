"""ADM U-Net (Dhariwal & Nichol 2021) and its space-time video extension (Ho et al. 2022), Flax.

Channels-last: x (B, H, W, C) or (B, T, H, W, C). See config.py for the video conventions.
Submodule names match unet_torch.py.
"""

from __future__ import annotations

import jax.numpy as jnp
from einops import rearrange
from flax import linen as nn

from architectures.layers_flax import conv3x3, group_norm, timestep_embedding
from architectures.unet import layout
from architectures.unet.blocks_flax import Attention, Downsample, ResBlock, SpaceTimeAttention, Upsample
from architectures.unet.config import UNetConfig


def _block(cfg: UNetConfig) -> dict:
    return dict(groups=cfg.norm_groups, dropout=cfg.dropout, scale_shift=cfg.use_scale_shift_norm)


def attention(cfg: UNetConfig, channels: int) -> nn.Module:
    args = (channels, cfg.heads(channels), cfg.norm_groups, cfg.use_new_attention_order)
    return SpaceTimeAttention(*args, frames=cfg.frames) if cfg.frames else Attention(*args)


class Stage(nn.Module):
    """One entry of the encoder or decoder list: [ResBlock] [attention] [resampler]."""

    cfg: UNetConfig
    spec: layout.Stage

    def setup(self):
        cfg, spec = self.cfg, self.spec
        self.res = ResBlock(spec.cin, spec.cout, **_block(cfg)) if spec.res else None
        self.attn = attention(cfg, spec.cout) if spec.attn else None
        if spec.resample == "none":
            self.resample = None
        elif cfg.resblock_updown:
            self.resample = ResBlock(spec.cout, spec.cout, resample=spec.resample, **_block(cfg))
        else:
            self.resample = (Upsample if spec.resample == "up" else Downsample)(spec.cout)

    def __call__(self, h, emb, mask=None, train=False):
        if self.res is not None:
            h = self.res(h, emb, train)
        if self.attn is not None:
            h = self.attn(h, mask) if self.cfg.frames else self.attn(h)
        if self.resample is not None:
            h = self.resample(h, emb, train)
        return h


class UNet(nn.Module):
    config: UNetConfig

    def setup(self):
        cfg = self.config
        self.time_in, self.time_out = nn.Dense(cfg.emb_channels), nn.Dense(cfg.emb_channels)
        self.label_emb = nn.Embed(cfg.num_classes + 1, cfg.emb_channels) if cfg.num_classes else None  # + null
        self.input_conv = conv3x3(cfg.level_channels[0])
        self.down = [Stage(cfg, s) for s in layout.encoder(cfg)]
        ch, _ = layout.bottom(cfg)
        self.mid_in, self.mid_out = ResBlock(ch, ch, **_block(cfg)), ResBlock(ch, ch, **_block(cfg))
        self.mid_attn = attention(cfg, ch)
        self.up = [Stage(cfg, s) for s in layout.decoder(cfg)]
        self.out_norm = group_norm(cfg.norm_groups)
        self.out_conv = conv3x3(cfg.out_channels, zero=True)

    def embed(self, t, y):
        cfg = self.config
        emb = self.time_out(nn.silu(self.time_in(timestep_embedding(t * cfg.time_scaling, cfg.model_channels))))
        if self.label_emb is None:
            if y is not None:
                raise ValueError("y given to an unconditional model (num_classes=0)")
            return emb
        y = jnp.full(t.shape, cfg.num_classes, jnp.int32) if y is None else y.astype(jnp.int32)  # null label
        return emb + self.label_emb(y)

    def frame_mask(self, batch: int, independent_frames):
        """(B, T, T) allowed temporal pairs, or None when no example has independent frames."""
        ind = self.config.independent_frames if independent_frames is None else independent_frames
        if ind is False:
            return None
        ind = jnp.broadcast_to(jnp.asarray(ind, bool), (batch,))
        eye = jnp.eye(self.config.frames, dtype=bool)
        return eye[None] | ~ind[:, None, None]

    def video_input(self, x, context):
        """(B, Tp, H, W, C) noisy + (B, Tc, H, W, C) clean -> (B*T, H, W, 2C+1) frames (config.py)."""
        if context is not None:
            noisy = jnp.concatenate([jnp.zeros_like(context), x], axis=1)
            clean = jnp.concatenate([context, jnp.zeros_like(x)], axis=1)
            mask = jnp.concatenate([jnp.ones_like(context[..., :1]), jnp.zeros_like(x[..., :1])], axis=1)
            x = jnp.concatenate([noisy, clean, mask], axis=-1)
        return rearrange(x, "b t h w c -> (b t) h w c")

    def __call__(self, x, t, y=None, context=None, train=False, independent_frames=None):
        cfg = self.config
        if (context is not None) != bool(cfg.cond_frames):
            raise ValueError(f"context must be given exactly when cond_frames > 0 (cond_frames={cfg.cond_frames})")
        emb = self.embed(t, y)
        mask = self.frame_mask(x.shape[0], independent_frames) if cfg.frames else None
        h = self.input_conv(self.video_input(x, context) if cfg.frames else x)
        skips = [h]
        for stage in self.down:
            h = stage(h, emb, mask, train)
            skips.append(h)
        h = self.mid_in(h, emb, train)
        h = self.mid_attn(h, mask) if cfg.frames else self.mid_attn(h)
        h = self.mid_out(h, emb, train)
        for stage in self.up:
            h = stage(jnp.concatenate([h, skips.pop()], axis=-1), emb, mask, train)
        out = self.out_conv(nn.silu(self.out_norm(h)))
        if cfg.frames:
            out = rearrange(out, "(b t) h w c -> b t h w c", t=cfg.frames)[:, cfg.cond_frames:]
        return out
