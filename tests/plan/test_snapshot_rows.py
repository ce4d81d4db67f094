"""The plan's inputs built a column at a time (live/snapshot_fast.py): the LiveDags of a
snapshot and resolve's Decisions are the objects their constructors make (equal, same hash,
same repr), and a snapshot the column checks refuse still gets the per-DAG loop's message."""

from __future__ import annotations

import json
import random

import pytest

from reconciler.core.errors import PausectlError
from reconciler.live.base import LiveDag
from reconciler.live.snapshot import parse_snapshot
from reconciler.live.snapshot_fast import columns, slotted_rows
from reconciler.policy.resolve import Decision
from reconciler.state.model import Rule

OPTIONAL = {"is_stale": [True, False], "has_import_errors": [True, False],
            "fileloc": [None, "/dags/a.py"], "last_parsed_time": [None, "2026-11-25T10:00:00Z"],
            "timetable_summary": [None, "@daily"], "next_dagrun_run_after": [None, "2026-11-26"],
            "max_active_runs": [None, 0, 16, 1_000_000], "tags": [[], ["a", "b"]],
            "owners": [[], ["x"]]}


def _dags(rng: random.Random, n: int) -> list[dict]:
    keys = rng.sample(sorted(OPTIONAL), rng.randint(0, len(OPTIONAL)))   # some DAGs have them
    out = []
    for i in range(n):
        d = {"dag_id": f"d{i}", "is_paused": rng.random() < 0.5}
        d.update({k: rng.choice(OPTIONAL[k]) for k in keys if rng.random() < 0.7})
        out.append(d)
    return out


def _by_constructor(d: dict) -> LiveDag:
    g = d.get
    return LiveDag(d["dag_id"], d["is_paused"], tuple(g("tags", [])), tuple(g("owners", [])),
                   g("is_stale", False), g("has_import_errors", False), g("fileloc"),
                   g("last_parsed_time"), g("timetable_summary"), g("next_dagrun_run_after"),
                   g("max_active_runs"))


def test_columns_build_what_the_constructor_builds():
    rng = random.Random(5)
    for _ in range(60):
        dags = _dags(rng, rng.randint(0, 40))
        got = columns(dags)
        want = [_by_constructor(d) for d in dags]
        assert got == want
        assert [hash(x) for x in got] == [hash(x) for x in want]
        assert [repr(x) for x in got] == [repr(x) for x in want]
        if got:
            with pytest.raises(AttributeError):       # still frozen (a Struct: "immutable type")
                got[0].is_paused = not got[0].is_paused


def test_a_refused_column_falls_back_to_the_per_dag_message():
    raw = json.dumps({"dags": [{"dag_id": "a", "is_paused": False},
                               {"dag_id": "b", "is_paused": "false"}]}, indent=1)
    assert columns(json.loads(raw)["dags"]) is None
    with pytest.raises(PausectlError) as e:
        parse_snapshot(raw, "snap.json")
    assert str(e.value).startswith("snap.json:") and "dags[1].is_paused: expected a boolean" \
        in str(e.value)


def test_slotted_rows_of_decisions_equal_their_constructor():
    rule = Rule(layer="group", name="g", paused=True, where="state/prod.yaml:3")
    ids = ["a", "b", "c"]
    got = slotted_rows(Decision, [ids, [True, None, False], [rule, None, rule],
                                  [None, [rule], None], [False, False, True]])
    assert got == [Decision("a", True, rule), Decision("b", None, None, [rule]),
                   Decision("c", False, rule, None, True)]
    with pytest.raises(ValueError):
        slotted_rows(Decision, [ids])
