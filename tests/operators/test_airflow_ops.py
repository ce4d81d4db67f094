"""reconciler.airflow inside a real Airflow 3.3.2: the example DAG `pausectl_drift` run with
`airflow dags test` (green, then red once a DAG is paused by hand with the Airflow CLI), and
PauseDagsOperator pausing its own DAG and another one with a recorded reason.

One sequence: the drift DAG is green; ops_pauser (PauseDagsOperator) pauses ops_d and itself;
someone pauses ops_a with `airflow dags pause`; the drift DAG fails for `local` only, with
both live changes attributed (operator and CLI) and the plans in XCom; PauseReconcileOperator
in apply mode then puts git's state back (and writes its metrics).

The Airflow here is a bare AIRFLOW_HOME (migrated DB + DAG files, no server processes): `dags
test` runs tasks in-process, which is all this needs. The state repo is a git repository
reached by a file:// URL, so the operator's clone path is what runs; it has two environments,
`local` (this Airflow, through the dagmodel backend) and `offline` (a snapshot), checked by
two mapped task instances.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from early import in_ci, skip_all
from inside_airflow import inside_env, last_json_line, run_python
from testkit.harness import AirflowServer, DagSpec

pytestmark = pytest.mark.airflow
REPO = Path(__file__).resolve().parents[2]

PAUSECTL = """\
environments:
  local:
    backend: {type: dagmodel}
  offline:
    backend: {type: snapshot, path: snapshots/offline.json}
drift: {mode: enforce}
"""

LOCAL = """\
environment: local
defaults: {unmanaged: ignore}
dags:
  ops_a: {paused: false, reason: "runs hourly", owner: data-eng}
  ops_b: {paused: true, reason: "vendor down", owner: data-eng, ticket: INC-1}
  ops_d: {paused: false, reason: "runs hourly", owner: data-eng}
"""

OFFLINE = """\
environment: offline
dags:
  rep_x: {paused: true, reason: "retired", owner: analytics}
"""

SNAPSHOT = {"dags": [
    {"dag_id": "rep_x", "is_paused": True, "tags": [], "owners": ["analytics"]},
    {"dag_id": "rep_y", "is_paused": False, "tags": [], "owners": ["analytics"]}]}

PAUSER = """\
from datetime import datetime, timezone
from airflow.sdk import DAG
from reconciler.airflow import PauseDagsOperator

with DAG("ops_pauser", start_date=datetime(2024, 1, 1, tzinfo=timezone.utc), schedule=None,
         catchup=False, is_paused_upon_creation=False, tags=["pausectl"]) as dag:
    other = PauseDagsOperator(task_id="pause_other", dag_ids=["ops_d"],
                              reason="warehouse migration", ticket="CHG-7")
    me = PauseDagsOperator(task_id="pause_me", reason="one-shot: stop after this run")
    other >> me
"""


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                   env={**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@e",
                        "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@e"})


_pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="ops-airflow")
_early: concurrent.futures.Future | None = None


def _boot() -> AirflowServer:
    server = AirflowServer(major=3, root=REPO, dags=[
        DagSpec("ops_a", schedule="@hourly", paused_at_creation=False),
        DagSpec("ops_b", schedule="@hourly"),
        DagSpec("ops_d", schedule="@hourly", paused_at_creation=False)])
    try:
        server.prepare()          # venv, AIRFLOW_HOME, migrated DB, DAGs registered; no servers
        inside_env(server)        # pausectl's dependencies in that venv
    except BaseException:
        server.stop()
        raise
    return server


def prestart() -> None:
    """conftest calls this once collection shows these tests will run: prepare the Airflow
    home in the background while earlier test modules run."""
    global _early
    if _early is None and not skip_all():
        _early = _pool.submit(_boot)


@pytest.fixture(scope="module")
def bare_airflow(tmp_path_factory):
    if skip_all():
        pytest.skip("PAUSECTL_SKIP_AIRFLOW=1")
    try:
        server = (_early or _pool.submit(_boot)).result()
    except Exception as exc:
        if in_ci():
            pytest.fail(f"Airflow could not be prepared: {exc}", pytrace=False)
        pytest.skip(f"Airflow could not be prepared: {str(exc).splitlines()[0]}")
    root = tmp_path_factory.mktemp("ops")
    repo = root / "repo"
    (repo / "state" / "snapshots").mkdir(parents=True)
    (repo / "state" / "pausectl.yaml").write_text(PAUSECTL)
    (repo / "state" / "local.yaml").write_text(LOCAL)
    (repo / "state" / "offline.yaml").write_text(OFFLINE)
    (repo / "state" / "snapshots" / "offline.json").write_text(json.dumps(SNAPSHOT))
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "state")
    shutil.copy(REPO / "reconciler" / "airflow" / "example_dags" / "pausectl_drift.py",
                server.dags_folder / "pausectl_drift.py")
    (server.dags_folder / "ops_pauser.py").write_text(PAUSER)
    env = inside_env(server, {"PAUSECTL_STATE_REPO": f"file://{repo}",
                              "PAUSECTL_LOCAL_ENV": "local", "PAUSECTL_USER": "gitops",
                              "PAUSECTL_JOURNAL_DIR": str(root / "journal")})
    try:
        yield server, root, env
    finally:
        server.stop()


def _dags_test(server, env, dag_id: str):
    return server.airflow("dags", "test", dag_id, check=False, env=env, timeout=600)


def _tis(server, dag_id: str) -> dict:
    """(task_id, map_index) -> state of the newest run of dag_id."""
    run = server.query("SELECT run_id FROM dag_run WHERE dag_id = ? ORDER BY id DESC LIMIT 1",
                       (dag_id,))[0][0]
    rows = server.query("SELECT task_id, map_index, state FROM task_instance WHERE dag_id = ? "
                        "AND run_id = ?", (dag_id, run))
    return run, {(t, m): s for t, m, s in rows}


def _xcom(server, run_id: str, key: str) -> dict:
    rows = server.query("SELECT map_index, value FROM xcom WHERE dag_id = 'pausectl_drift' AND "
                        "task_id = 'drift' AND run_id = ? AND key = ?", (run_id, key))
    out = {}
    for m, v in rows:
        v = json.loads(v)
        out[m] = json.loads(v) if isinstance(v, str) else v
    return out


def test_drift_dag_green_then_red_on_operator_and_cli_pauses_then_apply_reverts(bare_airflow):
    server, root, env = bare_airflow
    t = {}
    clock = time.monotonic()
    out = _dags_test(server, env, "pausectl_drift")
    t["green"] = time.monotonic() - clock
    run, tis = _tis(server, "pausectl_drift")
    assert out.returncode == 0, (out.stdout + out.stderr)[-4000:]
    assert tis == {("environments", -1): "success", ("drift", 0): "success",
                   ("drift", 1): "success"}, tis
    plans = _xcom(server, run, "plan")
    assert sorted(p["environment"] for p in plans.values()) == ["local", "offline"]
    assert all(p["summary"]["pause"] == p["summary"]["unpause"] == 0 for p in plans.values())
    local = next(p for p in plans.values() if p["environment"] == "local")
    assert local["summary"]["unchanged"] == 3

    # PauseDagsOperator: ops_pauser pauses ops_d, then itself, with reasons
    before = dict(server.query("SELECT dag_id, is_paused FROM dag"))
    clock = time.monotonic()
    out = _dags_test(server, env, "ops_pauser")
    t["pauser"] = time.monotonic() - clock
    prun, tis = _tis(server, "ops_pauser")
    assert tis == {("pause_other", -1): "success", ("pause_me", -1): "success"}, \
        (tis, (out.stdout + out.stderr)[-3000:])
    after = dict(server.query("SELECT dag_id, is_paused FROM dag"))
    assert {d for d in after if after[d] != before.get(d)} == {"ops_d", "ops_pauser"}
    assert after["ops_d"] == 1 and after["ops_pauser"] == 1
    rows = server.query("SELECT dag_id, owner, extra FROM log WHERE event = 'pausectl.pause' "
                        "ORDER BY id")
    by_dag = {d: (o, json.loads(e)) for d, o, e in rows}
    owner, extra = by_dag["ops_d"]
    assert owner == "airflow-task:ops_pauser.pause_other"
    assert extra["reason"] == "warehouse migration [CHG-7]" and extra["ticket"] == "CHG-7"
    assert extra["source"] == "PauseDagsOperator" and extra["run_id"] == prun
    assert by_dag["ops_pauser"][1]["reason"] == "one-shot: stop after this run"
    record = json.loads(server.query(
        "SELECT value FROM xcom WHERE dag_id = 'ops_pauser' AND task_id = 'pause_other' "
        "AND key = 'return_value'")[0][0])
    record = json.loads(record) if isinstance(record, str) else record
    assert record["dag_ids"] == ["ops_d"] and record["by"].endswith("pause_other")

    # and somebody pauses ops_a by hand with the Airflow CLI
    clock = time.monotonic()
    server.airflow("dags", "pause", "ops_a", env=env)
    t["cli"] = time.monotonic() - clock
    clock = time.monotonic()
    out = _dags_test(server, env, "pausectl_drift")
    t["red"] = time.monotonic() - clock
    run, tis = _tis(server, "pausectl_drift")
    text = out.stdout + out.stderr
    envs = {m: p["environment"] for m, p in _xcom(server, run, "plan").items()}
    by_env = {envs[m]: s for (t_, m), s in tis.items() if t_ == "drift"}
    assert by_env == {"local": "failed", "offline": "success"}, (tis, text[-4000:])
    drift = {envs[m]: d for m, d in _xcom(server, run, "drift").items()}
    got = {x["dag_id"]: (x["how"], x["changed_by"]) for x in drift["local"]["drifted"]}
    assert got["ops_a"][0] == "CLI"
    assert got["ops_d"] == ("PauseDagsOperator", "airflow-task:ops_pauser.pause_other")
    assert set(got) == {"ops_a", "ops_d"}
    assert "local: 2 DAG(s) drifted from git: ops_a (paused by" in text
    assert "via CLI" in text and "via operator" in text
    state = server.query("SELECT state FROM dag_run WHERE run_id = ?", (run,))[0][0]
    assert state == "failed"

    # PauseReconcileOperator(mode="apply") puts git's state back, with metrics (a direct
    # execute inside the Airflow venv: the task runner part is what `dags test` proved above)
    clock = time.monotonic()
    metrics = root / "metrics" / "local.prom"
    out = run_python(server, f"""
        import json
        from reconciler.airflow import PauseReconcileOperator
        class TI:
            def __init__(self): self.pushed = {{}}
            def xcom_push(self, key, value): self.pushed[key] = value
        ti = TI()
        op = PauseReconcileOperator(task_id="apply_local", env="local", mode="apply",
                                    batches="100%", metrics_file={str(metrics)!r})
        res = op.execute({{"ti": ti}})
        pushed = sorted(ti.pushed)
        # mode gate: `pausectl apply --gate-only` through the same operation, on that journal
        gate = PauseReconcileOperator(task_id="gate_local", env="local",
                                      mode="gate").execute({{"ti": ti}})
        print(json.dumps({{"apply": res["apply"], "pushed": pushed,
                          "changes": [c["dag_id"] for c in res["plan"]["changes"]],
                          "gate": [gate["gate"]["passed"], gate["gate"]["dags"],
                                   gate["journal_status"], "gate" in ti.pushed]}}))
    """, env=env)
    t["apply"] = time.monotonic() - clock
    print("timings", {k: round(v, 1) for k, v in t.items()})
    assert out.returncode == 0, out.stderr[-3000:]
    res = last_json_line(out.stdout)
    assert res["apply"]["status"] == "done" and res["apply"]["changed"] == 2
    assert sorted(res["changes"]) == ["ops_a", "ops_d"] and res["pushed"] == ["drift", "plan"]
    assert res["gate"] == [True, 2, "done", True]
    states = dict(server.query("SELECT dag_id, is_paused FROM dag"))
    assert states["ops_a"] == 0 and states["ops_d"] == 0 and states["ops_b"] == 1
    owners = server.query("SELECT DISTINCT owner FROM log WHERE event = 'pausectl.unpause'")
    assert owners == [("gitops",)]
    # the journal is mirrored into an Airflow Variable (a worker's disk may be gone later)
    assert server.query("SELECT key FROM variable WHERE key = 'pausectl.journal.local'")
    from prometheus_client.parser import text_string_to_metric_families
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for f in text_string_to_metric_families(metrics.read_text()) for s in f.samples}
    assert samples[("pausectl_drift_dags", (("env", "local"),))] == 0
    assert samples[("pausectl_plan_changes", (("action", "unpause"), ("env", "local")))] == 2


AF2_SCRIPT = r"""
import json
from airflow.models.baseoperator import ExecutorSafeguard
from airflow.models.dagbag import DagBag
from reconciler.airflow import PauseDagsOperator, PauseReconcileOperator
ExecutorSafeguard.test_mode = True      # allow execute() outside a task instance, as AF2's tests do
bag = DagBag(dag_folder=EXAMPLE, include_examples=False)
dag = bag.get_dag("pausectl_drift")
out = {"import_errors": {k: v[-300:] for k, v in bag.import_errors.items()},
       "tasks": sorted(dag.task_ids) if dag else None}

class TI:
    dag_id, run_id = "ops_af2", "manual__1"
    def __init__(self): self.pushed = {}
    def xcom_push(self, key, value): self.pushed[key] = value

ti = TI()
res = PauseReconcileOperator(task_id="drift", env="local", state=STATE, mode="drift",
                             local_env="local").execute({"ti": ti})
out["drift"] = {"drifted": res["drift"]["drifted"], "summary": res["plan"]["summary"],
                "pushed": sorted(ti.pushed)}
rec = PauseDagsOperator(task_id="pause_other", dag_ids="etl_003", paused=False,
                        reason="backfill window", ticket="DATA-5").execute({"ti": ti})
out["pause"] = rec
try:
    PauseReconcileOperator(task_id="bad", env="local", state=STATE, mode="drift",
                           local_env="local").execute({"ti": ti})
except Exception as e:
    out["failed"] = f"{type(e).__name__}: {e}"
print(json.dumps(out, default=str))
"""


def test_operators_and_example_dag_on_airflow2(airflow2, tmp_path):
    """Airflow 2.11.2: the example DAG parses (DagBag), and both operators run against the
    session server's DB through the dagmodel backend (direct execute, no task runner)."""
    server = airflow2
    server.reset()
    state = tmp_path / "state"
    state.mkdir()
    (state / "pausectl.yaml").write_text("environments:\n  local:\n    backend: {type: dagmodel}\n")
    (state / "local.yaml").write_text("environment: local\ndefaults: {unmanaged: ignore}\ndags:\n"
                                      "  etl_003: {paused: true, reason: r, owner: o}\n")
    example = REPO / "reconciler" / "airflow" / "example_dags" / "pausectl_drift.py"
    try:
        out = run_python(server, f"EXAMPLE = {str(example)!r}\nSTATE = {str(state)!r}\n"
                         + AF2_SCRIPT, env={"PAUSECTL_STATE_REPO": str(state)})
        assert out.returncode == 0, out.stderr[-3000:]
        data = last_json_line(out.stdout)
        assert data["import_errors"] == {} and data["tasks"] == ["drift", "environments"]
        assert data["drift"]["drifted"] == [] and data["drift"]["pushed"] == ["drift", "plan"]
        assert data["drift"]["summary"]["unchanged"] == 1
        assert data["pause"]["dag_ids"] == ["etl_003"] and data["pause"]["paused"] is False
        # the operator's unpause is a live change against git: the drift task now fails
        assert data["failed"].startswith("AirflowException: local: 1 DAG(s) drifted from git: "
                                         "etl_003 (unpaused by airflow-task:ops_af2.pause_other")
        row = server.query("SELECT owner, extra FROM log WHERE event = 'pausectl.unpause' "
                           "AND dag_id = 'etl_003' ORDER BY id DESC LIMIT 1")[0]
        assert row[0] == "airflow-task:ops_af2.pause_other"
        assert json.loads(row[1])["reason"] == "backfill window [DATA-5]"
    finally:
        server.reset()
