"""The report's "Training stages" table: one row per stage of every case trained with
`train.stages` (progressive training of a nest, docs/training.md "Stages"): what the stage
trained (levels, side, steps, GFLOP, wall time, loss), the training GFLOP spent up to its end,
and the quality of its model. A stage's score is at its own side against a reference set of
that side, so rows of different sides are not comparable with each other: the table says the
side beside each score and never ranks them. The last stage's model is the case's own: its
row carries the case's `quality` measurement. Derived from the records alone."""

from __future__ import annotations

from bench.report import table
from bench.report.columns import Column, dig, quality_entries
from bench.report.quality_columns import ci_pair

STAGES_NOTE = ("One row per stage of a progressively trained case. cum. GFLOP is the training spent up to the "
               "end of the stage (the x a learning curve would use). Each stage's model is scored at its own "
               "side against real images of that side: scores of different sides measure different things and "
               "are not ranked against each other. The last stage is the case's model; its scores are the "
               "case's quality measurement. - = not scored (the case set no eval_after_stages).")


def _rows(record: dict) -> list[dict]:
    stages = dig(record, "train", "stages")
    if not isinstance(stages, list) or not stages:
        return []
    out, spent = [], 0.0
    for k, entry in enumerate(stages):
        if not isinstance(entry, dict):
            continue
        gflop = entry.get("gflop_spent")
        spent = None if spent is None or gflop is None else spent + gflop
        last = k == len(stages) - 1
        quality = record.get("quality") if last else entry.get("quality")
        out.append({"status": record.get("status"), "case": record.get("case"), "case_id": record.get("case_id"),
                    "stage": entry, "cum_gflop": spent, "quality": quality, "last": last})
    return out


def _stage(key: str):
    return lambda row: dig(row, "stage", key)


def _init(row: dict):
    return dig(row, "stage", "init", "from") or "seeded init"


def _metric(name: str, key: str):
    return lambda row: quality_entries(row).get(name, {}).get(key)


def _ci(name: str):
    return lambda row: ci_pair(quality_entries(row).get(name, {}).get("ci95"))


def stage_table(records: list[dict]) -> table.Table | None:
    """The stages table, or None when no record trained in stages."""
    rows = [row for r in records for row in _rows(r)]
    if not rows:
        return None
    metrics = list(dict.fromkeys(m for row in rows for m in quality_entries(row)))
    columns = [
        Column("case", "case", lambda row: row["case_id"], kind="label"),
        Column("stage", "stage", _stage("stage"), "{}"),
        Column("levels", "levels", _stage("levels"), "{}"),
        Column("side", "side px", _stage("resolution"), "{}"),
        Column("from", "starts from", _init, kind="label"),
        Column("steps", "steps", _stage("steps"), "{}"),
        Column("gflop", "GFLOP", _stage("gflop_spent"), "sig3"),
        Column("cum_gflop", "cum. GFLOP", lambda row: row["cum_gflop"], "sig3"),
        Column("train_s", "train s", _stage("duration_s"), "sig3"),
        Column("loss", "final loss", _stage("final_loss"), "sig4"),
    ]
    for m in metrics:
        columns.append(Column(f"quality.{m}", m, _metric(m, "value"), "sig4", ci=_ci(m)))
    return table.Table(rows, columns)
