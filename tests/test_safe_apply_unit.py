"""Safe apply logic without Airflow (fast): batch order in the plan, gates, halt/resume/rollback
journal states, lock takeover, emergency pattern compaction and rollback deferral.
The real-Airflow proofs are in test_safe_apply.py."""

from __future__ import annotations

import json
import os
import random
import re
import socket
import subprocess
import sys
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from reconciler.apply import emergency as em
from reconciler.live import bulk
from reconciler.apply.executor import ApplyOptions, apply_plan, resume, rollback_journal
from reconciler.live.base import DagRun, LiveDag, SetPausedResult
from reconciler.core.errors import PausectlError
from reconciler.apply.journal import Journal
from reconciler.apply.lock import EnvLock, lock_key
from reconciler.plan.model import Change, Plan
from reconciler.plan.records import Action, Hold
from reconciler.plan.rollout import effective_rollout, make_batches
from reconciler.state.schema import validate_json
from reconciler.policy.selectors import parse_selector

from helpers import dag, make_state, run_cli, snapshot_json


class FakeBackend:
    """In-memory Airflow: DAGs, runs, Variables (create is atomic here)."""

    name = "fake"

    def __init__(self, dags: list[LiveDag]):
        self.dags = {d.dag_id: d for d in dags}
        self.vars: dict[str, str] = {}
        self.runs: dict[str, list[DagRun]] = {}
        self.calls: list[tuple[str, bool]] = []

    def list_dags(self):
        return list(self.dags.values())

    def set_paused(self, dag_ids, paused, progress=None):
        res = SetPausedResult()
        for d in dag_ids:
            if d not in self.dags:
                res.errors[d] = f"DAG {d} not found"
                continue
            self.dags[d] = replace(self.dags[d], is_paused=paused)
            self.calls.append((d, paused))
            res.changed.append(d)
            if progress:
                progress(1)
        return res

    def audit_events(self, dag_ids=None, since=None):
        return []

    def dag_runs(self, dag_id, limit=25):
        return self.runs.get(dag_id, [])

    def get_variable(self, key):
        return self.vars.get(key)

    def set_variable(self, key, value):
        self.vars[key] = value

    def create_variable(self, key, value):
        if key in self.vars:
            return False
        self.vars[key] = value
        return True

    def delete_variable(self, key):
        self.vars.pop(key, None)

    def close(self):
        pass

    def paused(self):
        return {d: v.is_paused for d, v in self.dags.items()}


class Ctx:
    def __init__(self, rollout, max_changes=None):
        class Cfg:
            pass
        self.cfg = Cfg()
        self.cfg.max_changes = max_changes
        self.cfg.rollout_for = lambda env: rollout
        self.env = "prod"


def plan_for(backend, desired: dict[str, bool]) -> Plan:
    p = Plan(environment="prod", generated_at="2026-01-01T00:00:00Z", at="2026-01-01T00:00:00Z",
             desired_ref=None)
    for d, want in sorted(desired.items()):
        live = backend.dags[d].is_paused
        if live != want:
            p.changes.append(Change(d, "pause" if want else "unpause", live, want, "f:1", "r", "o"))
    return p


def quiet(**kw) -> ApplyOptions:
    return ApplyOptions(log=lambda s: None, sleep=lambda s: None, **kw)


@pytest.fixture(autouse=True)
def journal_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("PAUSECTL_JOURNAL_DIR", str(tmp_path / "journal"))


def fleet() -> FakeBackend:
    dags = [LiveDag(f"d{i}", is_paused=True, tags=("canary",) if i in (5, 7) else (),
                    timetable_summary="@daily") for i in range(10)]
    dags += [LiveDag("run_a", False), LiveDag("run_b", False)]
    return FakeBackend(dags)


def test_batches_pause_first_canary_next_then_cumulative_sizes():
    b = fleet()
    plan = plan_for(b, {**{f"d{i}": False for i in range(10)}, "run_a": True, "run_b": True})
    batches = make_batches(plan.changes, [1, "50%", "100%"], {"tags": ["canary"]},
                           {d: v.tags for d, v in b.dags.items()})
    ids = [[c.dag_id for c in x] for x in batches]
    assert ids == [["run_a", "run_b", "d5"], ["d7", "d0", "d1", "d2"],
                   ["d3", "d4", "d6", "d8", "d9"]]
    # --canary on the command line replaces the configured selector
    over = effective_rollout({"canary": {"tags": ["canary"]}, "gate": {"wait_seconds": 9}},
                             {"canary": [parse_selector("dag_id:d9")], "min_runs": 2})
    assert over["gate"] == {"wait_seconds": 9, "min_runs": 2}
    batches = make_batches(plan.changes, [1, "100%"], over["canary"], {})
    assert [c.dag_id for c in batches[0]] == ["run_a", "run_b", "d9"]


def test_parse_selector():
    assert parse_selector("tag:critical") == {"tags": ["critical"]}
    assert parse_selector("dag_id:critical_*") == {"dag_id": ["critical_*"]}
    assert parse_selector("owner:a,b") == {"owners": ["a", "b"]}
    assert parse_selector("tag:etl+owner:x") == {"tags": ["etl"], "owners": ["x"]}
    assert parse_selector("billing_*") == {"dag_id": ["billing_*"]}
    for bad in ("color:red", "tag:", "dag_id:a[b"):
        with pytest.raises(ValueError):
            parse_selector(bad)


def test_plan_json_shows_batches_and_validates(tmp_path):
    root = make_state(tmp_path, {"pausectl.yaml": (
        "environments:\n  prod:\n    backend: {type: snapshot, path: snapshots/prod.json}\n"
        "rollout: {batches: [1, \"100%\"], canary: {tags: [reporting]}}\n"),
        "staging.yaml": None})
    p = run_cli(["plan", "prod", "--format", "json"], cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    plan = json.loads(p.stdout)
    assert validate_json(plan, "plan.schema.json") == []
    # report_daily (paused, tag reporting) unpauses as the canary; the pauses go first with it
    assert plan["batches"][0]["dag_ids"][-1] == "report_daily"
    assert sum(len(b["dag_ids"]) for b in plan["batches"]) == len(plan["changes"])
    text = run_cli(["plan", "prod"], cwd=tmp_path).stdout
    assert re.search(r"^batch 1/\d+: \d+ DAG\(s\) \(\d+ pause, 1 unpause\): .*report_daily$",
                     text, re.M), text
    assert root.exists()


def test_gate_failure_rolls_back_exactly():
    b = fleet()
    before = b.paused()
    b.runs["d5"] = [DagRun("d5", "r1", "failed", start_date=datetime.now(timezone.utc)
                           + timedelta(seconds=5))]
    plan = plan_for(b, {**{f"d{i}": False for i in range(10)}, "run_a": True})
    ctx = Ctx({"batches": [1, "100%"], "canary": {"tags": ["canary"]}, "gate": {"min_runs": 1}})
    res = apply_plan(ctx, b, plan, quiet(), live=b.list_dags())
    assert res.status == "rolled_back" and res.exit_code == 3
    assert b.paused() == before
    assert res.journal.status == "rolled_back"
    assert "d5: 1" in res.journal.data["batches"][0]["gate"]["message"]
    assert lock_key("prod") not in b.vars


def test_halt_then_resume_and_gate_timeout_without_runs_fails():
    b = fleet()
    plan = plan_for(b, {f"d{i}": False for i in range(4)})
    ctx = Ctx({"batches": [1, "100%"], "on_gate_failure": "halt",
               "gate": {"min_runs": 1, "timeout_seconds": 0}})
    res = apply_plan(ctx, b, plan, quiet(), live=b.list_dags())
    assert res.status == "halted"
    assert "no 1 finished run(s)" in res.gates[0]["message"]
    assert b.paused()["d0"] is False and b.paused()["d1"] is True     # stopped after batch 1
    # the DAG got its run: resume (with the gate's min_runs overridden) finishes the apply
    res = resume(ctx, b, Journal.latest("prod"), quiet(rollout_overrides={"min_runs": 0}))
    assert res.status == "done"
    assert all(not b.paused()[f"d{i}"] for i in range(4))


def test_resume_refuses_a_journal_that_is_rolling_back_and_rollback_finishes_it():
    b = fleet()
    before = b.paused()
    plan = plan_for(b, {f"d{i}": False for i in range(3)})
    ctx = Ctx({"batches": ["100%"]})
    apply_plan(ctx, b, plan, quiet(), live=b.list_dags())
    j = Journal.latest("prod")
    j.data["status"] = "rolling_back"      # as if killed half-way through a rollback
    j.save()
    with pytest.raises(PausectlError, match="rolling back"):
        resume(ctx, b, Journal.latest("prod"), quiet())
    rollback_journal(ctx, b, Journal.latest("prod"), quiet())
    assert b.paused() == before


def test_apply_refuses_when_live_moved_since_the_plan():
    b = fleet()
    plan = plan_for(b, {"d0": False, "d1": False})
    b.set_paused(["d1"], False)
    with pytest.raises(PausectlError, match="live state changed since the plan.*d1"):
        apply_plan(Ctx({}), b, plan, quiet(), live=b.list_dags())
    assert lock_key("prod") not in b.vars


def test_lock_names_holder_and_takes_over_dead_or_orphaned_locks():
    b = fleet()
    with EnvLock(b, "prod"):
        with pytest.raises(PausectlError, match=r"locked by .*pid %d" % os.getpid()):
            EnvLock(b, "prod").acquire()
    assert lock_key("prod") not in b.vars
    # a lock left by a process of this host that is gone is taken over
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    info = {"holder": "x", "host": socket.gethostname(), "pid": dead.pid,
            "started": "2099-01-01T00:00:00Z", "claim": "t"}
    b.vars[lock_key("prod")] = json.dumps(info)
    with EnvLock(b, "prod") as lock:
        assert json.loads(b.vars[lock_key("prod")])["claim"] == lock.info["claim"]
    # ... and one of this very process that no live EnvLock holds (an apply that died here)
    b.vars[lock_key("prod")] = json.dumps({**info, "pid": os.getpid(), "claim": "old"})
    with EnvLock(b, "prod"):
        pass
    # a live foreign holder within its TTL is never taken over
    b.vars[lock_key("prod")] = json.dumps({**info, "host": "elsewhere", "pid": 1,
                                           "started": datetime.now(timezone.utc).isoformat()})
    with pytest.raises(PausectlError, match="elsewhere"):
        EnvLock(b, "prod").acquire()


def test_compact_terms_match_every_target_and_nothing_avoided():
    rng = random.Random(7)
    words = ["etl", "report", "ml", "critical", "billing", "e", "tl", "x_y", "a.b", "q-1"]
    for _ in range(200):
        ids = sorted({f"{rng.choice(words)}{rng.choice(['_', '', '.', '-'])}"
                      f"{rng.randrange(0, 300)}" for _ in range(rng.randrange(2, 60))})
        avoid = [d for d in ids if rng.random() < 0.25]
        targets = [d for d in ids if d not in avoid]
        terms, rest = bulk.compact_terms(targets, avoid)
        rx = [bulk._ilike_rx(t) for t in terms]
        for d in avoid:
            assert not any(r.search(d.lower()) for r in rx), (d, terms)
        for d in targets:
            assert d in rest or any(r.search(d.lower()) for r in rx), (d, terms)
        assert not set(rest) - set(targets)
        assert len(terms) <= len(targets)


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


def test_gate_reads_runs_of_a_batch_at_once_when_the_backend_can():
    from reconciler.apply.gates import evaluate, gate_settings

    class Many(FakeBackend):
        def dag_runs(self, dag_id, limit=25):
            raise AssertionError("per-DAG read")

        def dag_runs_since(self, dag_ids, since):
            self.asked = (list(dag_ids), since)
            return [DagRun("d1", "r", "failed", start_date=since + timedelta(seconds=1)),
                    DagRun("d2", "old", "failed", start_date=since - timedelta(days=1))]

    b = Many(fleet().list_dags())
    since = datetime.now(timezone.utc)
    gate = evaluate(b, ["d1", "d2"], since, gate_settings({}), log=lambda s: None)
    assert not gate["passed"] and gate["failed_runs"] == {"d1": 1}
    assert b.asked == (["d1", "d2"], since)


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


def test_cli_apply_gate_only_halt_resume_and_rollback_offline(tmp_path):
    """The CLI end to end on the snapshot backend: batches printed before the apply, per-run
    gate overrides kept in the journal, --gate-only, --resume of a finished apply, rollback."""
    env = {"PAUSECTL_JOURNAL_DIR": str(tmp_path / "journal")}
    root = make_state(tmp_path, {"staging.yaml": None})
    snap = root / "snapshots" / "prod.json"
    before = {d["dag_id"]: d["is_paused"] for d in json.loads(snap.read_text())["dags"]}

    def live():
        return {d["dag_id"]: d["is_paused"] for d in json.loads(snap.read_text())["dags"]}

    p = run_cli(["apply", "prod", "--yes", "--min-runs", "1", "--gate-timeout", "0",
                 "--on-gate-failure", "halt"], cwd=tmp_path, env=env)
    assert "batch 1/1: 2 DAG(s) (1 pause, 1 unpause): billing_daily, report_daily" in p.stdout
    # snapshot DAGs have no schedule, so min_runs does not wait for them: the gate passes
    assert p.returncode == 0, p.stderr
    assert live() == {**before, "billing_daily": True, "report_daily": False}
    p = run_cli(["apply", "prod", "--gate-only"], cwd=tmp_path, env=env)
    assert p.returncode == 0 and p.stdout.startswith("gate: passed"), p.stdout + p.stderr
    p = run_cli(["apply", "prod", "--resume"], cwd=tmp_path, env=env)
    assert p.returncode == 1 and "is done; nothing to resume" in p.stderr
    p = run_cli(["rollback", "prod", "--yes"], cwd=tmp_path, env=env)
    assert p.returncode == 0, p.stderr
    assert live() == before
    journal = json.loads(sorted((tmp_path / "journal").glob("prod-*.json"))[-1].read_text())
    assert journal["status"] == "rolled_back" and journal["rollout"]["gate"]["min_runs"] == 1
    assert journal["plan_hash"].startswith("sha256:")
    assert not (root / "snapshots" / "prod.json.vars.json").exists() or \
        "pausectl.lock.prod" not in json.loads(
            (root / "snapshots" / "prod.json.vars.json").read_text())


class FakeBulk(FakeBackend):
    """FakeBackend with the BulkPauser capability (the airflow-api backend's real bulk path
    is tested against real Airflow in tests/test_capabilities_live.py)."""

    def __init__(self, dags):
        super().__init__(dags)
        self.bulk_calls: list[tuple[list[str], set[str]]] = []

    def pause_except(self, live, targets, keep, progress=None):
        self.bulk_calls.append((list(targets), {d.dag_id for d in live if keep(d)}))
        res = self.set_paused(targets, True)
        res.warnings.append("a DAG appeared meanwhile")
        return res


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


def test_an_emergency_declared_during_an_apply_stops_it_before_the_next_batch():
    b = fleet()
    plan = plan_for(b, {f"d{i}": False for i in range(4)})
    ctx = Ctx({"batches": [1, "100%"], "gate": {"wait_seconds": 1}})

    def sleep(_):      # while the gate after batch 1 waits, someone declares an emergency
        if em.marker_key("prod") not in b.vars:
            em.pause(b, "prod", "stop", "oncall", [], [], by="x")

    res = apply_plan(ctx, b, plan, ApplyOptions(log=lambda s: None, sleep=sleep),
                     live=b.list_dags())
    assert res.status == "halted" and res.exit_code == 3
    assert res.journal.data["batches"][1]["status"] == "pending"
    assert all(b.paused()[f"d{i}"] for i in range(4))     # the emergency paused batch 1 too
    with pytest.raises(PausectlError, match="emergency pause is active"):
        resume(ctx, b, Journal.latest("prod"), quiet())


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


# ---- the plan's batches are the batches that run (issue 13) ---------------------------------

REPORTS = [dag("billing_daily", False), dag("report_a", True), dag("report_b", True),
           dag("report_c", True)]


def shown_batches(stdout: str) -> list[list[str]]:
    """The batches a command printed (render.batch_lines), as lists of dag_ids."""
    return [m.group(1).split(", ") for m in
            re.finditer(r"^batch \d+/\d+: \d+ DAG\(s\) \(\d+ pause, \d+ unpause\): (.*)$",
                        stdout, re.M)]


def journaled_batches(tmp_path) -> list[list[str]]:
    journal = json.loads(sorted((tmp_path / "journal").glob("prod-*.json"))[-1].read_text())
    assert journal["status"] == "done", journal["status"]
    return [b["dag_ids"] for b in journal["batches"]]


def test_emergency_recover_with_batches_runs_the_batches_it_shows(tmp_path):
    """`emergency recover --batches` used to show pausectl.yaml's batches and run the flag's."""
    env = {"PAUSECTL_JOURNAL_DIR": str(tmp_path / "journal")}
    marker = {"version": 1, "environment": "prod", "reason": "db down", "owner": "oncall",
              "started": "2026-11-25T08:00:00Z", "except": [], "revision": 1,
              "prior": {"report_a": False, "report_b": False, "report_c": False}}
    root = make_state(tmp_path, {"snapshots/prod.json": snapshot_json(REPORTS, "prod"),
                                 "snapshots/prod.json.vars.json": json.dumps(
                                     {em.marker_key("prod"): json.dumps(marker)}),
                                 "staging.yaml": None})
    p = run_cli(["emergency", "recover", "prod", "--yes", "--no-gates", "--batches", "1,100%"],
                cwd=tmp_path, env=env)
    assert p.returncode == 0, p.stdout + p.stderr
    assert shown_batches(p.stdout) == [["report_a"], ["report_b", "report_c"]], p.stdout
    assert journaled_batches(tmp_path) == shown_batches(p.stdout)
    assert em.marker_key("prod") not in json.loads(
        (root / "snapshots" / "prod.json.vars.json").read_text())


def test_apply_of_a_saved_plan_runs_exactly_its_batches(tmp_path):
    """plan --out, then the rollout in pausectl.yaml changes: apply --plan still runs the
    batches the saved plan showed, and refuses flags that would re-cut them."""
    env = {"PAUSECTL_JOURNAL_DIR": str(tmp_path / "journal")}
    from helpers import PAUSECTL_YAML
    root = make_state(tmp_path, {"snapshots/prod.json": snapshot_json(REPORTS, "prod"),
                                 "pausectl.yaml": PAUSECTL_YAML + "rollout: {batches: [1, 100%]}\n",
                                 "staging.yaml": None})
    p = run_cli(["plan", "prod", "--out", "saved.json"], cwd=tmp_path, env=env)
    assert p.returncode == 0, p.stderr
    saved = [b["dag_ids"] for b in json.loads((tmp_path / "saved.json").read_text())["batches"]]
    assert saved == [["billing_daily", "report_a"], ["report_b", "report_c"]]
    assert shown_batches(p.stdout) == saved
    (root / "pausectl.yaml").write_text(PAUSECTL_YAML + "rollout: {batches: [100%]}\n")
    p = run_cli(["apply", "prod", "--plan", "saved.json", "--yes", "--batches", "100%"],
                cwd=tmp_path, env=env)
    assert p.returncode == 1 and "cannot re-cut a saved plan" in p.stderr, p.stderr
    assert not (tmp_path / "journal").exists()
    p = run_cli(["apply", "prod", "--plan", "saved.json", "--yes", "--no-gates"],
                cwd=tmp_path, env=env)
    assert p.returncode == 0, p.stdout + p.stderr
    assert shown_batches(p.stdout) == saved
    assert journaled_batches(tmp_path) == saved
    live = {d["dag_id"]: d["is_paused"]
            for d in json.loads((root / "snapshots" / "prod.json").read_text())["dags"]}
    assert live == {"billing_daily": True, "report_a": False, "report_b": False,
                    "report_c": False}


def test_a_frozen_plan_refuses_changes_and_keeps_its_json(tmp_path):
    b = fleet()
    plan = plan_for(b, {"d0": False, "d1": False, "run_a": True})
    plan.held.append(Hold("d2", "manual change kept", True, False, "f:2"))
    plan.freeze({"batches": [1, "100%"]}, b.list_dags())
    assert [x.dag_ids for x in plan.batches] == [["run_a", "d0"], ["d1"]]
    for change in (lambda: plan.changes.append(plan.changes[0]),
                   lambda: setattr(plan, "batches", []), lambda: plan.warnings.insert(0, "x")):
        with pytest.raises(TypeError, match="frozen plan"):
            change()
    data = json.loads(json.dumps(plan.to_json()))
    assert data["held"] == [{"dag_id": "d2", "why": "manual change kept", "live_paused": True,
                             "desired_paused": False, "rule": "f:2"}]
    assert [c["action"] for c in data["changes"]] == ["unpause", "unpause", "pause"]
    again = Plan.from_json(data)
    assert again.frozen and again.batches == plan.batches and again.held[0].why == \
        "manual change kept"
    assert isinstance(again.changes[0].action, Action) and f"{Action.PAUSE:8}|" == "pause   |"
    data["batches"][1]["dag_ids"] = []          # a plan file whose batches lose a change
    with pytest.raises(ValueError, match="exactly once"):
        Plan.from_json(data)
    # a saved plan whose batches lost a change is a bad plan file, named, nothing applied
    from reconciler.operations import load_saved
    (path := tmp_path / "bad-plan.json").write_text(json.dumps(data))
    with pytest.raises(PausectlError, match=r"bad-plan.json: not a pausectl plan \(the "):
        load_saved(str(path))
