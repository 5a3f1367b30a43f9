"""Thread defaults: "all cores" means the CPUs this process may use, not the machine's count."""

import json
import os
import subprocess
import sys
from pathlib import Path

from bench.backends.threads import resolve_threads

ROOT = Path(__file__).resolve().parents[1]


def test_all_cores_follows_the_cpu_affinity(tmp_path):
    """Real pinning, in its own process (its CPU locks die with it): a process allowed one CPU of
    a machine that reports 64 gets 1 thread pinned to that CPU (it raised "threads=64 but ...
    1 CPUs" when the default followed os.cpu_count())."""
    code = ("import json, os; cpu = max(os.sched_getaffinity(0)); os.sched_setaffinity(0, {cpu}); "
            "os.cpu_count = lambda: 64; "
            "from bench.backends import framework_free; from bench.backends.threads import resolve_threads; "
            "t = resolve_threads(None); r = framework_free.pin_threads(t); "
            "print(json.dumps({'cpu': cpu, 'threads': t, 'cpus': r['cpus'], 'claim': r['cpu_claim'], "
            "'affinity': sorted(os.sched_getaffinity(0))}))")
    env = {**os.environ, "DIFFBENCH_CPU_LOCKS": str(tmp_path)}
    out = json.loads(subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True,
                                    capture_output=True, text=True).stdout)
    assert out["threads"] == 1 and out["cpus"] == out["affinity"] == [out["cpu"]], out
    assert out["claim"] == "exclusive" and (tmp_path / f"cpu{out['cpu']}.lock").is_file()


def test_an_explicit_count_is_kept():
    assert resolve_threads(3) == 3


def test_concurrent_workers_spread_over_free_cpus(tmp_path, monkeypatch):
    """A CPU held by another diffbench process is skipped; with none free the claim says 'shared'."""
    import subprocess
    import sys

    from bench.backends import cpus

    def release_all():  # this process's claims end with the test, not with pytest
        for cpu in list(cpus._held):
            cpus._release(cpu)

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
        release_all()
        assert cpus.claim(2) == {"cpus": [0, 1], "claim": "shared"}
        assert cpus.claim(1, requested=(0,)) == {"cpus": [0], "claim": "requested"}
    finally:
        release_all()
        holder.kill()
        holder.wait()
