"""`pausectl doctor` against a real Airflow 3.3.2 with a scheduler, one DAG per cause.

A dedicated server (module scope) runs a scheduler + LocalExecutor so the run-related causes
are real: a sleeping run holding max_active_runs=1 with a second run queued behind it, a run
that failed, a task stuck in a pool with 0 slots. The other causes come from the DAG files
(no schedule, start_date in 2030), from git (a rule, a window), from a live API pause, and
from an emergency marker. Import errors and deleted files (stale) are checked on the shared
session servers (3.3.2 and 2.11.2), whose standard DAGs include both.

Every cause is checked through the airflow-api backend (pausectl's venv) and again through
the dagmodel backend inside Airflow's venv: both must name the same first finding.
"""

from __future__ import annotations

import concurrent.futures
import json
import time
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from early import Early
from helpers import run_cli
from inside_airflow import last_json_line, run_python
from testkit.harness import AirflowServer, DagSpec
from reconciler.core.timeutil import iso, utcnow

pytestmark = pytest.mark.airflow

QUEUED_DAG = """\
from datetime import datetime, timezone
from airflow.sdk import DAG
from airflow.providers.standard.operators.python import PythonOperator


def _noop():
    pass


# not an EmptyOperator: the scheduler marks those success without ever queueing them
with DAG("doc_queued", start_date=datetime(2024, 1, 1, tzinfo=timezone.utc), schedule=None,
         catchup=False, is_paused_upon_creation=False, tags=["doctor"],
         default_args={"owner": "data-eng"}) as dag:
    PythonOperator(task_id="wait_for_slot", python_callable=_noop, pool="pausectl_empty")
"""

SPECS = [
    DagSpec("doc_rule_paused", schedule="@daily", owner="data-eng"),
    DagSpec("doc_live_paused", owner="data-eng", paused_at_creation=False),
    DagSpec("doc_emergency", owner="data-eng", paused_at_creation=False),
    DagSpec("doc_window", schedule="@daily", owner="finops"),
    DagSpec("doc_no_schedule", owner="data-eng", paused_at_creation=False),
    DagSpec("doc_future", schedule="@daily", start_date="2030-01-01T00:00:00+00:00",
            paused_at_creation=False),
    DagSpec("doc_busy", sleep=900, max_active_runs=1, paused_at_creation=False),
    DagSpec("doc_failing", fail=True, paused_at_creation=False),
    DagSpec("doc_healthy", schedule="@hourly", paused_at_creation=False),
]


class _DoctorServer(AirflowServer):
    """Also registers a hand-written DAG file (a task in a pool) with the first reserialize."""

    def add_dags(self, specs):
        if self.home is not None and not (self.dags_folder / "doc_queued.py").exists():
            (self.dags_folder / "doc_queued.py").write_text(QUEUED_DAG)
        super().add_dags(specs)


# the hour the run window of doc_window opens (UTC): 3 h from now, fixed once, so the state
# file and the assertions agree even across an hour boundary
WINDOW_HOUR = (utcnow().hour + 3) % 24


PAUSECTL = """\
environments:
  live:
    backend: {{type: airflow-api, url: "{url}", username_env: DOC_USER, password_env: DOC_PASS}}
  incident:
    backend: {{type: airflow-api, url: "{url}", username_env: DOC_USER, password_env: DOC_PASS}}
drift: {{mode: enforce}}
"""

LIVE = """\
environment: live
defaults: {{unmanaged: report}}
dags:
  doc_rule_paused: {{paused: true, reason: "vendor API down", owner: data-eng, ticket: INC-42}}
  doc_live_paused: {{paused: false, reason: "runs when triggered", owner: data-eng}}
groups:
  - name: cost-night-only
    match: {{dag_id: doc_window}}
    paused: true
    reason: "cost control: runs only at night"
    owner: finops
  - name: night-window
    match: {{dag_id: doc_window}}
    paused: false
    reason: "the night run window"
    owner: finops
    priority: 10
    windows: [{{cron: "0 {hour} * * *", duration: 1h, timezone: UTC}}]
"""

EXPECTED_FIRST = {
    ("live", "doc_rule_paused"): "paused_by_rule",
    ("live", "doc_live_paused"): "paused_live",
    ("incident", "doc_emergency"): "emergency",
    ("live", "doc_window"): "paused_by_rule",
    ("live", "doc_no_schedule"): "no_schedule",
    ("live", "doc_future"): "start_date_future",
    ("live", "doc_busy"): "max_active_runs",
    ("live", "doc_failing"): "last_runs_failed",
    ("live", "doc_queued"): "queued_tasks",
}


def _prepare(_key: str) -> AirflowServer:
    """The part of the start without processes (venv, home, DB, DAG files registered): safe to
    run early, in the background, while other test modules run."""
    return _DoctorServer(major=3, dags=SPECS, scheduler=True,
                         root=Path(__file__).resolve().parents[2])


EARLY = Early("doctor-airflow", _prepare)


def _scene(server: AirflowServer) -> AirflowServer:
    """The live scene on the launched server (the runs then progress)."""
    try:
        _api(server, "POST", "/pools", json={"name": "pausectl_empty", "slots": 0})
        _api(server, "PATCH", "/dags/doc_live_paused", json={"is_paused": True})
        _api(server, "PATCH", "/dags/doc_emergency", json={"is_paused": True})
        marker = {"version": 1, "environment": "incident", "reason": "warehouse on fire",
                  "owner": "oncall", "started": iso(utcnow()), "except": [], "prior": {}}
        _api(server, "POST", "/variables", json={"key": "pausectl.emergency.incident",
                                                 "value": json.dumps(marker)})
        for dag_id in ("doc_busy", "doc_failing", "doc_queued", "doc_busy"):
            _api(server, "POST", f"/dags/{dag_id}/dagRuns", json={"logical_date": None})
            time.sleep(0.05)
    except BaseException:
        server.stop()
        raise
    return server


def prestart() -> None:
    """conftest calls this once collection shows these tests will run."""
    EARLY.prestart("3")


@pytest.fixture(scope="module", autouse=True)
def _drop_unused_server():
    yield
    EARLY.drop_unused()


def _start() -> AirflowServer:
    """API server, scheduler, dag-processor (tests/early.py), then the live scene."""
    return _scene(EARLY.get("3"))


def _api(server, method: str, path: str, **kw) -> httpx.Response:
    r = httpx.request(method, f"{server.api_url}{path}", headers=server.auth_headers(),
                      timeout=30, **kw)
    assert r.status_code < 300, f"{method} {path}: {r.status_code} {r.text[:300]}"
    return r


def _wait(what: str, check, timeout: float = 420) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(1)


@pytest.fixture(scope="module")
def doctor_env(tmp_path_factory):
    t0 = time.monotonic()
    server = _start()
    timings = {"start": round(time.monotonic() - t0, 1)}
    try:
        root = tmp_path_factory.mktemp("doctor")
        state = root / "state"
        state.mkdir()
        (state / "pausectl.yaml").write_text(PAUSECTL.format(url=server.url))
        (state / "live.yaml").write_text(LIVE.format(hour=WINDOW_HOUR))
        (state / "incident.yaml").write_text("environment: incident\n")

        def runs(dag_id, state):
            return server.query("SELECT count(*) FROM dag_run WHERE dag_id = ? AND state = ?",
                                (dag_id, state))[0][0]

        def tis(dag_id, states):
            marks = ",".join("?" * len(states))
            return server.query(f"SELECT count(*) FROM task_instance WHERE dag_id = ? AND "
                                f"state IN ({marks})", (dag_id, *states))[0][0]

        _wait("doc_busy: one running run with its task running, one queued",
              lambda: runs("doc_busy", "running") == 1 and runs("doc_busy", "queued") == 1
              and tis("doc_busy", ["running"]) == 1)
        _wait("doc_failing: a failed run", lambda: runs("doc_failing", "failed") >= 1)
        _wait("doc_queued: its task waiting in the empty pool",
              lambda: tis("doc_queued", ["scheduled", "queued"]) >= 1)
        timings["runs"] = round(time.monotonic() - t0 - timings["start"], 1)
        print(f"doctor server timings: {timings} {server.timings}")
        env = {"DOC_USER": server.username, "DOC_PASS": server.password}
        yield server, root, env
    finally:
        _fast_stop(server)


def _fast_stop(server: AirflowServer) -> None:
    """Nothing here needs a graceful shutdown: kill every process tree at once, with a short
    grace (the harness's own stop waits up to 10 s per process, one after the other)."""
    from testkit.harness import _kill_tree
    procs = list(server._procs.values())
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, len(procs))) as pool:
        list(pool.map(lambda p: _kill_tree(p, grace=1.0), procs))
    server.stop()


@pytest.fixture(scope="module")
def api_results(doctor_env):
    from reconciler.live.airflow_api import AirflowApiBackend
    from reconciler.operate.doctor import diagnose
    from reconciler.engine import load
    server, root, env = doctor_env
    out = {}
    at = utcnow()
    for (env_name, dag_id) in list(EXPECTED_FIRST) + [("live", "doc_healthy"),
                                                      ("live", "doc_nonexistent")]:
        ctx = load(root / "state", env_name, at)
        backend = AirflowApiBackend(env_name, ctx.cfg.env(env_name).backend, env=env)
        try:
            out[(env_name, dag_id)] = diagnose(ctx, backend, dag_id, at)
        finally:
            backend.close()
    return out


def _codes(result) -> list[str]:
    return [f["code"] for f in result["findings"]]


def _finding(result, code) -> dict:
    return next(f for f in result["findings"] if f["code"] == code)


@pytest.mark.parametrize("key", list(EXPECTED_FIRST), ids=[k[1] for k in EXPECTED_FIRST])
def test_each_cause_is_the_first_finding(api_results, key):
    r = api_results[key]
    first = r["findings"][0]
    assert first["code"] == EXPECTED_FIRST[key], json.dumps(r["findings"], indent=1)
    assert r["verdict"] == first["title"]
    assert first["severity"] in ("blocking", "warning")


def test_evidence_names_the_rule_the_user_and_the_numbers(api_results, doctor_env):
    server = doctor_env[0]
    r = api_results[("live", "doc_rule_paused")]
    f = r["findings"][0]
    assert "dag entry doc_rule_paused" in f["title"] and "vendor API down" in f["title"]
    assert r["decided_by"] == "state/live.yaml:4" or r["decided_by"].endswith("live.yaml:4")
    assert any("INC-42" in e for e in f["evidence"])

    f = api_results[("live", "doc_live_paused")]["findings"][0]
    assert f"by {server.username} via UI/API" in f["title"]
    assert any("git says it should run" in e for e in f["evidence"])

    f = api_results[("incident", "doc_emergency")]["findings"][0]
    assert "warehouse on fire" in f["title"] and "oncall" in f["title"]
    assert "pausectl emergency recover incident" in f["fix"]

    r = api_results[("live", "doc_window")]
    assert r["findings"][0]["title"].startswith("paused by group cost-night-only")
    w = _finding(r, "window_closed")
    now = utcnow()
    nxt = now.replace(minute=0, second=0, microsecond=0).replace(hour=WINDOW_HOUR)
    if nxt <= now:
        nxt += timedelta(days=1)
    assert f"the next opens at {iso(nxt)}" in w["title"], w

    f = api_results[("live", "doc_future")]["findings"][0]
    assert "2030-01-01T00:00:00Z" in f["title"]

    f = api_results[("live", "doc_busy")]["findings"][0]
    assert f["title"].startswith("max_active_runs (1) reached: 1 run(s) running")
    assert any("1 queued run(s) wait" in e for e in f["evidence"])

    f = api_results[("live", "doc_failing")]["findings"][0]
    assert f["title"].startswith("its last 1 run(s) failed")

    f = api_results[("live", "doc_queued")]["findings"][0]
    assert "pool 'pausectl_empty' has 0 slots" in f["title"]
    assert any("wait_for_slot" in e for e in f["evidence"])

    assert "not in live's Airflow" in api_results[("live", "doc_nonexistent")]["verdict"]


def test_a_healthy_dag_gets_a_clean_bill_with_catchup_as_information(api_results):
    r = api_results[("live", "doc_healthy")]
    assert r["blocked"] is False
    assert r["verdict"].startswith("nothing found that stops it")
    assert {f["severity"] for f in r["findings"]} == {"info"}
    assert "catchup_off" in _codes(r) and "next_run" in _codes(r)


def test_the_cli_prints_the_finding_first_then_the_evidence(doctor_env):
    server, root, env = doctor_env
    out = run_cli(["doctor", "live", "doc_rule_paused"], cwd=root, env=env)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("doc_rule_paused in live: paused by dag entry doc_rule_paused")
    assert lines[1].startswith("  live: paused; git: paused")
    blocking = lines.index(next(ln for ln in lines if ln.startswith("BLOCKING")))
    assert "decided by dag entry doc_rule_paused" in lines[blocking + 1]
    out = run_cli(["doctor", "live", "doc_busy", "--format", "json"], cwd=root, env=env)
    assert json.loads(out.stdout)["findings"][0]["code"] == "max_active_runs"


DAGMODEL_SCRIPT = """
import concurrent.futures
import json
from reconciler.live.dagmodel import DagModelBackend
from reconciler.operate.doctor import diagnose
from reconciler.engine import load
from reconciler.core.timeutil import utcnow
at = utcnow()
out = {}
for env, dag_id in KEYS:
    ctx = load("state", env, at)
    b = DagModelBackend(env, {})
    out[dag_id] = [f["code"] for f in diagnose(ctx, b, dag_id, at)["findings"]]
print(json.dumps(out))
"""


def test_the_dagmodel_backend_inside_airflow_finds_the_same(doctor_env, api_results):
    server, root, _ = doctor_env
    # the same state repo and DB; only the backend differs (ORM instead of REST)
    keys = list(EXPECTED_FIRST)
    out = run_python(server, f"KEYS = {keys!r}\n" + DAGMODEL_SCRIPT, cwd=root)
    assert out.returncode == 0, out.stderr[-3000:]
    codes = last_json_line(out.stdout)
    for env_name, dag_id in keys:
        api_codes = _codes(api_results[(env_name, dag_id)])
        assert codes[dag_id][0] == EXPECTED_FIRST[(env_name, dag_id)], (dag_id, codes[dag_id])
        assert codes[dag_id] == api_codes, (dag_id, codes[dag_id], api_codes)


STD_PAUSECTL = """\
environments:
  std:
    backend: {{type: airflow-api, url: "{url}", username_env: DOC_USER, password_env: DOC_PASS}}
"""


def test_file_causes_on_the_standard_servers(airflow_server, tmp_path):
    """Read-only: import errors, a deleted file, start_date in 2030, no schedule (AF3 + AF2)."""
    from reconciler.live.airflow_api import AirflowApiBackend
    from reconciler.operate.doctor import diagnose
    from reconciler.engine import load
    server = airflow_server
    state = tmp_path / "state"
    state.mkdir()
    (state / "pausectl.yaml").write_text(STD_PAUSECTL.format(url=server.url))
    (state / "std.yaml").write_text("environment: std\n")
    at = utcnow()
    ctx = load(state, "std", at)
    backend = AirflowApiBackend("std", ctx.cfg.env("std").backend,
                                env={"DOC_USER": server.username, "DOC_PASS": server.password})
    try:
        r = {d: diagnose(ctx, backend, d, at)
             for d in ("etl_broken_a", "ml_stale_old", "report_future", "etl_000")}
    finally:
        backend.close()
    broken = _finding(r["etl_broken_a"], "import_errors")
    assert "pausectl_missing_module" in broken["title"], broken
    assert any("etl_broken_a.py" in e for e in broken["evidence"])
    if server.major == 3:       # AF3 marks a file that stopped importing stale: blocking, first
        assert _codes(r["etl_broken_a"])[0] == "import_errors"
    assert _codes(r["ml_stale_old"])[0] == "stale"
    future = _finding(r["report_future"], "start_date_future")
    assert "2030-01-01T00:00:00Z" in future["title"] and future["severity"] == "blocking"
    assert _finding(r["etl_000"], "no_schedule")["severity"] == "blocking"
