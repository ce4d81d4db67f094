"""Safe apply logic without Airflow (fast): batch order in the plan, gates, halt/resume/rollback
journal states, lock takeover, emergency pattern compaction. Emergency logic:
test_emergency_unit.py; the frozen plan and its batches: test_plan_frozen.py. The real-Airflow
proofs are in test_safe_apply.py."""

from __future__ import annotations

import json
import os
import random
import re
import socket
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest

from reconciler.apply import emergency as em
from reconciler.live import bulk, patterns
from reconciler.apply.executor import ApplyOptions, apply_plan, resume, rollback_journal
from reconciler.live.base import DagRun
from reconciler.core.errors import PausectlError
from reconciler.apply.journal import Journal
from reconciler.apply.lock import EnvLock, lock_key
from reconciler.plan.rollout import effective_rollout, make_batches
from reconciler.state.schema import validate_json
from reconciler.policy.selectors import parse_selector

from helpers import make_state, run_cli

from fakes import Ctx, FakeBackend, fleet, journal_dir, plan_for, quiet  # noqa: F401


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
        rx = [patterns.ilike_rx(t) for t in terms]
        for d in avoid:
            assert not any(r.search(d.lower()) for r in rx), (d, terms)
        for d in targets:
            assert d in rest or any(r.search(d.lower()) for r in rx), (d, terms)
        assert not set(rest) - set(targets)
        assert len(terms) <= len(targets)


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
