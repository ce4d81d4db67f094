"""own_changes: pausectl's own writes recognised from its journal (issue 12), offline."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from reconciler.live.base import AuditEvent
from reconciler.operate.own_changes import SLACK, OwnChanges, flips

T0 = datetime(2026, 12, 1, 12, tzinfo=timezone.utc)


def _at(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


JOURNAL = {
    "environment": "prod",
    "dags": {"a": {"before": False, "after": True, "batch": 0},
             "b": {"before": True, "after": False, "batch": 1}},
    "events": [{"at": _at(0), "event": "batch 0 applying"},
               {"at": _at(2), "event": "batch 0 applied"},
               {"at": _at(60), "event": "batch 1 applying"},
               {"at": _at(61), "event": "batch 1 gate_failed"},
               {"at": _at(62), "event": "rolling back"},
               {"at": _at(63), "event": "rolled_back"}],
}


def _ev(dag_id, paused, seconds, via="api", user="admin"):
    return AuditEvent(dag_id, "patch_dag", T0 + timedelta(seconds=seconds), user, paused, via)


def test_each_batch_and_the_rollback_are_windows_with_their_targets():
    got = sorted((f.dag_id, f.paused, f.start, f.end) for f in flips(JOURNAL))
    assert got == [("a", False, T0 + timedelta(seconds=62), T0 + timedelta(seconds=63)),
                   ("a", True, T0, T0 + timedelta(seconds=2)),
                   ("b", False, T0 + timedelta(seconds=60), T0 + timedelta(seconds=61)),
                   ("b", True, T0 + timedelta(seconds=62), T0 + timedelta(seconds=63))]


def test_same_dag_same_direction_inside_the_window_is_pausectls_own():
    own = OwnChanges(flips(JOURNAL))
    assert own.is_own(_ev("a", True, 1), True)
    assert own.is_own(_ev("a", True, 2 + SLACK.total_seconds()), True)     # clock skew
    assert not own.is_own(_ev("a", True, 3 + SLACK.total_seconds()), True)  # later: by hand
    assert not own.is_own(_ev("a", None, 1), False)     # unknown direction: the one it left
    assert not own.is_own(_ev("b", True, 1), True)      # another DAG's batch
    assert not own.is_own(_ev("a", True, 1, via="cli", user="ops"), True)   # never the CLI
    assert own.is_own(_ev("b", True, 62.5), True)       # the rollback put b back


def test_a_journal_of_the_wrong_shape_proves_nothing_and_never_raises():
    """The mirrored journal is an Airflow Variable: anyone with Variable access writes it."""
    good = {"at": _at(0), "event": "batch 0 applying"}
    for data in ({**JOURNAL, "dags": [1, 2]}, {**JOURNAL, "dags": "a"}, {**JOURNAL, "events": 7},
                 {**JOURNAL, "events": {"at": 1}}, {**JOURNAL, "user": ["x"]},
                 {**JOURNAL, "dags": {"a": [1], "b": None}},
                 {**JOURNAL, "events": [good, {"at": _at(1), "event": "batch \u00b2 applied"},
                                        {"at": _at(1), "event": "batch " + "9" * 5000 + " applied"},
                                        {"at": "not a time", "event": "rolling back"}, "x", None]}):
        got = flips(data)
        assert all(f.dag_id in JOURNAL["dags"] for f in got), data
    assert flips({**JOURNAL, "dags": {"a": [1], "b": None}}) == []
    assert flips({**JOURNAL, "user": ["x"]})[0].user is None


def test_a_recorded_user_must_match():
    own = OwnChanges(flips({**JOURNAL, "user": "pausectl-bot"}))
    assert own.is_own(_ev("a", True, 1, user="pausectl-bot"), True)
    assert not own.is_own(_ev("a", True, 1, user="admin"), True)


def test_recognise_marks_pausectls_writes_from_the_journal_directory(tmp_path, monkeypatch):
    """observe() marks them via "pausectl": plan, drift, doctor and lint then agree."""
    import json
    from reconciler.live.base import LiveDag
    from reconciler.operate.own_changes import recognise
    monkeypatch.setenv("PAUSECTL_JOURNAL_DIR", str(tmp_path))
    (tmp_path / "prod-20261201T120000000000Z-1.json").write_text(json.dumps(
        {**JOURNAL, "id": "20261201T120000000000Z-1", "batches": []}))
    events = [_ev("a", True, 3600), _ev("a", None, 1), _ev("b", True, 62.5),
              _ev("b", True, 1)]
    live = [LiveDag(dag_id="a", is_paused=True), LiveDag(dag_id="b", is_paused=True)]
    got = [(e.dag_id, e.via) for e in recognise("prod", events, live)]
    # a's newest is an hour later (by hand); its older undirected event cannot be told
    assert got == [("a", "api"), ("a", "api"), ("b", "pausectl"), ("b", "api")]
    assert recognise("dev", events, live) == events      # another environment's journal
