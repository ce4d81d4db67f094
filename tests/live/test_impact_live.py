"""Impact preview, discovered dependencies and coordinated unpause against real Airflow 3.3.2
and 2.11.2 (issue 15): a catchup DAG 30 days behind shows exactly the runs Airflow's own
timetable will create and the guard refuses it; an ExternalTaskSensor and a
TriggerDagRunOperator edge are discovered (REST and dagmodel) and cascade; a backfill shows in
the preview (AF3; AF2 says it has none); an unpaused chain goes upstream first, a gate between.

One dedicated server per version (its own DAGs; the session servers keep STANDARD_DAGS),
prepared in the background (tests/early.py); no scheduler is needed: runs and backfills are
created through the API, the catch-up count is checked against Airflow's timetable itself.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from early import Early
from helpers import REPO, db_states, main_captured, set_states, write_files
from inside_airflow import last_json_line, run_python

from testkit.harness import AirflowServer, DagSpec

START = (datetime.now(timezone.utc) - timedelta(days=30)).replace(hour=0, minute=0, second=0,
                                                                    microsecond=0)
SPECS = (DagSpec("imp_catchup", schedule="@daily", catchup=True, start_date=START.isoformat()),
         DagSpec("imp_up", schedule="@daily"),
         DagSpec("imp_sensor", schedule="@daily", sensors=("imp_up",), sensor_timeout=600),
         DagSpec("imp_trigger", triggers=("imp_triggered",)),
         DagSpec("imp_triggered"))
RUNNING = {"imp_up": False, "imp_sensor": False, "imp_trigger": False, "imp_triggered": False}

# AF2 reads the dependency graph from a page behind the webserver's login session; its login
# form allows 5 POSTs per 40 s per address (then pausectl falls back to HTTP basic, and the
# page is not served: a plan warning). This module logs in more often than that.
EARLY = Early("impact-af", lambda major: AirflowServer(
    major=int(major), dags=SPECS, root=REPO,
    extra_env={"AIRFLOW__FAB__AUTH_RATE_LIMITED": "False"} if major == "2" else None))


def prestart() -> None:
    """conftest calls this once collection shows tests of this module will run."""
    EARLY.prestart("3", "2")


@pytest.fixture(scope="module", params=["3", "2"], ids=["af3", "af2"])
def srv(request):
    server = EARLY.get(request.param)
    yield server
    server.stop()


@pytest.fixture(scope="module", autouse=True)
def _drop_unused_servers():
    yield
    EARLY.drop_unused()


def _repo(tmp_path, server, dags: str, safety: str = "{max_catchup_runs: 10}"):
    root = tmp_path / "state"
    write_files(root, {
        "pausectl.yaml": (
            "environments:\n  af:\n    backend: {type: airflow-api, url: '%s', auth: "
            "password-token, username_env: IMP_USER, password_env: IMP_PASS}\n"
            "rollout: {batches: ['100%%'], gate: {wait_seconds: 0}}\nsafety: %s\n"
            % (server.url, safety)),
        "af.yaml": "environment: af\ndefaults: {unmanaged: ignore}\ndags:\n" + dags})
    return tmp_path


def _cli(root, args, capsys, monkeypatch, server):
    monkeypatch.setenv("IMP_USER", server.username)
    monkeypatch.setenv("IMP_PASS", server.password)
    return main_captured(root, args, capsys, monkeypatch)


# Airflow's own timetable, in the server's venv: the runs the scheduler creates from a never-run
# DAG up to AT (same loop as the scheduler: next_dagrun_info from the last one), and the
# dagmodel backend's evidence and edges beside it.
INSIDE = """
import inspect, json
from datetime import datetime
from airflow.models.serialized_dag import SerializedDagModel
from airflow.utils.session import create_session
from reconciler.live.dagmodel import DagModelBackend
from reconciler.live.deps import from_serialized
from reconciler.plan.impact import catchup_runs
at = datetime.fromisoformat(AT)
with create_session() as s:
    dag = SerializedDagModel.get_dag("imp_catchup", session=s)
params = inspect.signature(dag.next_dagrun_info).parameters
last, runs = None, []
while len(runs) < 1000:
    if "last_automated_run_info" in params:
        info = dag.next_dagrun_info(last_automated_run_info=last)
    else:
        info = dag.next_dagrun_info(last.data_interval if last else None)
    if info is None or info.run_after > at:
        break
    runs.append(info.run_after.isoformat())
    last = info
b = DagModelBackend("af", {})
with create_session() as s:     # Airflow's own method: the backend picks versions itself
    own = SerializedDagModel.get_dag_dependencies(session=s)
ev = b.impact_evidence(["imp_catchup", "imp_up"], ["imp_catchup"])
print(json.dumps({"runs": runs, "dagmodel": catchup_runs(ev["imp_catchup"], at).runs,
                  "edges": [list(e) for e in b.dag_dependencies()],
                  "airflow_edges": [list(e) for e in from_serialized(own)],
                  "backfills": ev["imp_up"].backfills}))
"""


@pytest.fixture(scope="module")
def inside(srv):
    """(at, what Airflow's timetable and the dagmodel backend say at `at`): one Airflow
    interpreter start per server, shared by the tests below."""
    at = datetime.now(timezone.utc).replace(second=0, microsecond=0)
    out = run_python(srv, f"AT = {at.isoformat()!r}\n" + INSIDE)
    assert out.returncode == 0, out.stderr[-3000:]
    return at, last_json_line(out.stdout)


@pytest.mark.airflow
def test_catchup_runs_are_exact_and_the_guard_refuses(srv, inside, tmp_path, capsys,
                                                      monkeypatch):
    srv.reset()
    at, airflow = inside
    root = _repo(tmp_path, srv, "  imp_catchup: {paused: false}\n")
    code, out, _ = _cli(root, ["plan", "af", "--at", at.isoformat(), "--format", "json"],
                        capsys, monkeypatch, srv)
    assert code == 0
    (imp,) = json.loads(out)["impact"]["dags"]
    # AF3 (CronTriggerTimetable) fires at each midnight from START; AF2 (data intervals) at each
    # interval's end: 31 and 30 runs for a DAG started 30 days ago, whatever they are, exactly
    assert imp["catchup"]["runs"] == len(airflow["runs"]) == airflow["dagmodel"]
    # START was fixed at collection: a run that crosses midnight UTC is a day further behind
    days = (datetime.now(timezone.utc).date() - START.date()).days
    assert len(airflow["runs"]) in (days, days + 1) and imp["catchup"]["exact"]
    assert datetime.fromisoformat(imp["catchup"]["last"].replace("Z", "+00:00")) == \
        datetime.fromisoformat(airflow["runs"][-1])
    before = db_states(srv)
    code, out, err = _cli(root, ["apply", "af", "--yes"], capsys, monkeypatch, srv)
    n = imp["catchup"]["runs"]
    assert code == 1 and err.strip().splitlines()[-1] == (
        f"error: imp_catchup would create {n} catch-up runs, more than "
        "safety.max_catchup_runs (10); nothing changed. Re-run with --allow-catchup if that "
        "is intended")
    assert "Traceback" not in err and db_states(srv) == before
    code, _, _ = _cli(root, ["apply", "af", "--yes", "--allow-catchup"], capsys, monkeypatch, srv)
    assert code == 0 and db_states(srv)["imp_catchup"] is False


@pytest.mark.airflow
def test_sensor_and_trigger_edges_are_discovered_and_cascade(srv, inside, tmp_path, capsys,
                                                             monkeypatch):
    srv.reset()
    set_states(srv, RUNNING)
    from reconciler.live.airflow_api import AirflowApiBackend
    with AirflowApiBackend("af", {"url": srv.url, "auth": "password-token",
                                  "username_env": "U", "password_env": "P"},
                           env={"U": srv.username, "P": srv.password}) as b:
        edges = sorted(tuple(e[:4]) for e in b.dag_dependencies())
    expected = [("imp_trigger", "imp_triggered", "trigger", "trigger_imp_triggered"),
                ("imp_up", "imp_sensor", "sensor", "wait_imp_up")]
    assert edges == expected
    # the same from the serialized DAGs (dagmodel); no version serialises a sensor's timeout
    assert sorted(tuple(e) for e in inside[1]["edges"]) == [
        expected[0] + (None,), expected[1] + (None,)]
    assert sorted(map(tuple, inside[1]["airflow_edges"])) == sorted(map(tuple, inside[1]["edges"]))
    root = _repo(tmp_path, srv, (
        "  imp_up: {paused: true, reason: outage, owner: ops, cascade: downstream}\n"
        "  imp_trigger: {paused: true, reason: outage, owner: ops, cascade: downstream}\n"))
    code, out, _ = _cli(root, ["plan", "af"], capsys, monkeypatch, srv)
    assert code == 0
    lines = out.splitlines()
    assert any(line.startswith("pause    imp_sensor ") and
               "cascade: imp_up -> ExternalTaskSensor wait_imp_up -> imp_sensor" in line
               for line in lines), out
    assert any(line.startswith("pause    imp_triggered ") and "TriggerDagRunOperator "
               "trigger_imp_triggered -> imp_triggered" in line for line in lines), out
    assert "impact   imp_up  pause: sensors will wait: imp_sensor.wait_imp_up" in out
    assert "impact   imp_trigger  pause: no longer triggers: imp_triggered" in out


@pytest.mark.airflow
def test_a_backfill_shows_in_the_preview(srv, tmp_path, capsys, monkeypatch):
    srv.reset()
    set_states(srv, RUNNING)
    # two flips: the backfills come from one listing of them all (/ui/backfills), not per DAG
    root = _repo(tmp_path, srv, "  imp_up: {paused: true, reason: outage, owner: ops}\n"
                 "  imp_triggered: {paused: true, reason: outage, owner: ops}\n")
    if srv.major == 2:
        code, out, _ = _cli(root, ["plan", "af"], capsys, monkeypatch, srv)
        # nothing else to say about imp_up but its sensor: the AF2 note comes beside it
        assert "note     impact: Airflow 2 has no backfill model in its API" in out
        return
    day = START + timedelta(days=3)
    r = httpx.post(f"{srv.api_url}/backfills", headers=srv.auth_headers(), json={
        "dag_id": "imp_up", "from_date": day.isoformat(),
        "to_date": (day + timedelta(days=2)).isoformat()})
    assert r.status_code == 200, r.text
    backfill = r.json()
    try:
        code, out, _ = _cli(root, ["plan", "af", "--format", "json"], capsys, monkeypatch, srv)
        (imp,) = [d for d in json.loads(out)["impact"]["dags"] if d["dag_id"] == "imp_up"]
        assert [b["id"] for b in imp["backfills"]] == [backfill["id"]]
        assert imp["queued"] >= 1            # the backfill's runs, queued without a scheduler
        code, out, _ = _cli(root, ["plan", "af"], capsys, monkeypatch, srv)
        assert f"backfill #{backfill['id']} (" in out and ") stops" in out
    finally:
        httpx.put(f"{srv.api_url}/backfills/{backfill['id']}/cancel", headers=srv.auth_headers())


@pytest.mark.airflow
def test_an_unpaused_chain_goes_upstream_first_with_a_gate_between(srv, tmp_path, capsys,
                                                                   monkeypatch):
    srv.reset()
    set_states(srv, {d: True for d in RUNNING})
    root = _repo(tmp_path, srv, "".join(f"  {d}: {{paused: false}}\n" for d in RUNNING))
    code, out, _ = _cli(root, ["plan", "af"], capsys, monkeypatch, srv)
    assert code == 0
    assert ("order    coordinated unpause, upstream first, a gate between levels: "
            "level 1: imp_trigger, imp_up; level 2: imp_sensor, imp_triggered") in out
    assert "batch 1/2: 2 DAG(s) (0 pause, 2 unpause): imp_trigger, imp_up" in out
    code, _, err = _cli(root, ["apply", "af", "--yes"], capsys, monkeypatch, srv)
    assert code == 0 and "gate after batch 1: passed" in err
    assert all(db_states(srv)[d] is False for d in RUNNING)
