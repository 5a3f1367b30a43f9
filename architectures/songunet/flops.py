"""Analytic multiply-accumulates of one SongUNet forward pass, standard library only.

Conventions as the U-Net's (architectures/unet/flops.py): a conv costs out_elements x C_in x k x k
(every tap), a linear rows x in x out, attention QK^T and AV each L x L x C (one head); biases,
norms, activations, softmax and resampling are free. The FIR resampling filters are resampling:
fixed, per-channel weighted sums (as ADM's average pooling), free here and computed as shifted
sums, so no counter sees them either. The fused downsampling conv of the residual encoder runs
at the higher resolution padded by the filter's reach, (2 r + 2 p)^2 output positions.
"""

from __future__ import annotations

from collections import Counter

from architectures.songunet import layout
from architectures.songunet.config import SongUNetConfig


def _block(cfg: SongUNetConfig, b: int, node: layout.Node) -> Counter:
    pixels = b * node.res * node.res  # the convs run after the resampling, at the node's resolution
    conv = pixels * 9 * (node.cin * node.cout + node.cout * node.cout)
    if node.cin != node.cout or node.resample:
        conv += pixels * node.cin * node.cout  # 1x1 skip projection
    out = Counter(conv=conv, linear=b * cfg.emb_channels * node.cout)  # + affine(emb)
    if node.attention:
        c, tokens = node.cout, node.res * node.res
        out += Counter(conv=pixels * 4 * c * c, attention=2 * pixels * tokens * c)  # qkv + proj (1x1); QK^T + AV
    return out


def _node(cfg: SongUNetConfig, b: int, node: layout.Node) -> Counter:
    if node.kind == "block":
        return _block(cfg, b, node)
    if node.kind == "aux_norm":
        return Counter()
    if node.kind == "aux_residual":
        size = 2 * node.res + 2 * ((len(cfg.resample_filter) - 1) // 2)
        return Counter(conv=b * size * size * 9 * node.cin * node.cout)
    return Counter(conv=b * node.res * node.res * 9 * node.cin * node.cout)  # input conv, output conv


def forward_macs(config: SongUNetConfig, batch: int) -> dict[str, int]:
    cfg, b = config, batch
    total = Counter(linear=b * (cfg.noise_channels * cfg.emb_channels + cfg.emb_channels ** 2
                                + cfg.num_classes * cfg.noise_channels))
    for node in layout.encoder(cfg) + layout.decoder(cfg):
        total += _node(cfg, b, node)
    return {key: int(total[key]) for key in ("conv", "linear", "attention")}
