"""The `diffbench` command line: its parser, the --plugins it loads for every command, and the
boundary where a user error (bad suite, unknown name, missing file) ends as one line on stderr
and exit code 2, never a traceback. What each subcommand does is in bench/commands.py.
`list`, `describe` and `plan` import neither torch nor jax."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from pathlib import Path

from bench.commands import (EXIT_USAGE, UserError, cmd_check, cmd_compare, cmd_describe, cmd_doctor, cmd_flops, cmd_list,
                            cmd_plan, cmd_report, cmd_run, plugin_args)


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

    modules = plugin_args(args)
    report = plugins.load(modules, source="--plugins")
    plugins.warn(report)
    if modules:
        names = dict.fromkeys([*modules, *plugins.env_modules()])
        os.environ[plugins.PLUGINS_ENV] = ",".join(names)


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
    s.add_argument("--control", metavar="CASE", help="a case in both runs whose code did not change: each round "
                                                     "median is divided by its round's (removes the machine's drift)")
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
    from bench.strict_yaml import SpecError

    user_types = (UserError, RegistryError, RunError, RecordError, SpecError, FileNotFoundError, json.JSONDecodeError)
    return isinstance(exc, user_types)


if __name__ == "__main__":
    sys.exit(main())
