"""The Ray executor: each case (each round of a case, bench/rounds.py) is a Ray task that runs it
exactly as the local executor does (a fresh `python -P -m bench.worker` process on the task's node)
and returns the record and the log to the driver, which writes them (atomically, one record per
case, under the locked run directory). Rounds go in waves: round k of every case, then round k+1.

Resources per case: one GPU for `cuda`, a whole TPU host for `tpu`, `threads` CPUs otherwise (a
whole node when threads is null), so two timed cases never share an accelerator or a core. A task
lost to a worker or node failure is submitted once more; a second loss is a failed record.
Ray is imported only here, only when `--executor ray` is chosen.
"""

from __future__ import annotations

import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

INSTALL_HINT = "pip install 'diffbench[ray]' (or: pip install ray==2.60.0)"
RETRIES = 1  # a task lost to a worker/node failure runs once more


def import_ray():
    try:
        import ray
    except ImportError as exc:
        from bench.rundir import RunError

        raise RunError(f"--executor ray needs Ray, which is not installed ({exc}); install it with: "
                       f"{INSTALL_HINT}") from None
    return ray


def run_remote_case(case_dict: dict, suite_name: str, plugins: tuple, run_id: str, log_rel: str,
                    only: list | None = None) -> tuple[dict, bytes]:
    """The Ray task body, on whichever node Ray chose: (record, log bytes)."""
    import ray

    from bench import provenance
    from bench.case import Case
    from bench.case_process import case_record

    case = Case.from_dict(case_dict)
    ctx = ray.get_runtime_context()
    node = {"executor": "ray", "ray_node_id": ctx.get_node_id(), "node_ip": ray.util.get_node_ip_address(),
            "gpus": provenance.nvidia_gpus(), "assigned_accelerators": {
                k: [str(i) for i in v] for k, v in ctx.get_accelerator_ids().items() if v}}
    with tempfile.TemporaryDirectory(prefix="diffbench-ray-") as tmp:
        log_path = Path(tmp) / "case.log"
        record = case_record(case, suite_name, tuple(plugins), run_id, Path(tmp) / "scratch", log_path, log_rel, node,
                             only=only)
        log = log_path.read_bytes() if log_path.is_file() else b""
    return record, log


_WATCHDOG = None  # the watchdog of the local cluster this process started; its stdin pipe stays open


def _children() -> set:
    """(pid, start time) of this process's children."""
    import psutil

    out = set()
    for child in psutil.Process().children():
        try:
            out.add((child.pid, child.create_time()))
        except psutil.Error:
            continue
    return out


def _watch_local_cluster(started: list) -> None:
    """ray.init started these processes (a local cluster, not one we joined): a watchdog stops
    them, and everything they start, once this process is gone, even by SIGKILL
    (bench/ray_watchdog.py). Joining an existing cluster starts no process and no watchdog."""
    global _WATCHDOG
    if not started or _WATCHDOG is not None:
        return
    from bench.child_process import python_child

    cmd, env = python_child("bench.ray_watchdog", *[f"{pid}:{t!r}" for pid, t in started])
    _WATCHDOG = subprocess.Popen(cmd, env=env, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL,
                                 start_new_session=True)  # not in the driver's process group: Ctrl-C spares it


@dataclass
class Cluster:
    ray: object
    nodes: list[dict]

    @classmethod
    def connect(cls, address: str | None, cases) -> Cluster:
        """Join the cluster at `address` (or the one already initialized in this process, or a
        local one), and check that every case can be placed."""
        from bench.rundir import RunError

        pinned = sorted({c.device for c in cases if c.device.startswith(("cuda:", "tpu:"))})
        if pinned:
            raise RunError(f"--executor ray: device {pinned[0]!r} pins an accelerator index; allowed: 'cuda' or 'tpu' "
                           "(Ray assigns one accelerator per case)")
        ray = import_ray()
        if not ray.is_initialized():
            before = _children()
            try:
                ray.init(address=address, include_dashboard=False, log_to_driver=False,
                         configure_logging=False)
            except (ConnectionError, ValueError, RuntimeError) as exc:
                raise RunError(f"--address {address!r}: cannot join a Ray cluster: {exc}") from None
            _watch_local_cluster([p for p in _children() if p not in before])
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        cluster = cls(ray, nodes)
        for case in cases:
            resources = cluster.resources(case)
            if not any(all(n["Resources"].get(k, 0) >= v for k, v in resources.items()) for n in nodes):
                raise RunError(f"--executor ray: no node of the cluster has {resources} for case {case.id!r}; "
                               f"nodes: {[n['Resources'] for n in nodes]}")
        return cluster

    def describe(self) -> list[dict]:
        """The cluster's nodes, for run.json."""
        keep = ("CPU", "GPU", "TPU", "memory")
        return [{"node_id": n["NodeID"], "hostname": n.get("NodeManagerHostname"), "ip": n.get("NodeManagerAddress"),
                 "resources": {k: v for k, v in n["Resources"].items() if k in keep or k.startswith("accelerator_type")}}
                for n in self.nodes]

    def _smallest(self, key: str) -> float:
        have = [n["Resources"].get(key, 0) for n in self.nodes if n["Resources"].get(key, 0) > 0]
        return min(have) if have else 1

    def resources(self, case) -> dict:
        """What one case asks Ray for: its accelerator, or its CPUs (a whole node for threads=null)."""
        kind = case.device.split(":")[0]
        if kind == "cuda":
            return {"GPU": 1}
        if kind == "tpu":
            return {"TPU": self._smallest("TPU")}  # a jax process takes every chip of its host
        return {"CPU": case.threads or self._smallest("CPU")}

    def _submit(self, job, suite, run_id: str):
        from bench.case_process import log_name

        case = job.case
        r = self.resources(case)
        if not hasattr(self, "_remote"):
            self._remote = self.ray.remote(run_remote_case)
        task = self._remote.options(
            num_cpus=r.get("CPU", 0), num_gpus=r.get("GPU", 0),
            resources={k: v for k, v in r.items() if k not in ("CPU", "GPU")} or None,
            max_retries=0)  # retries are ours: counted and recorded
        return task.remote(case.to_dict(), suite.name, tuple(suite.plugins), run_id, log_name(case, job.round),
                           job.only)

    def run(self, jobs, suite, run_id: str, write, bar) -> None:
        """Submit every job (bench.rounds.Job: a case's round), hand each process's record to
        `write(job, record, log)` as it arrives; Ctrl-C cancels what is left."""
        ray = self.ray
        pending = {}
        for job in jobs:
            pending[self._submit(job, suite, run_id)] = (job, 1, [], time.time())
        try:
            while pending:
                (ref,), _ = ray.wait(list(pending), num_returns=1)
                job, attempt, losses, submitted = pending.pop(ref)
                bar.start(job.label)
                try:
                    record, log = ray.get(ref)
                except ray.exceptions.RayTaskError as exc:  # the task's own code raised
                    record, log = self._failed(job, suite, run_id, "RayTaskError", str(exc), submitted), None
                except ray.exceptions.RayError as exc:  # worker or node lost
                    losses.append(f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}")
                    if attempt <= RETRIES:
                        pending[self._submit(job, suite, run_id)] = (job, attempt + 1, losses, submitted)
                        continue
                    record = self._failed(job, suite, run_id, "WorkerLost",
                                          f"lost to a worker or node failure {len(losses)} times: {'; '.join(losses)}",
                                          submitted)
                    log = None
                record["worker"].update(attempts=attempt, lost_attempts=losses)
                write(job, record, log)
        except BaseException:
            for ref in pending:
                ray.cancel(ref, force=True)
            raise

    @staticmethod
    def _failed(job, suite, run_id: str, kind: str, message: str, submitted: float) -> dict:
        from bench.records import SCHEMA
        from bench.case_process import log_name, now

        case = job.case
        return {"schema": SCHEMA, "suite": suite.name, "run_id": run_id, "case_id": case.id, "case": case.to_dict(),
                "started": None, "ended": now(), "duration_s": time.time() - submitted, "status": "failed",
                "error": {"type": kind, "message": message},
                "worker": {"log": log_name(case, job.round), "node": {"executor": "ray"}}}
