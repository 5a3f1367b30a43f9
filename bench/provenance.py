"""Where a run came from: code version, package versions, host. Imports no framework."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
import sys
from pathlib import Path

PACKAGES = ("torch", "jax", "jaxlib", "flax", "numpy", "optax", "fvcore", "clean-fid")
REPO = Path(__file__).resolve().parents[1]


def git_state(repo: Path = REPO) -> dict:
    def git(*args):
        out = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, timeout=20)
        return out.stdout.strip() if out.returncode == 0 else None

    try:
        sha = git("rev-parse", "HEAD")
        status = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError) as exc:
        return {"sha": None, "dirty": None, "error": str(exc)}
    return {"sha": sha, "dirty": None if status is None else bool(status)}


def package_versions() -> dict:
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def nvidia_gpus() -> list[str]:
    """GPU names from nvidia-smi, without importing a framework; [] when there is none."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.stdout.splitlines() if line.strip()] if out.returncode == 0 else []


def thread_settings() -> dict:
    keys = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "XLA_FLAGS", "DIFFBENCH_THREADS")
    return {k: os.environ.get(k) for k in keys}


def host() -> dict:
    return {
        "hostname": platform.node(),
        "platform": platform.platform(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "accelerators": {"nvidia": nvidia_gpus(), "tpu": sorted(str(p) for p in Path("/dev").glob("accel*"))},
        "python_executable": sys.executable,
    }


def collect() -> dict:
    return {"git": git_state(), "versions": package_versions(), "host": host(), "threads": thread_settings()}
