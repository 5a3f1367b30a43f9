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


def test_concurrent_workers_spread_over_free_cpus(tmp_path, monkeypatch):
    """A CPU held by another diffbench process is skipped; with none free the claim says 'shared'."""
    import subprocess
    import sys

    from bench.backends import cpus

    monkeypatch.setattr(cpus, "LOCK_DIR", tmp_path)
    monkeypatch.setattr(cpus, "_held", {})
    monkeypatch.setattr(cpus, "allowed", lambda: [0, 1])
    holder = subprocess.Popen([sys.executable, "-c",
                               "import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT); "
                               "fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); time.sleep(60)",
                               str(tmp_path / "cpu0.lock")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert cpus.claim(1) == {"cpus": [1], "claim": "exclusive"}  # not CPU 0, the other process's
        monkeypatch.setattr(cpus, "_held", {})
        assert cpus.claim(2) == {"cpus": [0, 1], "claim": "shared"}
        assert cpus.claim(1, requested=(0,)) == {"cpus": [0], "claim": "requested"}
    finally:
        holder.kill()
        holder.wait()
