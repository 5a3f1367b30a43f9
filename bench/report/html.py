"""report.html: one self-contained file (CSS inline, plots embedded as base64 PNG) that opens
offline in any browser. Rendered with jinja2 (autoescaped)."""

from __future__ import annotations

import base64

import jinja2

from bench.report import table

TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>diffbench report: {{ suites }}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; font-size: 13px; margin: 0.5em 0 1em; }
th, td { border-bottom: 1px solid #ccc; padding: 3px 6px; text-align: right; white-space: nowrap; }
th { border-bottom: 2px solid #444; background: #f4f4f4; white-space: normal; vertical-align: bottom; }
td.label, th.label { text-align: left; }
tr.failed td { background: #fde8e8; }
td.unreliable { background: #fff4d6; } td.contended { color: #8a4b00; } td.missing { background: #fde8e8; }
.scroll { overflow-x: auto; }
.legend, .prov { font-size: 12px; color: #555; max-width: 70em; }
figure { margin: 1em 0; } figcaption { font-size: 12px; color: #555; }
img { max-width: 100%; }
</style></head>
<body>
<h1>diffbench report: {{ suites }}</h1>
<h2>Provenance</h2>
<ul class="prov">
{% for run, rest in provenance %}<li>run <code>{{ run }}</code> {{ rest }}</li>
{% endfor %}</ul>
<h2>Results</h2>
{% macro render(t, headers, table_id="") %}{% for title, rows in t %}{% if title %}<h3>{{ title }}</h3>{% endif %}
<div class="scroll"><table{% if table_id and loop.first %} id="{{ table_id }}"{% endif %}>
<thead><tr>{% for h, kind in headers %}<th class="{{ kind }}">{{ h }}</th>{% endfor %}</tr></thead>
<tbody>{% for row in rows %}<tr class="{{ row.status }}">{% for c in row.cells %}<td class="{{ c.cls }}">{{ c.text }}</td>{% endfor %}</tr>
{% endfor %}</tbody></table></div>{% endfor %}{% endmacro %}
{% if main_constants %}<p class="prov">{{ main_constants }}</p>{% endif %}
{{ render(main, main_headers, "results") }}
<p class="legend">{{ legend }}</p>
{% if quality %}<h2>Quality: what produced each score</h2>
{% if quality_constants %}<p class="prov">{{ quality_constants }}</p>{% endif %}
{{ render(quality, quality_headers, "quality") }}
<p class="legend">{{ quality_legend }}</p>{% endif %}
{% if stages %}<h2>Training stages</h2>
{{ render(stages, stage_headers, "stages") }}
<p class="legend">{{ stages_note }}</p>{% endif %}
{% if sub_failures %}<h2>Measurements that failed inside successful cases ({{ failed_mark }})</h2>
<ul>{% for f in sub_failures %}<li><code>{{ f.case }}</code> {{ f.column }}: {{ f.why }}</li>{% endfor %}</ul>{% endif %}
{% if contended %}<h2>Timings taken while the CPU was shared ({{ contended_mark }})</h2>
<p class="legend">{{ contended_note }}</p>
<ul>{% for c in contended %}<li><code>{{ c }}</code></li>{% endfor %}</ul>{% endif %}
{% if unreliable %}<h2>Timings that did not converge ({{ mark }})</h2>
<p class="legend">{{ unreliable_note }}</p>
<ul>{% for u in unreliable %}<li><code>{{ u }}</code></li>{% endfor %}</ul>{% endif %}
{% if flagged_mfu %}<h2>MFU not reported: flagged (&gt;100%)</h2>
<ul>{% for f in flagged_mfu %}<li><code>{{ f.case }}</code> {{ f.step }}: {{ f.why }}</li>{% endfor %}</ul>{% endif %}
{% if disagreements %}<h2>FLOP counters that disagree with the analytic count</h2>
<ul>{% for d in disagreements %}<li><code>{{ d.case }}</code>: {{ d.ratios }}</li>{% endfor %}</ul>{% endif %}
{% if failures %}<h2>Failed cases</h2>
<ul>{% for f in failures %}<li><code>{{ f.case }}</code> ({{ f.type }}): {{ f.message }}</li>{% endfor %}</ul>{% endif %}
{% if ratios %}<h2>Ratios against the baseline <code>{{ baseline }}</code></h2>
<p class="legend">{{ ratios_note }}</p>
{{ render(ratios, ratio_headers) }}{% endif %}
{% if exponents %}<h2>Cost vs resolution: fitted exponents</h2>
<table><thead><tr><th class="label">quantity</th><th class="label">series</th><th>exponent b</th></tr></thead><tbody>
{% for panel, s in exponents.items() %}{% for name, b in s.items() %}<tr><td class="label">{{ panel }}</td>
<td class="label">{{ name }}</td><td>{{ '%.2f' % b }}</td></tr>{% endfor %}{% endfor %}</tbody></table>{% endif %}
{% if plots %}<h2>Plots</h2>
{% for p in plots %}<figure><img alt="{{ p.caption }}" src="data:image/png;base64,{{ p.data }}">
<figcaption>{{ p.caption }}</figcaption></figure>{% endfor %}{% endif %}
</body></html>
"""


def _rows(t: table.Table):
    out = []
    for title, records in t.groups():
        rows = []
        for r in records:
            cells = []
            for c in t.columns:
                text = table.cell(c, r)
                cls = "label" if c.kind == "label" else ""
                for mark, name in ((table.UNRELIABLE_MARK, " unreliable"), (table.CONTENDED_MARK, " contended"),
                                   (table.FAILED_MARK, " missing")):
                    if mark in table.marks(c, r):
                        cls += name
                cells.append({"text": text, "cls": cls.strip()})
            rows.append({"status": "" if r.get("status") == "ok" else "failed", "cells": cells})
        out.append((title, rows))
    return out


def _headers(t: table.Table):
    return [(c.header, "label" if c.kind == "label" else "") for c in t.columns]


def render(report) -> str:
    from bench.report.prose import LEGEND, QUALITY_LEGEND, RATIOS_NOTE, constants_text, provenance, provenance_line
    from bench.report.selection import available
    from bench.report.stage_table import STAGES_NOTE

    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    plots = [{"caption": p["caption"], "data": base64.b64encode(p["png"].read_bytes()).decode()} for p in report.plots]
    return env.from_string(TEMPLATE).render(
        suites=", ".join(report.suites), provenance=[provenance_line(p) for p in provenance(report)], legend=LEGEND, mark=table.UNRELIABLE_MARK,
        main=_rows(report.main), main_headers=_headers(report.main), main_constants=constants_text(report.main),
        quality=_rows(report.quality) if report.quality else None, quality_legend=QUALITY_LEGEND,
        quality_headers=_headers(report.quality) if report.quality else [],
        quality_constants=constants_text(report.quality) if report.quality else "",
        stages=_rows(report.stages) if report.stages else None, stages_note=STAGES_NOTE,
        stage_headers=_headers(report.stages) if report.stages else [],
        sub_failures=table.sub_failures(report.records, available(report.records)), failed_mark=table.FAILED_MARK,
        contended=[table.contended_line(c) for c in table.contended_timings(report.records)],
        contended_mark=table.CONTENDED_MARK, contended_note=table.CONTENDED_NOTE, unreliable_note=table.UNRELIABLE_NOTE,
        ratios=_rows(report.ratios) if report.ratios else None,
        ratio_headers=_headers(report.ratios) if report.ratios else [], baseline=report.baseline, ratios_note=RATIOS_NOTE,
        unreliable=[table.unreliable_line(u) for u in table.unreliable_timings(report.records)],
        disagreements=table.disagreements(report.records), failures=table.failures(report.records),
        flagged_mfu=table.flagged_mfu(report.records),
        exponents=report.exponents, plots=plots)
