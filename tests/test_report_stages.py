"""The report's "Training stages" table (bench/report/stage_table.py): one row per stage of a case
trained with `train.stages`, from the records alone."""

from __future__ import annotations

import re

from bench.report import build
from tests.report_records import record, write_run


def _metric(name: str, value: float, lo: float, hi: float) -> dict:
    return {"metric": name, "value": value, "ci95": [lo, hi], "n": 32}


def _stage(k: int, levels: int, side: int, gflop, seconds: float, loss: float, kid=None) -> dict:
    entry = {"stage": k, "levels": levels, "resolution": side, "steps": 60, "gflop_spent": gflop,
             "duration_s": seconds, "final_loss": loss, "init": None if k == 1 else {"from": f"stage {k - 1}"}}
    if kid is not None:
        entry["quality"] = {"resolution": side, "weights": "trained", "metrics": [_metric("kid", *kid)]}
    return entry


def _staged(index: int, backend: str, stages: list[dict], final_kid) -> dict:
    rec = record("r1", index, "nested_unet", "mdm-tiny", backend=backend,
                 quality={"metrics": [_metric("kid", *final_kid)]})
    rec["train"] = {"steps": 60 * len(stages), "gflop_spent": None, "stages": stages}
    return rec


def _report(tmp_path, recs):
    run = write_run(tmp_path / "results", "s", "r1", recs)
    out = tmp_path / "out"
    build.write([run], out, formats=("md", "html"))
    return (out / "report.md").read_text(), (out / "report.html").read_text()


def _stage_rows(md: str) -> list[list[str]]:
    section = md.split("## Training stages", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("| ")][1:]  # after the header
    return [[c.strip() for c in line.strip("|").split("|")] for line in lines]


def test_one_row_per_stage_with_cumulative_flops_and_each_stages_own_score(tmp_path):
    recs = [_staged(0, "torch", [_stage(1, 1, 16, 55.9, 2.2, 0.42, kid=(0.5865, 0.5621, 0.6132)),
                                 _stage(2, 2, 32, 209.3, 5.3, 1.39)], final_kid=(0.5343, 0.5046, 0.5730)),
            _staged(1, "jax", [_stage(1, 1, 16, 55.9, 2.1, 0.43), _stage(2, 2, 32, None, 7.0, 1.39)],
                    final_kid=(0.5382, 0.5084, 0.5766)),
            record("r1", 2, "unet2d", "unet2d-tiny", sample_ms=[1.0] * 20)]  # not staged: no row
    md, html = _report(tmp_path, recs)
    rows = _stage_rows(md)
    header = md.split("## Training stages", 1)[1].split("\n")[2]
    names = [c.strip() for c in header.strip("|").split("|")]
    col = {n: i for i, n in enumerate(names)}
    assert len(rows) == 4 and [r[col["stage"]] for r in rows] == ["1", "2", "1", "2"]
    assert [r[col["side px"]] for r in rows] == ["16", "32", "16", "32"]
    assert [r[col["starts from"]] for r in rows] == ["seeded init", "stage 1", "seeded init", "stage 1"]
    assert [r[col["cum. GFLOP"]] for r in rows] == ["55.9", "265", "55.9", "-"]  # unknown stage FLOPs: no sum
    assert rows[0][col["kid"]] == "0.5865 [0.5621, 0.6132]"  # stage 1 scored at its own side
    assert rows[1][col["kid"]] == "0.5343 [0.5046, 0.5730]"  # the last stage: the case's quality measurement
    assert rows[2][col["kid"]] == "-"  # stage 1 of the jax case was not scored
    assert all("unet2d" not in r[col["case"]] for r in rows)
    body = html.split('id="stages"', 1)[1].split("</table>", 1)[0]
    assert body.count("<tr") == 1 + 4 and "0.5865 [0.5621, 0.6132]" in body
    assert re.search(r"not ranked against each other", html)


def test_no_stage_section_without_staged_cases(tmp_path):
    md, html = _report(tmp_path, [record("r1", 0, "unet2d", "unet2d-tiny", sample_ms=[1.0] * 20)])
    assert "Training stages" not in md and 'id="stages"' not in html
