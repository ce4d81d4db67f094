"""Runs in flight (running or queued) of many DAGs in few requests: what a drain polls.

Airflow's batch endpoint `POST /dags/~/dagRuns/list` (v2 on Airflow 3, v1 on Airflow 2, the
same body on 2.9.3 through 3.3.2: dag_ids, states, order_by, page_offset, page_limit) filters
by state on the server, so one request answers for a whole batch of DAGs: a run in flight
started long ago (or, queued, has no start date) is found as well as a new one. Neither
version has a `draining` state of its own (read in every venv's source: the word appears only
for executor events and the triggerer), so the drain is pausectl's (apply/drain.py).
"""

from __future__ import annotations

from typing import Iterable

from reconciler.live.base import DagRun
from reconciler.live.rest.errors import parse_time

IN_FLIGHT = ("queued", "running")
PATH = "/dags/~/dagRuns/list"
IDS_PER_REQUEST = 2000     # a SQL IN list per request, well under SQLite's bound values
PAGE = 1000                # runs per page; a drained DAG has few (max_active_runs)


def runs_in_flight(backend, dag_ids: Iterable[str]) -> list[DagRun]:
    """`backend`: the AirflowApiBackend (its request path: auth, retries, byte cap)."""
    ids = sorted(set(dag_ids))
    found: list[DagRun] = []
    for first in range(0, len(ids), IDS_PER_REQUEST):
        body = {"dag_ids": ids[first:first + IDS_PER_REQUEST], "states": list(IN_FLIGHT),
                "order_by": "id", "page_limit": PAGE, "page_offset": 0}
        while len(found) < 1_000_000:
            _, data = backend._call("POST", PATH, json_body=body)
            rows = backend._rows(data, "dag_runs", PATH)
            found.extend(DagRun(dag_id=str(r.get("dag_id") or ""),
                                run_id=str(r.get("dag_run_id") or r.get("run_id") or ""),
                                state=str(r.get("state") or ""),
                                start_date=parse_time(r.get("start_date"))) for r in rows)
            body["page_offset"] += len(rows)
            total = data.get("total_entries")
            done = body["page_offset"] >= total if isinstance(total, int) else len(rows) < PAGE
            if not rows or done:
                break
    # only what was asked, in flight: a server that ignored a filter cannot widen the answer
    wanted = set(ids)
    return [r for r in found if r.dag_id in wanted and r.state in IN_FLIGHT]
