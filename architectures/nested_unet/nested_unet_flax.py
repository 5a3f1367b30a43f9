"""NestedUNet (Gu et al. 2024; ml-mdm models/unet.py + nested_unet.py) in Flax, channels-last.

Same structure and submodule names as nested_unet_torch.py: `NestedUNet(config)` is the
outermost U-Net and `inner` the next level, recursively; one prediction per resolution.
"""

from __future__ import annotations

import jax.numpy as jnp
from flax import linen as nn

from architectures.nested_unet.blocks_flax import Block, Embed, conv3x3, group_norm
from architectures.nested_unet.config import NestedUNetConfig


class NestedUNet(nn.Module):
    config: NestedUNetConfig
    index: int = 0

    def setup(self):
        cfg, lv = self.config, self.config.levels[self.index]
        self.innermost = self.index == len(cfg.levels) - 1
        e, tok = lv.emb_dim, cfg.token_dim
        self.time_emb, self.res_emb = Embed(e), Embed(e, zero_out=True)
        if self.innermost and cfg.cond_dim:
            self.cond_proj = nn.Dense(cfg.cond_proj_dim) if cfg.cond_proj_dim else None
            self.cond_emb = nn.Dense(e, use_bias=False)
        if self.innermost and cfg.num_classes:
            self.label_emb = nn.Embed(cfg.num_classes + 1, e)
        blk = dict(heads=cfg.num_heads, groups=cfg.norm_groups, dropout=cfg.dropout, ffn=lv.attention_ffn)
        ch = lv.channels
        self.conv_in = conv3x3(ch[0])
        skips, c, down = [ch[0]], ch[0], []
        for i, n in enumerate(lv.num_resnets):
            last = i == len(ch) - 1
            down.append(Block((c,) + (ch[i],) * (n - 1), ch[i], lv.attn(i), "none" if last else "down",
                              token_dim=tok if lv.attn(i) else 0, **blk))
            c = ch[i]
            skips += [c] * (n + (0 if last else 1))
        self.down = down
        if lv.mid_blocks:
            self.mid = [Block((c,), c, 1, "none", token_dim=tok, **blk), Block((c,), c, 0, "none", token_dim=0, **blk)]
        if not self.innermost:
            self.inner = NestedUNet(cfg, self.index + 1)
            self.in_adapter = conv3x3(cfg.levels[self.index + 1].channels[0], zero=True)
            self.out_adapter = conv3x3(c, zero=True)
        up = []
        for i in reversed(range(len(ch))):
            cins = []
            for _ in range(lv.num_resnets[i] + 1):
                cins.append(c + skips.pop())
                c = ch[i]
            up.append(Block(tuple(cins), ch[i], lv.attn(i), "up" if i else "none",
                            token_dim=tok if lv.attn(i) else 0, **blk))
        self.up = up
        self.norm_out = group_norm(cfg.norm_groups)
        self.conv_out = conv3x3(cfg.in_channels, zero=True)

    def conditioning(self, batch: int, y, context, context_mask):
        """(embedding added to every level's time embedding or None, tokens, cross-attention mask)."""
        if not self.innermost:
            return self.inner.conditioning(batch, y, context, context_mask)
        cfg = self.config
        if cfg.num_classes:
            y = jnp.full((batch,), cfg.num_classes, jnp.int32) if y is None else y.astype(jnp.int32)
            return self.label_emb(y), None, None
        if y is not None:
            raise ValueError("y given to a model without class conditioning (num_classes=0)")
        if not cfg.cond_dim:
            return None, None, None
        if context is None:
            raise ValueError("this NestedUNet is conditioned on tokens: context (B, L, D) is required")
        tokens = context if self.cond_proj is None else self.cond_proj(context)
        if context_mask is None:
            pooled = tokens.mean(axis=1)
        else:  # masked mean-pool (ml-mdm forward_conditioning)
            m = context_mask.astype(tokens.dtype)
            pooled = (m[..., None] * tokens).sum(axis=1) / m.sum(axis=1, keepdims=True)
        mask = context_mask if cfg.masked_cross_attention else None
        return self.cond_emb(pooled), tokens, mask

    def denoise(self, xs, t, cond, tokens, mask, feat=None, train=False):
        """xs: this level's x_t and the inner levels'; returns (predictions, top feature map)."""
        lv = self.config.levels[self.index]
        temb = self.time_emb(t * self.config.time_scaling)
        temb = temb + self.res_emb(jnp.full(t.shape, float(lv.resolution), jnp.float32))
        if cond is not None:
            temb = temb + cond
        x = xs[0]
        if lv.normalize_input:
            x = x / jnp.std(x, axis=(1, 2, 3), ddof=1, keepdims=True)
        h = self.conv_in(x)
        if feat is not None:
            h = h + feat
        skips = [h]
        for block in self.down:
            h, outs = block(h, temb, tokens, mask, train=train)
            skips += outs
        if lv.mid_blocks:
            for block in self.mid:
                h, _ = block(h, temb, tokens, mask, train=train)
        preds = []
        if not self.innermost:
            preds, inner_top = self.inner.denoise(xs[1:], t, cond, tokens, mask, self.in_adapter(h), train)
            h = h + self.out_adapter(inner_top)
        for block in self.up:
            h, _ = block(h, temb, tokens, mask, skips, train=train)
        return [self.conv_out(nn.silu(self.norm_out(h)))] + preds, h

    def __call__(self, x, t, y=None, context=None, context_mask=None, train=False):
        xs = list(x) if isinstance(x, (list, tuple)) else [x]
        if len(xs) != len(self.config.levels):
            raise ValueError(f"NestedUNet takes {len(self.config.levels)} inputs (one per resolution), got {len(xs)}")
        cond, tokens, mask = self.conditioning(xs[0].shape[0], y, context, context_mask)
        return self.denoise(xs, t, cond, tokens, mask, train=train)[0]
