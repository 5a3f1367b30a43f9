"""`diffbench doctor --device cuda` (`make gpu-check`): the checks in order, one line each, a JSON
file with the details next to the gpu-validate report, exit 1 when a check fails.

Checks (docs/measurement.md): the precision flags inside a step; conv + linear forward/backward
error against float64 per precision; matmul TFLOP/s per precision against the peak table; the
harness timer against a bare CUDA-event loop on one training step; a jax bf16 training step (and
that donation leaves the weights usable); pytest tests/test_cuda.py; the gpu-validate suite. On a
CPU (`--device cpu`) the checks that need CUDA are skipped.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from bench.doctor.result import Result, device_name, slug

CHECKS = ("flags", "numerics", "matmul", "timer", "jax", "pytest", "suite")
BUDGET_S = 8 * 60
REPORTS = Path("reports/example/gpu")


class DoctorError(Exception):
    """The device asked for does not exist here, or a bad option (a one-line message, exit 2)."""


def resolve(spec: str):
    import torch

    from bench.backends import torch_adapter as tb
    from bench.backends.framework_free import DeviceError

    if spec.startswith("cuda") and not torch.cuda.is_available():
        raise DoctorError(f"doctor --device {spec}: no CUDA device here (torch {torch.__version__}, built for CUDA "
                       f"{torch.version.cuda}, sees none); `diffbench doctor --device cpu` runs the CPU-testable checks")
    try:
        return tb.resolve_device(spec)
    except DeviceError as exc:
        raise DoctorError(f"doctor --device {spec}: {exc}") from None


def _guarded(name: str, fn) -> Result:
    """Run one check; a crash is that check's failure, never the doctor's."""
    t0 = time.perf_counter()
    try:
        result = fn()
    except Exception as exc:  # noqa: BLE001 - reported as the check's failure
        result = Result(name, False, f"crashed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
    result.seconds = time.perf_counter() - t0
    return result


def plan(device, skip: tuple[str, ...], out_dir: Path, results: Path) -> list[tuple[str, str, object]]:
    """(key, name, thunk) per check to run, in order; CUDA-only checks become skips on other devices."""
    from bench.doctor import numerics, speed, suite

    cuda = device.type == "cuda"

    def skipped(name):
        return lambda: Result(name, None, "skipped: needs a CUDA device")

    steps = [("flags", "precision flags", lambda: numerics.check_flags(device)),
             ("numerics", "conv+linear fwd/bwd error vs float64", lambda: numerics.check_layer_errors(device)),
             ("matmul", "matmul speed vs peak", lambda: speed.check_matmul(device)),
             ("timer", "harness timer vs bare loop", lambda: speed.check_timer(device)),
             ("jax", "jax bf16 training step", lambda: suite.jax_step(str(device))),
             ("pytest", "pytest tests/test_cuda.py", suite.pytest_cuda if cuda else skipped("pytest tests/test_cuda.py")),
             ("suite", "suite gpu-validate", (lambda: suite.validate_suite(out_dir.name, results, out_dir.parent))
              if cuda else skipped("suite gpu-validate"))]
    return [s for s in steps if s[0] not in skip]


def run(device_spec: str = "cuda", skip: tuple[str, ...] = (), out: str | None = None,
        results: str = "results", echo=print) -> int:
    """Run the checks; 0 when none failed, 1 otherwise. Raises DoctorError (exit 2 at the command line)."""
    device = resolve(device_spec)
    name = device_name(device)
    out_dir = Path(out) if out else REPORTS / slug(name)
    echo(f"diffbench doctor: {name} ({device}); checks: {', '.join(k for k, _, _ in plan(device, skip, out_dir, Path(results)))}")
    start, done = time.perf_counter(), []
    for key, label, thunk in plan(device, skip, out_dir, Path(results)):
        result = _guarded(label, thunk)
        done.append(result)
        echo(f"{result.status:4s}  {result.name}: {result.summary} ({result.seconds:.0f} s)")
        if key == "timer" and device.type == "cuda":
            import torch

            torch.cuda.empty_cache()  # the child processes that follow need the memory
    total = time.perf_counter() - start
    failed = [r.name for r in done if r.ok is False]
    over = f"; over the {BUDGET_S // 60}-minute budget" if total > BUDGET_S else ""
    echo(f"{len(done)} check(s) in {total:.0f} s{over}: " + (f"FAILED: {', '.join(failed)}" if failed else "none failed"))
    if device.type == "cuda" or out:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "doctor.json").write_text(json.dumps({"device": name, "seconds": total,
                                                        "checks": [r.to_dict() for r in done]}, indent=1, default=str))
        echo(f"details: {out_dir / 'doctor.json'}")
    return 1 if failed else 0


def parse_skip(text: str | None) -> tuple[str, ...]:
    names = tuple(s.strip() for s in (text or "").split(",") if s.strip())
    unknown = [n for n in names if n not in CHECKS]
    if unknown:
        raise DoctorError(f"--skip {','.join(unknown)}: unknown check(s); allowed: {', '.join(CHECKS)}")
    return names
