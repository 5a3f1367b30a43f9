"""A case's `quality:` settings, validated at suite load (imports neither torch nor jax).

    quality:
      metrics: [fd-effnet, kid]   # see METRICS
      n: 64                       # generated samples scored (the reference gets 2n: n + n for the floor)
      steps: null                 # sampler steps (NFE per sample = steps x passes per step); null = preset's
      batch: 16                   # sampling batch
      dataset: shapes             # reference data (bench.data); also what `train:` trains on
      root: null                  # its directory, for datasets read from disk
"""
from __future__ import annotations

import dataclasses

from bench.strict_yaml import SpecError, child, show

# metric -> (feature space on images, on videos, statistic); see bench/quality/metrics.py
METRICS = {
    "fid": ("inception", None, "fd"),
    "kid-inception": ("inception", None, "kid"),
    "fvd": (None, "i3d", "fd"),
    "fd-effnet": ("effnet", "effnet-video", "fd"),
    "kid": ("effnet", "effnet-video", "kid"),
}
PROXIES = ("fd-effnet", "kid")
# metric -> environment variable naming its weights file (bench/quality/weights.py)
WEIGHTS_ENV = {"fid": "DIFFBENCH_INCEPTION", "kid-inception": "DIFFBENCH_INCEPTION", "fvd": "DIFFBENCH_I3D"}
MAX_N = 100_000  # FID's standard is 50,000 samples; each is generated and featurized
MAX_STEPS = 10_000  # sampler steps; DDPM's ancestral sampler uses 1,000
MAX_BATCH = 1 << 20  # as a case's batch (bench.case.MAX_BATCH)


@dataclasses.dataclass(frozen=True)
class QualitySettings:
    metrics: tuple[str, ...] = ("fd-effnet", "kid")
    n: int = 64            # generated samples; small N: read KID, and FD next to its floor
    steps: int | None = None  # sampler steps; None = the preset's sample_steps
    batch: int = 16        # samples per generate() call
    dataset: str = "shapes"  # reference set, a bench.data name
    root: str | None = None  # directory of an on-disk dataset

    def to_dict(self) -> dict:
        return dict(dataclasses.asdict(self), metrics=list(self.metrics))

    @classmethod
    def parse(cls, value, source: str, path: str) -> QualitySettings:
        """From a suite mapping (or a Case dict); SpecError naming `path` and its key."""
        if isinstance(value, cls):
            return value
        keys = [f.name for f in dataclasses.fields(cls)]
        if not isinstance(value, dict):
            raise SpecError(source, path, f"expected a mapping, got {show(value)}", keys)
        for key in value:
            if key not in keys:
                raise SpecError(source, child(path, key), f"unknown key {key!r}", keys)
        out = {**dataclasses.asdict(cls()), **value}
        _check_metrics(out["metrics"], source, child(path, "metrics"))
        for key, low, high, why in (("n", 2, MAX_N, "FID's standard is 50,000"), ("batch", 1, MAX_BATCH, "")):
            if not _int(out[key]) or not low <= out[key] <= high:
                raise SpecError(source, child(path, key), f"bad {key} {show(out[key])}",
                                f"an integer in [{low}, {high}]" + (f" ({why})" if why else ""))
        if out["steps"] is not None and (not _int(out["steps"]) or not 1 <= out["steps"] <= MAX_STEPS):
            raise SpecError(source, child(path, "steps"), f"bad steps {show(out['steps'])}",
                            f"an integer in [1, {MAX_STEPS}] (DDPM samples with 1,000), or null")
        for key in ("dataset", "root"):
            if not (isinstance(out[key], str) and out[key]) and not (key == "root" and out[key] is None):
                raise SpecError(source, child(path, key), f"bad {key} {show(out[key])}",
                                "a dataset name" if key == "dataset" else "a directory, or null")
        from bench.data.suite_checks import check_count, check_source

        problem = check_source(out["dataset"], out["root"]) or \
            check_count(out["dataset"], "n", out["n"], 2, "n compared + n for the floor")
        if problem:
            key, text, allowed = problem
            raise SpecError(source, child(path, key), text, allowed)
        return cls(**dict(out, metrics=tuple(out["metrics"])))


def _int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_metrics(value, source: str, path: str) -> None:
    if not isinstance(value, (list, tuple)) or not value:
        raise SpecError(source, path, f"expected a non-empty list, got {show(value)}", list(METRICS))
    for i, name in enumerate(value):
        if not isinstance(name, str) or name not in METRICS:
            raise SpecError(source, f"{path}[{i}]", f"unknown metric {show(name)}", list(METRICS))
        if name in value[:i]:
            raise SpecError(source, f"{path}[{i}]", f"metric {name!r} listed twice", "each metric once")
