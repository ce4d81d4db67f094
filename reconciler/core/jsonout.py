"""`json.dumps(value, indent=n)`, byte for byte, encoded by orjson where it can be.

The stdlib's `indent=` selects its pure-Python encoder (~20x slower than orjson): a saved
100k-DAG plan, an export or a snapshot write spent seconds there. orjson writes the same
text up to three differences, each handled here:

- it writes UTF-8 where `json` writes `\\uXXXX` (ensure_ascii): every non-ASCII character
  and DEL is escaped afterwards exactly as `json` does (surrogate pairs above U+FFFF);
- it rejects some values `json` takes (int keys, ints over 64 bits) and writes floats with an
  exponent differently (`1e16` vs `1e+16`): such a value is left to the stdlib;
- it indents by 2 only: other widths are re-indented (below).

NaN and infinities (orjson: null) cannot reach the documents written through here: safejson
and the schemas reject them on the way in, and pausectl computes none.
"""

from __future__ import annotations

import json
import re
from typing import Any, Callable

try:
    import orjson
except ImportError:             # pragma: no cover - the stdlib path is tested by forcing it
    orjson = None

_NON_ASCII = re.compile(r"[^\x00-\x7e]")        # json escapes DEL (0x7f) too
_HINT = re.compile(r"e[-+0-9]")     # an exponent's `e` and what follows it
# datetimes and dataclasses go to `default` as they do in json (orjson would write them)
_OPTIONS = 0 if orjson is None else (orjson.OPT_INDENT_2 | orjson.OPT_PASSTHROUGH_DATETIME
                                     | orjson.OPT_PASSTHROUGH_DATACLASS)


def _escape(m: re.Match) -> str:
    code = ord(m.group())
    if code > 0xFFFF:
        code -= 0x10000
        return "\\u%04x\\u%04x" % (0xD800 | (code >> 10), 0xDC00 | (code & 0x3FF))
    return "\\u%04x" % code


def _has_float(value: Any) -> bool:
    if isinstance(value, float):
        return True
    if isinstance(value, dict):
        return any(_has_float(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_has_float(v) for v in value)
    return False


def orjson_text(value: Any, default: Callable | None = None) -> str | None:
    """`value` as json.dumps(indent=2, default=default) writes it, or None where orjson
    cannot say (then the stdlib must encode it)."""
    if orjson is None:
        return None
    try:
        text = orjson.dumps(value, default=default, option=_OPTIONS).decode()
    except (TypeError, ValueError):         # orjson.JSONEncodeError is a TypeError
        return None
    if not text.isascii() or "\x7f" in text:
        text = _NON_ASCII.sub(_escape, text)
    if _may_have_exponent(text) and _has_float(value):
        return None
    return text


_DIGITS = frozenset("0123456789")
_NUMBER = frozenset("0123456789.-")


def _may_have_exponent(text: str) -> bool:
    """Whether a `1e5`-like run may be a number, not part of a string (a sha256 in a plan
    has them): orjson puts a number at the start of the text, after `: ` or after a line's
    indentation, never after a letter or a quote. Erring towards True only costs the walk."""
    seen = 0
    for m in _HINT.finditer(text):      # led by a literal: fast to find, unlike [0-9]e
        i = m.start()
        if i == 0 or text[i - 1] not in _DIGITS:
            continue                    # not `<digit>e`: no number's exponent
        seen += 1
        if seen > 1000:                 # many digit-e runs: just walk the value
            return True
        while i > 0 and text[i - 1] in _NUMBER:
            i -= 1
        if i == 0 or text[i - 1] == " ":
            return True
    return False


def reindent(text: str, indent: int) -> str:
    """Text indented by 2 per level, indented by `indent` instead. Every newline of JSON text
    is indentation (strings escape theirs) followed by a token, never a space, so a line's
    leading spaces say its depth exactly: levels are rewritten deepest first, each newline
    swapped for a NUL (never raw in JSON text) so a shallower pass cannot match it again."""
    if indent == 2 or "\n" not in text:
        return text
    depth = 1
    while "\n" + "  " * (depth + 1) in text:
        depth += 1
    for d in range(depth, 0, -1):
        text = text.replace("\n" + "  " * d, "\x00" + " " * (indent * d))
    return text.replace("\x00", "\n")


def dumps(value: Any, indent: int = 2, default: Callable | None = None) -> str:
    """json.dumps(value, indent=indent, default=default), the same bytes."""
    text = orjson_text(value, default) if indent >= 0 else None
    if text is None:
        return json.dumps(value, indent=indent, default=default)
    return reindent(text, indent)
