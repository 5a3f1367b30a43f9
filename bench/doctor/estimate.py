"""How long a suite should take on one accelerator: an estimate, never a measurement.

    python -m bench.doctor.estimate suites/gpu-paper.yaml [--device "NVIDIA H100 80GB HBM3"]

Per timed step: its FLOPs (analytic forward x NFE for a sampling step, x (forward passes + 2) for a
training step) over the datasheet peak of the case's precision (bench/measure/peaks.py) at an
assumed MFU; the timing protocol's warmup + minimum repetitions (or its time cap); plus fixed
overheads per case (process start, imports, build) and per compiled step. The GPU suites' header
comments quote what this prints. Imports neither torch nor jax.
"""

from __future__ import annotations

import argparse
import sys

from bench.measure.peaks import device_peak
from bench.measure.timing import TimingPolicy

ASSUMED_MFU = 0.35  # an assumption: below the 0.40 goal for compiled bf16 training (docs/precision.md)
CASE_OVERHEAD_S = 20.0  # process start, imports, model build, inputs
COMPILE_S = {"torch": 90.0, "jax": 60.0}  # per compiled step (torch.compile / XLA at paper size)
COUNT_S = 40.0  # the `flops` measurement: counters in their own processes
H100 = "NVIDIA H100 80GB HBM3"


def step_gflop(entry, config, batch: int, what: str) -> float:
    from bench.backends import framework_free
    from bench.measure.flops import analytic

    forward = 2 * analytic(entry, config, batch)["macs"] / 1e9
    process = framework_free.make_process(entry, config)
    if what == "sample_step":
        return forward * process.nfe_per_sample_step(framework_free.conditional(config))
    return forward * (process.forward_passes_per_train_step("latents" in entry.extras) + 2)


def case_seconds(case, device_name: str = H100, platform: str = "cuda") -> float:
    """Estimated wall clock of one case on that device (its timing policy as the worker sets it)."""
    from architectures import registry
    from bench import suite_file
    from bench.measure.case_measurements import policy_for

    entry, config = registry.get(case.arch), suite_file.resolve_config(case)
    policy: TimingPolicy = policy_for(case)
    seconds = CASE_OVERHEAD_S + (COUNT_S if "flops" in case.measure else 0.0)
    peak = device_peak(device_name, platform, case.precision)["tflop_per_s"] or device_peak(
        device_name, platform, "bf16")["tflop_per_s"]  # TPU: fp32 runs on the bf16 MXU
    if not peak:
        raise ValueError(f"device {device_name!r} is not in the peak table (bench/measure/peaks.py)")
    compiled = case.backend == "jax" or case.compile != "none"
    for what in ("sample_step", "train_step"):
        if what not in case.measure:
            continue
        step_s = step_gflop(entry, config, case.batch, what) / (peak * 1e3 * ASSUMED_MFU)
        timed = min(policy.min_reps * step_s, max(policy.time_cap_s, 3 * step_s))
        seconds += policy.warmup * step_s + timed + (COMPILE_S[case.backend] if compiled else 0.0)
    if "memory" in case.measure and not {"sample_step", "train_step"} & set(case.measure):
        seconds += COMPILE_S[case.backend] if compiled else 0.0
    return seconds


def suite_seconds(path: str, device_name: str = H100) -> tuple[float, int]:
    from bench import suite_file

    suite = suite_file.load(path)
    platform = "tpu" if device_name.upper().startswith("TPU") else "cuda"
    return sum(case_seconds(c, device_name, platform) for c in suite.cases), len(suite.cases)


def describe(path: str, device_name: str = H100) -> str:
    seconds, n = suite_seconds(path, device_name)
    return (f"{path}: {n} cases, estimated {seconds / 60:.0f} min on one {device_name} (assumed MFU "
            f"{ASSUMED_MFU}, {CASE_OVERHEAD_S:g} s per case, {COMPILE_S['torch']:g}/{COMPILE_S['jax']:g} s per "
            "compiled torch/jax step; an estimate, not a measurement)")


def header(path: str, devices: tuple[str, ...] = (H100,)) -> str:
    """The suite file's first line: its expected duration per device, labelled an estimate."""
    parts = []
    for device in devices:
        seconds, n = suite_seconds(path, device)
        parts.append(f"~{seconds / 60:.0f} min on one {device}")
    return (f"# Expected duration ({n} cases), an ESTIMATE from FLOPs and the datasheet peak, not a measurement: "
            f"{'; '.join(parts)} (python -m bench.doctor.estimate {path}).")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.doctor.estimate", description=__doc__.splitlines()[0])
    parser.add_argument("suites", nargs="+")
    parser.add_argument("--device", default=H100, help=f"an exact device name of the peak table (default {H100!r})")
    args = parser.parse_args(argv)
    from bench.strict_yaml import SpecError

    try:
        for path in args.suites:
            print(describe(path, args.device))
    except (SpecError, OSError, ValueError) as exc:
        print(f"estimate: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

