"""Torch counts through torch.utils.flop_counter.FlopCounterMode, in its own process:
`python -m bench.measure.torch_count '<job json>'`.

Runs on the meta device (shapes only: no memory, no arithmetic), so full-size presets count in
seconds. Attention is forced to the MATH kernel, whose matmuls the counter sees (the CPU flash
kernel is missing from its registry). Convention: 2 per MAC over matmuls and convolutions, bias
adds excluded; the training step is the process loss (with its extra forward passes) + backward.
"""

from __future__ import annotations

from bench.measure.count_job import CountJob, child_main, guarded, resolve

METHOD = "torch.utils.flop_counter.FlopCounterMode (meta device, SDPA math kernel)"


def _counted(fn) -> dict:
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with sdpa_kernel(SDPBackend.MATH), counter:
        fn()
    by_op = {str(op): int(n) for op, n in counter.get_flop_counts()["Global"].items()}
    return {"flops": int(counter.get_total_flops()), "by_operator": by_op}


def _train(tb, built, job: CountJob) -> dict:
    """Loss (with the process's extra forward passes) + backward; AdamW has no matmuls."""
    step = tb.make_train_step(built, job.batch, seed=job.seed)
    trainer = tb.Trainer(built)
    built.model.train()
    return {**_counted(lambda: trainer.loss(step.inputs).backward()), "forward_passes": step.nfe}


def count(job: CountJob) -> dict:
    import torch

    from bench.backends import torch_adapter as tb

    entry, config = resolve(job)
    built = tb.build(entry, config, seed=job.seed, abstract=True)
    a = tb.make_inputs(built, job.batch, job.seed)
    built.model.eval()
    denoise = tb.denoiser(built, built.model, a.get("context"))
    with torch.no_grad():
        result = {"forward": _counted(lambda: denoise(a["x"], a["t"], a.get("y"), a.get("latents")))}
    if job.train:
        result["train"] = guarded(lambda: _train(tb, built, job))
    return {"method": METHOD, "version": f"torch {torch.__version__}", "batch": job.batch,
            "params": tb.param_count(built), **result}


if __name__ == "__main__":
    child_main(count)
