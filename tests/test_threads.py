"""Thread defaults: "all cores" means the CPUs this process may use, not the machine's count."""

import os

from bench.backends import host
from bench.backends.threads import resolve_threads


def test_all_cores_follows_the_cpu_affinity(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {3})
    monkeypatch.setattr(os, "sched_setaffinity", lambda pid, cpus: None)
    monkeypatch.setattr(os, "environ", dict(os.environ))  # pin_threads writes the thread env
    threads = resolve_threads(None)
    assert threads == 1
    assert host.pin_threads(threads)["cpus"] == [3]  # raised "threads=8 but ... 1 CPUs" before


def test_an_explicit_count_is_kept():
    assert resolve_threads(3) == 3
