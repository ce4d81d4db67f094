"""JSON output at the input floor: plan, diff, drift and every other `--format json`.

The bytes are exactly those of `json.dump(data, stream, indent=2, default=str)` plus a
newline (tests/golden pins them, schemas/ describe them), produced faster and streamed:

- a top-level object is written key by key, and a long list in pieces of CHUNK items, so the
  output guard (core/sanitize.GuardedStream, which inspects every line it is given) sees a
  few large writes instead of millions of tiny ones, and no second copy of the document is
  ever held;
- each piece is encoded by orjson where it can be (core/jsonout.py: the same bytes as the
  stdlib's pure-Python indenting encoder, ~20x faster) and re-indented to its depth: JSON
  indentation is additive, so a value's text at depth d is its standalone text with `2*d`
  spaces after each newline.
"""

from __future__ import annotations

import json
import sys
from typing import IO, Any, Iterator

from reconciler.core.jsonout import orjson_text

CHUNK = 2000                    # list items per encoded piece
_STDLIB = json.JSONEncoder(indent=2, default=str)


def encode(value: Any, depth: int = 0) -> str:
    """`value` as json.dumps(indent=2, default=str) writes it nested `depth` levels deep."""
    text = orjson_text(value, str)
    if text is None:
        text = _STDLIB.encode(value)
    return text.replace("\n", "\n" + "  " * depth) if depth and "\n" in text else text


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
