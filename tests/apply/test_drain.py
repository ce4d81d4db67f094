"""Drain offline (snapshot backend: runs from its `runs` key, one dag_runs read per DAG): the
state syntax and its errors, the plan (text, JSON valid against plan.schema.json, markdown),
and the drain loop's deadline. Live AF3/AF2 with real runs: test_drain_live.py."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from helpers import BASE_DAGS, dag, make_state, run_inprocess, snapshot_json

PROD = """\
environment: prod
defaults: {unmanaged: ignore}
dags:
  etl_orders:
    paused: drain
    reason: "warehouse move"
    owner: data-eng
    drain: {deadline: 30m}
  billing_daily: {paused: drain, reason: "vendor", owner: team-billing}
"""
RUNS = [{"dag_id": "etl_orders", "run_id": "r1", "state": "running",
         "run_after": "2026-12-01T10:00:00Z"},
        {"dag_id": "etl_orders", "run_id": "r0", "state": "success",
         "run_after": "2026-12-01T09:00:00Z"}]


def _snapshot(runs=RUNS) -> str:
    doc = json.loads(snapshot_json(BASE_DAGS, "prod"))
    doc["runs"] = runs
    return json.dumps(doc)


def test_plan_shows_draining_in_text_json_and_markdown(tmp_path):
    make_state(tmp_path, {"prod.yaml": PROD, "snapshots/prod.json": _snapshot()})
    r = run_inprocess(["plan", "prod"], tmp_path)
    assert r.returncode == 0, r.stderr
    lines = {x.split()[1]: x for x in r.stdout.splitlines() if x.startswith("pause ")}
    assert lines["etl_orders"].endswith("draining (1 run(s) in flight; paused when they end, "
                                        "at the latest after 30m)")
    assert lines["billing_daily"].endswith("draining (0 run(s) in flight; paused when they "
                                           "end, at the latest after 1h00m)")
    js = json.loads(run_inprocess(["plan", "prod", "--format", "json"], tmp_path).stdout)
    drains = {c["dag_id"]: c["drain"] for c in js["changes"]}
    assert drains == {"billing_daily": {"deadline_seconds": 3600, "in_flight": 0},
                      "etl_orders": {"deadline_seconds": 1800, "in_flight": 1}}
    import jsonschema
    from reconciler.state.schema import load_schema
    jsonschema.validate(js, load_schema("plan.schema.json"))
    md = run_inprocess(["plan", "prod", "--format", "markdown"], tmp_path).stdout
    assert "<details><summary>Draining (2)</summary>" in md


@pytest.mark.parametrize("rule, message", [
    ("{paused: false, drain: {deadline: 1h}, reason: r, owner: o}",
     "prod.yaml:4:31: error: drain only applies to a pause"),
    ("{paused: drain, reason: r, owner: o, drain: {deadline: 400d}}", "longer than 366d"),
    ("{paused: drain, reason: r, owner: o, drain: {deadline: soon}}", "prod.yaml:4"),
    ("{paused: drain, reason: r, owner: o, drain: {wait: 1h}}", "prod.yaml:4"),
    ("{paused: drain}", "reason"),
    ("{paused: drained, reason: r, owner: o}", "prod.yaml:4"),
])
def test_bad_drain_rules_name_file_and_line(tmp_path, rule, message):
    make_state(tmp_path, {"prod.yaml": "environment: prod\ndefaults: {unmanaged: ignore}\n"
                                       f"dags:\n  etl_orders: {rule}\n"})
    r = run_inprocess(["validate"], tmp_path)
    assert r.returncode == 1 and message in r.stdout, r.stdout
    assert "Traceback" not in r.stdout + r.stderr
    assert all(x.startswith("state/prod.yaml:4:") for x in r.stdout.splitlines())


def test_drain_loop_pauses_at_the_deadline_with_one_read_per_dag_without_batching(tmp_path,
                                                                                   monkeypatch):
    """The snapshot backend has no RunsInFlight: one dag_runs read per draining DAG and poll."""
    root = make_state(tmp_path, {"prod.yaml": PROD, "snapshots/prod.json": _snapshot()})
    from reconciler.apply import drain as D
    from reconciler.engine import load, open_backend
    ctx = load(root, "prod")
    backend = open_backend(ctx.cfg, "prod")
    reads: list[str] = []
    real = backend.dag_runs
    monkeypatch.setattr(backend, "dag_runs", lambda d, limit=25: reads.append(d) or real(d, limit))
    clock = [datetime(2026, 12, 1, 12, tzinfo=timezone.utc)]
    monkeypatch.setattr(D, "utcnow", lambda: clock[0])

    def sleep(seconds):
        clock[0] += timedelta(seconds=seconds)

    start = clock[0]
    logs: list[str] = []
    out = D.drain(backend, {"etl_orders": start + timedelta(minutes=1),
                            "billing_daily": start + timedelta(minutes=1)},
                  sleep=sleep, log=logs.append)
    assert out.idle == ["billing_daily"] and out.at_deadline == {"etl_orders": 1}
    assert out.polls == 5 and clock[0] == start + timedelta(minutes=1)
    assert reads == ["billing_daily", "etl_orders"] + ["etl_orders"] * 4
    assert logs[0] == "drain: billing_daily paused (no run in flight)"
    live = {d.dag_id: d.is_paused for d in backend.list_dags()}
    assert live["etl_orders"] is True and live["billing_daily"] is True


def test_plans_without_drains_keep_their_json_shape(tmp_path):
    make_state(tmp_path, {"snapshots/prod.json": snapshot_json(
        BASE_DAGS + [dag("etl_new", False, ["etl"])], "prod")})
    js = json.loads(run_inprocess(["plan", "prod", "--format", "json"], tmp_path).stdout)
    assert js["changes"] and all("drain" not in c for c in js["changes"])
