"""Building a torch model (seeded, on its device, under its precision policy) and the
denoiser the process calls over it."""

from __future__ import annotations

import torch

from bench.backends.framework_free import Built, call_kwargs, make_process, network_output
from bench.backends.torch_adapter.device import NAME, resolve_device
from bench.backends.torch_adapter.precision import Policy


def build(entry, config, *, seed: int = 0, device: str | torch.device = "cpu", abstract: bool = False,
          precision: str = "fp32", attention: str = "auto", memory_format: str = "contiguous",
          cudnn_benchmark: bool | None = None, fused_adamw: bool = False) -> Built:
    """Instantiate the entry's torch model. abstract: on the meta device (shapes only, no memory).
    precision / attention / memory_format / cudnn_benchmark (None: on for CUDA) / fused_adamw: the
    policy of precision.Policy (docs/precision.md)."""
    cls = entry.load_model_class(NAME)
    torch.manual_seed(seed)  # weight init and dropout draw from torch's global generator
    if abstract:
        with torch.device("meta"):
            model = cls(config)
        dev = torch.device("meta")
        policy = Policy(precision, attention, memory_format, "meta")
    else:
        dev = resolve_device(device) if isinstance(device, str) else device
        policy = Policy.make(precision, attention, memory_format, dev, cudnn_benchmark, fused_adamw)
        model = policy.prepare(cls(config).to(dev))
    return Built(NAME, entry, config, model, None, dev, make_process(entry, config, channel_axis=1), seed,
                 abstract, policy)


def param_count(built: Built) -> int:
    return sum(p.numel() for p in built.model.parameters())


def denoiser(built: Built, model, context=None, context_mask=None):
    """The process's denoise(x_t, time, y, latents) -> (pred, latents_out) over a torch model,
    under the case's precision policy. x and pred may be lists (one per resolution); only models
    with latents return a pair; learn_sigma outputs become (prediction, v)."""
    extras, policy = built.entry.extras, built.policy or Policy()
    context = policy.inputs(context)

    def denoise(x, time, y, latents):
        xs = [policy.inputs(xi) for xi in x] if isinstance(x, (list, tuple)) else policy.inputs(x)
        with policy.call():  # mixed precision, TF32 flags, SDPA kernel: the network call only
            out = model(xs, time,  # time stays float32 (its embedding needs it)
                        **call_kwargs(extras, y, context, policy.inputs(latents), context_mask))
        return network_output(out, x, extras, policy.output, channel_axis=1)

    return denoise
