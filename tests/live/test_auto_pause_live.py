"""drift.auto_paused on a real Airflow 3.3.2: the scheduler's auto-pause, reproduced through
Airflow's own ORM in the server's venv (N failed DagRuns, then the scheduler's own
`DagRun._check_last_n_dagruns_failed`, which sets is_paused and writes
`Log(event="paused", owner="scheduler", extra="[('dag_id', ..), ('is_paused', True)]")`),
is held by `pausectl plan/apply` (keep), reported by drift, and released by a later commit to
its rule. The test removes what it added to the shared server (runs, log rows) at the end.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

from helpers import REPO, write_files
from reconciler.state.schema import validate_json

DAG = "ml_027"          # a healthy standard DAG no other test pauses by name
ENV = "live"
FAILED = 3

# The scheduler's write, as DagRun.update_state does it when a run of a DAG with
# max_consecutive_failed_dag_runs fails (read in airflow/models/dagrun.py, 3.3.2).
_SCHEDULER = """\
import json, sys
from datetime import datetime, timedelta, timezone
from airflow.models.dag import DagModel
from airflow.models.dagrun import DagRun
from airflow.utils.session import create_session
from airflow.utils.state import DagRunState
from airflow.utils.types import DagRunType

dag_id, n = sys.argv[1], int(sys.argv[2])
now = datetime.now(timezone.utc).replace(microsecond=0)
with create_session() as session:
    runs = []
    for i in range(n):
        when = now - timedelta(minutes=n - i)
        run = DagRun(dag_id=dag_id, run_id=f"scheduled__{when.isoformat()}",
                     run_type=DagRunType.SCHEDULED, state=DagRunState.FAILED, start_date=when,
                     logical_date=when, run_after=when,
                     data_interval=(when - timedelta(minutes=1), when))
        run.end_date = when
        session.add(run)
        runs.append(run)
    session.flush()
    runs[-1]._check_last_n_dagruns_failed(dag_id, n, session)
    session.flush()
    print(json.dumps({"paused": bool(session.get(DagModel, dag_id).is_paused),
                      "runs": [r.run_id for r in runs]}))
"""


def auto_pause(server, dag_id: str, n: int) -> dict:
    out = subprocess.run([str(server.venv / "bin" / "python"), "-c", _SCHEDULER, dag_id, str(n)],
                         env={**server.env, "PYTHONWARNINGS": "ignore"}, cwd=server.home,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def git(root: Path, *args: str, date: datetime | None = None) -> str:
    env = dict(os.environ)
    if date is not None:
        env.update(GIT_AUTHOR_DATE=date.isoformat(), GIT_COMMITTER_DATE=date.isoformat())
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, text=True,
                          env=env).stdout


def pausectl(root: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "AF_USER": "admin", "AF_PASS": "admin", "COLUMNS": "200",
           "PAUSECTL_JOURNAL_DIR": str(root / "journal"),
           "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    r = subprocess.run([sys.executable, "-m", "reconciler", *args], cwd=root, env=env,
                       capture_output=True, text=True, timeout=300)
    assert "Traceback" not in r.stderr, r.stderr
    return r


def paused(server) -> bool:
    return bool(server.query("SELECT is_paused FROM dag WHERE dag_id = ?", (DAG,))[0][0])


def rule(reason: str) -> str:
    return (f"environment: {ENV}\ndefaults: {{unmanaged: ignore}}\ndags:\n  {DAG}:\n"
            f"    paused: false\n    reason: \"{reason}\"\n    owner: ml-team\n")


def test_apply_keeps_airflows_auto_pause_until_a_git_change(airflow3, tmp_path):
    server = airflow3
    root = tmp_path
    write_files(root / "state", {
        "pausectl.yaml": (f"environments:\n  {ENV}:\n    backend: {{type: airflow-api, "
                          f"url: '{server.url}', auth: password-token, username_env: AF_USER, "
                          f"password_env: AF_PASS}}\nsafety: {{max_changes: 50}}\n"),
        f"{ENV}.yaml": rule("ml runs everywhere")})
    git(root, "init", "-q", "-b", "main")
    git(root, "-c", "user.name=T", "-c", "user.email=t@example.com", "add", "-A")
    git(root, "-c", "user.name=T", "-c", "user.email=t@example.com", "commit", "-qm", "init",
        date=datetime.now(timezone.utc) - timedelta(days=1))
    (first_log,) = server.query("SELECT COALESCE(MAX(id), 0) FROM log")[0]
    with contextlib.closing(sqlite3.connect(server.db_path, timeout=30)) as db, db:
        db.execute("UPDATE dag SET is_paused = 0 WHERE dag_id = ?", (DAG,))
    made = auto_pause(server, DAG, FAILED)
    try:
        assert made["paused"] and paused(server)
        # what the scheduler wrote, as the API serves it
        (row,) = server.query("SELECT event, owner, extra FROM log WHERE id > ? AND dag_id = ?",
                              (first_log, DAG))
        assert row == ("paused", "scheduler", f"[('dag_id', '{DAG}'), ('is_paused', True)]")

        r = pausectl(root, "plan", ENV, "--format", "json")
        assert r.returncode == 0, r.stdout + r.stderr
        plan = json.loads(r.stdout)
        assert validate_json(plan, "plan.schema.json") == []
        assert plan["changes"] == []
        (held,) = plan["held"]
        assert held["dag_id"] == DAG
        assert held["why"].startswith(f"auto-paused by Airflow after {FAILED} failed runs at ")
        a = held["auto_paused"]
        assert (a["by"], a["outcome"], a["failed_runs"]) == ("scheduler", "held", FAILED)
        assert [x["run_id"] for x in a["runs"]] == made["runs"][::-1]

        r = pausectl(root, "apply", ENV, "--yes")
        assert r.returncode == 0, r.stdout + r.stderr
        assert f"held     {DAG}  auto-paused by Airflow after {FAILED} failed runs" in r.stdout
        assert paused(server)
        assert server.query("SELECT COUNT(*) FROM log WHERE id > ? AND dag_id = ? AND "
                            "event = 'patch_dag'", (first_log, DAG)) == [(0,)]

        r = pausectl(root, "drift", ENV, "--format", "json")
        (rep,) = json.loads(r.stdout)["environments"]
        assert rep["drifted"] == [] and [x["dag_id"] for x in rep["auto_paused"]] == [DAG]
        assert rep["auto_paused"][0]["changed_by"] == "scheduler"

        # a human acts in git, after the auto-pause: the next apply unpauses it
        write_files(root / "state", {f"{ENV}.yaml": rule("ml runs everywhere; fixed")})
        git(root, "-c", "user.name=T", "-c", "user.email=t@example.com", "commit", "-qam", "fix")
        r = pausectl(root, "apply", ENV, "--yes", "--batches", "100%", "--wait-seconds", "0")
        assert r.returncode == 0, r.stdout + r.stderr
        assert not paused(server)
    finally:
        with contextlib.closing(sqlite3.connect(server.db_path, timeout=30)) as db, db:
            db.execute("DELETE FROM log WHERE id > ? AND dag_id = ?", (first_log, DAG))
            db.executemany("DELETE FROM dag_run WHERE dag_id = ? AND run_id = ?",
                           [(DAG, run_id) for run_id in made["runs"]])
            db.execute("UPDATE dag SET is_paused = 1 WHERE dag_id = ?", (DAG,))
