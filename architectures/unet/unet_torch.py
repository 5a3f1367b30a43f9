"""ADM U-Net (Dhariwal & Nichol 2021) and its space-time video extension (Ho et al. 2022), PyTorch.

Channels-first: x (B, C, H, W) or (B, C, T, H, W). See config.py for the video conventions.
Submodule names match unet_flax.py.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from architectures.layers_torch import conv3x3, timestep_embedding, zero_
from architectures.unet import layout
from architectures.unet.blocks_torch import Attention, Downsample, ResBlock, SpaceTimeAttention, Upsample
from architectures.unet.config import UNetConfig


class Stage(nn.Module):
    """One entry of the encoder or decoder list: [ResBlock] [attention] [resampler]."""

    def __init__(self, cfg: UNetConfig, spec: layout.Stage):
        super().__init__()
        block = dict(emb_dim=cfg.emb_channels, groups=cfg.norm_groups, dropout=cfg.dropout,
                     scale_shift=cfg.use_scale_shift_norm)
        self.res = ResBlock(spec.cin, spec.cout, **block) if spec.res else None
        self.attn = attention(cfg, spec.cout) if spec.attn else None
        self.resample = None
        if spec.resample != "none" and cfg.resblock_updown:
            self.resample = ResBlock(spec.cout, spec.cout, resample=spec.resample, **block)
        elif spec.resample != "none":
            self.resample = (Upsample if spec.resample == "up" else Downsample)(spec.cout)

    def forward(self, h, emb, mask=None):
        if self.res is not None:
            h = self.res(h, emb)
        if self.attn is not None:
            h = self.attn(h, mask) if isinstance(self.attn, SpaceTimeAttention) else self.attn(h)
        if self.resample is not None:
            h = self.resample(h, emb)
        return h


def attention(cfg: UNetConfig, channels: int) -> nn.Module:
    args = (channels, cfg.heads(channels), cfg.norm_groups, cfg.use_new_attention_order)
    return SpaceTimeAttention(*args, frames=cfg.frames) if cfg.frames else Attention(*args)


class UNet(nn.Module):
    def __init__(self, config: UNetConfig):
        super().__init__()
        cfg = self.config = config
        c, e = cfg.model_channels, cfg.emb_channels
        self.time_in, self.time_out = nn.Linear(c, e), nn.Linear(e, e)
        self.label_emb = nn.Embedding(cfg.num_classes + 1, e) if cfg.num_classes else None  # + null label
        self.input_conv = conv3x3(cfg.net_in_channels, cfg.level_channels[0])
        self.down = nn.ModuleList(Stage(cfg, s) for s in layout.encoder(cfg))
        ch, _ = layout.bottom(cfg)
        block = dict(emb_dim=e, groups=cfg.norm_groups, dropout=cfg.dropout, scale_shift=cfg.use_scale_shift_norm)
        self.mid_in, self.mid_attn, self.mid_out = ResBlock(ch, ch, **block), attention(cfg, ch), ResBlock(ch, ch, **block)
        self.up = nn.ModuleList(Stage(cfg, s) for s in layout.decoder(cfg))
        self.out_norm = nn.GroupNorm(cfg.norm_groups, cfg.level_channels[0])
        self.out_conv = zero_(conv3x3(cfg.level_channels[0], cfg.out_channels))

    def embed(self, t, y):
        cfg = self.config
        emb = self.time_out(F.silu(self.time_in(timestep_embedding(t * cfg.time_scaling, cfg.model_channels))))
        if self.label_emb is None:
            if y is not None:
                raise ValueError("y given to an unconditional model (num_classes=0)")
            return emb
        y = torch.full_like(t, cfg.num_classes, dtype=torch.long) if y is None else y.long()  # null label
        return emb + self.label_emb(y)

    def frame_mask(self, batch: int, independent_frames, device):
        """(B, T, T) allowed temporal pairs, or None when no example has independent frames."""
        ind = self.config.independent_frames if independent_frames is None else independent_frames
        if ind is False:
            return None
        ind = torch.as_tensor(ind, dtype=torch.bool, device=device).expand(batch)
        eye = torch.eye(self.config.frames, dtype=torch.bool, device=device)
        return eye | ~ind[:, None, None]

    def video_input(self, x, context):
        """(B, C, Tp, H, W) noisy + (B, C, Tc, H, W) clean -> (B*T, 2C+1, H, W) frames (config.py)."""
        if context is not None:
            ones = torch.ones_like(context[:, :1])
            noisy = torch.cat([torch.zeros_like(context), x], dim=2)
            clean = torch.cat([context, torch.zeros_like(x)], dim=2)
            mask = torch.cat([ones, torch.zeros_like(x[:, :1])], dim=2)
            x = torch.cat([noisy, clean, mask], dim=1)
        return rearrange(x, "b c t h w -> (b t) c h w")

    def forward(self, x, t, y=None, context=None, independent_frames=None):
        cfg = self.config
        if (context is not None) != bool(cfg.cond_frames):
            raise ValueError(f"context must be given exactly when cond_frames > 0 (cond_frames={cfg.cond_frames})")
        emb = self.embed(t, y)
        mask = self.frame_mask(x.shape[0], independent_frames, x.device) if cfg.frames else None
        h = self.input_conv(self.video_input(x, context) if cfg.frames else x)
        skips = [h]
        for stage in self.down:
            h = stage(h, emb, mask)
            skips.append(h)
        h = self.mid_in(h, emb)
        h = self.mid_attn(h, mask) if cfg.frames else self.mid_attn(h)
        h = self.mid_out(h, emb)
        for stage in self.up:
            h = stage(torch.cat([h, skips.pop()], dim=1), emb, mask)
        out = self.out_conv(F.silu(self.out_norm(h)))
        if cfg.frames:
            out = rearrange(out, "(b t) c h w -> b c t h w", t=cfg.frames)[:, :, cfg.cond_frames:]
        return out
