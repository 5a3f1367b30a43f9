"""One benchmark case: a frozen, validated, JSON round-trippable record of what to run.

The runner sends `case.to_dict()` to the worker subprocess, which rebuilds it with
`Case.from_dict(...)`; both ends check the same invariants.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, fields

from architectures.registry import BACKENDS
from bench.overrides import FrozenMapping
from bench.strict_yaml import SpecError, show

MEASUREMENTS = ("params", "flops", "train", "sample_step", "train_step", "memory", "quality")
DEVICES = ("cpu", "cuda", "cuda:N", "tpu", "auto")
_DEVICE = re.compile(r"cpu|cuda|cuda:[0-9]{1,3}|tpu|auto")  # ASCII digits only ('cuda:٣' is not a device)
MAX_BATCH = 1 << 20
MAX_THREADS = 4096
MAX_TIMEOUT = 7 * 24 * 3600.0  # a week
MAX_SEED = 2**32  # jax.random.PRNGKey takes a uint32 seed
MAX_ROUNDS = 100
DEFAULT_ROUNDS = 5  # the fewest rounds two runs can be told apart with at compare's alpha 0.01 (docs/measurement.md)

PRECISIONS = ("fp32", "tf32", "bf16", "fp16", "bf16-pure")  # applied by the adapters: docs/precision.md
COMPILE_MODES = ("none", "default", "reduce-overhead", "max-autotune")  # torch.compile modes
MEMORY_FORMATS = ("contiguous", "channels_last")  # torch only
ATTENTION = ("auto", "flash", "efficient", "cudnn", "math")  # torch SDPA backend

# Settings a suite may give per case or in `defaults:`, with their built-in defaults.
SETTINGS = {
    "backend": "torch",
    "device": "cpu",
    "batch": 1,
    "measure": ("params", "flops"),
    "timeout": 600.0,  # seconds; the runner kills the case's process after this
    "rounds": DEFAULT_ROUNDS,  # fresh processes that time the case's timed steps (bench/rounds.py)
    "threads": None,  # intra-op threads; None = all cores
    "cpus": None,  # CPU ids to run on (affinity); None = chosen by the worker, spread across concurrent runs
    "compile": "none",  # torch.compile mode (true = default, false = none); jax always jits
    "precision": "fp32",
    "memory_format": "contiguous",
    "attention": "auto",
    "cuda_graphs": False,  # torch: capture the sampling step in a CUDA graph (CUDA only)
    "cudnn_benchmark": None,  # torch: cuDNN conv autotuning; None = on for CUDA, off elsewhere
    "fused_adamw": False,  # torch: torch.optim.AdamW(fused=True) in the training step
    "donate": True,  # jax: donate parameters and optimizer state to the jitted training step
    "seed": 0,
    "train": None,  # a `train:` mapping (bench.training.spec, docs/training.md); needs "train" in measure
    "quality": None,  # sampling + metrics settings (bench/quality/settings.py); None = defaults
}


def _int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _measure(value):
    if not isinstance(value, (list, tuple)) or not value:
        return None, "a non-empty list of " + ", ".join(MEASUREMENTS)
    for i, name in enumerate(value):
        if name not in MEASUREMENTS or not isinstance(name, str):
            return (i, f"unknown measurement {show(name)}"), MEASUREMENTS
        if name in value[:i]:
            return (i, f"measurement {name!r} listed twice"), "each measurement once"
    return tuple(m for m in MEASUREMENTS if m in value), None


def _compile(value):
    if isinstance(value, bool):
        return ("default" if value else "none"), None
    if isinstance(value, str) and value in COMPILE_MODES:
        return value, None
    return None, ("true", "false", *COMPILE_MODES)


def _cpus(value):
    if value is None:
        return None, None
    ok = (isinstance(value, (list, tuple)) and 0 < len(value) <= MAX_THREADS
          and all(_int(c) and 0 <= c < MAX_THREADS for c in value) and len(set(value)) == len(value))
    return (tuple(sorted(value)), None) if ok else (None, "a list of distinct CPU ids (integers >= 0), or null")


def _choice(options):
    return lambda v: (v, None) if isinstance(v, str) and v in options else (None, options)


def _timeout(value):
    ok = (isinstance(value, (int, float)) and not isinstance(value, bool) and abs(value) < 2**63
          and math.isfinite(value) and 0 < value <= MAX_TIMEOUT)
    return (float(value), None) if ok else (None, f"a number of seconds in (0, {MAX_TIMEOUT:g}]")


_CHECKS = {
    "backend": lambda v: (v, None) if isinstance(v, str) and v in BACKENDS else (None, BACKENDS),
    "device": lambda v: (v, None) if isinstance(v, str) and _DEVICE.fullmatch(v) else (None, DEVICES),
    "batch": lambda v: (v, None) if _int(v) and 1 <= v <= MAX_BATCH else (None, f"an integer in [1, {MAX_BATCH}]"),
    "measure": _measure,
    "timeout": _timeout,
    "rounds": lambda v: (v, None) if _int(v) and 1 <= v <= MAX_ROUNDS else (None, f"an integer in [1, {MAX_ROUNDS}]"),
    "threads": lambda v: (v, None) if v is None or (_int(v) and 1 <= v <= MAX_THREADS)
    else (None, f"an integer in [1, {MAX_THREADS}], or null (all cores)"),
    "cpus": _cpus,
    "compile": _compile,
    "precision": _choice(PRECISIONS),
    "memory_format": _choice(MEMORY_FORMATS),
    "attention": _choice(ATTENTION),
    "cuda_graphs": lambda v: (v, None) if isinstance(v, bool) else (None, "true or false"),
    "cudnn_benchmark": lambda v: (v, None) if v is None or isinstance(v, bool)
    else (None, "true, false or null (null: on for CUDA, off elsewhere)"),
    "fused_adamw": lambda v: (v, None) if isinstance(v, bool) else (None, "true or false"),
    "donate": lambda v: (v, None) if isinstance(v, bool) else (None, "true or false"),
    "seed": lambda v: (v, None) if _int(v) and 0 <= v < MAX_SEED else (None, "an integer in [0, 2**32)"),
}


def check_setting(key: str, value, source: str, path: str):
    """The checked (normalized) value of one setting, or a SpecError at `path`."""
    if key == "train":  # a nested mapping: its own checker names the nested key path
        from bench.training.spec import check

        train = check(value.to_dict() if isinstance(value, FrozenMapping) else value, source, path)
        return None if train is None else FrozenMapping(train)
    if key == "quality":  # a nested mapping: it names its own key paths
        from bench.quality.settings import QualitySettings
        return None if value is None else QualitySettings.parse(value, source, path)
    checked, allowed = _CHECKS[key](value)
    if allowed is None:
        return checked
    if isinstance(checked, tuple):  # (index, problem) of a bad list item
        raise SpecError(source, f"{path}[{checked[0]}]", checked[1], allowed)
    named = ("backend", "device", "precision", "memory_format", "attention")
    problem = f"unknown {key} {show(value)}" if key in named else f"bad {key} {show(value)}"
    raise SpecError(source, path, problem, allowed)


@dataclass(frozen=True)
class Case:
    id: str  # "<arch>/<preset>/<backend>/<device>/b<batch>[/t<threads>][/compiled][/s<seed>][/o<hash>]"
    index: int  # position in the expanded suite
    arch: str
    preset: str
    overrides: FrozenMapping  # config field -> value, nested for nested config dataclasses
    backend: str
    device: str
    batch: int
    measure: tuple[str, ...]  # in MEASUREMENTS order
    timeout_s: float = 600.0
    threads: int | None = None
    compile: str = "none"  # a COMPILE_MODES value
    seed: int = 0
    cpus: tuple[int, ...] | None = None
    precision: str = "fp32"
    memory_format: str = "contiguous"
    attention: str = "auto"
    cuda_graphs: bool = False
    cudnn_benchmark: bool | None = None  # None: on for CUDA, off elsewhere
    fused_adamw: bool = False
    donate: bool = True
    train: FrozenMapping | None = None  # the normalized `train:` mapping, or None
    quality: object = None  # QualitySettings (sampling + metrics), or None for the defaults
    rounds: int = DEFAULT_ROUNDS  # processes that time the timed steps (round 1 also measures the rest)

    def __post_init__(self):
        if not isinstance(self.overrides, Mapping):
            raise SpecError(f"case {self.id!r}", "overrides", f"bad overrides {show(self.overrides)}", "a mapping")
        object.__setattr__(self, "overrides", FrozenMapping(self.overrides))
        object.__setattr__(self, "measure", tuple(self.measure))
        for key, value in [("backend", self.backend), ("device", self.device), ("batch", self.batch),
                           ("measure", self.measure), ("timeout", self.timeout_s), ("threads", self.threads),
                           ("compile", self.compile), ("seed", self.seed), ("cpus", self.cpus),
                           ("precision", self.precision), ("memory_format", self.memory_format),
                           ("attention", self.attention), ("cuda_graphs", self.cuda_graphs),
                           ("cudnn_benchmark", self.cudnn_benchmark), ("fused_adamw", self.fused_adamw),
                           ("donate", self.donate), ("rounds", self.rounds)]:
            check_setting(key, value, f"case {self.id!r}", key)
        object.__setattr__(self, "train", check_setting("train", self.train, f"case {self.id!r}", "train"))
        object.__setattr__(self, "quality", check_setting("quality", self.quality, f"case {self.id!r}", "quality"))
        object.__setattr__(self, "timeout_s", float(self.timeout_s))
        object.__setattr__(self, "compile", check_setting("compile", self.compile, f"case {self.id!r}", "compile"))
        object.__setattr__(self, "cpus", check_setting("cpus", self.cpus, f"case {self.id!r}", "cpus"))
        settings = {k: getattr(self, "timeout_s" if k == "timeout" else k) for k in SETTINGS}
        for key, problem, allowed in combination_problems(settings):
            raise SpecError(f"case {self.id!r}", key, problem, allowed)
        object.__setattr__(self, "measure", tuple(m for m in MEASUREMENTS if m in self.measure))
        if self.device == "tpu" and self.backend == "torch":
            raise SpecError(f"case {self.id!r}", "device", "device 'tpu' needs backend 'jax'", "cpu, cuda, cuda:N, auto")
        if not (self.id and isinstance(self.arch, str) and isinstance(self.preset, str) and _int(self.index)):
            raise SpecError(f"case {self.id!r}", "(case)", "id, arch and preset must be strings, index an integer",
                            "a case made by bench.suite_file")

    def to_dict(self) -> dict:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        cpus = None if self.cpus is None else list(self.cpus)
        return dict(out, overrides=self.overrides.to_dict(), measure=list(self.measure), cpus=cpus,
                    train=None if self.train is None else self.train.to_dict(),
                    quality=None if self.quality is None else self.quality.to_dict())

    @classmethod
    def from_dict(cls, data: dict) -> Case:
        names = [f.name for f in fields(cls)]
        required = [f.name for f in fields(cls) if f.default is MISSING]
        bad = sorted(set(data) - set(names)) or sorted(set(required) - set(data))
        if bad:
            raise SpecError("case dict", ", ".join(bad), "unknown or missing key(s)", names)
        return cls(**data)


def combination_problems(c: Mapping) -> list[tuple[str, str, str]]:
    """Settings of one case (a mapping of SETTINGS keys) that cannot go together, as
    (key, problem, allowed); checked at load, before anything runs."""
    out = []
    if c["backend"] == "jax":
        if c["compile"] not in ("none", "default"):
            out.append(("compile", f"compile mode {c['compile']!r} is a torch.compile mode (jax always jits)",
                        "default, or compile left unset, with backend jax"))
        if c["memory_format"] != "contiguous":
            out.append(("memory_format", "jax arrays are channels-last already", "contiguous with backend jax"))
        if c["attention"] != "auto":
            out.append(("attention", "attention kernels are chosen by XLA in jax", "auto with backend jax"))
        if c["cuda_graphs"]:
            out.append(("cuda_graphs", "CUDA graphs are a torch setting", "false with backend jax"))
        if c.get("cudnn_benchmark") is not None:
            out.append(("cudnn_benchmark", "cuDNN autotuning is a torch setting (XLA autotunes itself)",
                        "null with backend jax"))
        if c.get("fused_adamw"):
            out.append(("fused_adamw", "fused AdamW is a torch setting (XLA fuses the jitted update)",
                        "false with backend jax"))
    elif c.get("donate") is False:
        out.append(("donate", "buffer donation is a jax setting (torch updates parameters in place)",
                    "true with backend torch"))
    if c["cuda_graphs"] and not c["device"].startswith(("cuda", "auto")):
        out.append(("cuda_graphs", f"CUDA graphs need a CUDA device, not {c['device']!r}", "false on cpu/tpu"))
    if c.get("cudnn_benchmark") and not c["device"].startswith(("cuda", "auto")):
        out.append(("cudnn_benchmark", f"cuDNN autotuning needs a CUDA device, not {c['device']!r}",
                    "false or null on cpu/tpu"))
    training = training_measurements(c["measure"])
    if c["precision"] == "bf16-pure" and training:
        out.append(("precision", f"bf16-pure (weights in bf16) is for inference only; {', '.join(training)} "
                    "trains the model", "fp32, tf32, bf16 or fp16 for training steps (train, train_step, and memory "
                    "without a timed sample_step)"))
    if (c["backend"] == "torch" and c["attention"] in ("flash", "cudnn") and c["precision"] in ("fp32", "tf32")
            and c["device"].startswith(("cuda", "auto"))):
        out.append(("attention", f"attention {c['attention']!r} on a GPU needs float16 or bfloat16 q/k/v; precision "
                    f"{c['precision']!r} keeps them float32", f"precision bf16, fp16 or bf16-pure with attention "
                    f"{c['attention']!r} (or attention auto, efficient or math)"))
    if c["cpus"] is not None and c["threads"] is not None and c["threads"] > len(c["cpus"]):
        out.append(("threads", f"threads={c['threads']} but only {len(c['cpus'])} cpus listed", "threads <= len(cpus)"))
    return out


def training_measurements(measure) -> list[str]:
    """The measurements of `measure` that run training steps: train, train_step, and memory when
    no step is timed (it then runs one training step of its own)."""
    out = [m for m in ("train", "train_step") if m in measure]
    if "memory" in measure and "sample_step" not in measure and "train_step" not in measure:
        out.append("memory")
    return out


def compile_flag(case) -> bool | str:
    """What the adapters' `compile` argument is for this case, the one place it is decided:
    jax always jit-compiles ahead of time (True); torch runs torch.compile with the case's mode,
    or eagerly (False) for compile none."""
    if case.backend == "jax":
        return True
    return False if case.compile == "none" else case.compile
