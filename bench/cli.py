"""The `diffbench` command: list | describe | plan | run | flops | check | report | compare | doctor.

Every user error (bad suite, unknown name, missing file) ends as one line on stderr and exit
code 2, never a traceback. `list`, `describe` and `plan` import neither torch nor jax.
"""

from __future__ import annotations

import argparse
import dataclasses
import fnmatch
import json
import os
import signal
import sys
import threading
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

    from bench.safe_text import lines

    suite = suite_file.load(args.suite)
    print(lines(suite_file.format_plan(suite)))
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

    result = compare.compare_runs(args.run_a, args.run_b, threshold, alpha, metric=args.metric)
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


def cmd_check(args) -> int:
    from bench import conformance

    report = conformance.run(args.name, preset=args.preset, backends=args.backend, only=args.only,
                             plugins=tuple(_plugin_args(args)))
    print(report.to_json() if args.json else report.text())
    return 0 if report.ok else 1


def _plugin_args(args) -> list[str]:
    """--plugins values (comma-separated, repeatable), wherever they stood on the command line."""
    given = [*getattr(args, "plugins_global", []), *getattr(args, "plugins", [])]
    return list(dict.fromkeys(m.strip() for item in given for m in item.split(",") if m.strip()))


def pull_plugins(argv: list[str]) -> tuple[list[str], list[str]]:
    """(argv without them, the --plugins values): `--plugins M` or `--plugins=M` anywhere before `--`,
    so `diffbench run --plugins mymod suite.yaml` and `diffbench run suite.yaml --plugins mymod` agree."""
    rest, values, i = [], [], 0
    while i < len(argv):
        token = argv[i]
        if token == "--":
            rest += argv[i:]
            break
        if token.startswith("--plugins="):
            values.append(token.split("=", 1)[1])
        elif token == "--plugins":
            if i + 1 >= len(argv) or argv[i + 1].startswith("-"):
                raise UserError("--plugins needs a value; allowed: MODULE[,MODULE...] (dotted module names)")
            values.append(argv[i + 1])
            i += 1
        else:
            rest.append(token)
        i += 1
    return rest, values


def load_plugins(args) -> None:
    """Every command: --plugins, DIFFBENCH_PLUGINS and the installed entry points, each failure
    one warning line on stderr. The modules are exported in DIFFBENCH_PLUGINS so the processes a
    command starts (case workers, FLOP counters) load them too."""
    from architectures import plugins

    modules = _plugin_args(args)
    report = plugins.load(modules, source="--plugins")
    plugins.warn(report)
    if modules:
        names = dict.fromkeys([*modules, *plugins.env_modules()])
        os.environ[plugins.PLUGINS_ENV] = ",".join(names)


def cmd_doctor(args) -> int:
    from bench.doctor import main as doctor

    try:
        return doctor.run(args.device, doctor.parse_skip(args.skip), args.out, args.results)
    except doctor.DoctorError as exc:
        raise UserError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="diffbench", description="Benchmark harness for diffusion architectures")
    p.add_argument("--plugins", dest="plugins_global", action="append", default=[], metavar="MODULE[,MODULE...]",
                   help="modules that register architectures, anywhere on the command line, repeatable "
                        "(also: DIFFBENCH_PLUGINS, entry points)")
    p.add_argument("--version", action=_VersionAction, nargs=0, help="show the version (and git sha in a checkout)")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("list", help="registered architectures and their presets")
    s.add_argument("pattern", nargs="?", help="glob over architecture or preset names")
    s.set_defaults(fn=cmd_list)

    s = sub.add_parser("describe", help="one architecture (by name or preset name): presets, key dims, provenance")
    s.add_argument("name", help="architecture or preset name")
    s.add_argument("--json", action="store_true")
    s.set_defaults(fn=cmd_describe)

    s = sub.add_parser("plan", help="print a suite's expanded cases without running anything")
    s.add_argument("suite")
    s.set_defaults(fn=cmd_plan)

    s = sub.add_parser("run", help="run a suite, one subprocess per case")
    s.add_argument("suite")
    s.add_argument("--resume", type=Path, metavar="RUN_DIR", help="finish an interrupted run")
    s.add_argument("--results", default="results", help="results root (default: results)")
    s.add_argument("--report", action="store_true", help="also render the run's report")
    s.add_argument("--reports", default="reports", help="reports root (default: reports)")
    s.add_argument("--only", metavar="PATTERN", help="run only the cases whose id matches this glob (or contains it)")
    s.add_argument("--quiet", action="store_true", help="no progress bar and no per-case lines")
    s.add_argument("--executor", choices=["local", "ray"], default="local",
                   help="local: one case at a time here; ray: cases as Ray tasks (pip install 'diffbench[ray]')")
    s.add_argument("--address", help="Ray cluster address (default: RAY_ADDRESS, else a local cluster)")
    s.set_defaults(fn=cmd_run)

    s = sub.add_parser("report", help="render a report from recorded results (never re-runs)")
    s.add_argument("paths", nargs="+", help="run directories, suite directories or record files")
    s.add_argument("--out", help="output folder, or one file whose suffix names its format (.md .html .csv .tex); "
                                 "default: --reports")
    s.add_argument("--format", help="comma-separated: md,html,csv,latex (default: all)")
    s.add_argument("--columns", help="comma-separated column names (default: every column with data)")
    s.add_argument("--group-by", help="comma-separated column names: one table per distinct value")
    s.add_argument("--baseline", metavar="SELECTOR", help="KEY=VALUE[,KEY=VALUE] (e.g. arch=unet2d) or a case-id glob: "
                                                          "ratios against it")
    s.add_argument("--reports", default="reports", help="default output folder (default: reports)")
    s.set_defaults(fn=cmd_report)

    s = sub.add_parser("compare", help="did step times change between two runs? (exit 1 on a regression)")
    s.add_argument("run_a", help="the reference run directory (A)")
    s.add_argument("run_b", help="the new run directory (B)")
    s.add_argument("--threshold", default="5%", help="smallest relative change flagged (default: 5%%)")
    s.add_argument("--alpha", type=float, default=0.01, help="Mann-Whitney U significance level (default: 0.01)")
    s.add_argument("--metric", choices=("wall", "cpu"), default="wall",
                   help="per-round medians of wall time (default) or of the process's CPU time per step")
    s.add_argument("--json", action="store_true", help="one JSON object on stdout")
    s.set_defaults(fn=cmd_compare)

    s = sub.add_parser("flops", help="params and FLOPs of one preset, by three counters")
    s.add_argument("arch", nargs="?", help="architecture (default: the one owning --preset)")
    s.add_argument("--preset", required=True)
    s.add_argument("--analytic-only", action="store_true", help="the analytic count only: instant, no counters run")
    s.add_argument("--backend", choices=["torch", "jax"])
    s.add_argument("--batch", type=int, default=1)
    s.add_argument("--override", help="JSON object of config overrides")
    s.add_argument("--json", action="store_true", help="one JSON object on stdout")
    s.set_defaults(fn=cmd_flops)

    s = sub.add_parser("check", help="conformance kit on one architecture's tiny preset (exit 1 on a failed check)")
    s.add_argument("name")
    s.add_argument("--preset", help="check this preset only (default: every check on the '-tiny' preset, "
                                    "contract and params on every other preset)")
    s.add_argument("--backend", nargs="+", choices=["torch", "jax"], help="default: every registered backend")
    s.add_argument("--only", nargs="+", metavar="CHECK", help="run these checks only (see docs/adding-an-architecture.md)")
    s.add_argument("--json", action="store_true", help="one JSON object on stdout")
    s.set_defaults(fn=cmd_check)
    s = sub.add_parser("doctor", help="check a GPU machine gives right numbers (make gpu-check); exit 1 on a failed check")
    s.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu (the CPU-testable checks) (default: cuda)")
    s.add_argument("--skip", metavar="CHECKS", help="comma-separated: flags,numerics,matmul,timer,jax,pytest,suite")
    s.add_argument("--out", help="folder for doctor.json and the gpu-validate report "
                                 "(default: reports/example/gpu/<device>)")
    s.add_argument("--results", default="results", help="results root for the gpu-validate run (default: results)")
    s.set_defaults(fn=cmd_doctor)
    return p


class _VersionAction(argparse.Action):
    """--version, computed only when asked (it runs git)."""

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"diffbench {_version()}")
        parser.exit()


def _version() -> str:
    """The package version, and the git sha (+dirty) when the code runs from a checkout."""
    from importlib.metadata import PackageNotFoundError, version

    from bench.provenance import REPO, git_state

    try:
        text = version("diffbench")
    except PackageNotFoundError:
        text = "unknown (not installed)"
    if (REPO / ".git").exists():  # a checkout (a .git folder, or a worktree's .git file), not site-packages
        git = git_state(REPO)
        if git.get("sha"):
            text += f" (git {git['sha'][:10]}{', dirty' if git.get('dirty') else ''})"
    return text


def main(argv: list[str] | None = None) -> int:
    try:
        argv, plugin_values = pull_plugins(list(sys.argv[1:] if argv is None else argv))
    except UserError as exc:
        print(f"diffbench: error: {_printable(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    args = build_parser().parse_args(argv)
    args.plugins_global = [*args.plugins_global, *plugin_values]
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _sigterm)  # like Ctrl-C: a clean message, no traceback
    try:
        load_plugins(args)
        return args.fn(args)
    except BrokenPipeError:  # `diffbench plan ... | head`: the reader left, nothing to report
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt as exc:
        from bench.runner import Interrupted

        hint = str(exc) if isinstance(exc, Interrupted) else "interrupted"
        print(f"diffbench: {_printable(hint)}", file=sys.stderr)
        return 130
    except OSError as exc:  # read-only or full disk, permissions: name the file, no traceback
        where = exc.filename or getattr(exc, "filename2", None) or "(unknown file)"
        hint = {28: "; records already written are intact: free space and resume with --resume RUN_DIR",
                30: "; choose a writable --results/--reports directory",
                13: "; choose a directory you may write to"}.get(exc.errno, "")
        print(f"diffbench: error: {_printable(where)}: {exc.strerror or exc}{hint}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:  # noqa: BLE001 - user-facing boundary: one line, no traceback
        if not _is_user_error(exc):
            raise
        print(f"diffbench: error: {_printable(str(exc))}", file=sys.stderr)
        return EXIT_USAGE


def _printable(text: str) -> str:
    from bench.safe_text import printable

    return printable(text)


def _sigterm(signum, frame):
    raise KeyboardInterrupt("SIGTERM")


def _is_user_error(exc: Exception) -> bool:
    from architectures.registry import RegistryError
    from bench.records import RecordError
    from bench.rundir import RunError

    user_types = (UserError, RegistryError, RunError, RecordError, FileNotFoundError, json.JSONDecodeError)
    try:
        from bench.suite_file import SpecError

        user_types += (SpecError,)
    except ImportError:
        pass
    return isinstance(exc, user_types)


if __name__ == "__main__":
    sys.exit(main())
