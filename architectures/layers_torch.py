"""Layers written once for every PyTorch model: the sinusoidal time embedding, 3x3 convs, zero
init and nearest 2x upsampling. Same names as layers_flax.py (where zero init is the `ZERO`
initializers, since a Flax layer has no parameters until it is called)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0, sin_first: bool = False) -> torch.Tensor:
    """Sinusoid of (B,) values at dim // 2 frequencies max_period^(-i / (dim // 2)) (Vaswani et al.
    2017), an odd dim padded with a zero column. [cos | sin] for GLIDE, ADM and DiT; [sin | cos]
    (sin_first) for ml-mdm and RIN."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    pair = (torch.sin(args), torch.cos(args)) if sin_first else (torch.cos(args), torch.sin(args))
    return F.pad(torch.cat(pair, dim=-1), (0, dim % 2))


def zero_(module: nn.Module) -> nn.Module:
    """ADM's zero_module: the layer starts at zero, so each residual branch starts as identity."""
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


def conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1)


def upsample2(x: torch.Tensor) -> torch.Tensor:
    """Nearest-neighbour 2x upsampling of (N, C, H, W)."""
    return F.interpolate(x, scale_factor=2.0, mode="nearest")
