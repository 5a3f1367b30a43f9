import csv
import io
import re

import numpy as np
import pytest

from bench import results
from bench.report import build, columns, plots, table
from tests.report_records import lognormal_ms, mixed_run, record, scaling_run, write_run


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
        assert float(row["gflop_image"]) == pytest.approx(rec["flops"]["gflop"] / 2)
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
        assert ratio_cols["flops_ratio"].get(r) == pytest.approx(r["flops"]["gflop"] / base["flops"]["gflop"])


def test_every_plot_file_is_written_and_fitted_exponents_are_the_true_powers(written):
    run, out, paths = written
    names = {p.stem for p in paths if p.suffix in (".png", ".svg")}
    assert names == set(plots.PLOTS) - {"quality_vs_train_flops"}  # no trained model in this run
    for name in names:
        png, svg = out / f"{name}.png", out / f"{name}.svg"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
        assert "<svg" in svg.read_text()[:500]
        assert f"({name}.png)" in (out / "report.md").read_text()
    exps = plots.exponents(results.load_records([run]))["GFLOP per image (1 NFE)"]
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


def test_quality_vs_nfe_draws_one_curve_per_model_at_the_nfe_the_samples_cost():
    """AGM and the gaussian process on one backbone, scored at NFE 5/10/20 (suites/agm-nfe.yaml):
    one line per (architecture, preset, backend), x = quality.sampling.nfe (a quality `steps:`
    setting changes it while flops.nfe_per_sample keeps the preset's)."""
    recs = []
    for i, (arch, preset) in enumerate([("phase_space", "agm-songunet-tiny"), ("songunet", "songunet-tiny")]):
        for j, nfe in enumerate((20, 5, 10)):
            quality = {"metrics": [{"metric": "kid", "value": (1 + i) / nfe, "n": 64}],
                       "sampling": {"nfe": nfe, "steps": nfe}}
            recs.append(record("r1", 3 * i + j, arch, preset, steps=5, overrides={"nfe": nfe}, quality=quality))
    from bench.report import quality_plots

    fig, caption = quality_plots.quality_vs_nfe(recs)
    (ax,) = fig.axes
    curves = {c.get_label(): c.lines[0] for c in ax.containers}  # errorbar containers: data line first
    assert set(curves) == {"phase_space:agm-songunet-tiny/torch", "songunet:songunet-tiny/torch"}
    for i, name in enumerate(sorted(curves)):
        assert list(curves[name].get_xdata()) == [5, 10, 20]
        assert list(curves[name].get_ydata()) == pytest.approx([(1 + i) / n for n in (5, 10, 20)])
    assert "NFE" in caption


def test_a_baseline_ratio_over_rounds_resamples_the_round_medians(tmp_path):
    from bench.measure.stats import bootstrap_ratio_ci
    from tests.report_records import record, rounds_ms, write_run

    rng = np.random.default_rng(4)
    recs = [record("r", 0, "unet2d", "a", sample_ms=rounds_ms(rng, 10.0)),
            record("r", 1, "rin", "b", sample_ms=rounds_ms(rng, 20.0))]
    run = write_run(tmp_path, "s", "r", recs)
    cols = {c.name: c for c in build.assemble([run], baseline="arch=unet2d").ratios.columns}
    rin = next(r for r in results.load_records([run]) if r["case"]["arch"] == "rin")
    medians = [[e["median_ms"] for e in rec["timing"]["sample_step"]["rounds"]] for rec in (recs[1], recs[0])]
    assert cols["sample_ratio"].ci(rin) == pytest.approx(bootstrap_ratio_ci(*medians))


def test_mfu_above_one_is_marked_never_printed_as_a_number(tmp_path):
    """A flagged MFU (mfu null + mfu_flagged, or an older record's mfu > 1) shows as flagged in the
    table and is listed with its reason; a plausible MFU prints as a percentage."""
    rng = np.random.default_rng(0)
    recs = [record("r", i, "rin", f"p{i}", sample_ms=lognormal_ms(rng, 10)) for i in range(3)]
    u = {"mfu": None, "mfu_flagged": 2.2, "mfu_why_null": "computed MFU 2.20 is above 1, which cannot be"}
    recs[0]["timing"]["sample_step"]["utilization"] = u
    recs[1]["timing"]["sample_step"]["utilization"] = {"mfu": 1.7}  # written before the flag existed
    recs[2]["timing"]["sample_step"]["utilization"] = {"mfu": 0.25}
    run = write_run(tmp_path, "s", "r", recs)
    out = tmp_path / "out"
    build.write([run], out, columns="preset,sample_mfu")  # MFU is not a default column
    text = (out / "report.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith("| p")]
    assert sum(columns.MFU_FLAGGED in r for r in rows) == 2 and any("25.0%" in r for r in rows)
    assert "220.0%" not in text and "170.0%" not in text
    assert "Measurements that failed inside successful cases" not in text  # listed once, below
    listed = text.split("## MFU not reported")[1].split("##")[0]
    assert listed.count("- `") == 2 and "`rin/p0/torch/cpu/b2` sample_step: computed MFU 2.20 is above 1" in listed
    assert "`rin/p1/torch/cpu/b2` sample_step: MFU above 1 (older record)" in listed
    html = (out / "report.html").read_text()
    assert "MFU not reported" in html and html.count(columns.MFU_FLAGGED.replace(">", "&gt;")) >= 3


# -- a mixed suite: default columns, quality rows, learning curves, marks ---------------------------

@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    root = tmp_path_factory.mktemp("mixed")
    run = mixed_run(root)
    build.write([run], root / "out")
    return run, root / "out", results.load_records([run])


def _quality_recs(recs):
    return [r for r in recs if "quality" in r]


def test_quality_rows_use_the_nfe_and_flops_they_sampled_with(mixed):
    run, out, recs = mixed
    sweep = [r for r in _quality_recs(recs) if r["case"]["backend"] == "torch" and "train" in r]
    nfe = sorted(columns.nfe_sample(r) for r in sweep)
    assert nfe == [5, 20, 50]  # not the preset's 50 for all three
    for r in sweep:
        assert columns.gflop_sample(r) == pytest.approx(r["quality"]["sampling"]["nfe"] * 0.0345)
    rows = list(csv.DictReader(io.StringIO((out / "table.csv").read_text())))
    assert sorted(float(row["gflop_sample"]) for row in rows if row["sampler"].startswith("ddim")
                  and row["backend"] == "torch" and row["weights"].startswith("trained")) == \
        pytest.approx([5 * 0.0345, 20 * 0.0345, 50 * 0.0345])
    fig, _ = plots.quality_vs_nfe(recs)
    xs = sorted({float(x) for c in fig.axes[0].containers for x in c.lines[0].get_xdata()})
    assert xs == [5.0, 20.0, 50.0]  # each point at its true NFE


def test_quality_table_carries_training_sampler_n_ci_and_verdict(mixed):
    run, out, recs = mixed
    rep = build.assemble([run])
    names = [c.name for c in rep.quality.columns]
    for name in ("weights", "train_steps", "train_gflop", "train_s", "sampler", "quality.fd-effnet",
                 "quality.fd-effnet.vs_best", "quality.kid", "quality.kid.vs_best"):
        assert name in names
    assert "N 64" in build.constants_text(rep.quality)  # N is the same for every score: said once
    text = (out / "report.md").read_text().split("## Quality")[1]
    initial = next(line for line in text.splitlines() if "| initial |" in line)
    assert "| 0 |" in initial and "288.2 [" in initial
    kid_col = {c.name: c for c in rep.quality.columns}["quality.kid.vs_best"]
    verdicts = {columns.nfe_sample(r): kid_col.get(r) for r in rep.quality.records if "train" in r and
                r["case"]["backend"] == "torch"}
    assert verdicts[50] == "best"
    untrained = next(r for r in rep.quality.records if "train" not in r)
    assert kid_col.get(untrained) == "worse"  # 0.646 vs 0.484, CIs ~ +-0.05


def test_vs_best_follows_the_paired_bootstrap(mixed):
    from bench.quality import uncertainty
    from bench.report.quality_columns import versus_best

    _, _, recs = mixed
    q = _quality_recs(recs)
    verdicts = versus_best(q, "kid")
    best = min(q, key=lambda r: columns.quality_entries(r)["kid"]["value"])
    b = columns.quality_entries(best)["kid"]
    for r in q:
        if r is best:
            continue
        a = columns.quality_entries(r)["kid"]
        d = uncertainty.difference(a["value"], a["bootstrap"]["replicates"], b["value"], b["bootstrap"]["replicates"])
        assert verdicts[id(r)] == ("worse" if d["distinguishable"] else "≈ best")


def test_learning_curve_plot_has_one_curve_per_model_at_its_training_flops(mixed):
    _, _, recs = mixed
    from bench.report.quality_plots import training_curves

    curves = dict(training_curves(recs, "fd-effnet"))
    with_curve = curves["unet2d/torch NFE 20"]
    assert [x for x, _, _ in with_curve] == pytest.approx([0, 75 * 1.65, 150 * 1.65, 225 * 1.65, 302 * 1.65])
    assert [x for x, _, _ in curves["unet2d/torch NFE 20 (initial weights)"]] == [0.0]
    fig, _ = plots.quality_vs_train_flops(recs)
    ax = fig.axes[0]
    assert sorted(len(c.lines[0].get_xdata()) for c in ax.containers) == [1, 1, 1, 1, 5]
    assert len(ax.containers) == len(curves)  # one errorbar container (curve) per model


def test_default_table_keeps_varying_and_standard_columns_constants_in_one_line(mixed):
    run, out, recs = mixed
    rep = build.assemble([run])
    names = [c.name for c in rep.main.columns]
    assert names[:3] == ["arch", "preset", "backend"]
    for name in ("resolution", "params", "gflop_image", "nfe_sample", "gflop_sample", "ms_per_sample",
                 "train_img_s", "quality.fd-effnet", "quality.kid", "weights"):
        assert name in names
    for name in ("device", "precision", "threads", "status", "sample_ms", "peak_rss_mb", "sample_mfu"):
        assert name not in names
    line = build.constants_text(rep.main)
    assert "device cpu" in line and "precision fp32" in line and "threads 1" in line and "status ok" in line
    md = (out / "report.md").read_text()
    assert line in md
    caption = (out / "table.tex").read_text().split(r"\caption{")[1]
    assert r"Every case: device cpu $\cdot$ precision fp32" in caption
    full = build.assemble([run], columns="arch,device,sample_ms")
    assert [c.name for c in full.main.columns] == ["arch", "device", "sample_ms"] and not full.main.constants
    header = (out / "table.csv").read_text().splitlines()[0].split(",")
    assert {"case", "device", "threads", "sample_ms", "sample_ms_lo", "quality.kid_lo", "train_gflop"} <= set(header)


def test_resolution_column_reads_nested_configs(mixed):
    _, _, recs = mixed
    by_arch = {r["case"]["arch"]: columns.resolution(r) for r in recs}
    assert by_arch == {"rin": 16, "unet2d": 16, "dit": 8, "nested_unet": 32}
    agm = {"config": {"backbone": "unet2d", "network": {"image_size": 32, "in_channels": 6}, "process": {}}}
    assert columns.resolution(agm) == 32


def test_failed_sub_measurement_and_contention_are_marked_and_listed(mixed):
    run, out, recs = mixed
    md = (out / "report.md").read_text()
    listed = md.split("## Measurements that failed inside successful cases")[1].split("##")[0]
    assert "`dit/dit-tiny/jax/cpu/b2` FLOP check: hlo failed: XlaRuntimeError: cost analysis unavailable" in listed
    rep = build.assemble([run], columns="arch,backend,flop_check,ms_per_sample")
    row = next(line for line in build.markdown(rep).splitlines() if line.startswith("| dit | jax"))
    assert f"agree {table.FAILED_MARK}" in row
    row = next(line for line in md.splitlines() if line.startswith("| unet2d | unet2d-tiny | torch | 16 | 2 |"))
    assert table.CONTENDED_MARK in row
    assert "unet2d/unet2d-tiny/torch/cpu/b2 sample_step: wall/CPU 1.90 > 1.2" in md.split("## Timings taken while")[1]
    tex = (out / "table.tex").read_text()
    caption = tex.split(r"\caption{")[1]
    assert r"$^\dagger$" in caption and r"$^\ddagger$" in caption and "bootstrap CI" in caption


def test_resolution_exponent_is_fitted_only_within_one_model(tmp_path):
    recs, i = [], 0
    for preset, res, g in (("dit-s-2", 32, 6.0), ("dit-tiny", 8, 0.01), ("dit-tiny", 16, 0.04)):
        r = record("r1", i, "dit", preset, gflop=2 * g, sample_ms=[1.0, 1.1, 1.2])
        r["config"] = {"input_size": res, "hidden_size": 384 if preset == "dit-s-2" else 32}
        recs.append(r)
        i += 1
    loaded = results.load_records([write_run(tmp_path, "s", "r1", recs)])
    exps = plots.exponents(loaded)["GFLOP per image (1 NFE)"]
    assert exps == {"dit/dit-tiny": pytest.approx(2.0)}  # dit-s-2 at 32 px is another model: not in the fit


def test_baseline_says_why_a_row_has_no_ratio(written):
    run, _, _ = written
    selector = "unet2d/adm_b/torch/cpu/b2/o00000004"  # the 32 px torch U-Net only
    rep = build.assemble([run], baseline=selector)
    col = {c.name: c for c in rep.ratios.columns}["baseline"]
    jax = next(r for r in rep.records if r["case"]["backend"] == "jax" and r["case"]["arch"] == "rin"
               and columns.resolution(r) == 32)
    assert col.get(jax) == (f"none: no successful {selector} case with backend=jax, device=cpu, precision=float32, "
                            "resolution=32, frames=None, batch=2")
    same = next(r for r in rep.records if r["case"]["backend"] == "torch" and r["case"]["arch"] == "rin"
                and columns.resolution(r) == 32)
    assert col.get(same) == selector
    failed = next(r for r in rep.records if r["status"] != "ok")
    assert col.get(failed) == "none: the case failed"


def test_svg_keeps_text_and_backend_axis_is_linear_for_close_values(mixed):
    _, out, recs = mixed
    svg = (out / "backend_step_time.svg").read_text()
    assert "<text" in svg and "PyTorch" in svg and 'id="DejaVuSans' not in svg
    fig, _ = plots.backend_step_time(recs)
    assert fig.axes[0].get_yscale() == "linear" and fig.axes[0].get_ylim()[0] == 0
