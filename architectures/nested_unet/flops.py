"""Analytic multiply-accumulates of one NestedUNet forward pass (all resolutions), stdlib only.

Same conventions as architectures/unet/flops.py: a conv costs out_elements x C_in x k x k (all
taps), a linear rows x in x out, attention QK^T and AV each L x S x d per head; biases, norms,
activations, softmax, resampling, pooling and the embedding lookup are free.
"""

from __future__ import annotations

from collections import Counter

from architectures.nested_unet.config import LevelConfig, NestedUNetConfig


def _conv(b: int, side: int, cin: int, cout: int, k: int = 3) -> int:
    return b * side * side * cin * cout * k * k


def _resnet(b: int, side: int, cin: int, cout: int, emb: int) -> Counter:
    conv = _conv(b, side, cin, cout) + _conv(b, side, cout, cout) + (_conv(b, side, cin, cout, 1) if cin != cout else 0)
    return Counter(conv=conv, linear=b * emb * 2 * cout)


def _attention(cfg: NestedUNetConfig, lv: LevelConfig, b: int, side: int, c: int, cross: bool) -> Counter:
    n = side * side
    out = Counter(conv=b * n * c * 4 * c, attention=2 * b * n * n * c)  # 1x1 qkv + proj_out; QK^T + AV
    if lv.attention_ffn:
        out += Counter(conv=b * n * c * 8 * c)
    if cross and cfg.token_dim:
        out += Counter(linear=b * cfg.cond_tokens * cfg.token_dim * 2 * c,  # kv_cond
                       attention=2 * b * n * cfg.cond_tokens * c)
    return out


def _block(cfg, lv, b, side, cins, cout, attn, mode) -> Counter:
    out = Counter()
    for cin in cins:
        out += _resnet(b, side, cin, cout, lv.emb_dim)
        for _ in range(attn):
            out += _attention(cfg, lv, b, side, cout, True)
    if mode == "down":
        out += Counter(conv=_conv(b, side // 2, cout, cout))
    elif mode == "up":
        out += Counter(conv=_conv(b, 2 * side, cout, cout))
    return out


def _level(cfg: NestedUNetConfig, index: int, b: int) -> Counter:
    lv, ch = cfg.levels[index], cfg.levels[index].channels
    e = lv.emb_dim
    total = Counter(linear=2 * b * (e // 4 * e + e * e))  # time and resolution embeddings
    side, c = lv.resolution, ch[0]
    total += Counter(conv=_conv(b, side, cfg.in_channels, c))
    skips = [c]
    for i, n in enumerate(lv.num_resnets):
        last = i == len(ch) - 1
        total += _block(cfg, lv, b, side, [c] + [ch[i]] * (n - 1), ch[i], lv.attn(i), "none" if last else "down")
        c = ch[i]
        skips += [c] * (n + (0 if last else 1))
        side = side if last else side // 2
    if lv.mid_blocks:
        total += _block(cfg, lv, b, side, [c], c, 1, "none") + _block(cfg, lv, b, side, [c], c, 0, "none")
    if index + 1 < len(cfg.levels):
        inner_c = cfg.levels[index + 1].channels[0]
        total += Counter(conv=2 * _conv(b, side, c, inner_c)) + _level(cfg, index + 1, b)  # adapters + inner
    for i in reversed(range(len(ch))):
        cins = []
        for _ in range(lv.num_resnets[i] + 1):
            cins.append(c + skips.pop())
            c = ch[i]
        total += _block(cfg, lv, b, side, cins, ch[i], lv.attn(i), "up" if i else "none")
        side = side * 2 if i else side
    return total + Counter(conv=_conv(b, side, c, cfg.in_channels))


def forward_macs(config: NestedUNetConfig, batch: int) -> dict[str, int]:
    cfg, b = config, batch
    total = _level(cfg, 0, b)
    if cfg.cond_dim:  # projection of the tokens, embedding of the pooled tokens (innermost level)
        total += Counter(linear=b * cfg.cond_tokens * cfg.cond_dim * cfg.cond_proj_dim
                         + b * cfg.token_dim * cfg.levels[-1].emb_dim)
    return {key: int(total[key]) for key in ("conv", "linear", "attention")}
