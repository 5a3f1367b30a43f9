"""JAX counts in their own process: `python -m bench.measure.xla_count '<job json>'`.

Everything is abstract (jax.eval_shape weights, ShapeDtypeStruct inputs): nothing executes.
Per program (forward; training step = loss with its extra passes + grad + AdamW update):
- xla: `compiled.cost_analysis()["flops"]`, XLA's own total: 2 per MAC plus elementwise ops,
  post-optimization, convolutions counting only non-padded taps (a check, never the headline);
- xla_dot_conv (compiled programs only): 2 x the MACs of the dot and convolution instructions of the same optimized
  module, all taps (bench.measure.hlo_count): XLA's program in diffbench's convention;
- jaxpr: 2 x the MACs of dot_general and conv_general_dilated in the traced jaxpr.
"""

from __future__ import annotations

import time

from bench.measure.count_job import CountJob, child_main, guarded, resolve

METHOD = "XLA cost_analysis of the jitted function on abstract inputs (compiled or lowered: see xla_stage)"


def _abstract(tree):
    import jax

    return jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), tree)


def _counts(fn, args: tuple, compile: bool) -> dict:
    import jax

    from bench.measure.hlo_count import hlo_macs
    from bench.measure.jaxpr_count import count_fn

    jaxpr = count_fn(fn, *args)
    out = {"jaxpr_flops": 2 * sum(jaxpr.values()), "jaxpr_by_primitive": {k: 2 * v for k, v in jaxpr.items()}}
    lowered = jax.jit(fn).lower(*args)
    if not compile:
        out["xla_flops"] = float(lowered.cost_analysis()["flops"])
        out["xla_stage"] = "lowered (pre-optimization, not compiled)"
        return out
    start = time.perf_counter()
    compiled = lowered.compile()
    out["compile_seconds"] = time.perf_counter() - start
    out["xla_flops"] = float(compiled.cost_analysis()["flops"])
    out["xla_stage"] = "compiled (post-optimization)"
    try:
        macs = hlo_macs(compiled.as_text())
        out["xla_dot_conv_flops"] = 2 * sum(macs.values())
        out["xla_dot_conv_by_op"] = {k: 2 * v for k, v in macs.items()}
    except Exception as exc:  # recorded next to the counts that did work
        out["xla_dot_conv_error"] = f"{type(exc).__name__}: {exc}"
    return out


# Compiling on CPU costs seconds for a tiny forward and minutes for a full-size training step:
# above this many MACs, and for every training step, XLA's count is of the lowered
# (pre-optimization) program, which needs no compile (xla_stage says which).
COMPILE_LIMIT_MACS = 2e11


def _train(jb, built, job: CountJob) -> dict:
    """Loss (with the process's extra passes) + grad + AdamW update, lowered, not compiled."""
    import jax

    step = jb.make_train_step(built, job.batch, seed=job.seed, compile=False)
    trainer = jb.Trainer(built, compile=False)
    args = (trainer.params, trainer.opt_state, _abstract(step.inputs), jax.random.key(0))
    return {**_counts(trainer.update, args, compile=False), "forward_passes": step.nfe}


def count(job: CountJob) -> dict:
    import jax
    import jaxlib

    from bench.backends import jax_adapter as jb

    entry, config = resolve(job)
    built = jb.build(entry, config, seed=job.seed, abstract=True)
    a = _abstract(jb.make_inputs(built, job.batch, job.seed))

    def forward(variables, a):
        return jb.denoiser(built, variables, a.get("context"))(a["x"], a["t"], a.get("y"), a.get("latents"))

    macs = sum(entry.load_flops()(config, job.batch).values())
    result = {"forward": _counts(forward, (built.params, a), compile=job.compile and macs <= COMPILE_LIMIT_MACS)}
    if job.train:
        result["train"] = guarded(lambda: _train(jb, built, job))
    return {"method": METHOD, "version": f"jax {jax.__version__}, jaxlib {jaxlib.__version__}",
            "platform": jax.default_backend(), "batch": job.batch, "params": jb.param_count(built), **result}


if __name__ == "__main__":
    child_main(count)
