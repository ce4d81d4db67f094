"""What differs between Airflow's REST v2 (Airflow 3) and v1 (Airflow 2), in one object per
API, so that nothing else in the backend asks which API it talks to. Per-version facts
within an API (bulk scope, pattern syntax, event values) are the Capabilities
(reconciler/live/capabilities.py) read from /version; the dialect carries them too."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Callable

from reconciler.live.capabilities import Capabilities
from reconciler.live.rest.errors import parse_time

Call = Callable[..., Any]            # the backend's _call(method, path, **kw)


class Dialect:
    api = ""
    password_flavour = ""            # what auth: password-token uses (auth.py)
    ambiguous_403 = False            # a 403 may mean bad credentials
    runs_order = ""                  # order_by for the newest runs first
    unknown_dag_runs_empty = False   # an unknown DAG's dagRuns answer an empty list, not 404
    assets = ("", "", (), "")        # (path, list key, consumer keys, name key)

    def __init__(self, caps: Capabilities | None = None):
        self.caps = caps

    def dag_params(self) -> dict:
        """Filters that list every DAG, stale ones included."""
        raise NotImplementedError

    def dag_fields(self, d: dict) -> tuple[bool, str | None, str | None]:
        """(is_stale, timetable summary, next run) of one DAG row."""
        raise NotImplementedError

    def details_fields(self, d: dict) -> tuple[str | None, str | None]:
        """(timetable summary, next run) of one DAG details answer."""
        _, timetable, next_run = self.dag_fields(d)
        return timetable, next_run

    def bulk_filters(self, paused: bool) -> dict:
        """The bulk PATCH's filters besides the pattern, setting is_paused to `paused`."""
        raise NotImplementedError

    def run_after(self, r: dict) -> datetime | None:
        raise NotImplementedError

    def import_errors_query(self, d: dict) -> tuple[dict, int, Callable[[dict], bool]]:
        """(params, most rows, keep) to find the import errors of DAG details `d`'s file."""
        raise NotImplementedError

    def set_variable(self, call: Call, path: str, body: dict) -> None:
        raise NotImplementedError

    def create_variable(self, call: Call, get: Callable[[], Any], body: dict) -> bool:
        """Create if absent; True if the server answered "created"."""
        raise NotImplementedError


class V2(Dialect):
    api = "v2"
    password_flavour = "jwt"
    runs_order = "-run_after"
    assets = ("/assets", "assets", ("scheduled_dags", "consuming_tasks"), "name")

    def dag_params(self) -> dict:
        return {"exclude_stale": "false"}

    def dag_fields(self, d: dict) -> tuple[bool, str | None, str | None]:
        return (bool(d.get("is_stale", False)), d.get("timetable_summary"),
                d.get("next_dagrun_run_after"))

    def bulk_filters(self, paused: bool) -> dict:
        # only DAGs at the other state: what one PATCH flips leaves the filter (bulk.py)
        return {"exclude_stale": "false", "paused": "false" if paused else "true"}

    def run_after(self, r: dict) -> datetime | None:
        return parse_time(r.get("run_after"))

    def import_errors_query(self, d: dict) -> tuple[dict, int, Callable[[dict], bool]]:
        params = {"filename": d.get("relative_fileloc") or d.get("fileloc")}
        if d.get("bundle_name"):
            params["bundle_name"] = d["bundle_name"]
        return params, 50, lambda r: True

    def set_variable(self, call: Call, path: str, body: dict) -> None:
        resp, _ = call("PATCH", path, json_body=body, allow=(404,))
        if resp.status_code == 404:
            resp, _ = call("POST", "/variables", json_body=body, allow=(409,))
            if resp.status_code == 409:     # created meanwhile: overwrite
                call("PATCH", path, json_body=body)

    def create_variable(self, call: Call, get: Callable[[], Any], body: dict) -> bool:
        resp, _ = call("POST", "/variables", json_body=body, allow=(409,))
        return resp.status_code != 409


class V1(Dialect):
    api = "v1"
    password_flavour = "session"
    ambiguous_403 = True
    runs_order = "-execution_date"
    unknown_dag_runs_empty = True
    assets = ("/datasets", "datasets", ("consuming_dags",), "uri")

    def dag_params(self) -> dict:
        return {"only_active": "false"}

    def dag_fields(self, d: dict) -> tuple[bool, str | None, str | None]:
        return (not bool(d.get("is_active", True)),
                d.get("timetable_summary") or v1_schedule(d),
                d.get("next_dagrun_create_after") or d.get("next_dagrun"))

    def bulk_filters(self, paused: bool) -> dict:
        return {"only_active": "false"}     # no `paused` filter: connexion answers 400

    def run_after(self, r: dict) -> datetime | None:
        return (parse_time(r.get("data_interval_end"))
                or parse_time(r.get("execution_date") or r.get("logical_date")))

    def import_errors_query(self, d: dict) -> tuple[dict, int, Callable[[dict], bool]]:
        # /importErrors has no filter on v1: page it and match the DAG's fileloc
        return {}, 5000, lambda r: r.get("filename") == d.get("fileloc")

    def set_variable(self, call: Call, path: str, body: dict) -> None:
        call("POST", "/variables", json_body=body)      # AF2: POST /variables is an upsert

    def create_variable(self, call: Call, get: Callable[[], Any], body: dict) -> bool:
        if get() is not None:             # AF2: POST is a plain upsert, so look first
            return False
        call("POST", "/variables", json_body=body)
        return True


def dialect_for(api: str, caps: Capabilities | None = None) -> Dialect:
    if api not in ("v1", "v2"):
        raise ValueError(f"unknown REST API {api!r}")
    return (V2 if api == "v2" else V1)(caps)


def v1_schedule(d: dict) -> str | None:
    """AF2 schedule_interval -> the text AF3 puts in timetable_summary."""
    si = d.get("schedule_interval")
    if si is None:
        return None
    if isinstance(si, dict):
        kind = si.get("__type")
        if kind == "CronExpression":
            return si.get("value")
        if kind == "TimeDelta":
            return str(timedelta(days=si.get("days", 0), seconds=si.get("seconds", 0),
                                 microseconds=si.get("microseconds", 0)))
        return d.get("timetable_description") or str(si.get("value") or kind)
    return str(si)
