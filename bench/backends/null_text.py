"""The null text conditioning of a token-conditioned model (NestedUNet with cond_dim > 0), which
classifier-free guidance drops to and condition dropout trains: the encoding of an empty prompt as
the harness can give it without a text encoder.

ml-mdm encodes its negative prompt ("" in generate_sample.py) like any caption: the tokenizer gives
the end-of-sequence token alone, the mask (tokens != pad) marks that one position, and the encoder
outputs are multiplied by the mask (language_models/factory.py), so every padded position is zero.
Here the one real token is zero as well (no encoder runs to encode the end-of-sequence token):
tokens all zero, the mask 1 on the first position only. No parameter is added, so weights convert
as before.

A guided or condition-dropped call passes per-example keep flags as the labels `y` (1 = the drawn
tokens, 0 = the null): the batch-2B guided call has y = [1 ... 1; 0 ... 0]. Written once for
numpy, torch and jax.numpy (array_api_compat).
"""

from __future__ import annotations

from array_api_compat import array_namespace, device as _device


def keep_flags(batch: int, keep: bool = True):
    """numpy keep flags for `batch` examples: all 1 (the drawn tokens) or all 0 (the null)."""
    import numpy as np

    return np.full((batch,), 1.0 if keep else 0.0, np.float32)


def apply(context, context_mask, keep):
    """(context, context_mask) with the examples whose keep flag is 0 replaced by the null:
    zero tokens and a mask marking the first position only."""
    xp = array_namespace(context)
    k = xp.reshape(keep, (-1,)) > 0
    tokens = xp.where(k[:, None, None], context, xp.zeros_like(context))
    first = xp.arange(context_mask.shape[-1], device=_device(context_mask)) == 0
    null_mask = xp.astype(xp.broadcast_to(first[None, :], context_mask.shape), context_mask.dtype)
    return tokens, xp.where(k[:, None], context_mask, null_mask)
