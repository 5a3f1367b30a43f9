import csv
import io
import re

import numpy as np
import pytest

from bench import results
from bench.report import build, columns, plots, table
from tests.report_records import record, scaling_run, write_run


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    run = scaling_run(root)
    out = root / "out"
    paths = build.write([run], out, baseline="arch=unet2d")
    return run, out, paths


def _by_case(recs):
    return {r["case_id"]: r for r in recs}


def test_csv_values_are_the_records_values_failed_and_non_converged_included(written):
    run, out, _ = written
    recs = results.load_records([run])
    rows = list(csv.DictReader(io.StringIO((out / "table.csv").read_text())))
    assert len(rows) == len(recs) == 9
    for row, rec in zip(rows, recs):
        assert row["status"] == rec["status"] and row["arch"] == rec["case"]["arch"]
        assert row["override.note"] == "50%_off" and int(row["override.image_size"]) == rec["case"]["overrides"]["image_size"]
        if rec["status"] != "ok":
            assert row["sample_ms"] == "" and row["params"] == ""
            continue
        t = rec["timing"]["sample_step"]
        assert float(row["sample_ms"]) == pytest.approx(np.median(t["samples_ms"]), rel=1e-12)
        assert [float(row["sample_ms_lo"]), float(row["sample_ms_hi"])] == pytest.approx(t["ci95_ms"])
        assert row["sample_ms_converged"] == str(t["stop_reason"] == "converged")
        assert float(row["gflops_image"]) == pytest.approx(rec["flops"]["gflops"] / 2)
        # time per generated sample: step median x steps per sample / batch
        assert float(row["ms_per_sample"]) == pytest.approx(t["median_ms"] * 50 / 2)
        assert float(row["params"]) == pytest.approx(1.234567)
        fd = rec.get("quality")
        assert row.get("quality.fd-effnet", "") == ("" if fd is None else str(fd[0]["value"]))


def test_markdown_marks_non_converged_lists_spread_and_failures(written):
    run, out, _ = written
    text = (out / "report.md").read_text()
    recs = _by_case(results.load_records([run]))
    bad = next(r for r in recs.values() if r["status"] == "ok" and r["timing"]["sample_step"]["stop_reason"] != "converged")
    t = bad["timing"]["sample_step"]
    row = next(line for line in text.splitlines() if line.startswith("| rin | rin_a | jax") and "| 64 |" in line)
    assert f"| {table.significant(t['median_ms'] * 50 / 2, 4)} {table.UNRELIABLE_MARK} |" in row  # ms/sample
    chosen = build.markdown(build.assemble([run], columns="arch,preset,backend,resolution,sample_ms"))
    row = next(line for line in chosen.splitlines() if line.startswith("| rin | rin_a | jax | 64 |"))
    assert f"{table.significant(t['median_ms'], 3)} [{table.significant(t['ci95_ms'][0], 3)}, " in row
    assert table.UNRELIABLE_MARK in row
    listed = text.split("## Timings that did not converge")[1].split("##")[0]
    assert f"`{bad['case_id']}` sample_step" in listed and f"IQR/median {t['rel_iqr']:.2f}" in listed
    assert listed.count("- `") == 1  # only the one that stopped at the cap
    failed = text.split("## Failed cases")[1]
    assert "(RuntimeError): boom in unet2d/adm_b/torch/cpu/b2" in failed and "second line" not in failed
    assert "git 0123456789; suite sha256 abababababab; TestCPU x2" in text


def test_baseline_ratios_match_the_medians_with_a_bootstrap_ci(written):
    run, out, _ = written
    recs = results.load_records([run])
    ratio_cols = {c.name: c for c in build.assemble([run], baseline="arch=unet2d").ratios.columns}
    for r in recs:
        if r["status"] != "ok":
            continue
        base = next(b for b in recs if b["case"]["arch"] == "unet2d" and b["status"] == "ok"
                    and b["config"]["image_size"] == r["config"]["image_size"] and b["case"]["backend"] == r["case"]["backend"])
        want = r["timing"]["sample_step"]["median_ms"] / base["timing"]["sample_step"]["median_ms"]
        assert ratio_cols["sample_ratio"].get(r) == pytest.approx(want)
        lo, hi = ratio_cols["sample_ratio"].ci(r)
        assert lo <= want <= hi
        assert ratio_cols["flops_ratio"].get(r) == pytest.approx(r["flops"]["gflops"] / base["flops"]["gflops"])


def test_every_plot_file_is_written_and_fitted_exponents_are_the_true_powers(written):
    run, out, paths = written
    names = {p.stem for p in paths if p.suffix in (".png", ".svg")}
    assert names == set(plots.PLOTS)
    for name in plots.PLOTS:
        png, svg = out / f"{name}.png", out / f"{name}.svg"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
        assert "<svg" in svg.read_text()[:500]
        assert f"({name}.png)" in (out / "report.md").read_text()
    exps = plots.exponents(results.load_records([run]))["GFLOPs per image (1 NFE)"]
    assert exps == {"rin": pytest.approx(1.0), "unet2d": pytest.approx(2.0)}


def test_plots_without_data_are_left_out(tmp_path):
    run = write_run(tmp_path, "s", "r1", [record("r1", 0, "rin", "p", sample_ms=[1.0, 1.1, 1.2])])
    paths = build.write([run], tmp_path / "out")
    assert [p for p in paths if p.suffix == ".png"] == []
    assert "## Plots" not in (tmp_path / "out" / "report.md").read_text()
    header = (tmp_path / "out" / "table.csv").read_text().splitlines()[0].split(",")
    assert "train_ms" not in header and "quality.fd-effnet" not in header and "frames" not in header


def test_latex_has_the_right_column_count_and_escapes(written):
    run, out, _ = written
    tex = (out / "table.tex").read_text()
    spec = re.search(r"\\begin\{tabular\}\{([lr]+)\}", tex).group(1)
    main = build.assemble([run]).main
    assert len(spec) == len(main.columns)
    body = tex.split(r"\toprule")[1].split(r"\bottomrule")[0]
    rows = [line for line in body.splitlines() if line.endswith(r"\\")]
    assert len(rows) == 1 + 9
    assert all(line.count("&") == len(spec) - 1 for line in rows)
    assert r"50\%\_off" in tex and "rin\\_a" in tex
    assert not re.search(r"(?<!\\)[_%#]", body)


def test_columns_group_by_and_bad_names(tmp_path, written):
    run, _, _ = written
    rep = build.assemble([run], columns="arch,resolution,sample_ms", group_by="backend")
    assert [c.name for c in rep.main.columns] == ["backend", "arch", "resolution", "sample_ms"]
    assert [t for t, _ in rep.main.groups()] == ["backend = jax", "backend = torch"]
    with pytest.raises(build.ReportError, match=r"unknown column\(s\) nope; allowed: case, arch, preset"):
        build.assemble([run], columns="arch,nope")
    with pytest.raises(build.ReportError, match="allowed: md, html, csv, latex"):
        build.parse_formats("md,docx")
    with pytest.raises(build.ReportError, match="matches no successful case"):
        build.assemble([run], baseline="arch=dit")


def test_quality_read_from_either_record_shape():
    entry = {"metric": "fd-effnet", "value": 3.0, "n": 10, "feature_space": "f", "floor": 1.0}
    for q in ([entry], {"metrics": [entry]}, {"fd-effnet": entry}):
        assert columns.quality_entries({"quality": q})["fd-effnet"]["value"] == 3.0
    assert columns.quality_entries({"quality": None}) == {} and columns.quality_entries({}) == {}


def test_pareto_front_is_the_non_dominated_set():
    rng = np.random.default_rng(1)
    pts = [tuple(p) for p in rng.random((40, 2))]
    front = set(plots.pareto_front(pts))
    for i, (c, q) in enumerate(pts):
        dominated = any(c2 <= c and q2 <= q and (c2, q2) != (c, q) for c2, q2 in pts)
        assert (i in front) == (not dominated)


def test_cli_report_errors_are_one_line_and_out_suffix_picks_the_format(written, tmp_path, capsys):
    from bench.cli import main

    run, _, _ = written
    for argv, needle in ((["--format", "md,pdf"], "allowed: md, html, csv, latex"),
                         (["--columns", "arch,bogus"], "allowed: case, arch"),
                         (["--out", str(tmp_path / "x.csv"), "--format", "md"], "holds only the csv format"),
                         (["--out", str(tmp_path / "x.docx")], "allowed: a folder")):
        assert main(["report", str(run), *argv]) == 2
        err = capsys.readouterr().err
        assert needle in err and len(err.strip().splitlines()) == 1
    assert main(["report", str(run), "--out", str(tmp_path / "x.csv")]) == 0
    text = (tmp_path / "x.csv").read_text()
    assert text.startswith("case,arch,preset,") and "|" not in text  # CSV keeps every column, the case id too
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.csv"]
