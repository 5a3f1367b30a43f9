"""What each `diffbench` subcommand does, given its parsed arguments (bench/cli.py parses them):
list | describe | plan | run | flops | check | report | compare | doctor. A user error raises
`UserError` (one line on stderr, exit code 2); imports stay inside the commands, so `list`,
`describe` and `plan` import neither torch nor jax.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import json
import sys
from pathlib import Path

EXIT_USAGE = 2
EXIT_FAILED_CASES = 1  # `run`: every case was recorded, at least one of them failed


class UserError(Exception):
    """An error whose message is the whole story for the user."""


def cmd_list(args) -> int:
    from architectures import registry

    pattern = args.pattern or "*"
    rows = [("architecture", "modalities", "backends", "process", "presets")]
    for entry in registry.entries():
        presets = entry.load_presets()
        if not (fnmatch.fnmatch(entry.name, pattern) or fnmatch.filter(presets, pattern)):
            continue
        rows.append((entry.name, "/".join(entry.modalities), ",".join(sorted(entry.backends)), entry.process,
                     ", ".join(presets)))
    if len(rows) == 1:
        print(f"diffbench: no architecture or preset matches {pattern!r}; allowed: a glob over the names "
              f"`diffbench list` prints{registry.did_you_mean(pattern, [*registry.names(), *registry.all_presets()])}",
              file=sys.stderr)
        return 1
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for r in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(r, widths)) + "  " + r[-1])
    return 0


def cmd_describe(args) -> int:
    from bench.describe import describe_entry, format_describe

    info = describe_entry(args.name)
    print(json.dumps(info, indent=1, default=str) if args.json else format_describe(info))
    return 0


def cmd_plan(args) -> int:
    from bench import suite_file
    from bench.plan import format_plan

    from bench.safe_text import lines

    suite = suite_file.load(args.suite)
    print(lines(format_plan(suite)))
    return 0


def cmd_run(args) -> int:
    from bench import runner, suite_file

    suite = suite_file.load(args.suite)
    if args.only:
        suite = _only(suite, args.only)
    run_dir = runner.run_suite(suite, results_root=Path(args.results), resume=args.resume,
                               show_progress=None if not args.quiet else False, executor=args.executor,
                               address=args.address)
    from bench.records import read_records

    records = read_records(run_dir).values()
    failed = sum(r["status"] != "ok" for r in records)
    print(f"{len(records)} case(s) recorded in {run_dir} ({failed} failed)")
    if args.report:
        from bench.report import build

        written = build.write([run_dir], Path(args.reports) / suite.name / run_dir.name)
        print(f"report: {written[0]}")
    return EXIT_FAILED_CASES if failed else 0  # failures stay data in their records; CI can gate on this


def _only(suite, pattern: str):
    """The suite with only the cases whose id matches the glob (or contains the text)."""
    glob = pattern if any(ch in pattern for ch in "*?[") else f"*{pattern}*"
    cases = tuple(c for c in suite.cases if fnmatch.fnmatchcase(c.id, glob))
    if not cases:
        raise UserError(f"--only {pattern!r}: matches none of the {len(suite.cases)} case(s) of {suite.path}; "
                        f"allowed: a glob or text matching case ids such as {suite.cases[0].id!r} (see `diffbench plan`)")
    return dataclasses.replace(suite, cases=cases)


def cmd_report(args) -> int:
    from bench.report import build

    try:
        formats = build.parse_formats(args.format)
        out = Path(args.out) if args.out else Path(args.reports)
        written = build.write(args.paths, out, formats, args.columns, args.group_by, args.baseline)
    except build.ReportError as exc:
        raise UserError(str(exc)) from None
    for path in written:  # the report files (with a file --out: that one file); plots are beside them
        if path.suffix.lower() in build.SUFFIX_FORMAT:
            print(f"report: {path}")
    return 0


def cmd_compare(args) -> int:
    from bench import compare

    try:
        threshold, alpha = compare.parse_threshold(args.threshold), compare.parse_alpha(args.alpha)
    except compare.CompareError as exc:
        raise UserError(str(exc)) from None
    from bench.safe_text import lines

    try:
        result = compare.compare_runs(args.run_a, args.run_b, threshold, alpha, metric=args.metric, control=args.control)
    except compare.CompareError as exc:
        raise UserError(str(exc)) from None
    print(compare.to_json(result) if args.json else lines(compare.format_text(result)))  # JSON escapes by itself
    return 1 if result["regressions"] else 0


def cmd_flops(args) -> int:
    from architectures import registry
    from bench.measure.flops import analytic_report, flops_report, format_flops_report

    from bench.case import MAX_BATCH

    if not 1 <= args.batch <= MAX_BATCH:
        raise UserError(f"--batch {args.batch if args.batch < 10**12 else '(huge)'}: bad batch size; "
                        f"allowed: an integer in [1, {MAX_BATCH}]")
    overrides = _override_arg(args.override)
    arch = args.arch or registry.find_preset(args.preset).name
    if args.analytic_only:
        report = analytic_report(arch, args.preset, batch=args.batch, overrides=overrides)
        print(json.dumps(report, default=str) if args.json else "\n".join(report["lines"]))
        return 0
    report = flops_report(arch, args.preset, backend=args.backend, batch=args.batch, overrides=overrides)
    print(json.dumps(report, default=str) if args.json else format_flops_report(report))
    return 0


def _override_arg(text: str | None) -> dict | None:
    if not text:
        return None
    from bench.safe_text import printable
    from bench.strict_yaml import SpecError, check_ints

    shown = printable(repr(text), 80)
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, or an integer past Python's digit limit
        raise UserError(f"--override {shown}: invalid JSON ({exc}); allowed: a JSON object of config fields") from None
    if not isinstance(value, dict):
        raise UserError(f"--override {shown}: not a JSON object; allowed: a JSON object of config fields")
    try:
        check_ints(value, "", "--override")
    except SpecError as exc:
        raise UserError(str(exc)) from None
    return value


def plugin_args(args) -> list[str]:
    """--plugins values (comma-separated, repeatable), wherever they stood on the command line."""
    given = [*getattr(args, "plugins_global", []), *getattr(args, "plugins", [])]
    return list(dict.fromkeys(m.strip() for item in given for m in item.split(",") if m.strip()))


def cmd_check(args) -> int:
    from bench import conformance

    report = conformance.run(args.name, preset=args.preset, backends=args.backend, only=args.only,
                             plugins=tuple(plugin_args(args)))
    print(report.to_json() if args.json else report.text())
    return 0 if report.ok else 1


def cmd_doctor(args) -> int:
    from bench.doctor import main as doctor

    try:
        return doctor.run(args.device, doctor.parse_skip(args.skip), args.out, args.results)
    except doctor.DoctorError as exc:
        raise UserError(str(exc)) from None
