"""A jax bf16 training step on the device, and that donating its buffers leaves the model usable.

    python -P -m bench.doctor.jax_step DEVICE   -> one JSON line (a Result's dict)

Run in its own process by the doctor: jax then starts with XLA_PYTHON_CLIENT_PREALLOCATE=false and
its GPU memory is returned when the check ends (the suite's cases need it).
"""

from __future__ import annotations

import json
import os
import sys
import time

MODEL = {"cpu": ("dit-tiny", 2), "gpu": ("dit-b-2", 32), "tpu": ("dit-b-2", 32)}


def run(spec: str) -> dict:
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    import jax
    import numpy as np

    from architectures import registry
    from bench.backends import jax_adapter as jb
    from bench.backends.framework_free import DeviceError
    from bench.doctor.result import Result
    from bench.measure.flops import analytic
    from bench.measure.peaks import device_peak, utilization

    try:
        device = jb.resolve_device(spec)
    except DeviceError as exc:
        return Result("jax bf16 training step", False, f"jax sees no {spec} device: {exc}").to_dict()
    preset, batch = MODEL.get(device.platform, MODEL["cpu"])
    entry = registry.find_preset(preset)
    built = jb.build(entry, entry.preset(preset).config, seed=0, device=device, precision="bf16")
    before = [np.asarray(leaf) for leaf in jax.tree.leaves(built.params)]
    step = jb.make_train_step(built, batch, seed=0)
    losses, times = [], []
    for _ in range(8):
        t0 = time.perf_counter()
        losses.append(float(jb.sync(step.fn())))
        times.append(time.perf_counter() - t0)
    leaves = jax.tree.leaves(built.params)
    usable = all(not leaf.is_deleted() for leaf in leaves)
    changed = usable and any(not np.array_equal(np.asarray(a), b) for a, b in zip(leaves, before))
    sample = jb.make_sample_step(built, batch, seed=0) if usable else None
    sample_ok = sample is not None and jb.all_finite(jb.sync(sample.fn()))
    median_ms = float(np.median(times[3:])) * 1e3
    fwd = 2 * analytic(entry, built.config, batch)["macs"] / 1e9
    platform = {"gpu": "cuda"}.get(device.platform, device.platform)
    util = utilization(fwd * (step.nfe + 2), median_ms, device_peak(device.device_kind, platform, "bf16"))
    detail = {"device": str(device), "device_kind": device.device_kind, "model": f"{preset} b{batch} bf16",
              "losses": losses, "finite": bool(np.isfinite(losses).all()), "params_usable_after_donation": usable,
              "params_updated": changed, "sample_step_after_training_finite": sample_ok, "median_ms": median_ms,
              "compile_s": step.compile_seconds, "utilization": util, "donate": built.policy.describe()["donate"]}
    ok = detail["finite"] and usable and changed and sample_ok
    mfu = "" if util.get("mfu") is None else f", MFU {util['mfu']:.2f}"
    summary = (f"{preset} b{batch} on {device.device_kind}: {median_ms:.4g} ms/step{mfu}; weights after donation "
               f"{'usable and updated' if usable and changed else 'DESTROYED or unchanged'}; sampling after "
               f"training {'ok' if sample_ok else 'FAILED'}")
    return Result("jax bf16 training step", ok, summary, detail).to_dict()


if __name__ == "__main__":
    print(json.dumps(run(sys.argv[1] if len(sys.argv) > 1 else "cpu")))
