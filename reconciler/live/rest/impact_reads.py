"""The airflow-api backend's reads for the impact preview and discovered dependencies (issue 15):
the capabilities `ImpactReads` and `DependencyGraph` of live/base.py. Mixed into
AirflowApiBackend (which provides _call, _send, _get_all, _executor, dialect, url, name).

Requests, for the N DAGs a plan flips (never for a plan without changes), bounded whatever N:
- runs in flight: `POST /dags/~/dagRuns/list` (v1 and v2: dag_ids + states), one per 1,000
  runs in flight and 2,000 DAG ids (inflight.py, shared with the drain);
- AF3 backfills: `GET /backfills?dag_id=` for one DAG (the public route requires dag_id),
  the UI's `GET /ui/backfills?active=true` pages for more; AF2 has no backfill model, so the
  preview says so;
- unpauses that may catch up (`schedules_of`, the caller's order: most runs behind first):
  `GET /dags/{id}/details` each (catchup, end_date, timezone are in no listing of any version,
  2.9 ... 3.3), at most `max_details` of them, `concurrency` at once. The rest come back
  `unread` (plan/impact.py names them and the guard refuses them).
Per-version facts live in `_API` (the dialect's api name picks the row): one place.
"""

from __future__ import annotations

from typing import Any, Iterable
from urllib.parse import quote

from reconciler.core.errors import PausectlError
from reconciler.live.base import DagEdge, ImpactEvidence
from reconciler.live.deps import from_af2_page, from_ui_graph
from reconciler.live.rest.inflight import runs_in_flight

_API = {
    # (dependency graph path from the server root, page parser, backfills?)
    "v2": ("/ui/dependencies", "json", True),
    "v1": ("/dag-dependencies", "html", False),
}
_NO_BACKFILLS = "Airflow 2 has no backfill model in its API (backfills run as CLI jobs)"
_MAX_RUNS = 10_000            # active backfills read at most (a count beyond is still "many")


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def af2_timezone(value: Any) -> str | None:
    """AF2 details' `timezone` is a repr like "Timezone('UTC')"; AF3 a plain name."""
    text = _str(value)
    if text and text.startswith("Timezone(") and text.endswith(")"):
        text = text[len("Timezone("):-1].strip("'\"")
    return text or None


class ImpactApiReads:
    """ImpactReads and DependencyGraph over REST (see the module doc)."""

    def dag_dependencies(self) -> list[DagEdge]:
        self._ensure_ready()
        path, kind, _ = _API[self.dialect.api]
        url = self.url.rstrip("/") + path
        # Airflow builds the whole graph from every serialized DAG per request (3.3.2, 5,000
        # DAGs: over 10 s): a timeout is final, not retried 4 times (docs/airflow-versions.md)
        if kind == "json":
            _, data = self._send("GET", url, retry_timeouts=False)
            return from_ui_graph(data)
        resp, _ = self._send("GET", url, expect_json=False, allow=(302, 303),
                             retry_timeouts=False)
        edges = from_af2_page(resp.text) if resp.status_code == 200 else None
        if edges is None:
            raise PausectlError(f"{self.name}: {path} did not answer the dependency graph "
                                "(it needs the webserver's login session; auth: "
                                "password-token)")
        return edges

    def impact_evidence(self, dag_ids: Iterable[str], schedules_of: Iterable[str] = (),
                        max_details: int | None = None) -> dict[str, ImpactEvidence]:
        self._ensure_ready()
        ids = sorted(set(dag_ids))
        if not ids:
            return {}
        wanted = set(ids)
        sched = list(dict.fromkeys(d for d in schedules_of if d in wanted))
        read = sched if max_details is None else sched[:max(0, max_details)]
        counts: dict[tuple[str, str], int] = {}
        for r in runs_in_flight(self, ids):
            counts[(r.dag_id, r.state)] = counts.get((r.dag_id, r.state), 0) + 1
        _, _, has_backfills = _API[self.dialect.api]
        backfills = self._all_backfills(ids) if has_backfills else {}
        # bounded: at most max_details GETs, `concurrency` at once (the backend's pool)
        details = dict(zip(read, self._executor().map(self._details, read)))
        unread = set(sched) - set(read)
        out = {}
        for d in ids:
            det = details.get(d) or {}
            summary, next_run = self.dialect.details_fields(det) if det else (None, None)
            out[d] = ImpactEvidence(
                dag_id=d, running=counts.get((d, "running"), 0),
                queued=counts.get((d, "queued"), 0),
                backfills=backfills.get(d) if has_backfills else None,
                catchup=det.get("catchup") if isinstance(det.get("catchup"), bool) else None,
                schedule=_str(summary), timezone=af2_timezone(det.get("timezone")),
                next_run_after=_str(next_run), end_date=_str(det.get("end_date")),
                max_active_runs=_int(det.get("max_active_runs")),
                notes=() if has_backfills else (_NO_BACKFILLS,), unread=d in unread)
        return out

    def _all_backfills(self, ids: list[str]) -> dict[str, tuple[dict, ...]]:
        """Active backfills by DAG: one DAG through the public route (it requires dag_id);
        more through the UI's `/ui/backfills?active=true` (3.0 ... 3.3: every active backfill,
        paged), so a plan of 1,000 flips costs a page per 100 backfills, not 1,000 requests."""
        if len(ids) == 1:
            rows = self._get_all("/backfills", {"dag_id": ids[0]}, "backfills", max_items=100)
        else:
            rows = self._ui_backfills()
        out: dict[str, list[dict]] = {}
        wanted = set(ids)
        for r in rows:
            d = r.get("dag_id")
            if isinstance(d, str) and d in wanted and r.get("completed_at") is None:
                out.setdefault(d, []).append({
                    "id": _int(r.get("id")), "from_date": _str(r.get("from_date")),
                    "to_date": _str(r.get("to_date")), "is_paused": bool(r.get("is_paused"))})
        return {d: tuple(out.get(d, ())) for d in ids}

    def _ui_backfills(self) -> list[dict]:
        url = self.url.rstrip("/") + "/ui/backfills"
        rows: list[dict] = []
        while len(rows) < _MAX_RUNS:
            _, data = self._send("GET", url, params={"active": "true", "order_by": "id",
                                                    "limit": 100, "offset": len(rows)})
            page = data.get("backfills") if isinstance(data, dict) else None
            if not isinstance(page, list) or not page:
                break
            rows += [r for r in page if isinstance(r, dict)]
            total = data.get("total_entries")
            if len(page) < 100 or (isinstance(total, int) and len(rows) >= total):
                break
        return rows

    def _details(self, dag_id: str) -> dict | None:
        resp, data = self._call("GET", f"/dags/{quote(dag_id, safe='')}/details", allow=(404,))
        return data if resp.status_code == 200 and isinstance(data, dict) else None
