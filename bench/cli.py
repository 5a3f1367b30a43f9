"""The `diffbench` command: list | describe | plan | run | flops | check | report.

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


class UserError(Exception):
    """An error whose message is the whole story for the user."""


def cmd_list(args) -> int:
    from architectures import registry

    pattern = args.pattern or "*"
    for entry in registry.entries():
        presets = entry.load_presets()
        if not (fnmatch.fnmatch(entry.name, pattern) or fnmatch.filter(presets, pattern)):
            continue
        print(f"{entry.name:10s} {'/'.join(entry.modalities):12s} {','.join(sorted(entry.backends)):10s} "
              f"{entry.process:9s} {', '.join(presets)}")
    return 0


def describe_entry(name: str) -> dict:
    from architectures import registry

    entry = registry.get(name)
    presets = {}
    for preset_name, preset in entry.load_presets().items():
        config = preset.config
        dims = config.key_dims() if hasattr(config, "key_dims") else dataclasses.asdict(config)
        presets[preset_name] = {"provenance": preset.provenance, "modality": config.modality, "key_dims": dims}
    return {
        "name": entry.name,
        "description": entry.description,
        "backends": dict(entry.backends),
        "process": entry.process,
        "modalities": list(entry.modalities),
        "extras": list(entry.extras),
        "presets": presets,
    }


def cmd_describe(args) -> int:
    info = describe_entry(args.name)
    if args.json:
        print(json.dumps(info, indent=1, default=str))
        return 0
    print(f"{info['name']}: {info['description']}")
    print(f"  process: {info['process']}   modalities: {', '.join(info['modalities'])}   "
          f"extras: {', '.join(info['extras']) or '-'}")
    for backend, ref in info["backends"].items():
        print(f"  {backend:5s} {ref}")
    for name, preset in info["presets"].items():
        dims = ", ".join(f"{k}={v}" for k, v in preset["key_dims"].items() if not isinstance(v, dict))
        print(f"  - {name} [{preset['modality']}] {dims}\n      provenance: {preset['provenance']}")
    return 0


def cmd_plan(args) -> int:
    from bench import spec

    suite = spec.load(args.suite)
    print(spec.format_plan(suite))
    return 0


def cmd_run(args) -> int:
    from bench import runner, spec

    suite = spec.load(args.suite)
    run_dir = runner.run_suite(suite, results_root=Path(args.results), resume=args.resume,
                               show_progress=None if not args.quiet else False, executor=args.executor,
                               address=args.address)
    from bench.records import read_records

    records = read_records(run_dir).values()
    failed = sum(r["status"] != "ok" for r in records)
    print(f"{len(records)} case(s) recorded in {run_dir} ({failed} failed)")
    if args.report:
        report_path = _write_report([run_dir], Path(args.reports) / suite.name / f"{run_dir.name}.md")
        print(f"report: {report_path}")
    return 0


def _write_report(paths, out: Path) -> Path:
    from bench import results
    from bench.report import table

    frame = results.load(paths)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(table.render_markdown(frame))
    return out


def cmd_report(args) -> int:
    out = Path(args.out) if args.out else Path(args.reports) / "report.md"
    print(f"report: {_write_report(args.paths, out)}")
    return 0


def cmd_flops(args) -> int:
    from bench.measure.flops import flops_report, format_flops_report

    from bench.cases import MAX_BATCH

    if not 1 <= args.batch <= MAX_BATCH:
        raise UserError(f"--batch {args.batch if args.batch < 10**12 else '(huge)'}: bad batch size; "
                        f"allowed: an integer in [1, {MAX_BATCH}]")
    overrides = _override_arg(args.override)
    report = flops_report(args.arch, args.preset, backend=args.backend, batch=args.batch, overrides=overrides)
    print(json.dumps(report, default=str) if args.json else format_flops_report(report))
    return 0


def _override_arg(text: str | None) -> dict | None:
    if not text:
        return None
    from bench.strict_yaml import SpecError, check_ints, printable

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
    """--plugins given before or after the command, comma- or space-separated."""
    given = [*getattr(args, "plugins_global", []), *getattr(args, "plugins", [])]
    return list(dict.fromkeys(m.strip() for item in given for m in item.split(",") if m.strip()))


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


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="diffbench", description="Benchmark harness for diffusion architectures")
    p.add_argument("--plugins", dest="plugins_global", action="append", default=[], metavar="MODULE[,MODULE...]",
                   help="modules that register architectures (also: DIFFBENCH_PLUGINS, entry points)")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("list", help="registered architectures and their presets")
    s.add_argument("pattern", nargs="?", help="glob over architecture or preset names")
    s.set_defaults(fn=cmd_list)

    s = sub.add_parser("describe", help="one architecture: presets, key dims, backends, provenance")
    s.add_argument("name")
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
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.add_argument("--executor", choices=["local", "ray"], default="local",
                   help="local: one case at a time here; ray: cases as Ray tasks (pip install 'diffbench[ray]')")
    s.add_argument("--address", help="Ray cluster address (default: RAY_ADDRESS, else a local cluster)")
    s.set_defaults(fn=cmd_run)

    s = sub.add_parser("report", help="render a report from recorded results (never re-runs)")
    s.add_argument("paths", nargs="+", help="run directories, suite directories or record files")
    s.add_argument("--out", help="output file (default: reports/report.md)")
    s.add_argument("--reports", default="reports")
    s.set_defaults(fn=cmd_report)

    s = sub.add_parser("flops", help="params and FLOPs of one preset, by three counters")
    s.add_argument("arch")
    s.add_argument("--preset", required=True)
    s.add_argument("--backend", choices=["torch", "jax"])
    s.add_argument("--batch", type=int, default=1)
    s.add_argument("--override", help="JSON object of config overrides")
    s.add_argument("--json", action="store_true", help="one JSON object on stdout")
    s.set_defaults(fn=cmd_flops)

    s = sub.add_parser("check", help="conformance kit on one architecture's tiny preset (exit 1 on a failed check)")
    s.add_argument("name")
    s.add_argument("--preset", help="default: the architecture's '-tiny' preset")
    s.add_argument("--backend", nargs="+", choices=["torch", "jax"], help="default: every registered backend")
    s.add_argument("--only", nargs="+", metavar="CHECK", help="run these checks only (see docs/adding-an-architecture.md)")
    s.add_argument("--json", action="store_true", help="one JSON object on stdout")
    s.set_defaults(fn=cmd_check)
    for s in sub.choices.values():  # every command takes --plugins after its name too
        s.add_argument("--plugins", nargs="+", action="extend", default=[], metavar="MODULE",
                       help="modules that register architectures (also: DIFFBENCH_PLUGINS, entry points)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
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
    from bench.strict_yaml import printable

    return printable(text)


def _sigterm(signum, frame):
    raise KeyboardInterrupt("SIGTERM")


def _is_user_error(exc: Exception) -> bool:
    from architectures.registry import RegistryError
    from bench.records import RecordError
    from bench.runner import RunError

    user_types = (UserError, RegistryError, RunError, RecordError, FileNotFoundError, json.JSONDecodeError)
    try:
        from bench.spec import SpecError

        user_types += (SpecError,)
    except ImportError:
        pass
    return isinstance(exc, user_types)


if __name__ == "__main__":
    sys.exit(main())
