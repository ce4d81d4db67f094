"""Read-only extras of the REST API that `pausectl doctor` uses beyond the Backend protocol:
DAG details (start_date, catchup, max_active_runs, active runs), import errors of a DAG's file,
and task instances waiting to start. Same shapes as the dagmodel backend's methods.

The backend's Diagnostics methods (base.Diagnostics) delegate here; they go through its own
request path (auth, retries, one-line errors):
    v2 (AF3): GET /dags/{id}/details, /dags/{id}/dagRuns?state=..., /importErrors?filename=
              &bundle_name=, /dags/{id}/dagRuns/~/taskInstances?state=..., /pools
    v1 (AF2): the same paths; /importErrors has no filter there, so it is paged and matched
              on the DAG's fileloc.
"""

from __future__ import annotations

from typing import Any, Iterable
from urllib.parse import quote


def _int(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


class ApiExtras:
    def __init__(self, backend):
        self.b = backend

    def _get(self, path: str, **params) -> tuple[int, Any]:
        resp, data = self.b._call("GET", path, params=params or None, allow=(404,))
        return resp.status_code, data

    def _total(self, path: str, **params) -> int | None:
        status, data = self._get(path, limit=1, **params)
        return _int(data.get("total_entries")) if status == 200 and isinstance(data, dict) \
            else None

    def dag_details(self, dag_id: str) -> dict | None:
        q = quote(dag_id, safe="")
        status, d = self._get(f"/dags/{q}/details")
        if status == 404 or not isinstance(d, dict):
            return None
        summary, next_run = self.b.dialect.details_fields(d)
        return {
            "dag_id": dag_id, "is_paused": bool(d.get("is_paused")),
            "start_date": d.get("start_date"), "end_date": d.get("end_date"),
            "catchup": d.get("catchup"), "max_active_runs": _int(d.get("max_active_runs")),
            "max_active_tasks": _int(d.get("max_active_tasks")),
            "max_consecutive_failed_dag_runs": _int(d.get("max_consecutive_failed_dag_runs")),
            "timetable_summary": summary,
            "timetable_description": d.get("timetable_description"),
            "next_dagrun_run_after": next_run,
            "fileloc": d.get("fileloc"), "relative_fileloc": d.get("relative_fileloc"),
            "bundle_name": d.get("bundle_name"),
            "running_runs": self._total(f"/dags/{q}/dagRuns", state="running"),
            "queued_runs": self._total(f"/dags/{q}/dagRuns", state="queued"),
        }

    def import_errors(self, dag_id: str) -> list[dict]:
        q = quote(dag_id, safe="")
        status, d = self._get(f"/dags/{q}")
        if status == 404 or not isinstance(d, dict):
            return []
        params, most, keep = self.b.dialect.import_errors_query(d)
        rows = [r for r in self.b._get_all("/importErrors", params, "import_errors",
                                           max_items=most) if keep(r)]
        rows.sort(key=lambda r: str(r.get("timestamp") or ""), reverse=True)
        return [{"filename": r.get("filename"), "timestamp": r.get("timestamp"),
                 "stacktrace": r.get("stack_trace") or r.get("stacktrace") or ""} for r in rows]

    def task_instances(self, dag_id: str, states: Iterable[str]) -> list[dict]:
        q = quote(dag_id, safe="")
        rows = self.b._get_all(f"/dags/{q}/dagRuns/~/taskInstances", {"state": list(states)},
                               "task_instances", max_items=500)
        pools = {p.get("name"): _int(p.get("slots"))
                 for p in self.b._get_all("/pools", {}, "pools", max_items=1000)}
        out = [{"run_id": r.get("dag_run_id") or r.get("run_id"), "task_id": r.get("task_id"),
                "map_index": r.get("map_index"), "state": r.get("state"),
                "pool": r.get("pool"), "pool_slots": pools.get(r.get("pool")),
                "queued_when": r.get("queued_when")} for r in rows]
        out.sort(key=lambda t: (t["queued_when"] or "", t["run_id"] or "", t["task_id"] or ""))
        return out
