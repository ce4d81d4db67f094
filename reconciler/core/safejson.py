"""Bounded JSON parsing for every JSON pausectl reads that it did not write itself.

Snapshots, Variables, saved plans, journals and Airflow API responses are untrusted. Python's
`json.loads` accepts NaN/Infinity, turns 1e999 into inf, raises ValueError (not a decode error)
on an integer of more than 4,300 digits, and recurses until RecursionError on deep nesting.
`loads()` refuses all of these with one PausectlError (or the error class given) naming the
line and column, and bounds nesting depth before parsing (a linear scan), so a hostile
document fails fast and never as an internal error.
"""

from __future__ import annotations

import json
import re
from typing import Any

from reconciler.core.errors import PausectlError
from reconciler.core.paths import confine

MAX_DEPTH = 32                  # snapshots nest 4 deep; API responses about 6
MAX_INT_DIGITS = 19             # |n| < 10**19: every count, id and limit fits
MAX_BYTES = 200 * 1024 * 1024   # a 100k-DAG snapshot is ~20 MB

_TOKENS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]|-?(?:NaN|Infinity)|-?\d[\d.eE+\-]*', re.S)


class _Bad(Exception):
    def __init__(self, what: str):
        self.what = what


def _int(text: str):
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise _Bad("integer too large")
    return int(text)


def _float(text: str):
    v = float(text)
    if v != v or v in (float("inf"), float("-inf")):
        raise _Bad("number out of range")
    return v


def _constant(text: str):
    raise _Bad(f"{text} is not valid JSON")


_KEEP = b'[]{}"'
_DROP = bytes(b for b in range(256) if b not in _KEEP)
_QUOTED = re.compile(rb'"[^"]*"')
_EMPTY_PAIR = re.compile(rb"\[\]|\{\}")


def _depth_exceeded(text: str, max_depth: int) -> bool:
    """True when brackets outside strings nest deeper than max_depth; linear and in C: drop
    escapes and every byte but quotes and brackets, then strings, then peel the innermost
    pairs, one level per pass (unbalanced leftovers are the parser's error to report)."""
    t = text.replace("\\\\", "").replace('\\"', "")
    b = t.encode("utf-8", "surrogatepass").translate(None, _DROP)
    b = _QUOTED.sub(b"", b.replace(b'""', b""))
    for _ in range(max_depth):
        if not b:
            return False
        shorter = _EMPTY_PAIR.sub(b"", b)
        if shorter == b:
            return False
        b = shorter
    return _EMPTY_PAIR.search(b) is not None


def _locate(text: str, what: str, max_depth: int) -> int:
    """Offset of the first token that is `what` (the slow path, only on error)."""
    depth = 0
    for m in _TOKENS.finditer(text):
        tok = m.group()
        if tok in "[{":
            depth += 1
            if what == "depth" and depth > max_depth:
                return m.start()
        elif tok in "]}":
            depth -= 1
        elif tok[0] != '"':
            if what == "NaN" and tok.lstrip("-") in ("NaN", "Infinity"):
                return m.start()
            if what == "int" and tok.lstrip("-").isdigit() and len(tok.lstrip("-")) > MAX_INT_DIGITS:
                return m.start()
            if what == "float" and not tok.lstrip("-").isdigit():
                try:
                    v = float(tok)
                except ValueError:
                    continue
                if v in (float("inf"), float("-inf")):
                    return m.start()
    return 0


def _line_col(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def loads(raw: str | bytes, shown: str | None = None, *, max_depth: int = MAX_DEPTH,
          error: type[PausectlError] = PausectlError, what: str = "JSON") -> Any:
    """Parse untrusted JSON. Errors are `error(message, shown, line, col)`; with shown=None
    (an API response) the message carries the position instead: `... (line 3, column 7)`."""
    def fail(message: str, offset: int | None = None, line=None, col=None):
        if offset is not None:
            line, col = _line_col(text, offset)
        if shown is None:
            pos = f" (line {line}, column {col})" if line else ""
            return error(f"{what}: {message}{pos}")
        return error(message, shown, line, col)

    if isinstance(raw, (bytes, bytearray)):
        if len(raw) > MAX_BYTES:
            raise fail(f"larger than {MAX_BYTES // (1024 * 1024)} MB", line=1, col=1)
        try:
            text = bytes(raw).decode("utf-8")
        except UnicodeDecodeError as e:
            text = bytes(raw[: e.start]).decode("utf-8", "replace")
            raise fail("not valid UTF-8", len(text)) from None
    else:
        text = raw
        if len(text) > MAX_BYTES:
            raise fail(f"larger than {MAX_BYTES // (1024 * 1024)} MB", line=1, col=1)
    if text.startswith("\ufeff"):
        text = text[1:]
    if _depth_exceeded(text, max_depth):
        raise fail(f"nested deeper than {max_depth} levels", _locate(text, "depth", max_depth))
    try:
        return json.loads(text, parse_int=_int, parse_float=_float, parse_constant=_constant)
    except json.JSONDecodeError as e:
        raise fail(f"invalid {what}: {e.msg}", line=e.lineno, col=e.colno) from None
    except _Bad as e:
        kind = ("NaN" if "valid JSON" in e.what else "int" if "integer" in e.what else "float")
        raise fail(e.what, _locate(text, kind, max_depth)) from None
    except RecursionError:  # unbalanced brackets the depth scan left to the parser
        raise fail(f"nested deeper than {max_depth} levels",
                   _locate(text, "depth", max_depth)) from None


def load_file(path, shown: str | None = None, *, option: str | None = None,
              max_depth: int = MAX_DEPTH, what: str = "JSON") -> Any:
    """Read and parse a JSON file given on the command line (`--plan`, `--journal`):
    a missing file, a directory or a FIFO is one clear error, never a traceback."""
    real = confine(str(path), None, option=option, what="file")
    shown = shown or str(path)
    try:
        raw = real.read_bytes()
    except OSError as e:
        raise PausectlError(f"cannot read: {e.strerror}", shown) from None
    return loads(raw, shown, max_depth=max_depth, what=what)
