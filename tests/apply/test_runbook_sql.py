"""docs/runbook.md's manual DB fix, run as written against the SQLite metadata DB of real
Airflow 3.3.2 and 2.11.2: exactly the named DAGs change, Airflow's API still serves its audit
log (and shows the row), and pausectl's dagmodel backend attributes the change."""

from __future__ import annotations

import contextlib
import re
import sqlite3

import httpx

from doctest_md import REPO
from inside_airflow import last_json_line, run_python
from reconciler.live.airflow_api import AirflowApiBackend

IDS = {"etl_orders": "etl_004", "etl_customers": "etl_009"}


def runbook_sql() -> str:
    text = (REPO / "docs" / "runbook.md").read_text()
    section = text[text.index("## pausectl cannot reach Airflow"):]
    return re.search(r"```sql\n(.*?)\n```", section, re.S).group(1)


def test_the_manual_sql_fix_works_on_real_airflow(airflow_server):
    server = airflow_server
    server.reset()
    sql = runbook_sql()
    for doc_id, real in IDS.items():
        sql = sql.replace(f"'{doc_id}'", f"'{real}'")
    assert "etl_orders" not in sql
    try:
        with contextlib.closing(sqlite3.connect(server.db_path, timeout=30)) as db:
            with db:
                db.executemany("UPDATE dag SET is_paused = 0 WHERE dag_id = ?",
                               [(d,) for d in IDS.values()])
            before = dict(db.execute("SELECT dag_id, is_paused FROM dag").fetchall())
            db.executescript(sql)
            after = dict(db.execute("SELECT dag_id, is_paused FROM dag").fetchall())
        assert {d for d in after if after[d] != before[d]} == set(IDS.values())
        assert all(after[d] == 1 for d in IDS.values())

        # Airflow's API sees the pause and still serves its audit log, with our row in it
        api = AirflowApiBackend("live", {"type": "airflow-api", "url": server.url,
                                         "username_env": "U", "password_env": "P"},
                                env={"U": server.username, "P": server.password})
        with api:
            live = {d.dag_id: d.is_paused for d in api.list_dags()}
            api.audit_events(list(IDS.values()))
        assert all(live[d] is True for d in IDS.values())
        r = httpx.get(f"{server.api_url}/eventLogs", params={"dag_id": "etl_004"},
                      headers=server.auth_headers(), timeout=30)
        assert r.status_code == 200, r.text[:500]
        rows = [e for e in r.json()["event_logs"] if e["event"] == "pausectl.pause"]
        assert rows and rows[0]["owner"] == "oncall:alice"

        # the dagmodel backend attributes it: by whom, how, why
        out = run_python(server, """
            import json
            from reconciler.live.dagmodel import DagModelBackend
            evs = DagModelBackend("live", {}).audit_events(["etl_004"])
            print(json.dumps([[e.user, e.via, e.is_paused, e.detail] for e in evs]))
        """)
        assert out.returncode == 0, out.stderr[-3000:]
        assert last_json_line(out.stdout)[0] == ["oncall:alice", "manual-sql", True,
                                                 "INC-500: API down"]
    finally:
        server.reset()
