"""A snapshot's LiveDags built in C (live/snapshot_fast.py), by msgspec's decoder or a column
at a time: the objects their constructor makes (equal, same hash, same repr), and a snapshot
the decoder or the column checks refuse still gets the per-DAG loop's message at its line."""

from __future__ import annotations

import json
import random

import pytest

from reconciler.core.errors import PausectlError
from reconciler.live.base import LiveDag
from reconciler.live.snapshot import parse_snapshot
from reconciler.live.snapshot import SnapshotBackend
from reconciler.live.snapshot_fast import columns, decoded

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


def test_decoded_builds_what_the_constructor_builds():
    rng = random.Random(7)
    for _ in range(60):
        dags = _dags(rng, rng.randint(0, 40))
        raw = json.dumps({"environment": "prod", "dags": dags}).encode()
        got = decoded(raw)
        assert got == [_by_constructor(d) for d in dags]
        assert [repr(x) for x in got] == [repr(_by_constructor(d)) for d in dags]


DEEP = "[" * 40 + "]" * 40
REFUSED = {     # what decoded() leaves to the checked path, and that path's message
    '{"dags": [{"dag_id": "a", "is_paused": "false"}]}': "dags[0].is_paused: expected a boolean",
    '{"dags": [{"dag_id": "", "is_paused": true}]}': "dags[0].dag_id: expected a non-empty",
    '{"dags": [{"dag_id": "a", "is_paused": true}, {"dag_id": "a", "is_paused": true}]}':
        "dags[1]: duplicate dag_id 'a'",
    '{"dags": [{"dag_id": "a", "is_paused": true, "max_active_runs": 1e3}]}':
        "dags[0].max_active_runs: expected an integer from 0 to 1000000",
    '{"dags": [{"dag_id": "a", "is_paused": true, "max_active_runs": -1}]}':
        "dags[0].max_active_runs: expected an integer from 0 to 1000000",
    '{"dags": [{"dag_id": "a", "is_paused": true, "max_active_runs": true}]}':
        "dags[0].max_active_runs: expected an integer from 0 to 1000000",
    '{"dags": [{"dag_id": "a", "is_paused": true, "max_active_runs": ' + "9" * 30 + '}]}':
        "integer too large",
    '{"dags": [{"dag_id": "a", "is_paused": true, "tags": null}]}':
        "dags[0].tags: expected a list of strings",
    '{"dags": [{"dag_id": "a", "is_paused": true, "x": ' + DEEP + '}]}':
        "nested deeper than 32 levels",
    '{"dags": [{"dag_id": "a", "is_paused": NaN}]}': "NaN is not valid JSON",
    '{"dags": {"a": 1}}': "snapshot must be an object with a 'dags' list",
    '{"dags": [], "events": ' + DEEP + '}': "nested deeper than 32 levels",
}


@pytest.mark.parametrize("raw", sorted(REFUSED))
def test_what_decoded_refuses_gets_the_checked_paths_message(tmp_path, raw):
    assert decoded(raw.encode()) is None
    path = tmp_path / "snap.json"
    path.write_text(raw)
    with pytest.raises(PausectlError) as e:
        SnapshotBackend("prod", path, "snap.json").list_dags()
    assert str(e.value).startswith("snap.json:") and REFUSED[raw] in str(e.value)


def test_other_keys_take_the_checked_path_and_are_read(tmp_path):
    doc = {"dags": [{"dag_id": "a", "is_paused": True, "description": "x"}],
           "events": [{"dag_id": "a", "via": "api", "when": "2026-11-30T10:00:00Z",
                       "is_paused": True, "user": "alice"}]}
    raw = json.dumps(doc).encode()
    assert decoded(raw) is None          # a per-DAG key and events: not DAGs only
    path = tmp_path / "snap.json"
    path.write_bytes(raw)
    backend = SnapshotBackend("prod", path)
    assert backend.list_dags() == [LiveDag("a", True)]
    assert [e.user for e in backend.audit_events(["a"])] == ["alice"]


def test_a_dags_only_snapshot_is_not_parsed_again_for_its_events(tmp_path):
    path = tmp_path / "snap.json"
    path.write_text(json.dumps({"dags": [{"dag_id": "a", "is_paused": True}]}))
    backend = SnapshotBackend("prod", path)
    assert backend.list_dags() == [LiveDag("a", True)]
    assert backend.audit_events() == [] and backend.asset_edges() == []
    assert backend._parsed is None       # nothing but the decoder read it
    path.write_text(json.dumps({"dags": [{"dag_id": "a", "is_paused": True}],   # rewritten
                                "assets": [{"name": "x", "producers": ["a"], "consumers": []}]}))
    assert backend.asset_edges() == []   # no consumers: no edge, but the file was parsed
    assert backend._parsed is not None
