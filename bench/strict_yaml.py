"""Strict YAML reading for suites: text -> plain data, or one SpecError naming file, key path, line.

PyYAML's SafeLoader lets a duplicate key silently win and reads `1e-3` as a string; this reader
rejects the first and reads the second as YAML 1.2 does (a float).
"""

from __future__ import annotations

import re

import yaml

from bench.safe_text import printable

MAX_NODES = 100_000  # alias bombs ("billion laughs") expand to more than this
MAX_BYTES = 256 * 1024  # a suite is a short text file; PyYAML needs ~10 s per MB, so bigger is refused
MAX_INT = 2**63  # integers beyond int64 are refused (they overflow floats and path names downstream)
_MAP_TAG, _SEQ_TAG = "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"
_MERGE_TAG = "tag:yaml.org,2002:merge"
SCALAR_TAGS = "untagged values, or !!str, !!int, !!float, !!bool, !!null with a value of that type"


class SpecError(ValueError):
    """A bad suite, on one line: '<file>: <key path>: <problem>; allowed: <...>'."""

    def __init__(self, source: str, path: str, problem: str, allowed=None):
        self.source, self.path, self.problem, self.allowed = source, path or "(top level)", problem, allowed
        message = f"{source}: {self.path}: {problem}"
        if allowed is not None:
            message += f"; allowed: {format_allowed(allowed)}"
        super().__init__(printable(message))

    def __reduce__(self):  # picklable across processes despite the extra constructor arguments
        return type(self), (self.source, self.path, self.problem, self.allowed)


def format_allowed(allowed) -> str:
    if isinstance(allowed, str):
        return allowed
    return ", ".join(str(a) for a in allowed) or "(none)"


def show(value) -> str:
    """A bad value as it appears in an error message: repr, type, at most ~60 characters."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= MAX_INT:
        text = _big_int(value)
    else:
        text = repr(value)
    text = text if len(text) <= 60 else text[:57] + "..."
    return printable(f"{text} ({type(value).__name__})")


def _big_int(value: int) -> str:
    """A huge integer, sign and leading digits kept: decimal up to Python's 4300-digit limit for
    str(), hexadecimal beyond (only a hex literal gets there)."""
    sign = "-" if value < 0 else ""
    try:
        digits = str(abs(value))
        return f"{sign}{digits[:12]}...({len(digits)} digits)"
    except ValueError:
        digits = hex(abs(value))[2:]
        return f"{sign}0x{digits[:12]}...({len(digits)} hex digits)"


def check_ints(value, path: str, source: str) -> None:
    """Refuse integers outside int64 anywhere in parsed data (YAML or --override JSON)."""
    if isinstance(value, int) and not isinstance(value, bool) and not -MAX_INT <= value < MAX_INT:
        raise SpecError(source, path, f"integer too large: {show(value)}", "integers within 64 bits")
    if isinstance(value, dict):
        for k, v in value.items():
            check_ints(v, child(path, k), source)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            check_ints(v, child(path, i), source)


def read_text(path, source: str | None = None) -> str:
    """A suite file's text: a regular file of at most MAX_BYTES of UTF-8, or one SpecError."""
    import os
    import stat

    source = source or str(path)
    try:
        with open(path, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise SpecError(source, "(file)", "not a regular file", "a YAML suite file")
            data = f.read(MAX_BYTES + 1)
    except OSError as exc:
        raise SpecError(source, "(file)", f"cannot read: {exc.strerror or exc}", "a readable YAML suite file") from None
    if len(data) > MAX_BYTES:
        raise SpecError(source, "(file)", f"larger than {MAX_BYTES // 1024} KiB", "a suite file of at most 256 KiB")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(source, "(file)", f"not UTF-8 text: {exc.reason} at byte {exc.start}", "UTF-8 text") from None


def child(path: str, key) -> str:
    """The key path of `key` under `path`: a.b, a[0], and a[''] or a['x.y'] for keys that a dot
    would hide (an empty key was shown as the top level)."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    if key == "" or any(ch in str(key) for ch in ".[]"):
        return f"{path}[{str(key)!r}]"
    return f"{path}.{key}" if path else str(key)


def _yaml_allowed(problem) -> str:
    """What a YAML syntax error should have been, by the parser's wording."""
    problem = str(problem or "")
    if "alias" in problem or "anchor" in problem:
        return "an alias (*name) after the anchor (&name) it refers to"
    if "document" in problem:
        return "one YAML document per file"
    if "tag" in problem or "URI" in problem:
        return SCALAR_TAGS
    return "YAML mappings, lists and plain values (see docs/suites.md)"


class _Loader(yaml.SafeLoader):
    """SafeLoader that reads YAML 1.2 floats without a dot (1e-3, 5E4) as floats."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def parse(text: str, source: str):
    """YAML text -> dicts, lists and scalars; duplicate keys and non-string keys are errors."""
    loader = None
    if len(text) > MAX_BYTES:
        raise SpecError(source, "(file)", f"larger than {MAX_BYTES // 1024} KiB", "a suite of at most 256 KiB")
    try:
        loader = _Loader(text)
        node = loader.get_single_node()
        return None if node is None else _Builder(loader, source).build(node, "", ())
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(yaml)"
        problem = exc.problem or exc.context
        raise SpecError(source, where, f"invalid YAML: {problem}", _yaml_allowed(problem)) from None
    except yaml.YAMLError as exc:
        raise SpecError(source, "(yaml)", f"invalid YAML: {exc}", _yaml_allowed(str(exc))) from None
    except RecursionError:
        raise SpecError(source, "(yaml)", "nesting too deep", "lists and mappings nested at most a few hundred "
                        "levels deep") from None
    finally:
        if loader is not None:
            loader.dispose()


class _Builder:
    """Walks the composed node tree, so every error knows its key path and line."""

    def __init__(self, loader: _Loader, source: str):
        self.loader, self.source, self.count = loader, source, 0

    def fail(self, path: str, node, problem: str, allowed=None):
        if node is not None:
            problem = f"{problem} (line {node.start_mark.line + 1})"
        raise SpecError(self.source, path, problem, allowed)

    def build(self, node, path: str, stack: tuple):
        self.count += 1
        if self.count > MAX_NODES:
            self.fail(path, node, f"more than {MAX_NODES} YAML nodes (alias expansion?)",
                      f"at most {MAX_NODES} nodes once aliases are expanded")
        if id(node) in stack:
            self.fail(path, node, "recursive alias", "aliases (*name) to nodes that do not contain the alias")
        if isinstance(node, yaml.MappingNode):
            return self.mapping(node, path, (*stack, id(node)))
        if isinstance(node, yaml.SequenceNode):
            if node.tag != _SEQ_TAG:
                self.fail(path, node, f"unsupported tag {node.tag!r}", "plain lists")
            return [self.build(item, child(path, i), (*stack, id(node))) for i, item in enumerate(node.value)]
        return self.scalar(node, path)

    def scalar(self, node, path: str):
        if node.tag == _MERGE_TAG:
            self.fail(path, node, "merge keys ('<<') are not supported", "explicit keys, or `defaults:`")
        try:
            value = self.loader.construct_object(node, deep=True)
        except Exception as exc:  # noqa: BLE001 - PyYAML raises KeyError/IndexError/... on odd explicit tags
            problem = getattr(exc, "problem", None) or f"{type(exc).__name__}: {exc}"
            self.fail(path, node, f"unreadable value {show(node.value)} tagged {node.tag!r}: {problem}", SCALAR_TAGS)
        if isinstance(value, int) and not isinstance(value, bool) and not -MAX_INT <= value < MAX_INT:
            self.fail(path, node, f"integer too large: {show(value)}", "integers within 64 bits")
        return value

    def mapping(self, node, path: str, stack: tuple) -> dict:
        if node.tag != _MAP_TAG:
            self.fail(path, node, f"unsupported tag {node.tag!r}", "plain mappings")
        out, lines = {}, {}
        for key_node, value_node in node.value:
            key = self.key(key_node, path)
            line = key_node.start_mark.line + 1
            if key in out:
                self.fail(child(path, key), None, f"duplicate key {key!r} at line {line} (first at line {lines[key]})",
                          "each key once per mapping")
            lines[key] = line
            out[key] = self.build(value_node, child(path, key), stack)
        return out

    def key(self, node, path: str) -> str:
        if not isinstance(node, yaml.ScalarNode):
            self.fail(path, node, "a mapping key is a list or mapping", "string keys")
        key = self.scalar(node, path)
        if not isinstance(key, str):
            self.fail(path, node, f"key {show(key)} is not a string",
                      "string keys (quote keys such as 'on', 'no', '1')")
        return key
