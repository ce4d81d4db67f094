"""JSON output at the input floor: plan, diff, drift and every other `--format json`.

The bytes are exactly those of `json.dump(data, stream, indent=2, default=str)` plus a
newline (tests/golden pins them, schemas/ describe them), produced faster and streamed:

- a top-level object is written key by key, and a long list in pieces of CHUNK items, so the
  output guard (core/sanitize.GuardedStream, which inspects every line it is given) sees a
  few large writes instead of millions of tiny ones, and no second copy of the document is
  ever held;
- each piece is encoded by orjson when it is installed (C, ~20x the stdlib's pure-Python
  indenting encoder, which is what `indent=` selects) and re-indented to its depth: JSON
  indentation is additive, so a value's text at depth d is its standalone text with `2*d`
  spaces after each newline;
- orjson writes UTF-8 where `json` writes `\\uXXXX` (ensure_ascii): every non-ASCII character
  and DEL is escaped afterwards exactly as `json` does (surrogate pairs above U+FFFF);
- anything orjson would encode differently falls back to the stdlib for that piece only:
  types it rejects (int keys, ints over 64 bits), and floats written with an exponent
  (`1e16` vs `1e+16`). NaN and infinities cannot reach these documents (safejson and the
  schemas reject them), which is the one difference this cannot see.
"""

from __future__ import annotations

import json
import re
import sys
from typing import IO, Any, Iterator

try:
    import orjson
except ImportError:             # pragma: no cover - the stdlib path is tested by forcing it
    orjson = None

CHUNK = 2000                    # list items per encoded piece
_NON_ASCII = re.compile(r"[^\x00-\x7e]")        # json escapes DEL (0x7f) too
_EXPONENT = re.compile(r"[0-9]e[-+0-9]")
_HINT = re.compile(r"e[-+0-9]")     # what _EXPONENT needs, found ~6x faster (led by a literal)
_STDLIB = json.JSONEncoder(indent=2, default=str)
_OPTIONS = 0 if orjson is None else (orjson.OPT_INDENT_2 | orjson.OPT_PASSTHROUGH_DATETIME
                                     | orjson.OPT_PASSTHROUGH_DATACLASS)


def _escape(m: re.Match) -> str:
    code = ord(m.group())
    if code > 0xFFFF:
        code -= 0x10000
        return "\\u%04x\\u%04x" % (0xD800 | (code >> 10), 0xDC00 | (code & 0x3FF))
    return "\\u%04x" % code


def encode(value: Any, depth: int = 0) -> str:
    """`value` as json.dumps(indent=2, default=str) writes it nested `depth` levels deep."""
    text = None
    if orjson is not None:
        try:
            text = orjson.dumps(value, default=str, option=_OPTIONS).decode()
        except (TypeError, ValueError):         # orjson.JSONEncodeError is a TypeError
            text = None
        if text is not None:
            if not text.isascii() or "\x7f" in text:
                text = _NON_ASCII.sub(_escape, text)
            if _HINT.search(text) and _EXPONENT.search(text) and _has_float(value):
                text = None
    if text is None:
        text = _STDLIB.encode(value)
    return text.replace("\n", "\n" + "  " * depth) if depth and "\n" in text else text


def _has_float(value: Any) -> bool:
    if isinstance(value, float):
        return True
    if isinstance(value, dict):
        return any(_has_float(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_has_float(v) for v in value)
    return False


def iter_json(data: Any) -> Iterator[str]:
    """The document in pieces: the top level key by key, long lists CHUNK items at a time."""
    if not isinstance(data, dict) or not data or not all(isinstance(k, str) for k in data):
        yield encode(data)
        return
    yield "{"
    first = True
    for key, value in data.items():
        yield ("\n  " if first else ",\n  ") + json.dumps(key) + ": "
        first = False
        if isinstance(value, list) and len(value) > CHUNK:
            yield "["
            for i in range(0, len(value), CHUNK):
                piece = encode(value[i:i + CHUNK], 1)      # "[\n    a,\n    b\n  ]"
                yield ("\n" if i == 0 else ",\n") + piece[2:-4]
            yield "\n  ]"
        else:
            yield encode(value, 1)
    yield "\n}"


def write_json(data: Any, stream: IO[str] | None = None) -> None:
    """json.dump(data, stream, indent=2, default=str) and a newline, byte for byte."""
    stream = stream or sys.stdout
    for piece in iter_json(data):
        stream.write(piece)
    stream.write("\n")
