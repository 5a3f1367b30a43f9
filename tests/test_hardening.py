"""Hostile and careless input through the `diffbench` entry point: every bad input is exit 2 and
one printable line naming what is wrong — never a traceback, a hang or exit 0 — and a run
directory survives stray files, damaged records, a second runner and memory kills."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench import cli, records, runner, suite_file
from bench.rundir import RunLock, cgroup_memory_events, oom_kills, sigkill_message

REPO = Path(__file__).resolve().parents[1]
OK_SUITE = """name: {name}
plugins: [tests.fault_arch]
defaults: {{backend: torch, device: cpu, batch: 1, measure: [params], timeout: 60, threads: 1}}
cases:
  - {{preset: fault-ok-tiny}}
"""


@contextmanager
def deadline(seconds: int):
    """A hang is a failure: SIGALRM turns it into an exception."""
    def fire(signum, frame):
        raise TimeoutError(f"no answer within {seconds} s")

    previous = signal.signal(signal.SIGALRM, fire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def run_cli(argv, capsys, seconds: int = 30) -> tuple[int, str]:
    """main(argv) in this process: (exit code, stderr). A traceback escapes as an exception."""
    with deadline(seconds):
        try:
            code = cli.main(argv)
        except SystemExit as exc:  # argparse's own usage errors
            code = exc.code
    err = capsys.readouterr().err
    return code, err


def assert_one_clean_line(code, err, *needles):
    assert code == 2, (code, err)
    lines = [line for line in err.splitlines() if line.startswith("diffbench: error:")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert not any(ch in lines[0] for ch in "\r\x1b\x00\x07"), repr(lines[0])
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def plan(tmp_path, capsys, text: str | bytes, name="suite.yaml"):
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass"))
    return run_cli(["plan", str(path)], capsys)


# -- the loader ---------------------------------------------------------------------------------
HUGE = "1" + "0" * 400
BAD_SUITES = {
    "huge timeout": (f"cases: [{{preset: rin-tiny, timeout: {HUGE}}}]", "cases[0].timeout"),
    "huge override": (f"cases: [{{preset: rin-tiny, override: {{dropout: {HUGE}}}}}]", "integer too large"),
    "hex past the digit limit": ("cases: [{preset: rin-tiny, batch: 0x" + "F" * 4000 + "}]", "integer too large"),
    "huge batch": (f"cases: [{{preset: rin-tiny, batch: {'9' * 300}}}]", "integer too large"),
    "big batch": ("cases: [{preset: rin-tiny, batch: 100000000}]", "cases[0].batch"),
    "big threads": ("cases: [{preset: rin-tiny, threads: 100000}]", "cases[0].threads"),
    "long name": ("name: " + "a" * 300 + "\ncases: [{preset: rin-tiny}]", "bad suite name"),
    "arabic digit device": ("cases: [{preset: rin-tiny, device: 'cuda:\u0663'}]", "unknown device"),
    "long device index": ("cases: [{preset: rin-tiny, device: 'cuda:" + "1" * 300 + "'}]", "unknown device"),
    "bool tag": ("cases: [{preset: rin-tiny, compile: !!bool maybe}]", "unreadable value"),
    "timestamp tag": ("cases: [{preset: rin-tiny, batch: !!timestamp x}]", "unreadable value"),
    "empty int tag": ("cases: [{preset: rin-tiny, batch: !!int ''}]", "unreadable value"),
    "empty float tag": ("cases: [{preset: rin-tiny, batch: !!float ''}]", "unreadable value"),
    "python tag": ("cases: [{preset: rin-tiny, batch: !!python/object:os.system x}]", "cases[0].batch"),
    "set tag": ("cases: !!set {a, b}", "cases"),
    "too many cases": ("cases:\n" + "".join(
        f"  - {{preset: rin-tiny, matrix: {{batch: [{', '.join(map(str, range(1, 101)))}], "
        f"seed: [{', '.join(map(str, range(100)))}]}}, timeout: {i + 1}}}\n" for i in range(3)), "at most 10000"),
}


@pytest.mark.parametrize("name", sorted(BAD_SUITES))
def test_bad_suites_are_one_line_exit_2(name, tmp_path, capsys):
    text, needle = BAD_SUITES[name]
    code, err = plan(tmp_path, capsys, text)
    assert_one_clean_line(code, err, "suite.yaml", needle)


def test_control_characters_are_escaped(tmp_path, capsys):
    code, err = plan(tmp_path, capsys, 'cases: [{preset: rin-tiny, "a\\rb\\e[2J": 1}]')
    line = assert_one_clean_line(code, err, "unknown key")
    assert "\\r" in line and "\\x1b" in line


def test_size_bombs_are_refused_quickly(tmp_path, capsys):
    start = time.monotonic()
    code, err = plan(tmp_path, capsys, "cases: [" + "1, " * 200_000 + "]")
    assert_one_clean_line(code, err, "larger than 256 KiB")
    code, err = run_cli(["plan", "/dev/zero"], capsys)
    assert_one_clean_line(code, err, "/dev/zero", "not a regular file")
    assert time.monotonic() - start < 10


def test_override_json_with_huge_integers(capsys):
    for text in ('{"dropout": ' + HUGE + "}", '{"dropout": ' + "9" * 5000 + "}", "[" * 100_000):
        code, err = run_cli(["flops", "rin", "--preset", "rin-tiny", "--override", text], capsys)
        assert_one_clean_line(code, err, "--override")


YAML_TAGS = ["!!str", "!!int", "!!float", "!!bool", "!!null", "!!timestamp", "!!binary", "!!map", "!!seq",
             "!!set", "!!omap", "!!pairs", "!!merge", "!!value", "!!yaml", "!!python/none", "!custom", "!!"]
scalars = st.one_of(
    st.integers(min_value=-(10**500), max_value=10**500).map(str),
    st.integers(min_value=2**63, max_value=16**4000).map(hex),
    st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12).map(json.dumps),
    st.sampled_from(["maybe", "''", "x", "1e999", ".nan", "-.inf", "0o777", "0b101", "~", "[]", "{}"]),
)
values = st.one_of(scalars, st.tuples(st.sampled_from(YAML_TAGS), scalars).map(" ".join))
keys = st.sampled_from(["batch", "timeout", "threads", "seed", "device", "backend", "compile", "measure",
                        "preset", "override", "matrix", "bogus", '"a\\rb"', '"\\e[2J"'])


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=keys, value=values)
def test_property_no_traceback_hang_or_exit_0(key, value, tmp_path, capsys):
    """Every generated case is invalid (a preset that does not exist); whatever the key and value,
    the CLI answers with exit 2 and one clean line."""
    text = f"cases: [{{preset: no-such-preset, {key}: {value}}}]"
    code, err = plan(tmp_path, capsys, text)
    assert_one_clean_line(code, err)


# -- run directories ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hard")
    suite_path = tmp / "ok.yaml"
    suite_path.write_text(OK_SUITE.format(name="ok"))
    run_dir = runner.run_suite(suite_file.load(suite_path), results_root=tmp / "results", show_progress=False)
    return suite_path, run_dir


def test_records_are_world_readable_like_logs(finished_run):
    _, run_dir = finished_run
    (record,) = records.record_paths(run_dir)
    assert record.stat().st_mode & 0o444 == 0o444
    assert not list((run_dir / runner.CASES_DIR).iterdir())  # scratch removed


def test_a_locked_run_dir_refuses_a_second_runner(finished_run, capsys):
    suite_path, run_dir = finished_run
    with RunLock(run_dir):
        code, err = run_cli(["run", str(suite_path), "--resume", str(run_dir), "--quiet"], capsys)
    assert_one_clean_line(code, err, "in use by another runner", f"pid {os.getpid()}")


def test_resume_survives_stray_and_damaged_files(tmp_path, capsys):
    suite_path = tmp_path / "ok.yaml"
    suite_path.write_text(OK_SUITE.format(name="ok"))
    run_dir = runner.run_suite(suite_file.load(suite_path), results_root=tmp_path / "results", show_progress=False)
    (record,) = records.record_paths(run_dir)
    good = json.loads(record.read_text())
    record.write_text(record.read_text()[:50])  # truncated
    (run_dir / "notes.json").write_text("{}")
    (run_dir / "list.json").write_text("[1, 2]")
    (run_dir / "x.json").mkdir()
    code, err = run_cli(["run", str(suite_path), "--resume", str(run_dir), "--quiet"], capsys)
    assert code == 0, err
    assert "notes.json" in err and "x.json" in err and "damaged record" in err
    (again,) = records.read_records(run_dir).values()
    assert again["case_id"] == good["case_id"] and again["status"] == "ok"
    assert (run_dir / (record.name + ".damaged")).is_file()


def test_resume_rejects_foreign_or_broken_run_files(finished_run, tmp_path, capsys):
    suite_path, run_dir = finished_run
    copy = tmp_path / "renamed.yaml"
    copy.write_text(suite_path.read_text().replace("name: ok", "name: other"))
    code, err = run_cli(["run", str(copy), "--resume", str(run_dir), "--quiet"], capsys)
    assert_one_clean_line(code, err, "suite 'ok'", "other")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "run.json").write_text(json.dumps({"resumes": [], "suite": "ok"}))
    code, err = run_cli(["run", str(suite_path), "--resume", str(broken), "--quiet"], capsys)
    assert_one_clean_line(code, err, "run_id")
    (broken / "run.json").write_text("{not json")
    code, err = run_cli(["report", str(broken), "--out", str(tmp_path / "r.md")], capsys)
    assert_one_clean_line(code, err, "no records under")  # nothing to read yet
    (broken / "0000-x.json").write_text(json.dumps({"case_id": "x", "suite": "s", "run_id": "r", "case": {}}))
    code, err = run_cli(["report", str(broken), "--out", str(tmp_path / "r.md")], capsys)
    assert_one_clean_line(code, err, "run.json")


def test_read_only_results_root_is_one_line(tmp_path, capsys):
    if os.geteuid() == 0:  # root writes through permissions: use a path under a file instead
        target = tmp_path / "file"
        target.write_text("")
        results_root = target / "results"
    else:
        results_root = tmp_path / "ro"
        results_root.mkdir(mode=0o500)
    suite_path = tmp_path / "ok.yaml"
    suite_path.write_text(OK_SUITE.format(name="ok"))
    code, err = run_cli(["run", str(suite_path), "--results", str(results_root), "--quiet"], capsys)
    assert_one_clean_line(code, err, str(results_root))


def test_workers_ignore_a_bench_package_in_the_current_directory(tmp_path):
    fake = tmp_path / "bench"
    fake.mkdir()
    (fake / "__init__.py").write_text("")
    (fake / "worker.py").write_text(
        "import json, sys\njson.dump({'status': 'ok', 'params': 42, 'fake': True}, open(sys.argv[2], 'w'))\n")
    suite_path = tmp_path / "ok.yaml"
    suite_path.write_text(OK_SUITE.format(name="ok"))
    env = {**os.environ, "PYTHONPATH": str(REPO)}  # tests.fault_arch lives in the repo
    out = subprocess.run([sys.executable, "-P", "-c",
                          f"import sys; sys.path.insert(0, {str(REPO)!r}); from bench.cli import main; "
                          "sys.exit(main(sys.argv[1:]))",
                          "run", str(suite_path), "--results", str(tmp_path / "results2"), "--quiet"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    (record,) = records.read_records(next((tmp_path / "results2" / "ok").iterdir())).values()
    assert "fake" not in record and record["params"] > 0 and record["status"] == "ok"


def test_a_sigkill_says_memory_and_peak_rss(tmp_path):
    suite_path = tmp_path / "oom.yaml"
    suite_path.write_text(OK_SUITE.format(name="oom").replace("fault-ok-tiny", "fault-oom-tiny"))
    run_dir = runner.run_suite(suite_file.load(suite_path), results_root=tmp_path / "results", show_progress=False)
    (record,) = records.read_records(run_dir).values()
    message = record["error"]["message"]
    assert record["status"] == "failed" and "SIGKILL" in message
    assert "out of memory" in message.lower() or "OOM killer" in message
    assert record["worker"]["peak_rss_bytes"] >= 250 * 2**20, record["worker"]


def test_memory_events_parsing_and_messages(tmp_path):
    events = tmp_path / "memory.events"
    events.write_text("low 0\nhigh 0\nmax 3\noom 2\noom_kill 2\n")
    assert oom_kills(events) == 2 and oom_kills(tmp_path / "missing") is None and oom_kills(None) is None
    assert "OOM killer" in sigkill_message(1, 2**30) and "1024 MiB" in sigkill_message(1, 2**30)
    assert "often means out of memory" in sigkill_message(0, 0)


def test_sigterm_stops_cleanly_and_names_the_run_dir(tmp_path):
    suite_path = tmp_path / "hang.yaml"
    suite_path.write_text(OK_SUITE.format(name="hang").replace("fault-ok-tiny", "fault-hang-tiny"))
    proc = subprocess.Popen([sys.executable, "-m", "bench.cli", "run", str(suite_path), "--results",
                             str(tmp_path / "results"), "--quiet"], cwd=REPO, stderr=subprocess.PIPE, text=True)
    run_dirs = []
    for _ in range(200):  # the case is running once its scratch directory exists
        run_dirs = list((tmp_path / "results" / "hang").glob("*/.cases/case-*"))
        if run_dirs:
            break
        time.sleep(0.1)
    assert run_dirs, "the case never started"
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    run_dir = run_dirs[0].parents[1]
    assert "Traceback" not in err and f"--resume {run_dir}" in err


def test_cgroup_v1_and_v2_oom_counters_are_found(tmp_path):
    """The OOM-kill counter file under a fake /proc/self/cgroup and /sys/fs/cgroup: v2, v1 at the
    process's path, v1 inside a container (its cgroup is the mount's root), hybrid, and a v1
    controller mounted together with another."""
    proc, root = tmp_path / "cgroup", tmp_path / "sys"

    def found(cgroup_text: str, file: str):
        proc.write_text(cgroup_text)
        path = root / file
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 3\n")
        got = cgroup_memory_events(proc, root)
        ok = got == path and oom_kills(got) == 3
        path.unlink()
        return ok

    assert found("0::/user.slice/x\n", "user.slice/x/memory.events")
    assert found("12:memory:/docker/abc\n11:cpu,cpuacct:/docker/abc\n", "memory/docker/abc/memory.oom_control")
    assert found("12:memory:/docker/abc\n", "memory/memory.oom_control")
    assert found("0::/x\n4:memory:/x\n", "memory/x/memory.oom_control")  # hybrid: memory is on v1
    assert found("5:cpu,memory:/x\n", "cpu,memory/x/memory.oom_control")
    proc.write_text("4:memory:/x\n")
    assert cgroup_memory_events(proc, root) is None and cgroup_memory_events(tmp_path / "none", root) is None
    assert "OOM killer" in sigkill_message(2, 0)


def test_a_full_disk_names_the_file(finished_run, tmp_path, capsys, monkeypatch):
    """ENOSPC comes from write(), close() or fsync() with no file name: the line names the file."""
    suite_path, run_dir = finished_run
    full = tmp_path / "report.md"
    full.symlink_to("/dev/full")  # every write there fails with ENOSPC
    code, err = run_cli(["report", str(run_dir), "--out", str(full)], capsys)
    assert_one_clean_line(code, err, str(full), "No space left on device")
    assert "(unknown file)" not in err

    def no_space(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(records.os, "fsync", no_space)
    code, err = run_cli(["run", str(suite_path), "--results", str(tmp_path / "results"), "--quiet"], capsys)
    line = assert_one_clean_line(code, err, "run.json", "No space left on device", "free space and resume")
    assert "(unknown file)" not in line
