"""The Ray executor on a real local Ray cluster (no mocks): records interchangeable with the local
executor's, node provenance, a worker killed mid-case is retried once, a second loss is a failed
record."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time

import psutil
import pytest

from bench import records, runner, suite_file

if os.environ.get("CI"):
    import ray  # `make test` installs the [ray] extra: in CI a missing Ray is a failure, not a skip
else:
    ray = pytest.importorskip("ray", reason="Ray is the [ray] extra; `make test` installs it")

SUITE = """name: {name}
plugins: [tests.fault_arch]
defaults: {{backend: torch, device: cpu, batch: 1, measure: [params], timeout: 120, threads: 1}}
cases:
{cases}
"""
MIXED = "  - {preset: fault-ok-tiny, measure: [params, flops]}\n  - {preset: fault-raise-tiny}\n  - {preset: fault-nan-tiny, measure: [params, sample_step]}"


REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_a_sigkilled_driver_leaves_no_ray_process_behind(tmp_path):
    """The local cluster a driver started is stopped by its watchdog when the driver is SIGKILLed
    mid-case: gcs, raylet, the dashboard and runtime-env agents, workers, the case. (Runs before
    the module's own cluster starts.)"""
    suite = tmp_path / "hang.yaml"
    suite.write_text(SUITE.format(name="hang", cases="  - {preset: fault-hang-tiny}"))
    env = {**os.environ, "PYTHONPATH": REPO}
    env.pop("RAY_ADDRESS", None)
    driver = subprocess.Popen([sys.executable, "-m", "bench.cli", "run", str(suite), "--results", str(tmp_path / "r"),
                               "--quiet", "--executor", "ray"], cwd=REPO, env=env, stderr=subprocess.DEVNULL)
    tree = {}
    try:
        deadline = time.time() + 300
        while time.time() < deadline and not any("bench.worker" in cmd for cmd in tree.values()):
            for proc in psutil.Process(driver.pid).children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    tree.setdefault(proc, " ".join(proc.cmdline()))
            time.sleep(0.5)
        assert any("bench.worker" in cmd for cmd in tree.values()), "the case never started"
        assert any("ray_watchdog" in cmd for cmd in tree.values()) and any("raylet" in cmd for cmd in tree.values())
        driver.kill()
        driver.wait()
        _, alive = psutil.wait_procs(list(tree), timeout=60)
        alive = [p for p in alive if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        assert not alive, [tree[p][:80] for p in alive]
    finally:
        for proc in tree:
            with contextlib.suppress(psutil.Error):
                proc.kill()


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def _load(tmp_path, name, cases):
    path = tmp_path / f"{name}.yaml"
    path.write_text(SUITE.format(name=name, cases=cases))
    return suite_file.load(path)


def test_ray_records_match_the_local_executors(cluster, tmp_path):
    suite = _load(tmp_path, "mixed", MIXED)
    local = records.read_records(runner.run_suite(suite, results_root=tmp_path / "local", show_progress=False))
    run_dir = runner.run_suite(suite, results_root=tmp_path / "ray", show_progress=False, executor="ray")
    remote = records.read_records(run_dir)
    assert set(local) == set(remote) and len(remote) == 3
    for case_id, rec in remote.items():
        assert rec["status"] == local[case_id]["status"], case_id
        assert rec.get("params") == local[case_id].get("params")
        if "flops" in rec:
            assert rec["flops"]["gflop"] == local[case_id]["flops"]["gflop"]
        node = rec["worker"]["node"]
        assert node["executor"] == "ray" and node["hostname"] and node["ray_node_id"]
        assert (run_dir / rec["worker"]["log"]).is_file()
    assert {r["status"] for r in remote.values()} == {"ok", "failed"}
    meta = json.loads((run_dir / records.RUN_FILE).read_text())
    assert meta["executor"] == "ray" and meta["cluster"] and meta["cluster"][0]["resources"]["CPU"] == 2


def _case_processes(seen: set):
    """bench.worker processes started by a Ray task that we have not seen yet."""
    out = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmd = " ".join(proc.info["cmdline"] or [])
        if "bench.worker" in cmd and "diffbench-ray-" in cmd and proc.pid not in seen:
            out.append(proc)
    return out


def _kill_ray_workers(times: int, killed: list):
    """Kill the Ray worker (the parent of the case process) `times` times, each mid-case."""
    seen = set()
    deadline = time.time() + 90
    while len(killed) < times and time.time() < deadline:
        found = _case_processes(seen)
        if not found:
            time.sleep(0.1)
            continue
        proc = found[0]
        seen.add(proc.pid)
        time.sleep(1.0)  # mid-case: the case process has started its work
        try:
            parent = proc.parent()
            os.kill(parent.pid, signal.SIGKILL)
            killed.append(parent.pid)
        except (psutil.Error, ProcessLookupError):
            continue


def _run_with_killer(tmp_path, name, preset, times):
    suite = _load(tmp_path, name, f"  - {{preset: {preset}, measure: [params]}}")
    killed = []
    killer = threading.Thread(target=_kill_ray_workers, args=(times, killed), daemon=True)
    killer.start()
    run_dir = runner.run_suite(suite, results_root=tmp_path / "results", show_progress=False, executor="ray")
    killer.join(timeout=5)
    (rec,) = records.read_records(run_dir).values()
    return rec, killed


def test_a_lost_worker_is_retried_once(cluster, tmp_path):
    rec, killed = _run_with_killer(tmp_path, "retry", "fault-slow-tiny", 1)
    assert len(killed) == 1
    assert rec["status"] == "ok" and rec["worker"]["attempts"] == 2, rec["worker"]
    assert len(rec["worker"]["lost_attempts"]) == 1 and rec["params"] > 0


def test_a_second_loss_is_a_failed_record(cluster, tmp_path):
    rec, killed = _run_with_killer(tmp_path, "lost", "fault-hang-tiny", 2)
    assert len(killed) == 2 and len(set(killed)) == 2
    assert rec["status"] == "failed" and rec["error"]["type"] == "WorkerLost", rec["error"]
    assert "2 times" in rec["error"]["message"] and rec["worker"]["attempts"] == 2


def test_pinned_accelerator_indices_are_refused(cluster, tmp_path):
    suite = suite_file.loads(SUITE.format(name="pin", cases="  - {preset: fault-ok-tiny, device: 'cuda:1'}"), "pin.yaml")
    with pytest.raises(runner.RunError, match="pins an accelerator index"):
        runner.run_suite(suite, results_root=tmp_path, show_progress=False, executor="ray")


def test_rounds_run_as_ray_tasks_and_merge_into_one_record(cluster, tmp_path):
    suite = _load(tmp_path, "rounds", "  - {preset: fault-ok-tiny, measure: [params, sample_step], rounds: 2}")
    run_dir = runner.run_suite(suite, results_root=tmp_path / "results", show_progress=False, executor="ray")
    (rec,) = records.read_records(run_dir).values()
    assert rec["status"] == "ok", rec.get("error")
    assert len(rec["timing"]["sample_step"]["rounds"]) == 2 and rec["params"] > 0
    procs = rec["worker"]["rounds"]
    assert [p["node"]["executor"] for p in procs] == ["ray", "ray"] and procs[1]["log"].endswith(".round2.log")
    assert all((run_dir / p["log"]).is_file() for p in procs)
    assert not (run_dir / records.ROUNDS_DIR).exists()
