"""Plugins: code outside this repository that registers architectures, loaded the same way by
every command and every process the harness starts (case workers, FLOP counters).

Where plugins come from, in this order (each module is imported once per process):
1. modules named explicitly: `diffbench --plugins mod ...` on any command, a suite's `plugins:`;
2. the environment variable DIFFBENCH_PLUGINS (comma-separated module names);
3. the entry-point group `diffbench.architectures` of installed distributions, so that
   `pip install mypkg` is all a user does. An entry point names a module (`mynet = mypkg.plugin`),
   imported for its `register(...)` calls, or a callable (`mynet = mypkg.plugin:register`),
   called once with no arguments.

A plugin's code runs at that import (or call): keep it to defining classes and calling
`architectures.registry.register(Entry(...))`. It must not import torch or jax at its top level if
it wants `diffbench list` to stay framework-free and must not change global settings. Whatever it
prints while it is imported goes to stderr (commands print their results on stdout).

A plugin that fails — raises, calls sys.exit, lacks a dependency, registers a bad entry — is
recorded as a `Failure` (reported by name with its error) and whatever it registered before
failing is removed again; the other plugins and the shipped architectures are unaffected. Only a
module that was named explicitly *and* is required (a suite's `plugins:`) turns its failure into
an error, raised by the caller. A KeyboardInterrupt the plugin raises itself is a failure too; one
from a real Ctrl-C or SIGTERM during the import is not caught.

Modules are looked up on sys.path; the current directory is appended at the end (never first,
so it cannot shadow an installed package), as the case workers do.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import inspect
import os
import signal
import sys
import threading
from dataclasses import dataclass, field

from architectures import registry
from architectures.plugin_failures import FAILED, Failure

ENTRY_POINT_GROUP = "diffbench.architectures"
PLUGINS_ENV = registry.PLUGINS_ENV
ENV_SOURCE = PLUGINS_ENV


@dataclass
class Report:
    loaded: list[str] = field(default_factory=list)  # plugins imported (or already imported), in order
    failed: list[Failure] = field(default_factory=list)

    def lines(self) -> list[str]:
        return [f.line() for f in self.failed]


_REGISTERED: dict[str, tuple[str, ...]] = {}  # plugin -> architecture names it registered
_WARNED: set[str] = set()


def env_modules() -> list[str]:
    return [m.strip() for m in os.environ.get(PLUGINS_ENV, "").split(",") if m.strip()]


def entry_points() -> list[importlib.metadata.EntryPoint]:
    """The installed `diffbench.architectures` entry points, one per value (a distribution found
    twice on sys.path is loaded once)."""
    seen, out = set(), []
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.value not in seen:
            seen.add(ep.value)
            out.append(ep)
    return out


def load(modules=(), source: str = "--plugins", *, ambient: bool = True) -> Report:
    """Import `modules`, then (ambient) DIFFBENCH_PLUGINS and the entry points. Never raises for
    a failing plugin: each failure is in the report (and in `failures()`)."""
    report = Report()
    wanted = [(m, source) for m in modules]
    if ambient:
        wanted += [(m, ENV_SOURCE) for m in env_modules()]
    first: dict[str, str] = {}
    for module, origin in wanted:
        first.setdefault(module, origin)
    for module, origin in first.items():
        _record(report, module, _run_isolated(module, origin, lambda m=module: importlib.import_module(m)))
    if ambient:
        for ep in entry_points():
            name = f"{ep.name} = {ep.value}"
            dist = getattr(ep.dist, "name", None) or "an installed distribution"
            _record(report, name, _run_isolated(name, f"entry point of {dist}", lambda ep=ep: _load_entry_point(ep),
                                                once=True))
    return report


def _record(report: Report, plugin: str, failure: Failure | None) -> None:
    if failure is None:
        report.loaded.append(plugin)
    else:
        report.failed.append(failure)


def _load_entry_point(ep) -> None:
    obj = ep.load()
    if ep.attr and callable(obj) and not inspect.isclass(obj):
        obj()


def _run_isolated(plugin: str, source: str, action, once: bool = False) -> Failure | None:
    """Run one plugin's import; on failure, undo what it registered and return the Failure.
    Importing a module twice is a no-op (sys.modules); `once`: an entry point's callable runs once."""
    if once and plugin in _REGISTERED:
        return None
    _cwd_on_path()
    before = set(registry.names(include_test_only=True))
    signalled = []
    try:
        with _stdout_to_stderr(), _note_signals(signalled):
            action()
    except (Exception, SystemExit, KeyboardInterrupt) as exc:  # SystemExit: a plugin that calls sys.exit
        if isinstance(exc, KeyboardInterrupt) and signalled:  # a real Ctrl-C / SIGTERM: stop
            raise
        for name in set(registry.names(include_test_only=True)) - before:
            registry.unregister(name)
        failure = Failure(plugin, source, _describe(exc))
        FAILED[plugin] = failure
        return failure
    new = tuple(sorted(set(registry.names(include_test_only=True)) - before))
    if new or plugin not in _REGISTERED:
        _REGISTERED[plugin] = new
    FAILED.pop(plugin, None)
    return None


@contextlib.contextmanager
def _stdout_to_stderr():
    """A plugin's prints (Python's and its C code's, fd 1) go to stderr while it is imported."""
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            stream.flush()
    saved = None
    try:
        saved = os.dup(1)
        os.dup2(2, 1)
    except OSError:  # no fd 1 or 2: leave the descriptors alone
        if saved is not None:
            os.close(saved)
            saved = None
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        if saved is not None:
            if sys.stderr is not None:
                sys.stderr.flush()
            os.dup2(saved, 1)
            os.close(saved)


@contextlib.contextmanager
def _note_signals(signalled: list):
    """Record SIGINT / SIGTERM arriving during the import (then do what the handler in place does),
    so that a KeyboardInterrupt can be told apart from one the plugin raised itself."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

    def note(signum, frame):
        signalled.append(signum)
        handler = previous[signum]
        if callable(handler):
            return handler(signum, frame)
        if handler == signal.SIG_DFL:  # SIGTERM's default: end the process as it would have
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
        return None

    for s in previous:
        signal.signal(s, note)
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler if handler is not None else signal.SIG_DFL)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, SystemExit):
        return f"SystemExit: the module called sys.exit({exc.code!r}) at import"
    if isinstance(exc, KeyboardInterrupt):
        return "KeyboardInterrupt: the module raised KeyboardInterrupt at import (no signal arrived)"
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else '(no message)'}"


def _cwd_on_path() -> None:
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.append(cwd)


def warn(report: Report, stream=None) -> None:
    """One line on stderr per failure, once per plugin per process."""
    stream = stream or sys.stderr
    for failure in report.failed:
        if failure.plugin not in _WARNED:
            _WARNED.add(failure.plugin)
            print(f"diffbench: warning: {failure.line()}", file=stream)


def forget(plugin: str) -> None:
    """Public, for test suites (docs/adding-an-architecture.md): drop what this process remembers
    about a plugin (loaded, failed, warned), not the architectures it registered."""
    _REGISTERED.pop(plugin, None)
    FAILED.pop(plugin, None)
    _WARNED.discard(plugin)


def load_plugins(modules=()) -> list[str]:
    """Import the plugins a command or a case needs: `modules` (a suite's `plugins:` list), then the
    DIFFBENCH_PLUGINS modules and the `diffbench.architectures` entry points.

    A failure of one of `modules` raises RegistryError naming it (the suite needs it); a failing
    DIFFBENCH_PLUGINS module or entry point is reported on stderr and skipped, so it breaks
    nothing else. Returns the modules imported from `modules` and DIFFBENCH_PLUGINS.
    """
    report = load(tuple(modules), source="plugins:")
    for failure in report.failed:
        if failure.plugin in modules:
            raise registry.RegistryError(f"plugin module {failure.plugin!r} could not be imported: {failure.error}")
    warn(report)
    return [m for m in dict.fromkeys([*modules, *env_modules()]) if m in report.loaded]
