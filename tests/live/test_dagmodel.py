"""The dagmodel backend, run INSIDE the harness's Airflow venv (3.3.2 and 2.11.2) against the
server's own metadata DB. Its view is checked against the REST API (the airflow-api backend,
from pausectl's venv) and every write against the DB itself, for every DAG."""

from __future__ import annotations

import json

import httpx
import pytest

from inside_airflow import last_json_line, run_pausectl, run_python
from webhooks import Hooks
from reconciler.live.airflow_api import AirflowApiBackend

SUBSET = ["etl_003", "report_010", "ml_007"]
SCOPE_TERMS = ["ml_", "REPORT_01", "_stale", "l_00"]    # case ignored, `_` only itself


def db_states(server) -> dict[str, bool]:
    return {d: bool(p) for d, p in server.query("SELECT dag_id, is_paused FROM dag")}


def api_dags(server) -> dict:
    b = AirflowApiBackend("live", {"type": "airflow-api", "url": server.url,
                                   "username_env": "U", "password_env": "P"},
                          env={"U": server.username, "P": server.password})
    with b:
        return {d.dag_id: d for d in b.list_dags()}


SCRIPT = r"""
import json, threading
from reconciler.live.dagmodel import DagModelBackend
b = DagModelBackend("local", {"type": "dagmodel"}, user="oncall-bot")
out = {"version": b.version}
out["dags"] = [d.to_json() for d in b.list_dags()]
out["scoped"] = [d.to_json() for d in b.list_dags_matching(SCOPE_TERMS)]
from datetime import datetime, timezone
t0 = datetime.now(timezone.utc)   # the shared server holds other tests' events too
res = b.set_paused(SUBSET + ["no_such_dag"], False, reason="INC-7 vendor fixed")
out["set"] = {"changed": res.changed, "errors": res.errors}
again = b.set_paused(SUBSET, False)           # already there: no new audit rows
out["again"] = again.changed
out["events"] = [[e.dag_id, e.event, e.user, e.is_paused, e.via, e.detail]
                 for e in b.audit_events(SUBSET, since=t0)]
results = []
def grab(i):
    results.append(DagModelBackend("local", {}).create_variable("pausectl.test.race", f"w{i}"))
threads = [threading.Thread(target=grab, args=(i,)) for i in range(6)]
[t.start() for t in threads]; [t.join() for t in threads]
out["race"] = sorted(results)
out["race_value"] = b.get_variable("pausectl.test.race")
b.set_variable("pausectl.test.race", "over")
out["after_set"] = b.get_variable("pausectl.test.race")
b.delete_variable("pausectl.test.race")
out["after_delete"] = b.get_variable("pausectl.test.race")
out["created_again"] = b.create_variable("pausectl.test.race", "x")
b.delete_variable("pausectl.test.race")
out["details"] = b.dag_details("ml_limited")
out["future"] = b.dag_details("report_future")
out["import_errors"] = b.import_errors("etl_broken_a")
out["runs"] = [r.state for r in b.dag_runs("etl_003")]
print(json.dumps(out, default=str))
"""


def test_dagmodel_reads_like_the_api_and_writes_only_the_subset(airflow_server):
    server = airflow_server
    server.reset()
    before = db_states(server)
    try:
        out = run_python(server, f"SUBSET = {SUBSET!r}\nSCOPE_TERMS = {SCOPE_TERMS!r}\n"
                         + SCRIPT)
        assert out.returncode == 0, out.stderr[-3000:]
        data = last_json_line(out.stdout)
        assert data["version"] == server.version

        # the same DAGs, with the same facts, as the REST API shows
        api = api_dags(server)         # read after the script's writes
        after = db_states(server)
        mine = {d["dag_id"]: d for d in data["dags"]}
        assert set(mine) == set(api) == set(before)
        for dag_id, a in api.items():
            m = mine[dag_id]
            assert m["is_paused"] == before[dag_id] and a.is_paused == after[dag_id], dag_id
            assert set(m["tags"]) == set(a.tags), dag_id
            assert tuple(m["owners"]) == a.owners, dag_id
            assert m["is_stale"] == a.is_stale, dag_id
            assert m["has_import_errors"] == a.has_import_errors, dag_id
            assert m["timetable_summary"] == a.timetable_summary, dag_id
            assert m["fileloc"] == a.fileloc, dag_id
        assert mine["ml_stale_old"]["is_stale"] is True
        assert mine["etl_broken_a"]["has_import_errors"] is True
        assert mine["ml_limited"]["max_active_runs"] == 1

        # the scoped listing (ScopedListing): exactly the DAGs whose id contains a term
        # (ignoring case), with the same facts as the full listing
        terms = [t.lower() for t in SCOPE_TERMS]
        assert data["scoped"] == [d for d in data["dags"]
                                  if any(t in d["dag_id"].lower() for t in terms)]
        assert data["scoped"] and len(data["scoped"]) < len(data["dags"])

        # exactly the subset changed (every DAG checked in the DB)
        assert sorted(data["set"]["changed"]) == sorted(SUBSET)
        assert data["set"]["errors"] == {"no_such_dag": "DAG no_such_dag not found in local"}
        assert {d for d in after if after[d] != before[d]} == set(SUBSET)
        assert sorted(data["again"]) == sorted(SUBSET)

        # one audit row per DAG that changed, owned by the caller, with the reason
        assert sorted(e[0] for e in data["events"]) == sorted(SUBSET)
        assert all(e[1:] == ["pausectl.unpause", "oncall-bot", False, "pausectl",
                             "INC-7 vendor fixed"] for e in data["events"])
        rows = server.query("SELECT dag_id, owner, extra FROM log WHERE event = "
                            "'pausectl.unpause' AND owner = 'oncall-bot'")
        assert sorted(r[0] for r in rows) == sorted(SUBSET)
        assert json.loads(rows[0][2])["reason"] == "INC-7 vendor fixed"

        # create_variable: exactly one of six concurrent creators wins
        assert data["race"] == [False] * 5 + [True]
        assert data["race_value"] in {f"w{i}" for i in range(6)}
        assert data["after_set"] == "over" and data["after_delete"] is None
        assert data["created_again"] is True

        details = data["details"]
        assert details["max_active_runs"] == 1 and details["catchup"] is False
        assert details["start_date"] == "2024-01-01T00:00:00Z"
        assert data["future"]["start_date"] == "2030-01-01T00:00:00Z"
        assert data["import_errors"] and "pausectl_missing_module" in \
            data["import_errors"][0]["stacktrace"]
        assert data["runs"] == []
    finally:
        server.reset()


STATE_YAML = """\
environments:
  local:
    backend: {type: dagmodel}
drift: {mode: enforce}
rollout: {batches: ["100%"], gate: {wait_seconds: 0}}
safety: {max_changes: 10}
notify:
  webhooks: [{url_env: DRIFT_HOOK, format: json, events: [drift]}]
"""

LOCAL_YAML = """\
environment: local
defaults: {unmanaged: ignore}
dags:
  etl_005: {paused: false, reason: "backfill done", owner: data-eng}
  etl_006: {paused: false, reason: "backfill done", owner: data-eng}
  report_007: {paused: true, reason: "dashboard retired", owner: analytics, ticket: OPS-1}
"""


def _patch(server, dag_id: str, paused: bool) -> None:
    params = {"update_mask": "is_paused"} if server.major == 2 else None
    r = httpx.patch(f"{server.api_url}/dags/{dag_id}", json={"is_paused": paused},
                    params=params, headers=server.auth_headers(), timeout=30)
    assert r.status_code == 200, r.text


def test_plan_apply_drift_through_the_cli_inside_airflow(airflow_server, tmp_path):
    server = airflow_server
    server.reset()
    state = tmp_path / "state"
    state.mkdir()
    (state / "pausectl.yaml").write_text(STATE_YAML)
    (state / "local.yaml").write_text(LOCAL_YAML)
    hooks = Hooks()
    env = {"PAUSECTL_JOURNAL_DIR": str(tmp_path / "journal"), "PAUSECTL_USER": "gitops",
           "DRIFT_HOOK": hooks.url + "/drift"}
    before = db_states(server)
    try:
        applied = run_pausectl(server, ["apply", "local", "--yes"], cwd=tmp_path, env=env)
        assert applied.returncode == 0, applied.stdout + applied.stderr[-3000:]
        planned = sorted(line.split()[:2] for line in applied.stdout.splitlines()
                         if line.startswith(("pause ", "unpause ")))
        assert planned == [["unpause", "etl_005"], ["unpause", "etl_006"]]  # report_007: paused
        after = db_states(server)
        assert {d for d in after if after[d] != before[d]} == {"etl_005", "etl_006"}
        owners = server.query("SELECT DISTINCT owner FROM log WHERE event = 'pausectl.unpause' "
                              "AND dag_id IN ('etl_005', 'etl_006')")
        assert owners == [("gitops",)]

        # pausectl's own changes are not drift
        clean = run_pausectl(server, ["drift", "local", "--detailed-exitcode", "--format", "json"],
                             cwd=tmp_path, env=env)
        assert clean.returncode == 0, clean.stdout + clean.stderr[-3000:]
        assert hooks.at("/drift") == []                   # no drift, no message

        # a manual pause through the API is, attributed to the API user
        _patch(server, "etl_005", True)
        drift = run_pausectl(server, ["drift", "local", "--detailed-exitcode", "--format", "json"],
                             cwd=tmp_path, env=env)
        assert drift.returncode == 2, drift.stdout + drift.stderr[-3000:]
        report = json.loads(drift.stdout)["environments"][0]
        assert [(x["dag_id"], x["changed_by"], x["how"]) for x in report["drifted"]] == [
            ("etl_005", server.username, "UI/API")]
        # and the drift webhook was told, with the attribution
        (message,) = hooks.at("/drift")
        body = message["body"]
        assert body["event"] == "drift" and body["environment"] == "local"
        assert body["details"]["drifted"][0]["changed_by"] == server.username
        assert f"paused by {server.username} via UI/API" in body["text"]
    finally:
        hooks.close()
        server.reset()


BLOCKED = r"""
import json, os
from airflow.sdk.execution_time.supervisor import block_orm_access
from reconciler.live.dagmodel import DagModelBackend
from reconciler.core.errors import PausectlError
block_orm_access()                       # what Airflow 3 does in every executor task process
out = {}
try:
    DagModelBackend("local", {}).list_dags()
except PausectlError as e:
    out["blocked"] = str(e)
b = DagModelBackend("local", {"sql_alchemy_conn_env": "PAUSECTL_AIRFLOW_DB"})
out["dags"] = len(b.list_dags())
out["set"] = b.set_paused(["etl_012"], False, reason="own engine").changed
out["created"] = b.create_variable("pausectl.test.blocked", "v")
out["value"] = b.get_variable("pausectl.test.blocked")
b.delete_variable("pausectl.test.blocked")
b.close()
# the operators' local environment falls back to its configured backend here
from reconciler.airflow.operators import _backend_for
from reconciler.engine import load
ctx = load(STATE, "local")
notes = []
fallback = _backend_for(ctx, "local", "local", None, notes.append)
out["fallback"] = [type(fallback).__name__, notes]
fallback.close()
print(json.dumps(out))
"""


def test_airflow3_task_with_blocked_orm_uses_sql_alchemy_conn_env(airflow3, tmp_path):
    server = airflow3
    server.reset()
    state = tmp_path / "state"
    state.mkdir()
    (state / "pausectl.yaml").write_text(
        "environments:\n  local:\n    backend: {type: airflow-api, url: "
        f"\"{server.url}\", username_env: U, password_env: P}}\n")
    (state / "local.yaml").write_text("environment: local\n")
    try:
        out = run_python(server, f"STATE = {str(state)!r}\n" + BLOCKED,
                         env={"PAUSECTL_AIRFLOW_DB": f"sqlite:///{server.db_path}",
                              "U": server.username, "P": server.password})
        assert out.returncode == 0, out.stderr[-3000:]
        data = last_json_line(out.stdout)
        assert "blocks metadata DB access here" in data["blocked"]
        assert "sql_alchemy_conn_env" in data["blocked"]
        assert data["dags"] == len(server.specs)
        assert data["set"] == ["etl_012"]
        assert db_states(server)["etl_012"] is False
        assert data["created"] is True and data["value"] == "v"
        assert data["fallback"][0] == "AirflowApiBackend"
        assert "blocks its metadata DB in this task" in data["fallback"][1][0]
    finally:
        server.reset()


def test_without_airflow_installed_the_error_is_one_line(tmp_path):
    """pausectl's own venv has no Airflow: importing the backend is fine (Airflow is imported
    lazily), using it is a one-line error, exit 1."""
    import subprocess
    import sys
    from helpers import run_cli
    probe = subprocess.run([sys.executable, "-c", "import reconciler.live.dagmodel, sys; "
                            "print('airflow' in sys.modules)"], capture_output=True, text=True)
    assert probe.stdout.strip() == "False", probe.stderr
    state = tmp_path / "state"
    state.mkdir()
    (state / "pausectl.yaml").write_text("environments:\n  local:\n    backend: {type: dagmodel}\n")
    (state / "local.yaml").write_text("environment: local\n")
    out = run_cli(["plan", "local"], cwd=tmp_path)
    assert out.returncode == 1
    assert out.stderr.strip() == ("error: local: backend 'dagmodel' needs Airflow: run pausectl "
                                  "inside the Airflow installation (or use backend 'airflow-api')")


EVENTS_SCRIPT = r"""
import json
from datetime import datetime, timezone
from reconciler.live.dagmodel import DagModelBackend
b = DagModelBackend("local", {"type": "dagmodel"})
since = datetime.fromisoformat(SINCE)
ids = ["etl_autopause_b", "report_003", "report_004", "report_005", "ml_003"]
print(json.dumps([[e.dag_id, e.event, e.user, e.is_paused, e.via, e.detail, e.pattern,
                   e.pattern_kind] for e in b.audit_events(ids, since=since)]))
"""


@pytest.mark.parametrize("matrix_server", ["3.3.2", "2.11.2"], indirect=True)
def test_dagmodel_attributes_airflow_cli_regex_and_bulk_events(matrix_server):
    """The same normalisation as the REST backends (events.py), from the log table itself:
    which also holds the CLI regex rows that AF3 3.1+'s GET /eventLogs hides."""
    from datetime import datetime, timezone
    server = matrix_server
    server.reset()
    since = datetime.now(timezone.utc).isoformat()
    import sqlite3
    with sqlite3.connect(server.db_path, timeout=30) as db:
        db.execute("UPDATE dag SET is_paused = 0 WHERE dag_id IN ('etl_autopause_b', "
                   "'report_003', 'report_004', 'ml_003')")
    try:
        assert server.auto_pause("etl_autopause_b", failed_runs=3)["paused"] is True
        server.cli_pause("^report_00[34]$", True, regex=True)
        server.bulk_patch("ml_003", True)
        out = run_python(server, f"SINCE = {since!r}\n" + EVENTS_SCRIPT)
        assert out.returncode == 0, out.stderr[-3000:]
        events = last_json_line(out.stdout)
    finally:
        server.reset()
    first: dict = {}
    for e in events:
        first.setdefault(e[0], e)
    assert first["etl_autopause_b"][1:6] == ["paused", "scheduler", True, "airflow",
                                             "auto-paused by Airflow"]
    for d in ("report_003", "report_004"):
        assert (first[d][1], first[d][3], first[d][4]) == ("cli_dag_pause", True, "cli")
        assert first[d][6:] == ["^report_00[34]$", "regex"]
    assert "report_005" not in first
    assert first["ml_003"][4] == "bulk" and first["ml_003"][6] == "ml_003"
