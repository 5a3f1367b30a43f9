"""benchmarks/utilization_switches.py: every switch is a valid case (it plans on any machine), the
table labels each record and divides by its backend's baseline, and without CUDA it says so (exit 2)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

from bench import suite_file

PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "utilization_switches.py"
_spec = importlib.util.spec_from_file_location("utilization_switches", PATH)
switches = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(switches)


def test_every_switch_plans_as_a_case_of_its_own(capsys):
    suite = suite_file.loads(switches.suite_text(), "switches")
    assert len({c.id for c in suite.cases}) == len(suite.cases)
    labels = [switches.label(c.to_dict()) for c in suite.cases]
    assert "?" not in labels
    assert set(labels) == {s[0] for s in switches.SWITCHES}
    assert labels.count("channels_last") == len(switches.UNETS)
    assert switches.main(["--dry-run"]) == 0 and "utilization-switches" in capsys.readouterr().out


def test_no_cuda_is_one_line_and_exit_2(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert switches.main([]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no CUDA device" in err


def _record(case, train_ms=None, sample_ms=None, mfu=None, status="ok"):
    timing = {}
    if train_ms:
        timing["train_step"] = {"median_ms": train_ms, "utilization": {"mfu": mfu}}
    if sample_ms:
        timing["sample_step"] = {"median_ms": sample_ms, "utilization": {"mfu": mfu}}
    return {"case": case.to_dict(), "status": status, "timing": timing,
            "error": {"message": "CUDA out of memory\ntraceback"} if status != "ok" else None}


def test_table_divides_by_the_baseline_of_the_same_model_and_backend():
    cases = {switches.label(c.to_dict()): c for c in suite_file.loads(switches.suite_text(("dit-xl-2",)), "s").cases}
    records = [_record(cases["baseline: eager, SDPA auto"], 100.0, 40.0, 0.2),
               _record(cases["torch.compile default"], 50.0, 20.0, 0.4),
               _record(cases["CUDA graphs (sampling)"], sample_ms=10.0),
               _record(cases["SDPA flash"], status="failed")]
    rows = switches.table(records).splitlines()
    compiled = next(r for r in rows if "torch.compile default" in r)
    assert "| 50 | 0.40 | 20 | 0.40 | 2.00x train |" in compiled
    assert "| 4.00x sample |" in next(r for r in rows if "CUDA graphs" in r)
    failed = next(r for r in rows if "SDPA flash" in r)
    assert "failed: CUDA out of memory" in failed and "traceback" not in failed
