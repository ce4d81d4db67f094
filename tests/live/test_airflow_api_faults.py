"""The airflow-api backend against a small fake Airflow (httpx.MockTransport): paging, auth,
retries, faults, the verified bulk fast path, event normalisation, variables.

The fake answers like the real servers measured in docs/AIRFLOW.md and the backend's notes:
AF3 (`/api/v2`, JWT from /auth/token, 401 on a missing/expired token, 403 "Invalid JWT token"
on a bad one) and AF2 (`/api/v1`, HTTP basic, 403 for a wrong password). Its dag_id_pattern is
real SQL ILIKE (SQLite's LIKE), not the backend's own emulation, so the two cannot agree by
sharing a bug.
"""

from __future__ import annotations

import base64
import functools
import json
import logging
import re
import sqlite3
import ssl
import threading
import time
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from urllib.parse import unquote

import httpx
import pytest

from reconciler.live.airflow_api import AirflowApiBackend, ilike_matches
from reconciler.live.base import Backend, LiveDag
from reconciler.live.capabilities import capabilities_for
from reconciler.core.errors import BackendError

PASSWORD = "S3cr3t-Pa55word!"
TOKEN = "static-T0ken-VALUE-xyz"
ENV = {"AIRFLOW_USER": "admin", "AIRFLOW_PASSWORD": PASSWORD, "AIRFLOW_TOKEN": TOKEN}


_DB = sqlite3.connect(":memory:", check_same_thread=False)
_DB_LOCK = threading.Lock()


@functools.lru_cache(maxsize=None)
def _like(pattern: str, value: str) -> bool:
    """SQL `value ILIKE '%pattern%'` evaluated by SQLite (LIKE is case-insensitive there)."""
    with _DB_LOCK:
        return bool(_DB.execute("SELECT ? LIKE ?", (value, f"%{pattern}%")).fetchone()[0])


def _in_range(term: str, value: str) -> bool:
    """Airflow 3.2.2+ dag_id_prefix_pattern, written from its _PrefixPatternParam (not from
    the backend's emulation): trailing non-alphanumerics dropped, then a >= / < range."""
    def upper(t: str) -> str | None:
        while t and not t[-1].isalnum():
            t = t[:-1]
        if not t:
            return None
        bumped = chr(ord(t[-1]) + 1)
        return t[:-1] + bumped if bumped.isalnum() else upper(t[:-1])
    lower = term
    while lower and not lower[-1].isalnum():
        lower = lower[:-1]
    hi = upper(term)
    return value >= lower and (hi is None or value < hi)


def _json(status: int, body) -> httpx.Response:
    return httpx.Response(status, json=body)


class FakeAirflow:
    """Enough of Airflow's REST API v2 (AF3) or v1 (AF2) for the backend."""

    def __init__(self, api: str = "v2", n: int = 0, dags: dict | None = None,
                 max_page: int = 100, login_form: bool = True, version: str | None = None):
        self.api = api
        # the version's bulk semantics, as read in its source (capabilities.py)
        self.version = version or ("3.3.2" if api == "v2" else "2.11.2")
        self.caps = capabilities_for(self.version, api)
        self.login_form = login_form      # AF2: FAB login form + `session` API auth backend
        self.sessions: set[str] = set()
        self.form_logins = 0
        self.max_page = max_page
        self.dags: dict[str, dict] = {}
        for i in range(n):
            self.add(f"dag_{i:04d}")
        for dag_id, paused in (dags or {}).items():
            self.add(dag_id, paused=paused)
        self.variables: dict[str, str] = {}
        self.events: list[dict] = []
        self.runs: dict[str, list[dict]] = {}
        self.log: list[httpx.Request] = []
        self.faults: list = []           # callables(request) -> Response | Exception | None
        self.tokens: set[str] = set()
        self.logins = 0
        self.lock = threading.Lock()
        self.before_bulk_patch = None   # hook: called inside a bulk PATCH before it selects
        self.in_flight = 0
        self.max_in_flight = 0
        self.delay = 0.0

    def add(self, dag_id: str, paused: bool = True, stale: bool = False, **extra) -> None:
        self.dags[dag_id] = {"dag_id": dag_id, "is_paused": paused, "stale": stale,
                             "tags": extra.get("tags", ["gen"]),
                             "owners": extra.get("owners", ["airflow"]), **extra}

    # ---- helpers
    def states(self) -> dict[str, bool]:
        return {d: v["is_paused"] for d, v in self.dags.items()}

    def requests(self, method: str, path_part: str = "") -> list[httpx.Request]:
        return [r for r in self.log if r.method == method and path_part in r.url.path]

    def single_patches(self) -> list[str]:
        return [unquote(r.url.path.rsplit("/", 1)[1]) for r in self.log
                if r.method == "PATCH" and "/dags/" in r.url.path]

    def bulk_patches(self) -> list[httpx.Request]:
        return [r for r in self.log if r.method == "PATCH" and r.url.path.endswith("/dags")]

    def _dag_json(self, d: dict) -> dict:
        base = {"dag_id": d["dag_id"], "is_paused": d["is_paused"],
                "tags": [{"name": t, "dag_id": d["dag_id"]} for t in d["tags"]],
                "owners": d["owners"], "has_import_errors": d.get("has_import_errors", False),
                "fileloc": f"/dags/{d['dag_id']}.py", "last_parsed_time": "2026-01-01T00:00:00Z",
                "max_active_runs": d.get("max_active_runs", 16)}
        if self.api == "v2":
            base.update(is_stale=d["stale"], timetable_summary=d.get("timetable", "0 0 * * *"),
                        next_dagrun_run_after="2026-01-02T00:00:00Z")
        else:
            base.update(is_active=not d["stale"],
                        schedule_interval=d.get("schedule_interval",
                                                {"__type": "CronExpression", "value": "@daily"}),
                        timetable_description="At 00:00",
                        next_dagrun="2026-01-01T00:00:00+00:00",
                        next_dagrun_create_after="2026-01-02T00:00:00+00:00")
        return base

    def _select(self, q, *, for_patch: bool = False) -> list[dict]:
        rows = sorted(self.dags.values(), key=lambda d: d["dag_id"])
        if self.api == "v2":
            if q.get("exclude_stale", "true") == "true":
                rows = [d for d in rows if not d["stale"]]
            if q.get("paused") is not None:
                want = q["paused"] == "true"
                rows = [d for d in rows if d["is_paused"] == want]
        else:
            if q.get("only_active", "true") == "true":
                rows = [d for d in rows if not d["stale"]]
            if q.get("paused") is not None and not for_patch:   # AF2's bulk PATCH ignores it
                want = q["paused"] == "true"
                rows = [d for d in rows if d["is_paused"] == want]
        pattern = q.get("dag_id_pattern")
        prefix = q.get("dag_id_prefix_pattern") if self.caps.prefix_pattern else None
        if pattern is None and for_patch and self.api == "v2":
            pattern = "None"      # QueryDagIdPatternSearchWithNone: absent -> ILIKE '%None%'
        if pattern is not None:
            if pattern == "~":
                pattern = "%"
            terms = [t.strip() for t in pattern.split("|") if t.strip()]
            if not (self.caps.pattern_or and "|" in pattern and len(terms) > 1):
                terms = [pattern]
            rows = [d for d in rows if any(_like(t, d["dag_id"]) for t in terms)]
        if prefix is not None:
            prefix = "" if prefix == "~" else prefix
            terms = [t.strip() for t in prefix.split("|") if t.strip()] or [prefix]
            rows = [d for d in rows if any(_in_range(t, d["dag_id"]) for t in terms)]
        return rows

    def _page(self, q, rows):
        limit = min(int(q.get("limit", 100)), self.max_page)
        offset = int(q.get("offset", 0))
        return rows[offset:offset + limit], len(rows)

    # ---- the transport handler
    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            self.log.append(request)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            fault = None
            for f in list(self.faults):
                out = f(request)
                if out is not None:
                    fault = out
                    break
        try:
            if self.delay:
                time.sleep(self.delay)
            if isinstance(fault, Exception):
                raise fault
            if fault is not None:
                return fault
            with self.lock:
                return self._route(request)
        finally:
            with self.lock:
                self.in_flight -= 1

    def _authorized(self, request) -> httpx.Response | None:
        auth = request.headers.get("authorization", "")
        if self.api == "v2":
            if not auth.startswith("Bearer "):
                return _json(401, {"detail": "Not authenticated"})
            tok = auth[7:]
            if tok == TOKEN or tok in self.tokens:
                return None
            return _json(403, {"detail": "Invalid JWT token"})
        denied = _json(403, {"detail": None, "status": 403, "title": "Forbidden",
                             "type": "https://airflow.apache.org/.../PermissionDenied"})
        if request.headers.get("cookie", "").startswith("session=") and self.login_form:
            return None if request.headers["cookie"][8:] in self.sessions else denied
        if not auth.startswith("Basic "):
            return denied
        user, _, pw = base64.b64decode(auth[6:]).decode().partition(":")
        return None if (user, pw) == ("admin", PASSWORD) else denied

    def _route(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        q = dict(request.url.params)
        m = request.method
        root = f"/api/{self.api}"
        if path == f"/api/{self.api}/version":
            return _json(200, {"version": self.version})
        if path.startswith("/api/") and not path.startswith(root):
            return httpx.Response(404, text="<html>Not Found</html>",
                                  headers={"content-type": "text/html"})
        if path == "/auth/token" and m == "POST":
            if self.api != "v2":
                return httpx.Response(404, text="<html>Not Found</html>",
                                      headers={"content-type": "text/html"})
            body = json.loads(request.content)
            if body != {"username": "admin", "password": PASSWORD}:
                return _json(401, {"detail": "Invalid credentials"})
            self.logins += 1
            tok = f"jwt-{self.logins}"
            self.tokens.add(tok)
            return _json(201, {"access_token": tok})
        if path == "/login/" and self.api == "v1" and self.login_form:
            if m == "GET":
                if request.headers.get("cookie", "")[8:] in self.sessions:
                    return httpx.Response(302, headers={"location": "/home"})
                return httpx.Response(200, headers={"content-type": "text/html"}, text=(
                    '<form><input id="csrf_token" name="csrf_token" type="hidden" '
                    'value="csrf-123"><input name="username"></form>'))
            form = dict(x.split("=", 1) for x in request.content.decode().split("&"))
            if (unquote(form.get("username", "")), unquote(form.get("password", "")),
                    form.get("csrf_token")) != ("admin", PASSWORD, "csrf-123"):
                return httpx.Response(302, headers={"location": "/login/"})
            self.form_logins += 1
            sid = f"sess-{self.form_logins}"
            self.sessions.add(sid)
            return httpx.Response(302, headers={"location": "/home",
                                                "set-cookie": f"session={sid}; Path=/"})
        denied = self._authorized(request)
        if denied is not None:
            return denied
        sub = path[len(root):]
        if sub == "/dags" and m == "GET":
            rows, total = self._page(q, self._select(q))
            return _json(200, {"dags": [self._dag_json(d) for d in rows], "total_entries": total})
        if sub == "/dags" and m == "PATCH":
            if self.before_bulk_patch:
                self.before_bulk_patch(self)
            want = json.loads(request.content)["is_paused"]
            rows = self._select(q, for_patch=True)
            page, total = self._page(q, rows)
            shown = [self._dag_json(d) for d in page]
            # 3.2.2+ updates every match; 3.0-3.2.1 and AF2 only the page they list
            touched = rows if self.caps.bulk_all else page
            for d in touched:
                d["is_paused"] = want
            self.events.append({"event_log_id": len(self.events) + 1, "event": "patch_dags"
                                if self.api == "v2" else "api.patch_dags", "dag_id": None,
                                "owner": "admin", "when": _now(),
                                "extra": json.dumps({"dag_id_pattern": q.get("dag_id_pattern"),
                                                     "is_paused": want})})
            return _json(200, {"dags": shown, "total_entries": total})
        if sub.startswith("/dags/") and sub.endswith("/dagRuns") and m == "GET":
            dag_id = unquote(sub[len("/dags/"):-len("/dagRuns")])
            if dag_id not in self.dags:
                return _json(404, {"detail": f"Dag with id: {dag_id} was not found"})
            rows, total = self._page(q, self.runs.get(dag_id, []))
            return _json(200, {"dag_runs": rows, "total_entries": total})
        if sub.startswith("/dags/") and sub.count("/") == 2 and m == "GET":
            dag_id = unquote(sub[len("/dags/"):])
            if dag_id not in self.dags:
                return _json(404, {"detail": f"Dag with id: {dag_id} was not found"})
            return _json(200, self._dag_json(self.dags[dag_id]))
        if sub.startswith("/dags/") and m == "PATCH":
            dag_id = unquote(sub[len("/dags/"):])
            if self.api == "v1" and q.get("update_mask") != "is_paused":
                return _json(400, {"detail": "update_mask required in this fake"})
            if dag_id not in self.dags:
                return _json(404, {"detail": f"Dag with id: {dag_id} was not found"})
            want = json.loads(request.content)["is_paused"]
            self.dags[dag_id]["is_paused"] = want
            self.events.append({"event_log_id": len(self.events) + 1,
                                "event": "patch_dag" if self.api == "v2" else "api.patch_dag",
                                "dag_id": dag_id, "owner": "admin", "when": _now(),
                                "extra": json.dumps({"is_paused": want})})
            return _json(200, self._dag_json(self.dags[dag_id]))
        if sub == "/eventLogs" and m == "GET":
            rows = list(self.events)
            if self.api == "v2":
                inc = request.url.params.get_list("included_events")
            else:
                inc = [x for x in q.get("included_events", "").split(",") if x]
            if inc:
                rows = [r for r in rows if r["event"] in inc]
            if q.get("dag_id"):
                rows = [r for r in rows if r["dag_id"] == q["dag_id"]]
            if q.get("after"):
                after = datetime.fromisoformat(q["after"])
                rows = [r for r in rows if datetime.fromisoformat(
                    r["when"].replace("Z", "+00:00")) > after]
            rows.sort(key=lambda r: r["when"], reverse=q.get("order_by") == "-when")
            page, total = self._page(q, rows)
            return _json(200, {"event_logs": page, "total_entries": total})
        if sub.startswith("/variables"):
            key = unquote(sub[len("/variables/"):]) if sub.startswith("/variables/") else None
            if m == "GET" and key is not None:
                if key not in self.variables:
                    return _json(404, {"detail": f"The Variable with key: `{key}` was not found"})
                return _json(200, {"key": key, "value": self.variables[key]})
            if m == "POST" and key is None:
                body = json.loads(request.content)
                if self.api == "v2" and body["key"] in self.variables:
                    return _json(409, {"detail": "already exists"})
                self.variables[body["key"]] = body["value"]
                return _json(201 if self.api == "v2" else 200, body)
            if m == "PATCH" and key is not None:
                if key not in self.variables:
                    return _json(404, {"detail": "not found"})
                self.variables[key] = json.loads(request.content)["value"]
                return _json(200, {"key": key, "value": self.variables[key]})
            if m == "DELETE" and key is not None:
                if self.variables.pop(key, None) is None:
                    return _json(404, {"detail": "not found"})
                return httpx.Response(204)
        return _json(404, {"detail": f"no route {m} {path}"})


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


def make(fake: FakeAirflow, **cfg) -> AirflowApiBackend:
    config = {"url": "https://airflow.test", **cfg}
    b = AirflowApiBackend("prod", config, env=ENV, transport=httpx.MockTransport(fake))
    b.sleeps = []
    b.sleep = b.sleeps.append          # never wait in unit tests; record what we would
    b.random = lambda: 1.0
    return b


def once(pred, result):
    """A fault that fires once on matching requests."""
    state = {"left": 1}

    def fault(request):
        if state["left"] and pred(request):
            state["left"] -= 1
            return result() if callable(result) and not isinstance(result, type) else result
        return None
    return fault


def times(n, pred, result_factory):
    state = {"left": n}

    def fault(request):
        if state["left"] and pred(request):
            state["left"] -= 1
            return result_factory()
        return None
    return fault


def is_list(request):
    return request.method == "GET" and request.url.path.endswith("/dags")


# ------------------------------------------------------------------ detection, mapping, paging

def test_implements_backend_protocol_and_repr_has_no_secret():
    b = make(FakeAirflow())
    assert isinstance(b, Backend)
    assert PASSWORD not in repr(b) and "prod" in repr(b) and "airflow.test" in repr(b)
    assert PASSWORD not in repr(vars(b))


def test_v2_detection_and_field_mapping_including_stale():
    fake = FakeAirflow("v2")
    fake.add("etl_daily", paused=False, tags=["etl", "canary"], owners=["data-eng"],
             max_active_runs=2)
    fake.add("old_one", stale=True)
    with make(fake) as b:
        dags = {d.dag_id: d for d in b.list_dags()}
        assert b.api == "v2" and b.server_version == "3.3.2"
    assert dags["etl_daily"] == LiveDag(
        dag_id="etl_daily", is_paused=False, tags=("etl", "canary"), owners=("data-eng",),
        is_stale=False, has_import_errors=False, fileloc="/dags/etl_daily.py",
        last_parsed_time="2026-01-01T00:00:00Z", timetable_summary="0 0 * * *",
        next_dagrun_run_after="2026-01-02T00:00:00Z", max_active_runs=2)
    assert dags["old_one"].is_stale is True          # AF3 excludes stale by default
    lists = fake.requests("GET", "/api/v2/dags")
    assert lists and all(r.url.params["exclude_stale"] == "false" for r in lists)
    assert fake.logins == 1


def test_v1_detection_and_field_mapping():
    fake = FakeAirflow("v1")
    fake.add("etl_daily", paused=False, tags=["etl"], owners=["data-eng"])
    fake.add("gone", stale=True, schedule_interval=None)
    fake.add("hourly", schedule_interval={"__type": "TimeDelta", "days": 0, "seconds": 3600,
                                          "microseconds": 0})
    with make(fake) as b:
        dags = {d.dag_id: d for d in b.list_dags()}
        assert b.api == "v1" and b.server_version == "2.11.2"
    assert fake.requests("GET", "/api/v2/version")          # tried v2 first
    e = dags["etl_daily"]
    assert (e.is_paused, e.tags, e.owners, e.is_stale) == (False, ("etl",), ("data-eng",), False)
    assert e.timetable_summary == "@daily"
    assert e.next_dagrun_run_after == "2026-01-02T00:00:00+00:00"   # next_dagrun_create_after
    assert dags["gone"].is_stale is True and dags["gone"].timetable_summary is None
    assert dags["hourly"].timetable_summary == "1:00:00"
    lists = [r for r in fake.requests("GET", "/api/v1/dags") if "only_active" in r.url.params]
    assert lists and all(r.url.params["only_active"] == "false" for r in lists)
    # AF2 has no /auth/token: password-token logs in once through the login form and then
    # sends only the session cookie (no password hash check per request)
    assert fake.form_logins == 1
    assert all("authorization" not in r.headers and r.headers["cookie"] == "session=sess-1"
               for r in lists)
    assert not fake.requests("POST", "/auth/token")


def test_v1_without_a_login_form_falls_back_to_basic_auth():
    fake = FakeAirflow("v1", n=2, login_form=False)
    with make(fake) as b:
        assert len(b.list_dags()) == 2
    raw = base64.b64encode(f"admin:{PASSWORD}".encode()).decode()
    lists = [r for r in fake.requests("GET", "/api/v1/dags") if "only_active" in r.url.params]
    assert lists and all(r.headers["authorization"] == f"Basic {raw}" for r in lists)


def test_v1_rate_limited_login_falls_back_to_basic_without_waiting():
    fake = FakeAirflow("v1", n=2)
    fake.faults.append(lambda r: httpx.Response(429, headers={"Retry-After": "40"})
                       if r.url.path == "/login/" and r.method == "POST" else None)
    with make(fake) as b:
        assert len(b.list_dags()) == 2
        assert b.sleeps == []
    assert len(fake.requests("POST", "/login/")) == 1
    lists = [r for r in fake.requests("GET", "/api/v1/dags") if "only_active" in r.url.params]
    assert all(r.headers["authorization"].startswith("Basic ") for r in lists)


def is_probe(request) -> bool:
    """AF2's "are we logged in" GET /dags?limit=1 (the session check and the 403 probe)."""
    return (request.method == "GET" and request.url.path == "/api/v1/dags"
            and "only_active" not in request.url.params)


def test_v1_session_check_has_the_byte_cap_of_every_request():
    """The check after the form login goes through the same bounded exchange as every other
    request: a 40 MB answer to it is not read, and the backend falls back to HTTP basic."""
    fake = FakeAirflow("v1", n=2)
    fake.faults.append(lambda r: httpx.Response(200, content=b" " * (40 * 1024 * 1024))
                       if is_probe(r) else None)
    with make(fake) as b:
        assert len(b.list_dags()) == 2
        assert b.auth.session is False
    assert fake.form_logins == 1
    lists = [r for r in fake.requests("GET", "/api/v1/dags") if "only_active" in r.url.params]
    assert lists and all(r.headers["authorization"].startswith("Basic ") for r in lists)


def test_v1_403_probe_has_the_whole_request_deadline():
    """The probe that tells AF2's ambiguous 403 apart runs within `timeout` in total, like
    every request: a server that stalls it makes a one-line timeout, not a hang."""
    fake = FakeAirflow("v1", n=1, login_form=False)
    fake.faults.append(lambda r: _json(403, {"title": "Forbidden"}) if r.method == "PATCH"
                       else (time.sleep(1.5) or None) if is_probe(r) else None)
    started = time.monotonic()
    with make(fake, bulk=False, timeout=0.3, retries=0) as b:
        res = b.set_paused(["dag_0000"], True)
    assert time.monotonic() - started < 1.4
    assert res.errors["dag_0000"] == ("prod: PATCH /api/v1/dags/dag_0000 timed out after 0.3s "
                                      "(1 attempt) at https://airflow.test")


def test_v1_dead_session_logs_in_again_once():
    fake = FakeAirflow("v1", n=3)
    with make(fake) as b:
        b.list_dags()
        fake.sessions.clear()                    # webserver restarted with a new secret_key
        assert len(b.list_dags()) == 3
        assert fake.form_logins == 2
        fake.sessions.clear()
        fake.login_form = False                  # ... and now only basic auth works
        assert len(b.list_dags()) == 3
    assert fake.form_logins == 2


def test_explicit_api_skips_detection_but_reads_the_version_once():
    fake = FakeAirflow("v1", n=3, version="2.9.3")
    with make(fake, api="v1") as b:
        assert len(b.list_dags()) == 3
        assert len(b.list_dags()) == 3
        assert b.server_version == "2.9.3" and b.capabilities.api == "v1"
    assert [r.url.path for r in fake.requests("GET", "/version")] == ["/api/v1/version"]


def test_detection_failure_is_one_clear_line():
    def nothing(request):
        return httpx.Response(404, text="nope")
    b = AirflowApiBackend("prod", {"url": "https://airflow.test/base"}, env=ENV,
                          transport=httpx.MockTransport(nothing))
    with pytest.raises(BackendError) as e:
        b.list_dags()
    msg = str(e.value)
    assert "cannot detect the Airflow REST API at https://airflow.test/base" in msg
    assert "\n" not in msg


@pytest.mark.parametrize("api", ["v2", "v1"])
def test_paging_when_server_caps_limit_at_100(api):
    fake = FakeAirflow(api, n=250)
    with make(fake, page_size=1000) as b:
        dags = b.list_dags()
    assert sorted(d.dag_id for d in dags) == sorted(fake.dags)
    assert len(dags) == 250
    pages = [r for r in fake.requests("GET", f"/api/{api}/dags") if "offset" in r.url.params]
    assert [int(r.url.params["offset"]) for r in pages] == [0, 100, 200]
    assert all(r.url.params["limit"] == "1000" for r in pages)   # asked; server capped


def test_parallel_pages_give_the_same_list():
    fake = FakeAirflow("v2", n=250)
    with make(fake, parallel_pages=True, page_size=100) as b:
        dags = b.list_dags()
    assert sorted(d.dag_id for d in dags) == sorted(fake.dags)
    assert sorted(int(r.url.params["offset"]) for r in fake.requests("GET", "/dags")) == \
        [0, 100, 200]


def test_paging_survives_a_short_page_without_total():
    fake = FakeAirflow("v2", n=5)

    def no_total(request):
        if is_list(request):
            return _json(200, {"dags": [fake._dag_json(d) for d in fake._select(
                dict(request.url.params))][:2]})
        return None
    fake.faults.append(no_total)
    with make(fake, page_size=10) as b:
        assert len(b.list_dags()) == 2     # stops: fewer rows than asked and no total


# ------------------------------------------------------------------ retries and faults

def test_timeouts_are_retried_with_backoff_then_succeed():
    fake = FakeAirflow("v2", n=3)
    fake.faults.append(times(2, is_list, lambda: httpx.ReadTimeout("timed out")))
    with make(fake) as b:
        assert len(b.list_dags()) == 3
        assert b.sleeps == [0.5, 1.0]          # 0.5 * 2**attempt, jitter source pinned to 1.0


def test_backoff_jitter_stays_within_half_to_full():
    fake = FakeAirflow("v2", n=1)
    fake.faults.append(times(3, is_list, lambda: httpx.ConnectError("refused")))
    b = make(fake)
    b.random = lambda: 0.0
    b.list_dags()
    assert b.sleeps == [0.25, 0.5, 1.0]


def test_timeout_exhausted_is_one_line():
    fake = FakeAirflow("v2", n=1)
    fake.faults.append(times(99, is_list, lambda: httpx.ReadTimeout("timed out")))
    b = make(fake, retries=2, timeout=3)
    with pytest.raises(BackendError) as e:
        b.list_dags()
    assert str(e.value) == ("prod: GET /api/v2/dags timed out after 3s (3 attempts) at "
                            "https://airflow.test")
    assert len(b.sleeps) == 2


def _is_graph(request):
    return request.url.path.endswith("/ui/dependencies")


def test_a_dependency_graph_that_times_out_is_not_asked_again_but_a_5xx_is():
    """3.3.2 builds /ui/dependencies from every serialized DAG per request: over 10 s at 5,000
    DAGs (bench, 2026-12-02), and 4 retries made the impact preview wait 50 s for nothing."""
    fake = FakeAirflow("v2", n=1)
    fake.faults.append(times(99, _is_graph, lambda: httpx.ReadTimeout("timed out")))
    b = make(fake, timeout=3)
    with pytest.raises(BackendError) as e:
        b.dag_dependencies()
    assert str(e.value) == ("prod: GET /ui/dependencies timed out after 3s (1 attempt) at "
                            "https://airflow.test")
    assert b.sleeps == []
    fake = FakeAirflow("v2", n=1)
    fake.faults.append(times(1, _is_graph, lambda: _json(503, {"detail": "busy"})))
    fake.faults.append(times(1, _is_graph, lambda: _json(200, {"nodes": [], "edges": []})))
    b = make(fake)
    assert b.dag_dependencies() == []
    assert len(b.sleeps) == 1                  # the 503 was retried as before


def test_connection_reset_is_retried():
    fake = FakeAirflow("v2", n=2)
    fake.faults.append(times(1, is_list, lambda: httpx.ReadError("Connection reset by peer")))
    fake.faults.append(times(1, is_list, lambda: httpx.RemoteProtocolError("Server disconnected")))
    with make(fake) as b:
        assert len(b.list_dags()) == 2
        assert len(b.sleeps) == 2


def test_429_honours_retry_after_seconds():
    fake = FakeAirflow("v2", n=2)
    fake.faults.append(once(is_list, lambda: httpx.Response(429, headers={"Retry-After": "7"})))
    with make(fake) as b:
        assert len(b.list_dags()) == 2
        assert b.sleeps == [7.0]


def test_retry_after_http_date_and_cap():
    fake = FakeAirflow("v2", n=2)
    when = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=30), usegmt=True)
    fake.faults.append(once(is_list, lambda: httpx.Response(503, headers={"Retry-After": when})))
    fake.faults.append(once(is_list, lambda: httpx.Response(429, headers={"Retry-After": "3600"})))
    with make(fake, max_retry_after=60) as b:
        b.list_dags()
        assert 25 <= b.sleeps[0] <= 30
        assert b.sleeps[1] == 60                    # capped


def test_503_burst_then_success():
    fake = FakeAirflow("v2", n=2)
    fake.faults.append(times(3, is_list, lambda: _json(503, {"detail": "busy"})))
    with make(fake) as b:
        assert len(b.list_dags()) == 2
        assert b.sleeps == [0.5, 1.0, 2.0]
    assert len(fake.requests("GET", "/api/v2/dags")) == 4


def test_5xx_exhausted_is_one_clear_line():
    fake = FakeAirflow("v2", n=2)
    fake.faults.append(times(99, is_list, lambda: _json(502, {"detail": "bad\ngateway"})))
    b = make(fake, retries=3)
    with pytest.raises(BackendError) as e:
        b.list_dags()
    assert str(e.value) == "prod: GET /api/v2/dags failed: HTTP 502 bad gateway (4 attempts)"


def test_truncated_json_is_retried_then_ok():
    fake = FakeAirflow("v2", n=2)
    fake.faults.append(once(is_list, lambda: httpx.Response(
        200, content=b'{"dags": [{"dag_id": "dag_0', headers={"content-type": "application/json"})))
    with make(fake) as b:
        assert len(b.list_dags()) == 2
        assert len(b.sleeps) == 1


def test_truncated_json_forever_is_one_line_error():
    fake = FakeAirflow("v2", n=2)
    fake.faults.append(times(99, is_list, lambda: httpx.Response(
        200, content=b'{"dags": [', headers={"content-type": "application/json"})))
    b = make(fake, retries=1)
    with pytest.raises(BackendError) as e:
        b.list_dags()
    assert str(e.value).startswith("prod: GET /api/v2/dags returned invalid JSON")
    assert "(2 attempts)" in str(e.value) and "\n" not in str(e.value)


def test_html_login_page_is_not_retried():
    fake = FakeAirflow("v2", n=2)
    fake.faults.append(times(9, is_list, lambda: httpx.Response(
        200, text="<html>login</html>", headers={"content-type": "text/html"})))
    b = make(fake)
    with pytest.raises(BackendError, match="returned HTML, not JSON"):
        b.list_dags()
    assert b.sleeps == []


def test_redirect_to_sso_is_explained():
    fake = FakeAirflow("v2", n=2)
    fake.faults.append(times(9, is_list, lambda: httpx.Response(
        302, headers={"location": "https://sso.example/login?next=x"})))
    with pytest.raises(BackendError, match=r"redirected to /login \(HTTP 302\)"):
        make(fake).list_dags()


def test_connection_refused_names_env_and_url():
    def refuse(request):
        raise httpx.ConnectError("[Errno 111] Connection refused")
    b = AirflowApiBackend("prod", {"url": "http://127.0.0.1:9", "retries": 2}, env=ENV,
                          transport=httpx.MockTransport(refuse))
    b.sleep = lambda s: None
    with pytest.raises(BackendError) as e:
        b.list_dags()
    assert str(e.value).startswith("cannot reach prod at http://127.0.0.1:9")
    assert "3 attempts" in str(e.value)


def test_tls_error_names_the_url_and_is_not_retried():
    calls = []

    def tls(request):
        calls.append(1)
        err = ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate "
                                              "verify failed: self-signed certificate")
        err.verify_message = "self-signed certificate"
        raise httpx.ConnectError("[SSL: CERTIFICATE_VERIFY_FAILED]") from err
    b = AirflowApiBackend("prod", {"url": "https://airflow.internal:8443"}, env=ENV,
                          transport=httpx.MockTransport(tls))
    b.sleep = lambda s: None
    with pytest.raises(BackendError) as e:
        b.list_dags()
    assert str(e.value).startswith("TLS verification failed for https://airflow.internal:8443: "
                                   "self-signed certificate")
    assert len(calls) == 1


def test_tls_settings(tmp_path):
    with pytest.raises(BackendError, match="ca_bundle .* is not a readable file"):
        AirflowApiBackend("prod", {"url": "https://a.test", "ca_bundle": str(tmp_path / "x")},
                          env=ENV)
    with pytest.raises(BackendError, match="insecure must be true or false"):
        AirflowApiBackend("prod", {"url": "https://a.test", "insecure": "yes"}, env=ENV)
    ca = tmp_path / "ca.pem"
    ca.write_text("not really a cert")
    # a real (non-mock) client: verification is on by default and the bundle path is used
    with pytest.raises(BackendError, match="is not a usable PEM CA file"):
        AirflowApiBackend("prod", {"url": "https://a.test", "ca_bundle": str(ca)}, env=ENV)
    b = AirflowApiBackend("prod", {"url": "https://a.test", "insecure": True}, env=ENV)
    assert b.transport.client._transport._pool._ssl_context.verify_mode == ssl.CERT_NONE
    b.close()
    b = AirflowApiBackend("prod", {"url": "https://a.test"}, env=ENV)
    assert b.transport.client._transport._pool._ssl_context.verify_mode == ssl.CERT_REQUIRED
    b.close()


def test_bad_config_is_rejected_in_one_line():
    for cfg, text in [({}, "url is required"),
                      ({"url": "ftp://x"}, "must be http(s)"),
                      ({"url": f"https://admin:{PASSWORD}@x"}, "must not contain credentials"),
                      ({"url": "https://x", "api": "v3"}, "api must be one of"),
                      ({"url": "https://x", "auth": "kerberos"}, "auth must be one of"),
                      ({"url": "https://x", "retries": -1}, "retries must be a number"),
                      ({"url": "https://x", "concurrency": 0}, "concurrency must be")]:
        with pytest.raises(BackendError, match=re.escape(text)) as e:
            AirflowApiBackend("prod", cfg, env=ENV)
        assert PASSWORD not in str(e.value)


# ------------------------------------------------------------------ auth

def test_missing_env_var_is_named():
    with pytest.raises(BackendError) as e:
        AirflowApiBackend("prod", {"url": "https://x", "password_env": "PROD_AF_PASS"},
                          env={"AIRFLOW_USER": "admin"})
    assert str(e.value) == ("prod: environment variable PROD_AF_PASS is not set "
                            "(needed for auth: password-token)")
    with pytest.raises(BackendError, match="environment variable MY_TOKEN is not set"):
        AirflowApiBackend("prod", {"url": "https://x", "auth": "bearer", "token_env": "MY_TOKEN"},
                          env={})


def test_401_refreshes_the_token_once_and_retries():
    fake = FakeAirflow("v2", n=3)
    with make(fake) as b:
        b.list_dags()
        fake.tokens.clear()                         # the server forgot every token (expired)
        fake.faults.append(once(is_list, lambda: _json(401, {"detail": "Token Expired"})))
        assert len(b.list_dags()) == 3
    assert fake.logins == 2


def test_403_invalid_jwt_also_refreshes():
    fake = FakeAirflow("v2", n=1)
    with make(fake) as b:
        b.list_dags()
        fake.tokens.clear()                        # a restarted server with a new secret
        assert len(b.list_dags()) == 1
    assert fake.logins == 2


def test_401_twice_is_a_clear_auth_error_and_no_loop():
    fake = FakeAirflow("v2", n=1)
    fake.faults.append(times(99, is_list, lambda: _json(401, {"detail": "Token Expired"})))
    b = make(fake)
    with pytest.raises(BackendError) as e:
        b.list_dags()
    assert str(e.value) == ("authentication failed for prod "
                            "(check AIRFLOW_USER and AIRFLOW_PASSWORD)")
    assert fake.logins == 2 and len(fake.requests("GET", "/dags")) == 2


def test_wrong_password_v2():
    fake = FakeAirflow("v2", n=1)
    b = AirflowApiBackend("prod", {"url": "https://x"}, env={**ENV, "AIRFLOW_PASSWORD": "nope!"},
                          transport=httpx.MockTransport(fake))
    with pytest.raises(BackendError, match=r"^authentication failed for prod \(check "
                                           r"AIRFLOW_USER and AIRFLOW_PASSWORD\)$"):
        b.list_dags()


def test_v1_wrong_password_403_is_an_auth_error():
    fake = FakeAirflow("v1", n=1)
    b = AirflowApiBackend("prod", {"url": "https://x"}, env={**ENV, "AIRFLOW_PASSWORD": "nope!"},
                          transport=httpx.MockTransport(fake))
    with pytest.raises(BackendError, match=r"^authentication failed for prod"):
        b.list_dags()


def test_v1_real_403_names_the_permission():
    fake = FakeAirflow("v1", n=3)

    def no_edit(request):
        if request.method == "PATCH" and "dag_0002" not in request.url.path:
            return _json(403, {"detail": None, "status": 403, "title": "Forbidden"})
        return None
    fake.faults.append(no_edit)
    with make(fake, bulk=False, concurrency=1) as b:
        res = b.set_paused(["dag_0000", "dag_0001", "dag_0002"], False)
        # credentials were proven good by one probe: a later 403 is a permission, not a password
        # AF2 gives the same 403 for a dead session: each 403 asks GET /dags?limit=1 once
        # (plus the check right after the form login)
        assert len([r for r in fake.requests("GET", "/api/v1/dags")
                    if "only_active" not in r.url.params]) == 1 + 2
        with pytest.raises(BackendError, match="^permission denied for prod: PATCH "):
            b._call("PATCH", "/dags/dag_0000", json_body={"is_paused": True})
    assert res.changed == ["dag_0002"]
    assert res.errors["dag_0000"] == ("permission denied for prod: PATCH /api/v1/dags/dag_0000 "
                                      "needs DAGs edit permission (Forbidden)")
    assert set(res.errors) == {"dag_0000", "dag_0001"}   # per-DAG access: others still tried


def test_v1_basic_auth_403_probes_credentials_only_once():
    fake = FakeAirflow("v1", n=3, login_form=False)
    fake.faults.append(lambda r: _json(403, {"title": "Forbidden"})
                       if r.method == "PATCH" else None)
    with make(fake, bulk=False, concurrency=1) as b:
        res = b.set_paused(["dag_0000", "dag_0001", "dag_0002"], False)
    assert len(res.errors) == 3
    assert all(v.startswith("permission denied for prod: PATCH") for v in res.errors.values())
    assert len(fake.requests("GET", "/api/v1/dags")) == 1      # basic auth does not expire


def test_v2_403_names_the_permission():
    fake = FakeAirflow("v2", n=1)
    fake.faults.append(times(9, lambda r: "/eventLogs" in r.url.path,
                             lambda: _json(403, {"detail": "Forbidden"})))
    with pytest.raises(BackendError) as e:
        make(fake).audit_events()
    assert str(e.value) == ("permission denied for prod: GET /api/v2/eventLogs needs "
                            "Audit Logs read permission (Forbidden)")


def test_bearer_and_basic_and_none_modes():
    fake = FakeAirflow("v2", n=1)
    with make(fake, auth="bearer") as b:
        b.list_dags()
    assert fake.requests("GET", "/dags")[-1].headers["authorization"] == f"Bearer {TOKEN}"
    assert fake.logins == 0
    fake1 = FakeAirflow("v1", n=1)
    with make(fake1, auth="basic") as b:
        b.list_dags()
    raw = base64.b64encode(f"admin:{PASSWORD}".encode()).decode()
    assert fake1.requests("GET", "/dags")[-1].headers["authorization"] == f"Basic {raw}"
    with pytest.raises(BackendError, match="needs credentials but auth is none"):
        make(FakeAirflow("v2", n=1), auth="none").list_dags()


def test_secrets_never_in_errors_logs_or_repr(caplog):
    caplog.set_level(logging.DEBUG)
    fake = FakeAirflow("v2", n=1)
    # a misbehaving proxy that echoes the request headers into an error body
    fake.faults.append(times(99, lambda r: "/eventLogs" in r.url.path, lambda: None))

    def echo(request):
        if "/dagRuns" in request.url.path:
            return _json(500, {"detail": f"boom {request.headers.get('authorization')} "
                                         f"{PASSWORD}"})
        return None
    fake.faults.append(echo)
    messages = []
    b = make(fake, retries=1)
    with pytest.raises(BackendError) as e:
        b.dag_runs("dag_0000")
    messages.append(str(e.value))
    assert "***" in messages[0]
    bad = AirflowApiBackend("prod", {"url": "https://x"}, env={**ENV, "AIRFLOW_PASSWORD": "nope!x"},
                            transport=httpx.MockTransport(fake))
    with pytest.raises(BackendError) as e:
        bad.list_dags()
    messages.append(str(e.value))
    tb = AirflowApiBackend("prod", {"url": "https://x", "auth": "bearer"},
                           env={"AIRFLOW_TOKEN": "wrong-" + TOKEN},
                           transport=httpx.MockTransport(fake))
    with pytest.raises(BackendError) as e:
        tb.list_dags()
    messages.append(str(e.value))
    assert "check AIRFLOW_TOKEN" in messages[-1]
    text = "\n".join(messages + [caplog.text, repr(b), repr(bad), repr(tb), str(vars(b))])
    for secret in (PASSWORD, "nope!x", TOKEN, "jwt-1",
                   base64.b64encode(f"admin:{PASSWORD}".encode()).decode()):
        assert secret not in text


# ------------------------------------------------------------------ set_paused

def test_single_patches_change_exactly_the_set_and_report_404():
    fake = FakeAirflow("v2", n=20)
    before = fake.states()
    ticks = []
    with make(fake, bulk=False) as b:
        res = b.set_paused(["dag_0003", "dag_0007", "no_such_dag", "dag_0003"], False,
                           progress=ticks.append)
    assert res.changed == ["dag_0003", "dag_0007"]
    assert res.errors == {"no_such_dag": "DAG no_such_dag not found in prod"}
    after = fake.states()
    assert {d for d in after if after[d] != before[d]} == {"dag_0003", "dag_0007"}
    assert sum(ticks) == 3
    assert all(r.url.params["update_mask"] == "is_paused" for r in fake.requests("PATCH"))
    assert fake.bulk_patches() == []


def test_singles_respect_the_concurrency_limit():
    fake = FakeAirflow("v2", n=40)
    fake.delay = 0.01
    with make(fake, bulk=False, concurrency=4) as b:
        res = b.set_paused([f"dag_{i:04d}" for i in range(40)], False)
    assert len(res.changed) == 40
    assert 2 <= fake.max_in_flight <= 4


def pattern_of(request: httpx.Request) -> str:
    """The pattern a bulk request carried, whichever parameter its version takes."""
    params = request.url.params
    return params.get("dag_id_prefix_pattern") or params.get("dag_id_pattern") or ""


@pytest.mark.parametrize("version", ["3.3.2", "3.2.1", "3.1.8"])
def test_bulk_fast_path_used_when_get_set_equals_target(version):
    fake = FakeAirflow("v2", n=30, version=version)
    fake.add("other_dag", paused=True)
    targets = [f"dag_{i:04d}" for i in range(0, 30, 2)]          # 15 DAGs, ids contain `_`
    before = fake.states()
    ticks = []
    with make(fake, bulk_min=3) as b:
        b.list_dags()
        res = b.set_paused(targets, False, progress=ticks.append)
        assert b.capabilities.version == version
    assert sorted(res.changed) == sorted(targets) and res.errors == {}
    after = fake.states()
    assert {d for d in after if after[d] != before[d]} == set(targets)
    bulk = fake.bulk_patches()
    if version == "3.1.8":
        # no `|` before 3.2.1: every other id would need a request of its own (one term can
        # not leave out the odd ones), so single PATCHes are cheaper
        assert bulk == [] and len(fake.single_patches()) == 15
        return
    assert len(bulk) == 1 and fake.single_patches() == []
    assert all(r.url.params["paused"] == "true" for r in bulk)   # only DAGs not yet unpaused
    assert all(r.url.params["exclude_stale"] == "false" for r in bulk)
    # every pattern was listed before and after its PATCH (the verification)
    gets = [pattern_of(r) for r in fake.requests("GET", "/dags") if pattern_of(r)]
    for r in bulk:
        assert gets.count(pattern_of(r)) == 2
    assert sum(ticks) == 15


@pytest.mark.parametrize("version", ["3.2.1", "3.1.8"])
def test_bulk_not_used_for_a_term_that_would_match_an_extra_dag(version):
    # before 3.2.2 the pattern is ILIKE: `_` is a wildcard, a_b also matches axb
    fake = FakeAirflow("v2", dags={"a_b": True, "axb": True, "c_d": True, "e_f": True,
                                   "g_h": True}, version=version)
    before = fake.states()
    with make(fake, bulk_min=2) as b:
        res = b.set_paused(["a_b", "c_d", "e_f", "g_h"], False)
    assert sorted(res.changed) == ["a_b", "c_d", "e_f", "g_h"] and res.errors == {}
    after = fake.states()
    assert after["axb"] is True                                   # never touched
    assert {d for d in after if after[d] != before[d]} == {"a_b", "c_d", "e_f", "g_h"}
    assert "a_b" in fake.single_patches()
    assert all("a_b" not in pattern_of(r).split("|") for r in fake.bulk_patches())


def test_prefix_pattern_takes_underscore_literally():
    # 3.2.2+: dag_id_prefix_pattern, where `_` is no wildcard: a_b does not match axb
    fake = FakeAirflow("v2", dags={"a_b": True, "axb": True, "c_d": True}, version="3.2.2")
    with make(fake, bulk_min=2) as b:
        res = b.set_paused(["a_b", "c_d"], False)
    assert sorted(res.changed) == ["a_b", "c_d"] and fake.states()["axb"] is True
    (bulk,) = fake.bulk_patches()
    assert bulk.url.params["dag_id_prefix_pattern"] == "a_b|c_d"
    # with the prefix alone Airflow's bulk PATCH matches nothing (its absent dag_id_pattern
    # filters ILIKE '%None%'): `~` keeps that filter neutral
    assert bulk.url.params["dag_id_pattern"] == "~" and fake.single_patches() == []


def test_bulk_not_used_when_the_only_term_matches_an_extra_dag():
    fake = FakeAirflow("v2", dags={"a_b": True, "axb": True}, version="3.2.1")
    with make(fake, bulk_min=1) as b:
        res = b.set_paused(["a_b"], False)
    assert res.changed == ["a_b"] and fake.states()["axb"] is True
    assert fake.bulk_patches() == [] and fake.single_patches() == ["a_b"]


def test_bulk_tolerates_extra_matches_already_in_the_target_state():
    # a_b's pattern matches axb, but axb is already unpaused: paused=true on the PATCH skips it
    fake = FakeAirflow("v2", dags={"a_b": True, "axb": False, "c_d": True}, version="3.2.1")
    with make(fake, bulk_min=2) as b:
        res = b.set_paused(["a_b", "c_d"], False)
    assert sorted(res.changed) == ["a_b", "c_d"]
    assert len(fake.bulk_patches()) == 1 and fake.single_patches() == []
    assert fake.states() == {"a_b": False, "axb": False, "c_d": False}


def test_bulk_reports_missing_and_already_set_dags_correctly():
    fake = FakeAirflow("v2", dags={"x_1": True, "x_2": True, "x_3": False})
    with make(fake, bulk_min=2) as b:
        res = b.set_paused(["x_1", "x_2", "x_3", "x_404"], False)
    assert sorted(res.changed) == ["x_1", "x_2", "x_3"]
    assert res.errors == {"x_404": "DAG x_404 not found in prod"}


def test_bulk_includes_stale_targets():
    fake = FakeAirflow("v2", dags={"s_1": True, "s_2": True})
    fake.dags["s_2"]["stale"] = True
    with make(fake, bulk_min=2) as b:
        res = b.set_paused(["s_1", "s_2"], False)
    assert sorted(res.changed) == ["s_1", "s_2"]
    assert fake.states() == {"s_1": False, "s_2": False}
    assert fake.single_patches() == []


@pytest.mark.parametrize("version", ["3.3.2", "3.2.1"])
def test_bulk_race_is_detected_and_the_extra_dag_restored(version):
    # a race no real server produces on demand: job_bx is paused by someone between our GET
    # and our PATCH, so the PATCH (paused=true filter) flips it too
    fake = FakeAirflow("v2", dags={"job_a": True, "job_b": True, "job_c": True,
                                   "job_bx": False}, version=version)

    def someone_pauses_job_bx(f):
        f.before_bulk_patch = None
        f.dags["job_bx"]["is_paused"] = True
    fake.before_bulk_patch = someone_pauses_job_bx
    with make(fake, bulk_min=2) as b:
        res = b.set_paused(["job_a", "job_b", "job_c"], False)
    assert sorted(res.changed) == ["job_a", "job_b", "job_c"]
    # the PATCH response proves job_bx was flipped (paused -> unpaused): it is put back
    assert fake.states()["job_bx"] is True
    assert fake.single_patches() == ["job_bx"]
    assert res.errors == {}


def test_bulk_uses_shared_prefixes_when_the_last_listing_allows():
    fake = FakeAirflow("v2", version="3.2.1")
    for i in range(50):
        fake.add(f"etl_{i:03d}")
    fake.add("report_1")
    fake.add("my_etl_01x")                   # contains etl_01: that term is not safe
    targets = [f"etl_{i:03d}" for i in range(50)]
    before = fake.states()
    with make(fake, bulk_min=2) as b:
        b.list_dags()
        res = b.set_paused(targets, False)
    assert sorted(res.changed) == targets and not res.errors
    after = fake.states()
    assert {d for d in after if after[d] != before[d]} == set(targets)
    (bulk,) = fake.bulk_patches()
    terms = pattern_of(bulk).split("|")
    # shortest ILIKE terms that match no other DAG: etl_00, etl_02, ... and etl_01<n> (etl_01
    # would also match my_etl_01x)
    assert "etl_00" in terms and "etl_02" in terms and "etl_010" in terms
    assert "etl_01" not in terms and len(terms) == 4 + 10


def test_prefix_from_a_stale_listing_is_caught_by_the_get():
    fake = FakeAirflow("v2", version="3.2.1")
    for i in range(20):
        fake.add(f"job_{i:02d}")
    targets = sorted(fake.dags)
    with make(fake, bulk_min=2) as b:
        b.list_dags()
        fake.add("new_job_1x", paused=True)          # appears after the listing
        res = b.set_paused(targets, False)
    assert sorted(res.changed) == targets and not res.errors
    assert fake.states()["new_job_1x"] is True          # never touched
    gets = [pattern_of(r) for r in fake.requests("GET", "/dags") if pattern_of(r)]
    assert gets[0] == "%"                 # first try: the listing had no other DAG ...
    # ... but the GET shows new_job_1x at the other state: that pattern is never sent
    assert fake.bulk_patches() and all(pattern_of(r) != "%" for r in fake.bulk_patches())


def test_bulk_chunks_long_target_sets():
    fake = FakeAirflow("v2", n=250, version="3.2.1")
    fake.add("zz_other")
    targets = [d for d in sorted(fake.dags) if d != "zz_other"]
    with make(fake, bulk_min=2, max_pattern_length=1000) as b:
        res = b.set_paused(targets, False)          # no listing: exact ids
    assert len(res.changed) == 250 and not res.errors
    assert all(v is False for d, v in fake.states().items() if d != "zz_other")
    assert fake.states()["zz_other"] is True
    bulk = fake.bulk_patches()
    assert len(bulk) >= 3 and all(len(pattern_of(r)) <= 1000 for r in bulk)
    # 3.2.1 updates one page (100) per request: repeated until nothing was left
    assert sum(len(pattern_of(r).split("|")) for r in bulk) >= 250


def test_a_bulk_patch_that_claims_success_but_changes_nothing_is_caught_by_the_listing():
    # a server lying in its answer (Airflow 3.2.2/3.3.2 really did with a prefix pattern
    # alone: total_entries 0, nothing changed; here it claims every match): the listing after
    # the PATCH decides, every target gets its single PATCH, nothing else is touched
    fake = FakeAirflow("v2", n=40, version="3.3.2")
    fake.add("zz_keep", paused=True)

    def liar(request):
        if request.method == "PATCH" and request.url.path.endswith("/dags"):
            return _json(200, {"dags": [], "total_entries": 40})
        return None
    fake.faults.append(liar)
    targets = [d for d in sorted(fake.dags) if d != "zz_keep"]
    with make(fake, bulk_min=2) as b:
        b.list_dags()
        res = b.set_paused(targets, False)
    assert sorted(res.changed) == targets and not res.errors
    assert sorted(fake.single_patches()) == targets and len(fake.bulk_patches()) == 1
    assert fake.states()["zz_keep"] is True


def test_bulk_error_falls_back_to_singles():
    fake = FakeAirflow("v2", n=5)
    fake.faults.append(times(99, lambda r: r.method == "PATCH" and r.url.path.endswith("/dags"),
                             lambda: _json(400, {"detail": "bulk disabled here"})))
    with make(fake, bulk_min=2) as b:
        res = b.set_paused(sorted(fake.dags), False)
    assert len(res.changed) == 5 and len(fake.single_patches()) == 5


def test_v1_bulk_uses_prefix_groups_and_pages_the_patch():
    fake = FakeAirflow("v1")
    for i in range(150):
        fake.add(f"etl_{i:03d}")
    fake.add("report_1")
    fake.add("etlx_999")                          # `etl_` also matches this
    targets = [f"etl_{i:03d}" for i in range(150)]
    before = fake.states()
    with make(fake, bulk_min=10) as b:
        res = b.set_paused(targets, False)
    assert sorted(res.changed) == targets and res.errors == {}
    after = fake.states()
    assert {d for d in after if after[d] != before[d]} == set(targets)
    bulk = fake.bulk_patches()
    assert bulk and all(r.url.params["only_active"] == "false" for r in bulk)
    assert all("|" not in r.url.params["dag_id_pattern"] for r in bulk)   # AF2 has no OR
    # AF2 updates one page per bulk PATCH: several pages were needed
    assert len(bulk) >= 2
    assert len(fake.single_patches()) < 20


def test_set_paused_never_touches_other_dags_randomised():
    import random
    rnd = random.Random(7)
    alphabet = ["a", "b", "_", "x", "1"]
    for api in ("v2", "v1"):
        for _ in range(40):
            ids = {"".join(rnd.choice(alphabet) for _ in range(rnd.randint(2, 5)))
                   for _ in range(40)}
            fake = FakeAirflow(api, dags={d: rnd.random() < 0.5 for d in ids})
            targets = rnd.sample(sorted(ids), rnd.randint(1, len(ids)))
            want = rnd.random() < 0.5
            with make(fake, bulk_min=2) as b:
                if rnd.random() < 0.6:
                    b.list_dags()                     # lets set_paused try prefix terms
                    for _ in range(rnd.randint(0, 3)):    # ... from a listing gone stale
                        fake.add("".join(rnd.choice(alphabet) for _ in range(rnd.randint(2, 6))),
                                 paused=rnd.random() < 0.5)
                before = fake.states()
                res = b.set_paused(targets, want)
            after = fake.states()
            assert {d for d in after if after[d] != before[d]} <= set(targets), (api, targets)
            assert all(after[d] == want for d in targets)
            assert sorted(res.changed) == sorted(targets) and not res.errors


def test_fatal_error_stops_the_batch_but_reports_every_dag():
    fake = FakeAirflow("v2", n=10)
    with make(fake, bulk=False, concurrency=1) as b:
        b.list_dags()
        fake.faults.append(times(99, lambda r: r.method == "PATCH",
                                 lambda: _json(401, {"detail": "Token Expired"})))
        res = b.set_paused([f"dag_{i:04d}" for i in range(10)], False)
    assert res.changed == [] and len(res.errors) == 10
    assert all(v.startswith("authentication failed for prod") for v in res.errors.values())
    assert len(fake.requests("PATCH")) == 2          # one try + one after refresh, then stop


# ------------------------------------------------------------------ audit events, runs

def test_event_normalisation_v1_prefixed():
    fake = FakeAirflow("v1", dags={"etl_a": True, "etl_b": True, "other": True})
    t0 = datetime(2026, 3, 1, tzinfo=timezone.utc)
    raw = [
        ("api.patch_dag", "etl_a", "alice", {"update_mask": "is_paused", "is_paused": True}),
        ("ui.patch_dag", "etl_b", "bob", {"is_paused": False}),
        ("paused", "etl_a", "carol", {"is_paused": False}),          # AF2 UI toggle
        ("api.patch_dags", None, "dave", {"dag_id_pattern": "etl_", "only_active": "false",
                                          "is_paused": True}),
        ("cli_dag_pause", "etl_b", "root",
         {"host_name": "vm", "full_command": "['/venv/bin/airflow', 'dags', 'pause', 'etl_b']"}),
        ("cli_dag_unpause", "other", "root", {"host_name": "vm", "full_command": "['airflow']"}),
        ("trigger", "etl_a", "x", {}),                               # not a pause event
    ]
    for i, (event, dag, owner, extra) in enumerate(raw):
        fake.events.append({"event_log_id": i + 1, "event": event, "dag_id": dag,
                            "owner": owner, "when": (t0 + timedelta(minutes=i)).isoformat(),
                            "extra": json.dumps(extra)})
    with make(fake) as b:
        events = b.audit_events()
        mine = b.audit_events(["etl_a", "etl_b"])
        only_b = b.audit_events(["etl_b"])
    assert [e.event for e in events] == ["cli_dag_unpause", "cli_dag_pause", "patch_dags",
                                         "patch_dag", "patch_dag", "patch_dag"]
    by_user = {e.user: e for e in events}
    assert (by_user["alice"].via, by_user["alice"].is_paused) == ("api", True)
    assert (by_user["bob"].via, by_user["bob"].is_paused) == ("api", False)
    assert (by_user["carol"].event, by_user["carol"].is_paused) == ("patch_dag", False)
    bulk = by_user["dave"]
    assert (bulk.dag_id, bulk.via, bulk.detail, bulk.is_paused) == (None, "bulk", "etl_", True)
    cli = events[1]
    assert (cli.via, cli.is_paused, cli.detail) == ("cli", True, "airflow dags pause etl_b")
    assert cli.describe() == ("paused by root via CLI at 2026-03-01T00:04:00+00:00 "
                              "(airflow dags pause etl_b)")
    assert events == sorted(events, key=lambda e: e.when, reverse=True)
    # filtered: the bulk pattern etl_ covers both; `other` is out
    assert {e.user for e in mine} == {"alice", "bob", "carol", "dave", "root"}
    assert all(e.dag_id in (None, "etl_a", "etl_b") for e in mine)
    assert {e.user for e in only_b} == {"bob", "dave", "root"}
    inc = fake.requests("GET", "/eventLogs")[0].url.params["included_events"]
    assert "api.patch_dag" in inc.split(",") and "cli_dag_pause" in inc.split(",")


def test_events_v2_single_dag_uses_server_filter_and_since():
    fake = FakeAirflow("v2", n=3)
    with make(fake, bulk=False) as b:
        since = datetime.now(timezone.utc) - timedelta(seconds=5)
        b.set_paused(["dag_0001"], False)
        b.set_paused(["dag_0002"], False)
        events = b.audit_events(["dag_0001"], since=since)
    assert [(e.dag_id, e.event, e.user, e.is_paused, e.via) for e in events] == \
        [("dag_0001", "patch_dag", "admin", False, "api")]
    reqs = fake.requests("GET", "/eventLogs")
    assert any(r.url.params.get("dag_id") == "dag_0001" for r in reqs)
    assert all(r.url.params["order_by"] == "-when" and "after" in r.url.params for r in reqs)
    assert reqs[0].url.params.get_list("included_events")       # repeated param on v2


def test_audit_events_are_bounded():
    fake = FakeAirflow("v2", n=1)
    for i in range(500):
        fake.events.append({"event_log_id": i, "event": "patch_dag", "dag_id": "dag_0000",
                            "owner": "a", "when": f"2026-01-01T00:{i // 60:02d}:{i % 60:02d}Z",
                            "extra": "{}"})
    with make(fake, audit_limit=250) as b:
        events = b.audit_events()
    assert len(events) == 250
    assert len(fake.requests("GET", "/eventLogs")) == 3


@pytest.mark.parametrize("api,order", [("v2", "-run_after"), ("v1", "-execution_date")])
def test_dag_runs(api, order):
    fake = FakeAirflow(api, n=1)
    if api == "v1":       # AF2 answers [] for an unknown DAG's runs; the DAG itself 404s
        fake.faults.append(lambda r: _json(200, {"dag_runs": [], "total_entries": 0})
                           if r.url.path.endswith("/dags/nope/dagRuns") else None)
    fake.runs["dag_0000"] = [
        {"dag_id": "dag_0000", "dag_run_id": "scheduled__2", "state": "failed",
         "run_after": "2026-01-02T00:00:00Z", "data_interval_end": "2026-01-02T00:00:00+00:00",
         "start_date": "2026-01-02T00:00:01Z", "end_date": None},
        {"dag_id": "dag_0000", "dag_run_id": "scheduled__1", "state": "success",
         "run_after": "2026-01-01T00:00:00Z", "data_interval_end": "2026-01-01T00:00:00+00:00",
         "start_date": None, "end_date": None}]
    with make(fake) as b:
        runs = b.dag_runs("dag_0000", limit=1)
        with pytest.raises(BackendError, match="^DAG nope not found in prod$"):
            b.dag_runs("nope")
    assert [(r.run_id, r.state) for r in runs] == [("scheduled__2", "failed")]
    assert runs[0].run_after == datetime(2026, 1, 2, tzinfo=timezone.utc)
    assert fake.requests("GET", "/dagRuns")[0].url.params["order_by"] == order


# ------------------------------------------------------------------ variables

@pytest.mark.parametrize("api", ["v2", "v1"])
def test_variables(api):
    fake = FakeAirflow(api)
    with make(fake) as b:
        assert b.get_variable("pausectl.lock.prod") is None
        assert b.create_variable("pausectl.lock.prod", "owner-1") is True
        assert b.create_variable("pausectl.lock.prod", "owner-2") is False
        assert b.get_variable("pausectl.lock.prod") == "owner-1"
        b.set_variable("pausectl.lock.prod", "owner-3")
        assert fake.variables["pausectl.lock.prod"] == "owner-3"
        b.set_variable("fresh", "1")
        assert fake.variables["fresh"] == "1"
        b.delete_variable("pausectl.lock.prod")
        b.delete_variable("pausectl.lock.prod")          # absent: fine
        assert b.get_variable("pausectl.lock.prod") is None
        assert b.sleeps == [0.5]              # create_settle before re-reading a 201, not a 409


def test_create_variable_loses_to_a_concurrent_creator():
    fake = FakeAirflow("v2")
    with make(fake) as b:
        b.sleep = lambda s: fake.variables.update(k="someone-else")   # they upsert meanwhile
        assert b.create_variable("k", "me") is False


def test_create_variable_retried_post_that_landed_counts_as_ours():
    fake = FakeAirflow("v2")

    def lands_then_500(request):
        if request.method == "POST" and request.url.path.endswith("/variables"):
            fake.variables["k"] = "me"
            fake.faults.remove(lands_then_500)
            return _json(500, {"detail": "database is locked"})
        return None
    fake.faults.append(lands_then_500)
    with make(fake) as b:
        assert b.create_variable("k", "me") is True      # the retry got 409, value is ours


def test_close_and_context_manager():
    fake = FakeAirflow("v2", n=2)
    b = make(fake)
    with b:
        b.set_paused(["dag_0000", "dag_0001"], False)
    assert b.transport.client.is_closed
    b.close()                                            # idempotent
    with pytest.raises(BackendError, match="^prod: backend is closed$"):
        b.list_dags()


def test_ilike_emulation_matches_sql():
    cases = [("a_b", "axb"), ("a_b", "a_b"), ("A_B", "xa_bx"), ("a%c", "abbbc"), ("ab", "ba"),
             ("x.y", "x.y-z"), ("x.y", "xzy")]
    for pattern, value in cases:
        assert ilike_matches(pattern, value) == _like(pattern, value), (pattern, value)
    assert ilike_matches("nope|a_b", "axb") and not ilike_matches("nope|a_b", "axb",
                                                                    or_terms=False)
    assert ilike_matches("~", "anything")
