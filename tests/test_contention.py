"""The contention flag of a timed CPU step, for any thread count (bench.measure.case_measurements.cpu_record)."""
import os

from bench.measure.case_measurements import cpu_record

CPU = {"device": "cpu"}
BUSY = (os.cpu_count() or 1) + 3.0  # more runnable work than logical CPUs
QUIET = 0.1


def _rec(wall_ms, cpu_ms, threads, load, device=CPU):
    return cpu_record([wall_ms / 1e3] * 5, [cpu_ms / 1e3] * 5, threads, device, load=load)


def test_two_threads_getting_a_quarter_core_are_contended():
    # the case: a 2-thread step at wall/CPU 3.96 used to say contended: False
    r = _rec(396.0, 100.0, 2, QUIET)
    assert r["contended"] and "wall/CPU 3.96" in r["contention"] and r["wall_over_cpu"] == 3.96


def test_run_queue_load_flags_multithreaded_steps_that_lost_cpu():
    r = _rec(100.0, 120.0, 2, BUSY)  # 2 threads used 60% of their capacity on an oversubscribed machine
    assert r["contended"] and "run-queue load" in r["contention"] and r["cpu_utilization"] == 0.6
    assert not _rec(100.0, 120.0, 2, QUIET)["contended"]  # a quiet machine: the op is just not parallel


def test_steps_that_got_their_cpu_are_not_contended():
    assert not _rec(100.0, 98.0, 1, BUSY)["contended"]
    assert not _rec(100.0, 395.0, 4, BUSY)["contended"]
    assert not _rec(100.0, 10.0, 1, BUSY, device={"device": "cuda:0", "platform": "gpu"})["contended"]
    r = _rec(100.0, 98.0, 1, None)
    assert set(r) >= {"load_1m", "cpu_count", "cpu_utilization", "contention"} and r["contention"] is None


def test_shipped_suites_run_one_thread_per_cpu_case():
    """`make bench` on a busy machine: one intra-op thread per case keeps torch and JAX comparable."""
    from pathlib import Path

    from bench import suite_file

    for path in sorted(Path("suites").glob("*.yaml")):
        for case in suite_file.load(path).cases:
            if case.device == "cpu":
                assert case.threads == 1, (path.name, case.id)


def test_fast_subset_names_existing_test_modules():
    from pathlib import Path

    from tests.conftest import FAST_MODULES

    present = {p.stem for p in Path("tests").glob("test_*.py")}
    assert FAST_MODULES <= present, FAST_MODULES - present
