"""Watching a real Airflow while pausectl changes it through tests/faultproxy.py: Airflow's
bulk PATCH matching (emulated from Airflow's source, independently of pausectl's own
emulation), concurrent changes made between pausectl's GET and its bulk PATCH, a DB check
after every forwarded write, and Airflow's event log read back through its API.
Used by tests/live/test_bulk_faults.py."""

from __future__ import annotations

import contextlib
import json
import re
import sqlite3
import threading
from urllib.parse import parse_qsl, urlsplit
from helpers import db_states, set_states


# ----------------------------------------------------------------------------- Airflow's DB



def appear(server, template: str, new_id: str, paused: bool) -> None:
    """A new DAG row, as the DAG processor would add one (a copy of `template`)."""
    with contextlib.closing(sqlite3.connect(server.db_path, timeout=30)) as db, db:
        cols = [r[1] for r in db.execute("PRAGMA table_info(dag)")]
        sel = ", ".join("?" if c in ("dag_id", "is_paused") else c for c in cols)
        args = [new_id if c == "dag_id" else int(paused)
                for c in cols if c in ("dag_id", "is_paused")]
        db.execute(f"INSERT INTO dag ({', '.join(cols)}) SELECT {sel} FROM dag WHERE dag_id = ?",
                   (*args, template))


def drop_new(server) -> None:
    with contextlib.closing(sqlite3.connect(server.db_path, timeout=30)) as db, db:
        db.execute("DELETE FROM dag WHERE dag_id LIKE '%\\_new' ESCAPE '\\'")


# ----------------------------------------------------------------------------- Airflow's matching

def _ilike(term: str, dag_id: str) -> bool:
    rx = "".join({"_": ".", "%": ".*"}.get(c) or re.escape(c) for c in term.lower())
    return re.search(rx, dag_id.lower(), re.S) is not None


def _prefix_upper(term: str) -> str | None:
    while term and not term[-1].isalnum():
        term = term[:-1]
    if not term:
        return None
    bumped = chr(ord(term[-1]) + 1)
    return term[:-1] + bumped if bumped.isalnum() else _prefix_upper(term[:-1])


def _prefix(term: str, dag_id: str) -> bool:
    """3.3.2 `_PrefixSearchParam`: trailing non-alphanumerics dropped, then a range scan."""
    lower = term
    while lower and not lower[-1].isalnum():
        lower = lower[:-1]
    if not lower:
        return True
    upper = _prefix_upper(term)
    return dag_id >= lower and (upper is None or dag_id < upper)


def _terms(value: str, alias: str) -> list[str]:
    value = alias if value == "~" else value
    if "|" in value:
        return [t.strip() for t in value.split("|") if t.strip()] or [value]
    return [value]


def pattern_hits(api: str, q: dict, ids) -> list[str]:
    """The ids a bulk PATCH's pattern matches (no state filter), sorted."""
    assert not {"tags", "owners", "tags_match_mode"} & set(q), f"unexpected bulk filter {q}"
    if api == "v1":       # 2.11 patch_dags: ILIKE %p% (no OR)
        value = "%" if q["dag_id_pattern"] == "~" else q["dag_id_pattern"]
        return sorted(d for d in ids if _ilike(value, d))
    if "dag_id_pattern" not in q and "dag_id_prefix_pattern" not in q:
        return []                              # no pattern: Airflow matches nothing
    hits = list(ids)                           # both given: both filters apply (AND)
    if "dag_id_pattern" in q:
        terms = _terms(q["dag_id_pattern"], "%")
        hits = [d for d in hits if any(_ilike(t, d) for t in terms)]
    if "dag_id_prefix_pattern" in q:
        terms = _terms(q["dag_id_prefix_pattern"], "")
        hits = [d for d in hits if any(_prefix(t, d) for t in terms)]
    return sorted(hits)


def selected(api: str, q: dict, pre: dict[str, bool], target: bool) -> set[str]:
    """The DAGs a bulk PATCH with query `q` (setting is_paused=target) changed, given the DB
    just before it: those it selected that were not at the target already."""
    hits = pattern_hits(api, q, pre)
    if api == "v1":       # one page ordered by dag_id, no state filter
        offset = int(q.get("offset", 0))
        hits = hits[offset: offset + int(q.get("limit", 100))]
    elif "paused" in q:   # 3.2.2+: every match is updated, not one page
        hits = [d for d in hits if pre[d] == (q["paused"] == "true")]
    return {d for d in hits if pre[d] != target}


# ----------------------------------------------------------------------------- the watch

class Watch:
    """Proxy hooks: concurrent changes between GET and bulk PATCH, and a DB check after every
    forwarded write. DAGs in `plan` may change; every other DAG must keep its state, except
    that a race gives its DAG a new expected state.
    Races (kind, direction), each made once, before the first bulk PATCH setting is_paused to
    `direction` whose pattern covers a candidate: "flip": a twin the pattern covers, at that
    target state, is flipped (a human); "appear": a new DAG extending a covered plan DAG
    appears paused (Airflow's default); "appear_running": the same, running."""

    def __init__(self, server, plan: set[str], races: list[tuple[str, bool]]):
        self.server, self.plan, self.api = server, set(plan), server.api_version
        self.races = list(races)
        self.expected = {d: p for d, p in db_states(server).items() if d not in plan}
        self.raced: dict[str, tuple[str, bool]] = {}     # dag_id -> (race kind, direction)
        self.bulk: list[tuple[dict, dict[str, bool], bool]] = []
        self.violations: list[tuple[str, str]] = []      # (dag_id, what)
        self.lock = threading.Lock()

    def before(self, method: str, path: str, body: bytes | None) -> None:
        if method != "PATCH" or not urlsplit(path).path.rstrip("/").endswith("/dags"):
            return
        with self.lock:
            q = dict(parse_qsl(urlsplit(path).query))
            target = bool(json.loads(body or b"{}").get("is_paused"))
            pre = db_states(self.server)
            hits = set(pattern_hits(self.api, q, pre))
            for race in [r for r in self.races if r[1] == target]:
                self._race(race[0], hits, pre, target, race)
            self.bulk.append((q, db_states(self.server), target))

    def _race(self, kind: str, hits: set[str], pre: dict[str, bool], target: bool, race) -> None:
        if kind == "flip":
            twins = sorted(d for d in hits if d.endswith("_twin") and pre[d] == target)
            if not twins:
                return
            dag_id, state = twins[0], not target
            set_states(self.server, {dag_id: state})
        else:
            covered = sorted(d for d in hits if d in self.plan)
            if not covered:
                return
            dag_id, state = f"{covered[0]}_new", kind == "appear"
            appear(self.server, covered[0], dag_id, state)
        self.raced[dag_id] = (kind, target)
        self.expected[dag_id] = state
        self.races.remove(race)

    def after(self, method: str, path: str, status: int) -> None:
        if method not in ("PATCH", "POST", "DELETE", "PUT") or "/dags" not in path:
            return
        now = db_states(self.server)
        with self.lock:
            for d, p in self.expected.items():
                if now.get(d) != p:
                    self.violations.append((d, f"after {method} {urlsplit(path).path} -> "
                                               f"{status}: {d} paused={now.get(d)}, not {p}"))

    def inherent(self) -> set[str]:
        """Races no bulk request can exclude (Airflow has no exact-id bulk filter): a DAG
        that appears paused (as Airflow creates them) while a pattern covering it is
        unpaused, or appears running while one is paused. pausectl must find it and put it
        back, or name it. (A DAG that appears already at the target state is not one.)"""
        return {d for d, (kind, target) in self.raced.items()
                if (kind == "appear" and not target) or (kind == "appear_running" and target)}

    def outside_violations(self, allowed: set[str]) -> list[str]:
        return [what for d, what in self.violations if d not in allowed]


def event_writes(server, after_id: int) -> list[dict]:
    """Every pause write Airflow logged after event `after_id`, in order (through the API)."""
    import httpx
    names = (("patch_dag", "patch_dags") if server.api_version == "v2"
             else ("api.patch_dag", "api.patch_dags", "ui.patch_dag", "ui.patch_dags"))
    out: list[dict] = []
    with httpx.Client(base_url=server.api_url, headers=server.auth_headers(), timeout=60) as c:
        while True:
            data = c.get("/eventLogs", params={"order_by": "event_log_id", "limit": 100,
                                               "offset": len(out)}).json()
            rows = data["event_logs"]
            out.extend(rows)
            if not rows or len(out) >= data["total_entries"]:
                break
    return [e for e in out if e["event_log_id"] > after_id and e["event"] in names]


def last_event_id(server) -> int:
    return server.query("SELECT coalesce(max(id), 0) FROM log")[0][0]


def check_events(watch: Watch, since: int, allowed: set[str]) -> dict:
    """Airflow's event log against the plan: fails on a DAG outside it (but `allowed`)."""
    events = event_writes(watch.server, since)
    bulk = [e for e in events if e["event"].endswith("patch_dags")]
    assert len(bulk) == len(watch.bulk), (len(bulk), len(watch.bulk))
    outside: set[str] = set()
    why: list[str] = []
    for e, (q, pre, target) in zip(bulk, watch.bulk):
        extra = json.loads(e["extra"])
        for key in ("dag_id_pattern", "dag_id_prefix_pattern", "paused", "offset"):
            assert extra.get(key) == q.get(key), (key, extra, q)
        hit = selected(watch.api, q, pre, target) - watch.plan
        outside |= hit
        why += [f"{d} (paused={pre[d]}) by event {e['event_log_id']} {q}" for d in hit - allowed]
    singles = [e for e in events if not e["event"].endswith("patch_dags")]
    outside |= {e["dag_id"] for e in singles} - watch.plan
    why += [f"{e['dag_id']} by event {e['event_log_id']} {e['event']} {e['extra']}"
            for e in singles if e["dag_id"] not in watch.plan | allowed]
    assert outside <= allowed, f"changed outside the plan: {sorted(outside - allowed)}: {why}"
    return {"writes": len(events), "bulk": len(bulk), "singles": len(singles),
            "outside": sorted(outside)}
