"""Drain against real Airflow 3.3.2 (REST v2) and 2.11.2 (REST v1), on the session servers:
a DAG with a running run is shown `draining` by plan and drift, and apply pauses it only once
the run has ended (set to success through REST while apply waits), or at its deadline while
the run still runs. Runs are triggered through REST and set running in Airflow's database
(REST accepts only queued, success and failed; no scheduler is needed). Runs in flight of the batch are read in one request
per poll (POST /dags/~/dagRuns/list with states), however many DAGs drain."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import quote

import httpx
import pytest

from helpers import db_states, live_env
from safe_apply_support import ENV

DRAINED = ("etl_025", "etl_030")       # no schedule: only the runs this test makes exist
STATE = (f"environment: {ENV}\n"
         "defaults: {unmanaged: ignore}\n"
         "dags:\n"
         "  etl_025: {paused: drain, reason: 'warehouse move', owner: data-eng}\n"
         "  etl_030: {paused: true, reason: 'warehouse move', owner: data-eng,\n"
         "            drain: {deadline: 1m}}\n")


class Runs:
    """Runs made and ended through Airflow's own REST API (no scheduler needed)."""

    def __init__(self, server):
        self.s = server
        self.c = httpx.Client(base_url=server.api_url, headers=server.auth_headers(),
                              timeout=60)
        self.made: list[tuple[str, str]] = []

    def trigger(self, dag_id: str) -> str:
        body = {"logical_date": None} if self.s.major == 3 else {}
        r = self.c.post(f"/dags/{dag_id}/dagRuns", json=body)
        assert r.status_code == 200, r.text
        run_id = r.json()["dag_run_id"]
        self.made.append((dag_id, run_id))
        return run_id

    def running(self, run_id: str, state: str = "running") -> None:
        import contextlib
        import sqlite3
        with contextlib.closing(sqlite3.connect(self.s.db_path, timeout=30)) as db, db:
            db.execute("UPDATE dag_run SET state = ? WHERE run_id = ?", (state, run_id))

    def finish(self, dag_id: str, run_id: str) -> None:
        r = self.c.patch(f"/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}",
                         json={"state": "success"})
        assert r.status_code == 200, r.text

    def cleanup(self) -> None:
        for dag_id, run_id in self.made:
            self.running(run_id, "success")         # a running run is not deleted by REST
            self.c.delete(f"/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}")
        self.c.close()


@pytest.fixture
def env(airflow_server, tmp_path, monkeypatch):
    root = live_env(airflow_server, tmp_path, monkeypatch, STATE, running=DRAINED)
    runs = Runs(airflow_server)
    yield airflow_server, root, runs
    runs.cleanup()


def _context(root):
    from reconciler.engine import load, open_backend
    ctx = load(root, ENV)
    return ctx, open_backend(ctx.cfg, ENV)


def _count_posts(backend) -> list[str]:
    """Record every batched runs request the backend sends (its own request path)."""
    seen: list[str] = []
    real = backend._call

    def call(method, path, **kw):
        if method == "POST" and path.endswith("/dagRuns/list"):
            seen.append(",".join(kw["json_body"]["dag_ids"]))
        return real(method, path, **kw)

    backend._call = call
    return seen


@pytest.mark.airflow
def test_drain_waits_for_the_run_then_pauses(env):
    server, root, runs = env
    run_a = runs.trigger("etl_025")
    runs.running(run_a)
    runs.running(runs.trigger("etl_030"))
    ctx, backend = _context(root)
    try:
        from reconciler.engine import plan_env
        plan, _, _ = plan_env(ctx, backend)
        drains = {c.dag_id: c.drain for c in plan.changes}
        assert drains == {"etl_025": {"deadline_seconds": 3600, "in_flight": 1},
                          "etl_030": {"deadline_seconds": 60, "in_flight": 1}}
        from reconciler.operations import drift_env
        report = drift_env(ctx, backend).report
        notes = {x["dag_id"]: x["note"]
                 for x in report["drifted"] + report["pending_git_changes"]}
        assert notes["etl_025"].startswith("draining (1 run(s) in flight; paused when they "
                                           "end, at the latest after 1h00m)")

        posts = _count_posts(backend)
        slept: list[float] = []
        before: list[int] = []

        def sleep(seconds: float) -> None:
            # while apply waits, etl_025's run ends and etl_030's is still in flight
            slept.append(seconds)
            if len(slept) == 1:
                before.append(len(posts))           # plan reads + the drain's first poll
                assert db_states(server)["etl_025"] is False      # not paused yet
                runs.finish("etl_025", run_a)

        from reconciler.apply.executor import ApplyOptions
        from reconciler.operations import apply_env
        import reconciler.apply.drain as drain_mod
        clock = [drain_mod.utcnow()]
        orig = drain_mod.utcnow
        drain_mod.utcnow = lambda: clock[0]

        def tick(seconds: float) -> None:
            sleep(seconds)
            clock[0] += timedelta(seconds=seconds)

        logs: list[str] = []
        try:
            done = apply_env(ctx, backend, ApplyOptions(sleep=tick, log=logs.append))
        finally:
            drain_mod.utcnow = orig
    finally:
        backend.close()
    assert done.result.status == "done", logs
    states = db_states(server)
    assert states["etl_025"] is True and states["etl_030"] is True
    assert "drain: etl_025 paused (no run in flight)" in logs
    assert any(x.startswith("drain: etl_030 paused at its deadline with 1 run(s) in flight")
               for x in logs), logs
    # one batched read per poll (both DAGs in one request), then for the one still draining;
    # the deadline of 1m at 15 s polls: 5 polls, 4 waits
    polls = posts[before[0] - 1:]
    assert polls == ["etl_025,etl_030", "etl_025,etl_030", "etl_030", "etl_030", "etl_030"], \
        posts
    assert slept[:3] == [15.0] * 3 and 14.0 < slept[3] <= 15.0    # the last wait ends at it
    journal = done.result.journal.data["dags"]
    assert journal["etl_025"]["drained"] == "idle"
    assert journal["etl_030"]["drained"] == "deadline (1 run(s) in flight)"


@pytest.mark.airflow
def test_idle_drain_pauses_at_once_and_plan_text_shows_it(env, capsys):
    server, root, runs = env
    from helpers import run_inprocess
    r = run_inprocess(["plan", ENV, "--state", str(root)], root.parent)
    assert r.returncode == 0, r.stderr
    line = next(x for x in r.stdout.splitlines() if x.startswith("pause    etl_025  "))
    assert "running -> paused  rule=" in line and "owner=data-eng" in line
    assert line.endswith("draining (0 run(s) in flight; paused when they end, at the latest "
                         "after 1h00m)"), line
    r = run_inprocess(["apply", ENV, "--state", str(root), "--yes"], root.parent)
    assert r.returncode == 0, r.stderr
    assert "drain: etl_025 paused (no run in flight)" in r.stderr
    states = db_states(server)
    assert states["etl_025"] is True and states["etl_030"] is True
