"""Emergency pause and recover without Airflow: prior state, completion of a second
declaration, rollback deferral, the bulk pause capability, the emergency layer in plans, and
restore refused during an emergency. The real-Airflow proof is in test_safe_apply_faults.py."""

from __future__ import annotations

import json

import pytest


from reconciler.apply import emergency as em
from reconciler.live.base import LiveDag

from helpers import dag, make_state, run_cli, snapshot_json

from fakes import FakeBulk, fleet, journal_dir  # noqa: F401


def test_emergency_pause_recover_and_rollback_deferral():
    b = fleet()
    b.dags["crit"] = LiveDag("crit", False, tags=("critical",))
    before = b.paused()
    s = em.pause(b, "prod", "db down", "oncall", ["tag:critical"], ["run_b"], by="me")
    assert s["paused"] == 1 and s["kept_running"] == ["crit", "run_b"]
    assert b.paused() == {**before, "run_a": True}
    marker = json.loads(b.vars[em.marker_key("prod")])
    assert marker["prior"] == {"run_a": False}
    # a second declaration completes the first, never overwriting its prior state
    b.set_paused(["run_a"], False)
    s = em.pause(b, "prod", "other", "x", [], [], by="me")
    assert s["completed_existing"] and json.loads(b.vars[em.marker_key("prod")])["reason"] == "db down"
    # rolling back an apply that had paused d9... (before: running) cannot start it now
    targets = em.defer_rollback(b, "prod", [("d9", False), ("crit", True)], lambda s: None)
    assert targets == [("crit", True)]
    assert json.loads(b.vars[em.marker_key("prod")])["prior"] == {"run_a": False, "d9": False}
    plan = em.recover_plan("prod", json.loads(b.vars[em.marker_key("prod")]), b.list_dags())
    assert sorted((c.dag_id, c.action) for c in plan.changes) == [("d9", "unpause"),
                                                                   ("run_a", "unpause")]


def test_plan_under_an_emergency_marker_keeps_protected_dags_running(tmp_path):
    """Offline (snapshot backend, whose Variables live in a sidecar file): the emergency layer
    pauses everything, except exceptions and safety.protect (critical_* in the base repo),
    also when protect gained a DAG after the emergency was declared."""
    dags = [dag("billing_daily", False, ["billing"]), dag("critical_feed", False),
            dag("keep_me", False, ["vip"]), dag("etl_orders", True, ["etl"])]
    marker = {"version": 1, "environment": "prod", "reason": "db down", "owner": "oncall",
              "started": "2026-11-25T08:00:00Z", "except": [{"tags": ["vip"]}],
              "prior": {"billing_daily": False}, "kept": []}
    make_state(tmp_path, {"snapshots/prod.json": snapshot_json(dags, "prod"),
                          "snapshots/prod.json.vars.json": json.dumps(
                              {em.marker_key("prod"): json.dumps(marker)})})
    p = run_cli(["plan", "prod", "--format", "json"], cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    plan = json.loads(p.stdout)
    assert plan["emergency"] == "2026-11-25T08:00:00Z"
    assert {c["dag_id"]: c["action"] for c in plan["changes"]} == {"billing_daily": "pause"}
    assert any(s["dag_id"] == "critical_feed" and "protect" in s["why"] for s in plan["skipped"])
    assert plan["warnings"][0].startswith("EMERGENCY")


def test_emergency_pause_uses_the_backends_bulk_pause_with_its_exceptions():
    named = [LiveDag(f"{p}_{i:03d}", False, tags=("critical",) if p == "crit" else ())
             for p in ("etl", "crit") for i in range(3)] + [LiveDag("old", True)]
    b = FakeBulk(named)
    logs = []
    s = em.pause(b, "prod", "r", "o", ["tag:critical"], [], by="me", log=logs.append)
    ((targets, kept),) = b.bulk_calls
    assert targets == ["etl_000", "etl_001", "etl_002"]
    assert kept == {"crit_000", "crit_001", "crit_002"}
    assert s["paused"] == 3 and not s["errors"]
    assert "warning: a DAG appeared meanwhile" in logs


def test_restore_offline_names_the_export_and_refuses_during_an_emergency(tmp_path):
    """restore on the snapshot backend: the no-op names the export file; an active emergency
    (its marker Variable) refuses it with nothing changed; bad files are one located line."""
    env = {"PAUSECTL_JOURNAL_DIR": str(tmp_path / "journal")}
    root = make_state(tmp_path, {"staging.yaml": None})
    snap = root / "snapshots" / "prod.json"
    p = run_cli(["export", "prod", "--out", "saved.json"], cwd=tmp_path, env=env)
    assert p.returncode == 0, p.stderr
    p = run_cli(["restore", "prod", "saved.json"], cwd=tmp_path, env=env)
    assert p.returncode == 0 and p.stdout == (
        "Nothing to restore: live prod already matches the export saved.json (3 DAG(s) in "
        "their saved state).\n"), p.stdout + p.stderr
    moved = snap.read_text().replace('"is_paused": false', '"is_paused": true', 1)
    snap.write_text(moved)
    marker = {"reason": "db down", "owner": "oncall", "started": "2026-01-01T00:00:00Z",
              "prior": {}, "except": []}
    vars_file = root / "snapshots" / "prod.json.vars.json"
    vars_file.write_text(json.dumps({"pausectl.emergency.prod": json.dumps(marker)}))
    p = run_cli(["restore", "prod", "saved.json", "--yes"], cwd=tmp_path, env=env)
    assert p.returncode == 1 and p.stderr.strip() == (
        "error: an emergency pause is active in prod since 2026-01-01T00:00:00Z; `pausectl "
        "emergency recover prod` first, then restore"), p.stderr
    assert snap.read_text() == moved and not (tmp_path / "journal").exists()
    vars_file.unlink()
    p = run_cli(["restore", "prod", "saved.json", "--yes", "--wait-seconds", "0"],
                cwd=tmp_path, env=env)
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines()[-1] == ("Restore complete: 1 DAG(s) of prod put back to their "
                                         "state in saved.json."), p.stdout
    (tmp_path / "bad.json").write_text('{"dags": [\n  {"dag_id": "x", "is_paused": "yes"}]}\n')
    for name, want in (("bad.json", "error: bad.json:2: dags[0].is_paused: expected a boolean"),
                       ("gone.json", "error: gone.json: snapshot not found")):
        p = run_cli(["restore", "prod", name, "--yes"], cwd=tmp_path, env=env)
        assert p.returncode == 1 and p.stderr.strip() == want, p.stderr


def test_a_marker_found_by_the_create_is_completed_with_its_own_exceptions():
    """The marker is created without a read first; when one exists the create fails, and the
    existing emergency decides (its exceptions, its prior state kept), re-confirmed when
    that changes what is paused, all before anything is paused."""
    b = FakeBulk([LiveDag("crit", False, tags=("critical",)), LiveDag("etl", False),
                  LiveDag("new", False), LiveDag("off", True)])
    first = em.pause(b, "prod", "db down", "oncall", ["tag:critical"], [], by="me")
    assert first["paused"] == 2 and first["kept_running"] == ["crit"]
    b.set_paused(["etl"], False)          # started again (by hand) during the emergency
    asked, logs = [], []
    s = em.pause(b, "prod", "again", "x", [], [], by="me", log=logs.append,
                 confirm=lambda n, kept: asked.append((n, kept)))
    # confirmed for 2 (crit and etl, no exceptions), then for what the marker pauses: etl
    assert asked == [(2, 0), (1, 1)] and s["completed_existing"]
    assert s["paused"] == 1 and s["kept_running"] == ["crit"]
    assert any("already active" in line for line in logs)
    marker = json.loads(b.vars[em.marker_key("prod")])
    assert marker["reason"] == "db down" and marker["revision"] == 2
    assert marker["prior"] == {"etl": False, "new": False} and b.paused()["etl"]
    assert not b.paused()["crit"]
    # a refused confirmation writes nothing
    before = dict(b.vars)

    def refuse(n, kept):
        raise RuntimeError("no")

    with pytest.raises(RuntimeError):
        em.pause(b, "staging", "r", "o", [], [], by="me", confirm=refuse)
    assert b.vars == before
