"""Torch sampling: one timed sampler step (optionally compiled / replayed from a CUDA graph) and
a full sampling run."""

from __future__ import annotations

import torch

from bench.backends.framework_free import (Built, conditional, DeviceError, SampleRun, Step, generate_from, rows,
                                           sample_step_arrays, sampling_draws)
from bench.backends.torch_adapter.arrays import device_arrays, to_numpy
from bench.backends.torch_adapter.building import denoiser
from bench.backends.torch_adapter.precision import Policy
from bench.backends.torch_adapter.timing import first_call_seconds, maybe_compile


def make_sample_step(built: Built, batch: int, *, seed: int = 0, compile: bool | str | None = False,
                     step_index: int | None = None, cuda_graphs: bool = False) -> Step:
    """One sampler step (inference mode): guided network call(s) + DDIM/DDPM update, carrying
    RIN's latents. With classifier-free guidance one step costs 2 NFEs (Step.nfe).
    cuda_graphs: replay the step from a CUDA graph (CUDA only)."""
    cfg, process = built.config, built.process
    arrays, draws = sample_step_arrays(built, batch, seed, step_index)
    a = device_arrays(built, arrays)
    a["carry"] = process.initial_carry(a["x"])  # sampler state beyond x (gDDIM: force history), as zeros
    model = maybe_compile(built, compile)
    denoise = denoiser(built, model, a.get("context"), a.get("context_mask"))
    policy = built.policy or Policy()

    def fn():
        if built.model.training:  # a train step on the same model may have switched dropout on
            built.model.eval()
        with policy.step(), torch.inference_mode():
            out = process.sample_step(denoise, a["x"], a["t_now"], a["t_next"], a.get("y"), a.get("latents"),
                                      y_null=a["y_null"], carry=a["carry"], **{k: a[k] for k in draws})
        return out.x, out.latents

    step = Step(fn, a, process.nfe_per_sample_step(conditional(cfg)), bool(compile))
    if compile:
        step = first_call_seconds(step)
    if cuda_graphs:
        if built.device.type != "cuda":
            raise DeviceError(f"cuda_graphs needs a CUDA device, not {built.device}")
        step.fn = _cuda_graphed(step.fn, built.device)
        step.info["cuda_graphs"] = True
    return step


def _cuda_graphed(fn, device: torch.device):
    """fn replayed from a CUDA graph: warm up on a side stream, capture once, replay (static
    inputs and outputs, as torch.cuda.graphs requires)."""
    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):
        for _ in range(3):
            fn()
    torch.cuda.current_stream(device).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_out = fn()

    def replay():
        graph.replay()
        return static_out

    return replay


def sampling_run(built: Built, batch: int, *, seed: int = 0, steps: int | None = None, labels=None,
                 context=None) -> SampleRun:
    """A full sampling run (the configured sampler, guidance and latent carry) and the network
    evaluations it made. `context` (canonical) for frame-conditioned video."""
    n = steps or built.config.process.sample_steps
    d = sampling_draws(built.config, built.process, batch, seed, n, labels, context)
    step_draws = [device_arrays(built, draws) for draws in d["step_draws"]]
    a = device_arrays(built, {k: v for k, v in d.items() if k != "step_draws"})
    net, calls = denoiser(built, built.model, a["context"], a.get("context_mask")), []

    def counted(*args):
        calls.append(rows(args[0]) // batch)  # a batched guided call evaluates 2 NFEs
        return net(*args)

    built.model.eval()
    with (built.policy or Policy()).step(), torch.inference_mode():
        x0 = built.process.sample(counted, a["x"], a["y"], a["latents"], y_null=a["y_null"], steps=n,
                                  step_draws=step_draws)
    return SampleRun(to_numpy(x0), sum(calls), n)


generate = generate_from(sampling_run)
