"""`pausectl hold` against real Airflow 3.3.2 (REST v2) and 2.11.2 (REST v1), on the session
servers: a hold pauses now (verified in Airflow's own database), is recorded in the Variable
pausectl.holds.<env>, shows in plan, drift and doctor, survives an apply, and once it has
ended the next apply puts back what git says and removes the record."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest

from helpers import db_states, live_env, run_inprocess
from safe_apply_support import ENV, variable

STATE = (f"environment: {ENV}\n"
         "defaults: {unmanaged: ignore}\n"
         "dags:\n"
         "  etl_035: {paused: false, reason: 'runs every day', owner: data-eng}\n")
REASON = "INC-9 <script>alert(1)</script>"


@pytest.fixture
def env(airflow_server, tmp_path, monkeypatch):
    return airflow_server, live_env(airflow_server, tmp_path, monkeypatch, STATE,
                                    running=["etl_035"])


def _cli(root, *args):
    return run_inprocess([*args[:2], "--state", str(root), *args[2:]], root.parent)


@pytest.mark.airflow
def test_hold_pauses_now_shows_everywhere_and_expires(env):
    server, root = env
    r = _cli(root, "hold", ENV, "etl_035", "--for", "2h", "--reason", REASON, "--yes")
    assert r.returncode == 0, r.stderr
    assert db_states(server)["etl_035"] is True                    # paused now
    stored = json.loads(variable(server, f"pausectl.holds.{ENV}"))
    assert [h["dag_id"] for h in stored["holds"]] == ["etl_035"]
    assert stored["holds"][0]["reason"] == REASON

    plan = _cli(root, "plan", ENV)
    assert plan.returncode == 0, plan.stderr
    held = next(x for x in plan.stdout.splitlines() if x.startswith("held     etl_035"))
    assert "held paused (by " in held and "INC-9" in held and ("ends in 2h00m" in held or "ends in 1h59m" in held)
    assert "pause    etl_035" not in plan.stdout and "unpause  etl_035" not in plan.stdout

    drift = _cli(root, "drift", ENV)
    assert f"{ENV}: etl_035 held paused (by " in drift.stdout, drift.stdout
    doctor = _cli(root, "doctor", ENV, "etl_035")
    assert "held paused (by " in doctor.stdout, doctor.stdout
    listed = _cli(root, "hold", ENV, "--list", "--format", "json")
    assert json.loads(listed.stdout)["holds"][0]["active"] is True

    applied = _cli(root, "apply", ENV, "--yes")
    assert applied.returncode == 0, applied.stderr
    assert db_states(server)["etl_035"] is True                    # the hold is respected

    # the hold is renewed to end in two seconds (placed an hour ago): then it has ended
    from reconciler.apply import holds_flow
    from reconciler.core.timeutil import utcnow
    from reconciler.engine import load, open_backend
    ctx = load(root, ENV)
    backend = open_backend(ctx.cfg, ENV)
    now = utcnow()
    try:
        out = holds_flow.place(ctx, backend, ["etl_035"], True, now + timedelta(seconds=2),
                               "short", at=now - timedelta(hours=1))
    finally:
        backend.close()
    assert out.records[0].renewals == 1 and not out.flipped
    time.sleep(2.5)
    applied = _cli(root, "apply", ENV, "--yes")
    assert applied.returncode == 0, applied.stderr
    assert "hold on etl_035 ended" in applied.stderr
    assert db_states(server)["etl_035"] is False                   # git's state is back
    assert variable(server, f"pausectl.holds.{ENV}") is None       # the record is gone


@pytest.mark.airflow
def test_hold_running_and_release(env):
    server, root = env
    r = _cli(root, "hold", ENV, "etl_000", "--running", "--for", "30m", "--reason", "demo",
             "--yes")
    assert r.returncode == 0, r.stderr
    assert "etl_000: unpaused now; held running (by " in r.stdout
    assert db_states(server)["etl_000"] is False
    r = _cli(root, "hold", ENV, "--release", "--all", "--yes")
    assert r.returncode == 0 and "released etl_000" in r.stdout
    assert variable(server, f"pausectl.holds.{ENV}") is None
    r = _cli(root, "hold", ENV, "no_such_dag", "--for", "1h", "--reason", "x", "--yes")
    assert r.returncode == 1 and "not in Airflow" in r.stderr
