"""NestedUNet (Gu et al. 2024; ml-mdm models/unet.py + nested_unet.py) in PyTorch, channels-first.

`NestedUNet(config)` is the outermost U-Net; its `inner` is the next level, recursively. The
call takes one noisy image per resolution (highest first) and returns one v-prediction per
resolution. Submodule names match nested_unet_flax.py.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from architectures.nested_unet.blocks_torch import Block, Embed, conv3x3, zero_
from architectures.nested_unet.config import NestedUNetConfig


class NestedUNet(nn.Module):
    def __init__(self, config: NestedUNetConfig, index: int = 0):
        super().__init__()
        cfg, lv = config, config.levels[index]
        self.config, self.index, self.level = cfg, index, lv
        innermost = index == len(cfg.levels) - 1
        e, tok = lv.emb_dim, cfg.token_dim
        self.time_emb, self.res_emb = Embed(e), Embed(e, zero_out=True)  # time; resolution micro-conditioning
        if innermost and cfg.cond_dim:  # the conditioning is computed once, by the innermost U-Net
            self.cond_proj = nn.Linear(cfg.cond_dim, cfg.cond_proj_dim) if cfg.cond_proj_dim else None
            self.cond_emb = nn.Linear(tok, e, bias=False)
        if innermost and cfg.num_classes:
            self.label_emb = nn.Embedding(cfg.num_classes + 1, e)  # + the null label
        blk = dict(heads=cfg.num_heads, groups=cfg.norm_groups, dropout=cfg.dropout, ffn=lv.attention_ffn)
        ch = lv.channels
        self.conv_in = conv3x3(cfg.in_channels, ch[0])
        skips, c, self.down = [ch[0]], ch[0], nn.ModuleList()
        for i, n in enumerate(lv.num_resnets):
            last = i == len(ch) - 1
            self.down.append(Block([c] + [ch[i]] * (n - 1), ch[i], e, lv.attn(i), "none" if last else "down",
                                   token_dim=tok if lv.attn(i) else 0, **blk))
            c = ch[i]
            skips += [c] * (n + (0 if last else 1))
        if lv.mid_blocks:
            self.mid = nn.ModuleList([Block([c], c, e, 1, "none", token_dim=tok, **blk),
                                      Block([c], c, e, 0, "none", token_dim=0, **blk)])
        if not innermost:
            inner_c = cfg.levels[index + 1].channels[0]
            self.inner = NestedUNet(cfg, index + 1)
            self.in_adapter, self.out_adapter = zero_(conv3x3(c, inner_c)), zero_(conv3x3(inner_c, c))
        self.up = nn.ModuleList()
        for i in reversed(range(len(ch))):
            cins = []
            for _ in range(lv.num_resnets[i] + 1):
                cins.append(c + skips.pop())
                c = ch[i]
            self.up.append(Block(cins, ch[i], e, lv.attn(i), "up" if i else "none",
                                 token_dim=tok if lv.attn(i) else 0, **blk))
        self.norm_out = nn.GroupNorm(cfg.norm_groups, c)
        self.conv_out = zero_(conv3x3(c, cfg.in_channels))

    # -- conditioning (innermost level) --------------------------------------------------------
    def conditioning(self, batch: int, y, context, context_mask, device):
        """(embedding added to every level's time embedding or None, tokens, cross-attention mask)."""
        if self.index < len(self.config.levels) - 1:
            return self.inner.conditioning(batch, y, context, context_mask, device)
        cfg = self.config
        if cfg.num_classes:
            y = torch.full((batch,), cfg.num_classes, device=device) if y is None else y
            return self.label_emb(y.long()), None, None
        if y is not None:
            raise ValueError("y given to a model without class conditioning (num_classes=0)")
        if not cfg.cond_dim:
            return None, None, None
        if context is None:
            raise ValueError("this NestedUNet is conditioned on tokens: context (B, L, D) is required")
        tokens = context if self.cond_proj is None else self.cond_proj(context)
        if context_mask is None:
            pooled = tokens.mean(dim=1)
        else:  # masked mean-pool (ml-mdm forward_conditioning)
            m = context_mask.to(tokens.dtype)
            pooled = (m[..., None] * tokens).sum(dim=1) / m.sum(dim=1, keepdim=True)
        mask = context_mask if cfg.masked_cross_attention else None
        return self.cond_emb(pooled), tokens, mask

    # -- one level ---------------------------------------------------------------------------------
    def denoise(self, xs, t, cond, tokens, mask, feat=None):
        """xs: this level's x_t and the inner levels'; returns (predictions, top feature map)."""
        lv = self.level
        temb = self.time_emb(t * self.config.time_scaling)
        temb = temb + self.res_emb(torch.full_like(t, float(lv.resolution)))
        if cond is not None:
            temb = temb + cond
        x = xs[0]
        if lv.normalize_input:
            x = x / x.std(dim=(1, 2, 3), keepdim=True)
        h = self.conv_in(x)
        if feat is not None:
            h = h + feat
        skips = [h]
        for block in self.down:
            h, outs = block(h, temb, tokens, mask)
            skips += outs
        if lv.mid_blocks:
            for block in self.mid:
                h, _ = block(h, temb, tokens, mask)
        preds = []
        if hasattr(self, "inner"):
            preds, inner_top = self.inner.denoise(xs[1:], t, cond, tokens, mask, self.in_adapter(h))
            h = h + self.out_adapter(inner_top)
        for block in self.up:
            h, _ = block(h, temb, tokens, mask, skips)
        return [self.conv_out(F.silu(self.norm_out(h)))] + preds, h

    def forward(self, x, t, y=None, context=None, context_mask=None):
        xs = list(x) if isinstance(x, (list, tuple)) else [x]
        if len(xs) != len(self.config.levels):
            raise ValueError(f"NestedUNet takes {len(self.config.levels)} inputs (one per resolution), got {len(xs)}")
        cond, tokens, mask = self.conditioning(xs[0].shape[0], y, context, context_mask, xs[0].device)
        return self.denoise(xs, t, cond, tokens, mask)[0]

