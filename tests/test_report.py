from bench import records, results
from bench.report import table


def _write(run_dir, i, **fields):
    rec = {"case_id": f"arch/p/torch/cpu/b{i}", "suite": "s", "run_id": run_dir.name,
           "case": {"index": i}, "status": "ok", **fields}
    records.write_json_atomic(run_dir / records.record_filename(i, rec["case_id"]), rec)


def test_report_shows_numbers_flags_disagreement_and_lists_failures(tmp_path):
    run = tmp_path / "s" / "r1"
    run.mkdir(parents=True)
    records.write_json_atomic(run / records.RUN_FILE, {"provenance": {
        "git": {"sha": "0123456789abcdef", "dirty": True}, "host": {"cpu_model": "TestCPU", "cpu_count": 2},
        "versions": {"torch": "2.14.1", "jax": "0.10.2", "flax": "0.12.8"}}})
    _write(run, 0, params=2_500_000, flops={"gflops": 1.25, "agreement": {"ok": True, "disagreeing": {}}},
           timing={"sample_step": {"median_ms": 12.345, "images_per_s": 81.0}})
    _write(run, 1, flops={"gflops": 2.0, "agreement": {"ok": False, "disagreeing": {"xla_hlo": 1.07}}})
    _write(run, 2, status="failed", error={"type": "Signal", "message": "worker process died by signal SIGABRT\nmore"})
    text = table.render_markdown(results.load(run))
    assert "git 0123456789 (dirty); TestCPU x2; torch 2.14.1, jax 0.10.2" in text
    row0 = next(line for line in text.splitlines() if line.startswith("| arch/p/torch/cpu/b0"))
    assert "| 2.50 | 1.250 |" in row0 and "| agree |" in row0 and "| 12.35 | 81.0 |" in row0
    assert "**DISAGREE**" in text and "- `arch/p/torch/cpu/b1`: {'xla_hlo': 1.07}" in text
    assert "- `arch/p/torch/cpu/b2`: worker process died by signal SIGABRT" in text
    assert "more" not in text.split("## Failed cases")[1]
