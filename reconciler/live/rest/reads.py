"""The airflow-api backend's reads: paging, DAGs, the event log, runs, Variables, assets."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Iterable
from urllib.parse import quote

from reconciler.core import progress
from reconciler.live.base import AssetEdge, AuditEvent, DagRun, LiveDag
from reconciler.live.events import attribute, bulk_event_names, event_names, normalise_rows
from reconciler.live.patterns import chunk_terms
from reconciler.live.rest.errors import parse_time

_DAG_FIELDS = (("dag_id", (str,), "a string"), ("is_paused", (bool, type(None)), "a boolean"),
               ("is_stale", (bool, type(None)), "a boolean"),
               ("is_active", (bool, type(None)), "a boolean"),
               ("has_import_errors", (bool, type(None)), "a boolean"),
               ("tags", (list, type(None)), "a list"), ("owners", (list, str, type(None)), "a list"))


def dag_field_error(row: dict) -> str | None:
    """`field as TYPE, not EXPECTED` for the first DAG field of the wrong JSON type."""
    for name, types, expected in _DAG_FIELDS:
        value = row.get(name)
        if not isinstance(value, types) or (name == "dag_id" and not value):
            return f"{name} as {type(value).__name__}, not {expected}"
    return None


#: DAG ids per batch-runs request (a SQL IN list: SQLite >= 3.32 allows 32,766 bound values)
RUN_IDS_PER_REQUEST = 5000
#: terms per scoped listing (policy/scope.py): with `|` a few requests' worth; without `|`
#: each term costs a request; its fixed price grows with the DAGs on the server (AIRFLOW.md),
#: so on a big server 8 are far cheaper than its full listing, on a small one cheap anyway
SCOPE_TERMS_OR, SCOPE_TERMS_ONE_BY_ONE = 200, 8
#: runs per batch-runs page (an AF3 run is ~1 KB of JSON: well under the response byte cap)
RUNS_PAGE = 5000


class Reads:
    """Mixed into AirflowApiBackend (which provides _call, dialect, caps, page_size, ...)."""

    # ---------------------------------------------------------------- paging

    def _get_all(self, path: str, params: dict, key: str, *,
                 max_items: int | None = None, parallel: bool = False) -> list[dict]:
        """Page through a collection by offset. Never assumes `limit` was honoured."""
        out: list[dict] = []
        offset = 0
        limit = self.page_size if max_items is None else min(self.page_size, max_items)
        pages = 0
        while True:
            _, data = self._call("GET", path, params={**params, "limit": limit, "offset": offset})
            rows = self._rows(data, key, path)
            total = data.get("total_entries") if isinstance(data, dict) else None
            out.extend(rows)
            pages += 1
            offset += len(rows)
            if not rows or (max_items is not None and len(out) >= max_items):
                break
            if isinstance(total, int):
                if offset >= total:
                    break
            elif len(rows) < limit:
                break
            if parallel and pages == 1 and isinstance(total, int) and total > offset:
                rest = self._pages_parallel(path, params, key, limit, step=len(rows),
                                            start=offset, total=total)
                if rest is None:        # the server moved under us: read it again in order
                    return self._get_all(path, params, key, max_items=max_items)
                out.extend(rest)
                break
            if pages > 100_000:
                break
        return out if max_items is None else out[:max_items]

    def _pages_parallel(self, path: str, params: dict, key: str, limit: int, step: int,
                        start: int, total: int) -> list[dict] | None:
        """Pages after the first, concurrently; None if any page but the last came back short."""
        offsets = list(range(start, total, step))

        def one(off: int) -> tuple[int, list[dict]]:
            _, data = self._call("GET", path, params={**params, "limit": limit, "offset": off})
            return off, self._rows(data, key, path)

        results = dict(self._executor().map(one, offsets))
        if any(len(results[o]) < step for o in offsets[:-1]):
            return None
        return [row for off in offsets for row in results[off]]

    def _rows(self, data: Any, key: str, path: str) -> list[dict]:
        rows = data.get(key) if isinstance(data, dict) else None
        if not isinstance(rows, list):
            raise self._error(f"{self.name}: GET {self._api_url(path)} returned no {key!r} list")
        for i, r in enumerate(rows):
            if not isinstance(r, dict):     # dropping it would make a DAG look missing
                raise self._error(f"{self.name}: GET {self._api_url(path)} returned "
                                  f"{key}[{i}] as {type(r).__name__}, not an object")
            bad = dag_field_error(r) if key == "dags" else None
            if bad:                         # "false" read as truthy would be a paused DAG
                raise self._error(f"{self.name}: GET {self._api_url(path)} returned "
                                  f"{key}[{i}].{bad}")
        return rows

    # ---------------------------------------------------------------- DAGs

    def _dag_params(self) -> dict:
        self._ensure_ready()
        return self.dialect.dag_params()

    def list_dags(self) -> list[LiveDag]:
        with progress.task(f"{self.name}: listing DAGs"):      # a spinner on a terminal
            rows = self._get_all("/dags", {**self._dag_params(), "order_by": "dag_id"}, "dags",
                                 parallel=self.parallel_pages)
        seen = self._first_of_each(rows)
        self._known = {d: v.is_paused for d, v in seen.items()}  # guides bulk patterns
        self._scope = None
        return list(seen.values())

    def scope_terms_limit(self) -> int:
        """How many terms a scoped listing may carry (ScopedListing): with `|` (3.2.1+) as
        many as fit in a few patterns; without, each term is its own paged read."""
        self._ensure_ready()
        return SCOPE_TERMS_OR if self.caps().pattern_or else SCOPE_TERMS_ONE_BY_ONE

    def list_dags_matching(self, terms: list[str]) -> list[LiveDag]:
        """The DAGs whose dag_id contains a term (ILIKE: a superset; policy/scope.py), in
        dag_id order, with the same fields and checks as list_dags."""
        params = {**self._dag_params(), "order_by": "dag_id"}
        chunks = chunk_terms(list(terms), self.max_pattern_length, self.caps().pattern_or)
        if sum(map(len, chunks)) < len(terms):      # a term too long for one pattern
            return self.list_dags()
        with progress.task(f"{self.name}: listing the DAGs the rules can match"):
            rows = [row for chunk in chunks for row in self._get_all(
                "/dags", {**params, "dag_id_pattern": "|".join(chunk)}, "dags")]
        out = sorted(self._first_of_each(rows).values(), key=lambda d: d.dag_id)
        self._known = {d.dag_id: d.is_paused for d in out}  # bulk terms stay within the scope
        self._scope = list(terms)
        return out

    def _first_of_each(self, rows: Iterable[dict]) -> dict[str, LiveDag]:
        """The rows as LiveDags by dag_id, the first row of a repeated id kept (a server that
        pages under a moving listing may send one twice)."""
        seen: dict[str, LiveDag] = {}
        for row in rows:
            dag = self._live_dag(row)
            if dag is not None and dag.dag_id not in seen:
                seen[dag.dag_id] = dag
        return seen

    def _live_dag(self, d: dict) -> LiveDag | None:
        dag_id = d.get("dag_id")
        if not isinstance(dag_id, str):
            return None
        tags = tuple(t.get("name") if isinstance(t, dict) else str(t) for t in d.get("tags") or ())
        tags = tuple(t for t in tags if t)
        owners = d.get("owners") or ()
        if isinstance(owners, str):
            owners = [o.strip() for o in owners.split(",") if o.strip()]
        mar = d.get("max_active_runs")
        is_stale, timetable, next_run = self.dialect.dag_fields(d)
        return LiveDag(
            dag_id=dag_id, is_paused=bool(d.get("is_paused")), tags=tags,
            owners=tuple(str(o) for o in owners), is_stale=is_stale,
            has_import_errors=bool(d.get("has_import_errors", False)),
            fileloc=d.get("fileloc"), last_parsed_time=d.get("last_parsed_time"),
            timetable_summary=timetable, next_dagrun_run_after=next_run,
            max_active_runs=mar if isinstance(mar, int) and not isinstance(mar, bool) else None,
        )

    # ---------------------------------------------------------------- audit events

    def audit_events(self, dag_ids: Iterable[str] | None = None,
                     since: datetime | None = None) -> list[AuditEvent]:
        """Pause events (events.py), newest first. With dag_ids: each DAG's own events plus
        every bulk-pattern and CLI-regex event that matches it, attributed to that DAG."""
        caps = self.caps()
        ids = None if dag_ids is None else set(dag_ids)
        if ids is not None and not ids:
            return []
        names = event_names(caps)
        base: dict[str, Any] = {"order_by": "-when"}
        if since is not None:
            since = since if since.tzinfo else since.replace(tzinfo=timezone.utc)
            base["after"] = since.astimezone(timezone.utc).isoformat()

        def inc(events: Iterable[str]) -> dict:
            events = list(events)
            return {"included_events": ",".join(events) if caps.included_events_csv
                    else events}

        raw: list[dict] = []
        if ids is not None and len(ids) == 1:
            (only,) = ids
            raw += self._get_all("/eventLogs", {**base, **inc(names), "dag_id": only},
                                 "event_logs", max_items=self.audit_limit)
            # rows whose dag_id column does not name the DAG: bulk patterns, CLI regexes
            raw += self._get_all("/eventLogs", {**base, **inc(bulk_event_names(caps) + (
                "cli_dag_pause", "cli_dag_unpause"))}, "event_logs", max_items=self.audit_limit)
        else:
            raw += self._get_all("/eventLogs", {**base, **inc(names)}, "event_logs",
                                 max_items=self.audit_limit)
        out = normalise_rows(((r.get("event_log_id", id(r)), r.get("event"), r.get("dag_id"),
                               r.get("owner"), parse_time(r.get("when")), r.get("extra"))
                              for r in raw), caps, since)
        return attribute(out, ids, caps)[: self.audit_limit]

    # ---------------------------------------------------------------- dag runs

    def dag_runs(self, dag_id: str, limit: int = 25) -> list[DagRun]:
        self._ensure_ready()
        rows = self._get_all(f"/dags/{quote(dag_id, safe='')}/dagRuns",
                             {"order_by": self.dialect.runs_order}, "dag_runs",
                             max_items=max(1, int(limit)))
        if not rows and self.dialect.unknown_dag_runs_empty:
            self._call("GET", f"/dags/{quote(dag_id, safe='')}")     # 404 if it does not exist
        return [self._run(r, dag_id) for r in rows]

    def dag_runs_since(self, dag_ids: Iterable[str], since: datetime) -> list[DagRun]:
        """Runs of many DAGs that finished at or after `since` (BatchedRuns, for gates and
        soak, which count finished runs; gates.runs_since keeps those started since or never
        started): `POST /dags/~/dagRuns/list` (v2 and v1) with `dag_ids` and `end_date_gte`
        (not start_date_gte: a run marked failed before it started has none), paged by
        offset; a constant number of requests however many DAGs the batch holds (one per
        RUNS_PAGE runs and per RUN_IDS_PER_REQUEST DAGs). Both versions' batch endpoints take
        `page_limit` as given (not capped by `[api] maximum_page_limit`, read in 3.3.2 and
        2.11.2); a server that caps it anyway is paged on by the rows it returned."""
        self._ensure_ready()
        ids = sorted(set(dag_ids))
        since = since if since.tzinfo else since.replace(tzinfo=timezone.utc)
        start = since.astimezone(timezone.utc).isoformat()
        path = "/dags/~/dagRuns/list"
        rows: list[dict] = []
        for i in range(0, len(ids), RUN_IDS_PER_REQUEST):
            body = {"dag_ids": ids[i:i + RUN_IDS_PER_REQUEST], "end_date_gte": start,
                    "order_by": "id", "page_limit": RUNS_PAGE}
            offset = 0
            for _ in range(100_000):
                _, data = self._call("POST", path, json_body={**body, "page_offset": offset})
                page = self._rows(data, "dag_runs", path)
                rows += page
                offset += len(page)
                total = data.get("total_entries")
                if not page or (offset >= total if isinstance(total, int)
                                else len(page) < RUNS_PAGE):
                    break
        return [self._run(r, "") for r in rows]

    def _run(self, r: dict, dag_id: str) -> DagRun:
        return DagRun(dag_id=str(r.get("dag_id") or dag_id),
                      run_id=str(r.get("dag_run_id") or r.get("run_id") or ""),
                      state=str(r.get("state") or ""), run_after=self.dialect.run_after(r),
                      start_date=parse_time(r.get("start_date")),
                      end_date=parse_time(r.get("end_date")))

    # ---------------------------------------------------------------- variables

    def _var_path(self, key: str) -> str:
        return f"/variables/{quote(key, safe='')}"

    def get_variable(self, key: str) -> str | None:
        resp, data = self._call("GET", self._var_path(key), allow=(404,))
        if resp.status_code == 404:
            return None
        value = data.get("value") if isinstance(data, dict) else None
        return None if value is None else str(value)

    def set_variable(self, key: str, value: str) -> None:
        self._ensure_ready()
        self.dialect.set_variable(self._call, self._var_path(key), {"key": key, "value": value})

    def create_variable(self, key: str, value: str) -> bool:
        """Create only if absent; True if this call's value is the one stored.

        Best effort, NOT atomic on AF2/AF3 (see the backend's notes): pass a value unique to
        the caller. A 201 is confirmed by re-reading after `create_settle` seconds (a
        concurrent creator that upserted after us wins, and this returns False); a 409 is
        re-read too, because a retried POST whose first attempt did land answers 409.
        """
        created = self.create_variable_unconfirmed(key, value)
        if created and self.create_settle > 0:
            self.sleep(self.create_settle)
        return self.get_variable(key) == value

    def create_variable_unconfirmed(self, key: str, value: str) -> bool:
        """The create of create_variable without its settle and re-read (Backend capability
        UnconfirmedCreate): True if the server answered "created" (v2 201; v1: absent, then
        POSTed). A concurrent creator may still overwrite it: the caller re-reads later."""
        self._ensure_ready()
        return self.dialect.create_variable(self._call, lambda: self.get_variable(key),
                                            {"key": key, "value": value})

    def delete_variable(self, key: str) -> None:
        self._call("DELETE", self._var_path(key), allow=(404,), expect_json=False)

    # ---------------------------------------------------------------- assets (cascade.py)

    def asset_edges(self) -> list[AssetEdge]:
        """(producer, consumer, asset) for every asset: AF3 `GET /assets` (`producing_tasks`
        -> `scheduled_dags` + `consuming_tasks`), AF2 `GET /datasets` (`producing_tasks` ->
        `consuming_dags`)."""
        self._ensure_ready()
        path, key, consumers_keys, name_key = self.dialect.assets
        rows = self._get_all(path, {"order_by": "id"}, key)

        def ids(items: Any) -> list[str]:
            return sorted({x["dag_id"] for x in items or () if isinstance(x, dict)
                           and isinstance(x.get("dag_id"), str)})

        out = []
        for row in rows:
            name = str(row.get(name_key) or row.get("uri") or "")
            consumers = sorted({c for k in consumers_keys for c in ids(row.get(k))})
            for p in ids(row.get("producing_tasks")):
                out.extend(AssetEdge(p, c, name) for c in consumers if c != p)
        return out
