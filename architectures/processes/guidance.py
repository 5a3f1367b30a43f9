"""Classifier-free guidance (Ho & Salimans 2022), shared by the gaussian and multi-resolution processes.

pred = (1 + w) pred_c - w pred_u, pred_u from the null label. The two evaluations run as the
process option `guidance_mode` says (recorded with the config and with the sample-step timing):
- "batched" (default): one network call on [x; x] with labels [y; y_null], split in halves after
  it: what the official samplers run (DiT's models.py forward_with_cfg, and the GLIDE model_fn it
  cites), so it is what a timing of a guided sampler has to measure: one call of batch 2B.
- "two_calls": the conditional and the unconditional call, each of batch B, one after the other.
Either way the network evaluates 2B images: a guided step costs 2 NFEs.
"""

from __future__ import annotations

from array_api_compat import array_namespace

from architectures.processes.config import GUIDANCE_MODES


def mode_of(process_config, conditional: bool) -> str | None:
    """The guidance mode a sampler of this process runs (None: no guidance runs)."""
    if not conditional or getattr(process_config, "guidance_scale", 0) <= 0:
        return None
    return getattr(process_config, "guidance_mode", GUIDANCE_MODES[0])


def rows(x) -> int:
    """The batch size of x (a list: its first entry's)."""
    return (x[0] if isinstance(x, (list, tuple)) else x).shape[0]


def _cat(a, b):
    if a is None:
        return None
    if isinstance(a, (list, tuple)):
        return type(a)(_cat(p, q) for p, q in zip(a, b))
    return array_namespace(a).concat([a, b], axis=0)


def _halves(a, n: int):
    if a is None:
        return None, None
    if isinstance(a, (list, tuple)):
        pairs = [_halves(p, n) for p in a]
        return type(a)(p[0] for p in pairs), type(a)(p[1] for p in pairs)
    return a[:n], a[n:]


def evaluate(denoise, x, time, y, y_null, latents, mode: str):
    """(out_c, out_u, latents_out): the network output with the labels and with the null labels
    (arrays, lists per resolution or (prediction, v) pairs, as denoise returns them); latents_out
    from the conditional evaluation."""
    if mode == "two_calls":
        out_c, latents_out = denoise(x, time, y, latents)
        return out_c, denoise(x, time, y_null, latents)[0], latents_out
    if mode != "batched":
        raise ValueError(f"guidance_mode={mode!r}; allowed: {list(GUIDANCE_MODES)}")
    n = rows(x)
    out, latents_out = denoise(_cat(x, x), _cat(time, time), _cat(y, y_null), _cat(latents, latents))
    out_c, out_u = _halves(out, n)
    return out_c, out_u, _halves(latents_out, n)[0]


def mix(cond, uncond, w: float, channels: int = 0, channel_axis: int = -1):
    """(1 + w) cond - w uncond; channels = c > 0 guides only the first c channels on channel_axis
    and keeps the conditional prediction on the others (DiT's official sampler: c = 3)."""
    guided = (1.0 + w) * cond - w * uncond
    if not channels or channels >= cond.shape[channel_axis]:
        return guided
    axis = channel_axis % cond.ndim
    head, tail = [slice(None)] * cond.ndim, [slice(None)] * cond.ndim
    head[axis], tail[axis] = slice(0, channels), slice(channels, None)
    return array_namespace(cond).concat([guided[tuple(head)], cond[tuple(tail)]], axis=axis)


def dropped(y, keep, null_label: int):
    """The training condition with dropout (Ho & Salimans 2022, Sec. 3.2: the model learns the
    unconditional prediction through the null): keep flags (1 = keep) per example. Labels become
    null_label where keep is 0; without labels (a token-conditioned model) the flags themselves
    are the call's y, and the backend puts the null text there (bench/backends/null_text.py)."""
    if keep is None:
        return y
    if y is None:
        return keep
    xp = array_namespace(y)
    return xp.where(keep > 0, y, xp.full_like(y, null_label))
