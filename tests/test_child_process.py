"""Every Python child diffbench starts goes through bench.child_process.python_child: `python -P
-m`, this diffbench first on PYTHONPATH. A ./bench/ folder in the working directory (a user's
checkout of something else, a stale copy) cannot replace the real FLOP counter or worker."""

from __future__ import annotations

import os
import re
from pathlib import Path

from bench import child_process
from bench.measure.count_job import CountJob, run_counter

ROOT = Path(child_process.__file__).resolve().parents[1]


def test_python_child_is_isolated_from_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(["", ".", "/elsewhere"]))
    cmd, env = child_process.python_child("bench.worker", "a", env={"PYTHONPATH": "/x"})
    assert cmd[1:] == ["-P", "-m", "bench.worker", "a"]
    assert env["PYTHONPATH"].split(os.pathsep) == [str(ROOT), "/x", str(tmp_path)]  # cwd last: plugins only
    assert env[child_process.PARENT_ENV] == str(os.getpid())


def test_a_bench_folder_in_the_working_directory_cannot_replace_the_counter(tmp_path, monkeypatch):
    fake = tmp_path / "bench" / "measure"
    fake.mkdir(parents=True)
    for init in (tmp_path / "bench" / "__init__.py", fake / "__init__.py"):
        init.write_text("")
    (fake / "torch_count.py").write_text('print(\'{"fake": true}\')\n')
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PYTHONPATH", ".")
    out = run_counter("bench.measure.torch_count", CountJob("unet2d", "unet2d-tiny", train=False), 300)
    assert "fake" not in out and out["forward"]["flops"] > 0, out


def test_no_other_module_starts_python_itself():
    """python_child is the one place: no other module of the package runs sys.executable."""
    starts = re.compile(r"\[\s*sys\.executable")
    offenders = [str(p.relative_to(ROOT)) for p in (ROOT / "bench").rglob("*.py")
                 if p.name != "child_process.py" and starts.search(p.read_text())]
    assert offenders == []
