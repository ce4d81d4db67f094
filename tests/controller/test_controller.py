"""`pausectl reconcile` without Airflow (snapshot environments): one-shot apply and report,
the state reloaded every tick and /readyz following it, /metrics in Prometheus' format, an
apply killed mid-batch resumed by the next controller from its journal, a git URL as the
source, and bad flags as one line with exit 1. The real-Airflow behaviour (timing, SIGTERM,
standby) is test_controller_live.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import httpx
import pytest
from controller_support import REPO, ControllerProc
from helpers import Repo, make_state, run_inprocess
from prometheus_client.parser import text_string_to_metric_families


def snapshot(root, env="prod") -> dict:
    data = json.loads((root / "snapshots" / f"{env}.json").read_text())
    return {d["dag_id"]: d["is_paused"] for d in data["dags"]}


def test_one_tick_applies_and_releases_its_lease(tmp_path):
    root = make_state(tmp_path)
    env = {"PAUSECTL_JOURNAL_DIR": str(tmp_path / "j")}
    r = run_inprocess(["reconcile", "prod", "--mode", "report"], tmp_path, env)
    assert r.returncode == 0, r.stderr
    assert "prod: 2 change(s) pending (report mode)" in r.stderr
    assert snapshot(root)["billing_daily"] is False and not (tmp_path / "j").exists()
    r = run_inprocess(["reconcile", "prod"], tmp_path, env)
    assert r.returncode == 0, r.stderr
    assert "prod: done: 2 DAG(s) changed (pause 1, unpause 1)" in r.stderr
    assert snapshot(root) == {"billing_daily": True, "etl_orders": False, "report_daily": False}
    assert json.loads((root / "snapshots" / "prod.json.vars.json").read_text()) == {}
    r = run_inprocess(["reconcile", "prod", "staging"], tmp_path, env)
    assert r.returncode == 0 and "prod: in sync" in r.stderr and "staging: done" in r.stderr


def test_a_broken_state_fails_the_tick_not_the_controller(tmp_path):
    root = make_state(tmp_path)
    good = (root / "prod.yaml").read_text()
    (root / "prod.yaml").write_text(good.replace("    owner: team-billing\n", ""))
    r = run_inprocess(["reconcile", "prod"], tmp_path, {"PAUSECTL_JOURNAL_DIR": str(tmp_path)})
    assert r.returncode == 1
    [line] = [ln for ln in r.stderr.splitlines() if "tick failed" in ln]
    assert "state/prod.yaml:5" in line and "missing required key 'owner'" in line
    assert "Traceback" not in r.stderr
    # --watch: unready while broken, ready once the file is fixed (reloaded every tick)
    c = ControllerProc(tmp_path, ["prod", "--watch", "--interval", "1", "--listen",
                                  "127.0.0.1:0"], {"PAUSECTL_JOURNAL_DIR": str(tmp_path / "j")})
    try:
        base = f"http://{c.address()}"
        c.wait_for("tick failed", 30)
        assert httpx.get(f"{base}/healthz", timeout=10).status_code == 200
        ready = httpx.get(f"{base}/readyz", timeout=10)
        assert ready.status_code == 503
        assert "missing required key" in ready.json()["environments"]["prod"]["error"]
        (root / "prod.yaml").write_text(good)
        c.wait_for("prod: done: 2 DAG(s) changed", 30)
        ready = httpx.get(f"{base}/readyz", timeout=10)
        assert ready.status_code == 200 and ready.json()["environments"]["prod"]["role"] == \
            "leader"
        text = httpx.get(f"{base}/metrics", timeout=10).text
        assert httpx.get(f"{base}/nope", timeout=10).status_code == 404
        assert c.terminate() == 0, c.output()
    finally:
        c.kill()
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for f in text_string_to_metric_families(text) for s in f.samples}
    assert samples[("pausectl_controller_ticks_total", (("env", "prod"), ("result", "error")))] >= 1
    assert samples[("pausectl_controller_ready", (("env", "prod"),))] == 1.0
    assert samples[("pausectl_paused_dags", (("env", "prod"),))] == 1.0
    # the gauge is the last tick's plan: 1 pause from the tick that applied it, 0 from any
    # tick after (interval 1 s: on a loaded box one can finish before /metrics is read)
    ok_ticks = samples[("pausectl_controller_ticks_total", (("env", "prod"), ("result", "ok")))]
    assert samples[("pausectl_plan_changes", (("action", "pause"), ("env", "prod")))] == (
        1.0 if ok_ticks == 1 else 0.0), ok_ticks


def test_an_apply_killed_mid_batch_is_resumed_by_the_next_controller(tmp_path):
    root = make_state(tmp_path)
    cfg = (root / "pausectl.yaml").read_text() + "rollout: {batches: [1, \"100%\"]}\n"
    (root / "pausectl.yaml").write_text(cfg)
    dags = json.loads((root / "snapshots" / "prod.json").read_text())
    dags["dags"].append({**dags["dags"][-1], "dag_id": "report_weekly"})   # paused, like daily
    (root / "snapshots" / "prod.json").write_text(json.dumps(dags))
    env = dict(os.environ, PAUSECTL_JOURNAL_DIR=str(tmp_path / "j"),
               PAUSECTL_TEST_KILLPOINT="batch_applied:1",
               PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("PAUSECTL_STATE", None)
    p = subprocess.run([sys.executable, "-m", "reconciler", "reconcile", "prod", "--no-gates"],
                       check=False,
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == -9, p.stderr
    [path] = sorted((tmp_path / "j").glob("prod-*.json"))
    journal = json.loads(path.read_text())
    assert journal["status"] == "running"
    assert [b["status"] for b in journal["batches"]] == ["applied", "pending"]
    r = run_inprocess(["reconcile", "prod", "--no-gates"], tmp_path,
                      {"PAUSECTL_JOURNAL_DIR": str(tmp_path / "j")})
    assert r.returncode == 0, r.stderr
    assert f"prod: resuming the interrupted apply {path}" in r.stderr
    assert "prod: resume done" in r.stderr and "prod: in sync" in r.stderr
    journal = json.loads(path.read_text())
    assert journal["status"] == "done" and "resumed" in [e["event"] for e in journal["events"]]
    assert snapshot(root) == {"billing_daily": True, "etl_orders": False,
                              "report_daily": False, "report_weekly": False}
    assert len(list((tmp_path / "j").glob("prod-*.json"))) == 1    # no second apply


def test_a_git_url_is_fetched_every_tick(tmp_path):
    upstream = Repo(tmp_path / "upstream")
    work = tmp_path / "work"
    work.mkdir()
    args = ["reconcile", "prod", "--mode", "report", "--repo",
            f"file://{upstream.path}", "--ref", "main", "--checkout-dir", str(work / "co")]
    env = {"PAUSECTL_JOURNAL_DIR": str(work / "j")}
    r = run_inprocess(args, work, env)
    assert r.returncode == 0, r.stderr
    assert "prod: 2 change(s) pending" in r.stderr
    prod = upstream.read("prod.yaml").replace("paused: true\n    reason: \"vendor outage\"",
                                              "paused: false\n    reason: \"vendor outage\"")
    upstream.commit("billing runs again", {"prod.yaml": prod})
    r = run_inprocess(args, work, env)
    assert r.returncode == 0 and "prod: 1 change(s) pending" in r.stderr, r.stderr


@pytest.mark.parametrize("args,message", [
    (["prod", "--watch", "--listen", "nonsense"], "--listen: 'nonsense' is not HOST:PORT"),
    (["prod", "--repo", "-uhttps://x"], "--repo: '-uhttps://x' is not a git URL"),
    (["prod", "--repo", "https://example.com/x.git", "--repo-path", "../etc"],
     "--repo-path: '../etc' must stay inside the repository"),
    (["prod", "--interval", "nan"], "is not a finite number"),
    (["nowhere"], "unknown environment 'nowhere'"),
])
def test_bad_flags_are_one_line_and_exit_1(tmp_path, args, message):
    make_state(tmp_path)
    r = run_inprocess(["reconcile", *args], tmp_path, {"PAUSECTL_JOURNAL_DIR": str(tmp_path)})
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert message in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_the_next_wake_is_the_next_transition_minus_the_lead(pausectl_state):
    """Sleep = min(--interval, next transition - LEAD): the tick for a transition plans it
    LEAD seconds ahead and applies at its instant (test_controller_live.py measures that)."""
    from datetime import timedelta

    from reconciler.controller.loop import LEAD, Controller, Settings
    from reconciler.controller.source import StateSource
    from reconciler.core.timeutil import iso, utcnow
    from reconciler.engine import load
    from reconciler.live.base import LiveDag
    at = utcnow().replace(microsecond=0) + timedelta(seconds=40)
    repo = pausectl_state({
        "pausectl.yaml": {"environments": {}},
        "prod.yaml": {"environment": "prod", "dags": {"etl_orders": {
            "paused": True, "reason": "window", "owner": "data-eng", "from": iso(at)}}},
    }, dags={"prod": ["etl_orders"]})
    ctx = load(repo.root, "prod")
    live = [LiveDag("etl_orders", False)]

    def wake(interval, plan=None):
        c = Controller(Settings(["prod"], lambda: None, interval=interval),
                       StateSource(str(repo.root)))
        return c._next_wake(ctx, live, plan)
    t0 = utcnow()
    wait, target = wake(60)
    t1 = utcnow()
    assert target == at
    assert (at - t1).total_seconds() - LEAD <= wait <= (at - t0).total_seconds() - LEAD
    assert wake(20) == (20, None)                  # beyond the interval: just the interval
    # a `pausectl hold` that ends before the window opens: its end (from the tick's plan,
    # whose observation read the holds Variable) is the next wake
    from reconciler.engine import open_backend, plan_env
    from reconciler.policy import holds
    ends = at - timedelta(seconds=15)
    backend = open_backend(ctx.cfg, "prod")
    backend.set_variable(holds.holds_key("prod"), holds.dumps({"etl_orders": holds.HoldRecord(
        "etl_orders", True, "alice", "INC-7", t0 - timedelta(hours=1), ends)}))
    plan, _, _ = plan_env(ctx, backend)
    assert [r["dag_id"] for r in plan.held] == ["etl_orders"]
    assert wake(60, plan)[1] == ends
    backend.delete_variable(holds.holds_key("prod"))
    repo.assert_running("prod", "etl_orders")
    repo.assert_paused("prod", "etl_orders", at=at)


def test_signals_while_a_planned_transition_waits_never_apply_it_early(tmp_path):
    """The transition's tick plans ahead and waits under the lock: SIGHUP does not cut that
    wait short, SIGTERM stops the apply before its first batch (nothing changed, exit 0)."""
    from datetime import timedelta

    from reconciler.core.timeutil import iso, utcnow
    root = make_state(tmp_path)
    at = utcnow().replace(microsecond=0) + timedelta(seconds=9)
    prod = (root / "prod.yaml").read_text().replace(
        "    until: 2030-01-01T00:00:00Z\n", f"    from: '{iso(at)}'\n")
    (root / "prod.yaml").write_text(prod)
    before = snapshot(root)
    c = ControllerProc(tmp_path, ["prod", "--watch", "--interval", "60", "--listen", "off",
                                  "--no-gates"], {"PAUSECTL_JOURNAL_DIR": str(tmp_path / "j")})
    try:
        c.wait_for("prod: done: 1 DAG(s) changed (pause 0, unpause 1)", 30)   # report_daily
        before = snapshot(root)
        c.wait_for("planned for the transition at", 30)
        c.proc.send_signal(1)                    # SIGHUP: must not apply the plan now
        c.wait_for("SIGHUP: reloading", 10)
        assert snapshot(root) == before and utcnow() < at
        c.proc.send_signal(15)
        assert c.terminate() == 0, c.output()
    finally:
        c.kill()
    assert snapshot(root) == before and before["billing_daily"] is False   # never paused
    halted = [json.loads(p.read_text()) for p in (tmp_path / "j").glob("prod-*.json")]
    last = max(halted, key=lambda j: j["started"])
    assert last["status"] == "halted" and {b["status"] for b in last["batches"]} == {"pending"}
