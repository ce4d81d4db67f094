"""JSON output (plan/render_json.py) is byte for byte what `json.dump(indent=2, default=str)`
writes, on the orjson path and on the stdlib path, for every kind of value a document can
hold: non-ASCII and DEL, astral characters, int keys, ints over 64 bits, floats with an
exponent, datetimes, long lists cut in pieces; and a 20k-change plan is written in few
writes (what the CLI's line-inspecting output guard pays for)."""

from __future__ import annotations

import io
import json
import random
from datetime import datetime, timezone

import pytest

from reconciler.core import jsonout
from reconciler.plan import render_json as rj

N_LARGE = 20_000                 # changes: ten pieces of CHUNK
CHARS = [chr(i) for i in range(0, 0x800)] + ["\x7f", "\U0001F600", "\u2028", "é"]


def _value(rnd: random.Random, depth: int = 0):
    kind = rnd.randint(0, 9 if depth < 3 else 5)
    if kind == 0:
        return "".join(rnd.choice(CHARS) for _ in range(rnd.randint(0, 8)))
    if kind == 1:
        return rnd.randint(-10**20, 10**20)
    if kind == 2:
        return rnd.choice([0.5, 1e16, 1e-7, 3.0, -0.0, 123456789.125])
    if kind == 3:
        return rnd.choice([True, False, None])
    if kind == 4:
        return datetime(2026, 1, 2, tzinfo=timezone.utc)
    if kind == 5:
        return "plain"
    if kind in (6, 7):
        return [_value(rnd, depth + 1) for _ in range(rnd.randint(0, 4))]
    return {(f"k{i}" if rnd.random() < .9 else rnd.choice([1, "é", "ü\U0001F600"])):
            _value(rnd, depth + 1) for i in range(rnd.randint(0, 4))}


def _stdlib(doc) -> str:
    out = io.StringIO()
    json.dump(doc, out, indent=2, default=str)
    return out.getvalue() + "\n"


def _ours(doc) -> str:
    out = io.StringIO()
    rj.write_json(doc, out)
    return out.getvalue()


@pytest.mark.parametrize("fast", [True, False], ids=["orjson", "stdlib"])
def test_byte_identical_to_json_dump(fast, monkeypatch):
    if fast:
        pytest.importorskip("orjson")
    else:
        monkeypatch.setattr(jsonout, "orjson", None)
    rnd = random.Random(3)
    for n in range(500):
        doc = {"a": _value(rnd), "z": _value(rnd),
               "big": [_value(rnd, 1) for _ in range(2 * rj.CHUNK + 7 if n % 100 == 0 else 2)]}
        if n % 7 == 0:
            doc = _value(rnd)
        assert _ours(doc) == _stdlib(doc), n


def test_a_large_plan_is_written_in_few_pieces():
    changes = [{"dag_id": f"dag_{i:06d}", "action": "pause", "live_paused": False,
                "desired_paused": True, "rule": "prod.yaml:3", "reason": "r", "owner": "o"}
               for i in range(N_LARGE)]
    doc = {"environment": "prod", "summary": {"pause": len(changes)}, "changes": changes,
           "warnings": []}
    writes = []

    class Counting(io.StringIO):
        def write(self, s):
            writes.append(len(s))
            return super().write(s)

    out = Counting()
    rj.write_json(doc, out)
    assert out.getvalue() == _stdlib(doc)
    assert len(writes) <= N_LARGE // rj.CHUNK + 12


def _plain(rnd: random.Random, depth: int = 0):
    """_value without datetimes: what json.dumps takes without a default."""
    v = _value(rnd, depth)
    return "2026-01-02" if isinstance(v, datetime) else (
        [_plain(rnd, depth + 1) for _ in v] if isinstance(v, list) else
        {k: _plain(rnd, depth + 1) for k in v} if isinstance(v, dict) else v)


@pytest.mark.parametrize("indent", [0, 1, 2, 4])
def test_dumps_is_json_dumps_byte_for_byte(indent):
    """core/jsonout.dumps (saved plans, snapshots, exports): json.dumps(indent=n)'s bytes,
    re-indented from orjson's 2 deepest level first (a level's spaces are never re-read)."""
    pytest.importorskip("orjson")
    rnd = random.Random(indent)
    for n in range(400):
        doc = {"dags": [_plain(rnd, 1) for _ in range(3)], "deep": [[[[{"x": [1, {}]}]]]],
               "s": "  \\n  spaces \n after"} if n % 5 else _plain(rnd)
        assert jsonout.dumps(doc, indent=indent) == json.dumps(doc, indent=indent), n
    for doc in ({"hash": "sha256:ab1e8", "n": 1e16}, {"hash": "ab1e8"}, ["x: 1e5", -2.5e-7],
                {"ids": [f"d{i}e{i}" for i in range(1500)], "f": 1e-7}):   # strings vs numbers
        assert jsonout.dumps(doc, indent=1) == json.dumps(doc, indent=1)
    with pytest.raises(TypeError):       # no default: what json refuses, it refuses too
        jsonout.dumps({"at": datetime(2026, 1, 2)}, indent=1)
    assert jsonout.dumps({"at": datetime(2026, 1, 2)}, 1, str) == json.dumps(
        {"at": datetime(2026, 1, 2)}, indent=1, default=str)


def test_changes_json_equals_each_changes_to_json_on_every_path():
    from reconciler.plan.model import Change, changes_json

    class Marked(str):          # a str subclass: msgspec.to_builtins refuses it
        pass

    plain = [Change(f"d{i}", "pause" if i % 2 else "unpause", i % 2 == 0, i % 2 == 1,
                    f"prod.yaml:{i}", "r", None, None, "group g", None, None)
             for i in range(5)]
    marked = plain + [Change("m", "pause", False, True, Marked("prod.yaml:9"), Marked("x"), "o")]
    drained = plain + [Change("z", "pause", False, True, "prod.yaml:3", "r", "o",
                              drain={"deadline_seconds": 60, "in_flight": 1})]
    for changes in (plain, marked, drained, []):
        assert changes_json(changes) == [c.to_json() for c in changes]
    assert all(type(row["action"]) is str for row in changes_json(plain))
