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


def test_a_recorded_user_must_match():
    own = OwnChanges(flips({**JOURNAL, "user": "pausectl-bot"}))
    assert own.is_own(_ev("a", True, 1, user="pausectl-bot"), True)
    assert not own.is_own(_ev("a", True, 1, user="admin"), True)
