"""Safe YAML loading that keeps line marks and refuses what pyyaml would silently accept.

- duplicate keys are an error (pyyaml keeps the last one),
- aliases are bounded (a billion-laughs document fails fast instead of eating memory), and so
  are the characters of scalars reached through aliases (one huge scalar aliased thousands of
  times is the same bomb in fewer nodes),
- only the plain YAML tags (no python/*, no custom tags),
- the file must be UTF-8,
- timestamps stay strings, so JSON Schema sees what the user wrote,
- mapping keys are strings as written: YAML 1.1 reads `007`, `1000`, `1:30`, `yes`, `null`
  as numbers, booleans or null; a key is a name (a dag_id, a group, an environment), so its
  source text is kept,
- numbers are finite and bounded: `.nan`, `.inf`, `1.0e+999` and integers of 19 digits or more
  are errors at their line; the source text of every non-string value is kept (`sources`) so
  a type error can show what was written (`tags: [007]`: quote it).

The result is plain dicts/lists/scalars plus `marks`: a map from a JSON path (tuple of keys and
indexes) to the (line, col) of that node, 1-based, for error messages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from reconciler.core.errors import PausectlError

try:  # libyaml's composer is several times faster; the checks below do not depend on it
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover
    from yaml import SafeLoader as _Loader

MAX_ALIAS_EXPANSIONS = 10_000   # nodes reached through aliases; real state files use a handful
MAX_ALIAS_CHARS = 1_000_000     # characters of scalars reached through aliases
MAX_SCALAR_CHARS = 1_000_000    # one scalar (a reason is a sentence, a dag_id 250 chars)
MAX_INT = 10**18                # every count, priority and limit is far below
MAX_BYTES = 20 * 1024 * 1024

_STR = "tag:yaml.org,2002:str"
_ALLOWED_SCALARS = {
    _STR, "tag:yaml.org,2002:int", "tag:yaml.org,2002:float", "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:null", "tag:yaml.org,2002:timestamp",
}
_SEQ = "tag:yaml.org,2002:seq"
_MAP = "tag:yaml.org,2002:map"

Path_ = tuple  # a JSON path: tuple of str keys and int indexes


@dataclass
class LoadedYaml:
    """A loaded YAML document with the source position of every node."""

    path: str                     # as shown in messages (relative to the state repo when possible)
    data: Any
    marks: dict[tuple, tuple[int, int]] = field(default_factory=dict)
    sources: dict[tuple, str] = field(default_factory=dict)   # non-string scalars as written

    def mark(self, json_path) -> tuple[int, int]:
        """(line, col) of the node at json_path, or of its nearest ancestor that has one."""
        p = tuple(json_path)
        while p:
            if p in self.marks:
                return self.marks[p]
            p = p[:-1]
        return self.marks.get((), (1, 1))

    def error(self, json_path, message: str) -> PausectlError:
        line, col = self.mark(json_path)
        return PausectlError(message, self.path, line, col)

    def where(self, json_path) -> str:
        return f"{self.path}:{self.mark(json_path)[0]}"


def load_yaml_file(file: Path, shown_as: str | None = None) -> LoadedYaml:
    shown = shown_as or str(file)
    try:
        raw = file.read_bytes()
    except FileNotFoundError:
        raise PausectlError("file not found", shown) from None
    except IsADirectoryError:
        raise PausectlError("is a directory, expected a YAML file", shown) from None
    except OSError as e:
        raise PausectlError(f"cannot read: {e.strerror}", shown) from None
    return load_yaml_bytes(raw, shown)


def load_yaml_bytes(raw: bytes, shown: str) -> LoadedYaml:
    if len(raw) > MAX_BYTES:
        raise PausectlError(f"file is larger than {MAX_BYTES // (1024 * 1024)} MB", shown, 1, 1)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        col = e.start - (raw.rfind(b"\n", 0, e.start) + 1) + 1
        raise PausectlError(f"not valid UTF-8 (byte 0x{raw[e.start]:02x})", shown, line, col) from None
    if text.startswith("\ufeff"):
        text = text[1:]
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        raise PausectlError("contains a NUL byte (binary file?)", shown, line, 1)
    try:
        node = _compose_single(text)
    except yaml.MarkedYAMLError as e:
        mark, msg = _syntax_error_location(e, text)
        if mark is not None:
            raise PausectlError(f"invalid YAML: {msg}", shown, mark.line + 1, mark.column + 1) from None
        raise PausectlError(f"invalid YAML: {msg}", shown) from None
    except yaml.YAMLError as e:
        raise PausectlError(f"invalid YAML: {e}".splitlines()[0], shown) from None
    except RecursionError:
        raise PausectlError("invalid YAML: nesting too deep", shown, 1, 1) from None
    doc = LoadedYaml(shown, None)
    if node is None:
        doc.data = None
        return doc
    builder = _Builder(doc)
    try:
        doc.data = builder.build(node, ())
    except RecursionError:
        raise PausectlError("nesting too deep", shown, 1, 1) from None
    return doc


def _syntax_error_location(e: yaml.MarkedYAMLError, text: str):
    """(mark, message) for a syntax error, pointing where the user has to look.

    The parser notices an unclosed quote or bracket only where it runs into something later
    (often lines further down, or at the end of the file); name the line that opened it.
    """
    msg = " ".join(str(x) for x in (e.context, e.problem) if x) or "invalid YAML"
    problem, context = e.problem_mark, e.context_mark
    ctx = e.context or ""
    if context is not None and "quoted scalar" in ctx:
        return context, f"unclosed quote: {msg}"
    if (context is not None and problem is not None and ctx.startswith("while parsing a flow")
            and problem.line > context.line):
        what = ctx[len("while parsing a "):]
        return context, (f"{what} opened here is not closed (the parser gave up on line "
                         f"{problem.line + 1}: {e.problem})")
    if problem is not None and len(text) <= 2_000_000:   # the pure-Python rescan is slow
        opened = _runaway_quote(text, problem.line)
        if opened is not None:
            return opened, (f"unclosed quote: the quoted string opened here runs on to line "
                            f"{problem.line + 1} ({msg})")
    return problem or context, msg


def _runaway_quote(text: str, error_line: int):
    """The start mark of a quoted scalar spanning several lines that ends on `error_line`:
    the usual shape of a missing closing quote (the string swallows lines until the next quote,
    and the error comes right after it). None when there is none."""
    loader = yaml.SafeLoader(text)
    found = None
    try:
        while True:
            tok = loader.get_token()
            if tok is None or tok.start_mark.line > error_line:
                break
            if (isinstance(tok, yaml.ScalarToken) and tok.style in ('"', "'")
                    and tok.start_mark.line < tok.end_mark.line == error_line):
                found = tok.start_mark
    except yaml.YAMLError:
        pass
    finally:
        loader.dispose()
    return found


def _compose_single(text: str):
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
    finally:
        loader.dispose()
    return node


class _Builder:
    def __init__(self, doc: LoadedYaml):
        self.doc = doc
        self.alias_budget = MAX_ALIAS_EXPANSIONS
        self.alias_chars = MAX_ALIAS_CHARS
        self.seen_ids: set[int] = set()
        # the nodes being built that were written in place (not reached through an alias):
        # an alias bomb is reported where its expansion is used, not at the far-away anchor
        self.written: list = []

    def _err(self, node, message: str) -> PausectlError:
        return PausectlError(message, self.doc.path, node.start_mark.line + 1,
                             node.start_mark.column + 1)

    def _count(self, node) -> bool:
        """True when node was written in place; charges the budget when reached by alias."""
        # A node object reached twice was reached through an alias: charge the budget.
        if id(node) in self.seen_ids:
            self.alias_budget -= 1
            if self.alias_budget < 0:
                raise self._err(self.written[-1] if self.written else node,
                                f"too many alias expansions (over {MAX_ALIAS_EXPANSIONS}); "
                                "refusing a YAML alias bomb")
            if isinstance(node, yaml.ScalarNode):
                self.alias_chars -= len(node.value)
                if self.alias_chars < 0:
                    raise self._err(self.written[-1] if self.written else node,
                                    f"aliases repeat over {MAX_ALIAS_CHARS:,} characters of "
                                    "scalars; refusing a YAML alias bomb")
            return False
        self.seen_ids.add(id(node))
        return True

    def build(self, node, path: tuple):
        if self._count(node) and not isinstance(node, yaml.ScalarNode):
            self.written.append(node)
            try:
                return self._build(node, path)
            finally:
                self.written.pop()
        return self._build(node, path)

    def _build(self, node, path: tuple):
        if path not in self.doc.marks:
            self.doc.marks[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
        if isinstance(node, yaml.ScalarNode):
            value = self._scalar(node)
            if not isinstance(value, str) and node.value:
                self.doc.sources[path] = node.value
            return value
        if isinstance(node, yaml.SequenceNode):
            if node.tag != _SEQ:
                raise self._err(node, f"tag {node.tag!r} is not allowed")
            return [self.build(child, path + (i,)) for i, child in enumerate(node.value)]
        if isinstance(node, yaml.MappingNode):
            if node.tag != _MAP:
                raise self._err(node, f"tag {node.tag!r} is not allowed")
            return self._mapping(node, path)
        raise self._err(node, "unsupported YAML node")  # pragma: no cover

    def _mapping(self, node, path: tuple) -> dict:
        result: dict = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise self._err(key_node, "merge keys (<<) are not supported; write the keys out")
            if not isinstance(key_node, yaml.ScalarNode):
                raise self._err(key_node, "mapping keys must be plain strings")
            self._check_scalar(key_node)
            # a key names something (a dag_id, group, environment): what the user wrote,
            # never YAML 1.1's reading of it (`007:` is not 7, `yes:` not True, `1:30:` not 90)
            key = key_node.value
            if key in result:
                first = self.doc.marks.get(path + (key,), (0, 0))[0]
                raise self._err(key_node, f"duplicate key {key!r} (first defined on line {first})")
            self.doc.marks[path + (key,)] = (key_node.start_mark.line + 1,
                                             key_node.start_mark.column + 1)
            result[key] = self.build(value_node, path + (key,))
        return result

    def _check_scalar(self, node) -> None:
        if node.tag not in _ALLOWED_SCALARS:
            raise self._err(node, f"tag {node.tag!r} is not allowed")
        if len(node.value) > MAX_SCALAR_CHARS:
            raise self._err(node, f"scalar of {len(node.value):,} characters (at most "
                                  f"{MAX_SCALAR_CHARS:,})")

    def _scalar(self, node):
        self._check_scalar(node)
        tag = node.tag
        if tag in (_STR, "tag:yaml.org,2002:timestamp"):
            return node.value
        if tag == "tag:yaml.org,2002:null":
            return None
        if tag == "tag:yaml.org,2002:bool":
            return node.value.lower() in ("true", "yes", "on", "y")
        if tag == "tag:yaml.org,2002:int":
            v = node.value.replace("_", "")
            if len(v.lstrip("+-")) > 20 and not v.lstrip("+-").startswith(("0x", "0o")):
                raise self._err(node, f"integer {_short(node.value)} is too large "
                                      "(quote it if it is a name)")
            try:
                if v.startswith(("0x", "-0x", "+0x")):
                    n = int(v, 16)
                elif v.startswith(("0o", "-0o", "+0o")):
                    n = int(v.replace("0o", ""), 8)
                else:
                    n = int(v, 10)
            except ValueError:
                return node.value      # YAML 1.1 forms (1:30, 0b1) stay what was written
            if abs(n) >= MAX_INT:
                raise self._err(node, f"integer {_short(node.value)} is too large "
                                      "(quote it if it is a name)")
            return n
        # float: finite only (no field of any pausectl format wants NaN or infinity)
        v = node.value.lower().replace("_", "")
        if v in (".inf", "+.inf", "-.inf", ".nan"):
            raise self._err(node, f"{node.value} is not a finite number")
        try:
            f = float(v)
        except ValueError:
            return node.value
        if f != f or f in (float("inf"), float("-inf")):
            raise self._err(node, f"{_short(node.value)} is out of range (not a finite number)")
        return f


def _short(text: str) -> str:
    return text if len(text) <= 40 else text[:20] + "..." + text[-8:]
