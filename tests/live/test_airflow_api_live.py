"""The airflow-api backend against real Airflow 3.3.2 (REST v2) and 2.11.2 (REST v1), started
by the harness (tests/conftest.py). Every state change is checked in Airflow's own database,
for every DAG, so "nothing else changed" is proven, not assumed."""

from __future__ import annotations

import json
import math
import threading

import httpx
import pytest

from reconciler.live.airflow_api import AirflowApiBackend, ilike_matches
from reconciler.live.events import prefix_matches
from reconciler.core.errors import BackendError
from helpers import db_states

STALE = "ml_stale_old"


class Recording(httpx.HTTPTransport):
    """A real transport that remembers what was sent."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[httpx.Request] = []
        self._lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            self.requests.append(request)
        response = super().handle_request(request)
        request.extensions["pausectl_status"] = response.status_code
        return response

    def count(self, method: str, pred=lambda path: True) -> int:
        return sum(1 for r in self.requests if r.method == method and pred(r.url.path))


def backend(server, *, password: str | None = None, **cfg) -> tuple[AirflowApiBackend, Recording]:
    transport = Recording()
    env = {"AF_USER": server.username,
           "AF_PASS": server.password if password is None else password}
    b = AirflowApiBackend("live", {"type": "airflow-api", "url": server.url,
                                   "username_env": "AF_USER", "password_env": "AF_PASS", **cfg},
                          env=env, transport=transport)
    return b, transport



def test_detects_api_and_lists_every_dag_with_paging(airflow_server):
    b, rec = backend(airflow_server)
    with b:
        dags = {d.dag_id: d for d in b.list_dags()}
        assert b.api == airflow_server.api_version
        assert b.server_version == airflow_server.version
    assert set(dags) == set(airflow_server.specs) == set(db_states(airflow_server))
    pages = sum(1 for r in rec.requests
                if r.method == "GET" and r.url.path.endswith("/dags") and "offset" in r.url.params)
    assert pages == math.ceil(len(dags) / 100) and pages >= 2     # server caps limit at 100
    assert dags[STALE].is_stale is True                            # stale DAGs are included
    # the DB is the truth (AF3 also marks a DAG whose file stopped importing stale)
    stale_sql = "is_stale" if airflow_server.api_version == "v2" else "NOT is_active"
    db_stale = {r[0] for r in airflow_server.query(f"SELECT dag_id FROM dag WHERE {stale_sql}")}
    assert {d for d, v in dags.items() if v.is_stale} == db_stale
    db_paused = db_states(airflow_server)
    assert {d: v.is_paused for d, v in dags.items()} == db_paused
    etl = dags["etl_001"]
    assert etl.tags == ("etl", "canary") or set(etl.tags) == {"etl", "canary"}
    assert etl.owners == ("data-eng",)
    assert etl.timetable_summary is not None and etl.next_dagrun_run_after is not None
    assert dags["etl_000"].timetable_summary is None               # schedule=None
    assert dags["ml_limited"].max_active_runs == 1
    assert dags["etl_broken_a"].has_import_errors is True


def test_set_paused_subset_changes_only_that_subset(airflow_server):
    airflow_server.reset()
    before = db_states(airflow_server)
    subset = ["etl_003", "report_010", "ml_007", "critical_billing", STALE]
    b, rec = backend(airflow_server, bulk=False)
    with b:
        res = b.set_paused(subset, False)
    assert sorted(res.changed) == sorted(subset) and res.errors == {}
    after = db_states(airflow_server)
    assert set(after) == set(before)
    assert {d for d in after if after[d] != before[d]} == set(subset)   # EVERY DAG checked
    assert all(after[d] is False for d in subset)
    assert rec.count("PATCH", lambda p: p.endswith("/dags")) == 0          # no bulk request


def test_bulk_path_on_ids_with_underscores_changes_exactly_the_set(airflow_server):
    airflow_server.reset()
    before = db_states(airflow_server)
    # 50 ids with `_` (an ILIKE wildcard), plus `etl_0_1`: no such DAG, but as a pattern it
    # also matches etl_001 (not in the set), so that term must not go into a bulk PATCH
    wanted = [f"etl_{i:03d}" for i in range(10, 60)]
    b, rec = backend(airflow_server, bulk_min=5)
    with b:
        res = b.set_paused(wanted + ["etl_0_1"], False)
    assert sorted(res.changed) == sorted(wanted)
    assert res.errors == {"etl_0_1": "DAG etl_0_1 not found in live"}
    after = db_states(airflow_server)
    assert {d for d in after if after[d] != before[d]} == set(wanted)
    assert after["etl_001"] is True
    bulk = [r for r in rec.requests if r.method == "PATCH" and r.url.path.endswith("/dags")]
    singles = [r for r in rec.requests if r.method == "PATCH" and "/dags/" in r.url.path]
    assert bulk, "the bulk fast path was not used"
    assert [r.url.path.rsplit("/", 1)[1] for r in singles] == ["etl_0_1"]
    assert all("etl_0_1" not in r.url.params["dag_id_pattern"] for r in bulk)

    # and back again, also in bulk
    with backend(airflow_server, bulk_min=5)[0] as b2:
        res = b2.set_paused(wanted, True)
    assert sorted(res.changed) == sorted(wanted) and not res.errors
    assert db_states(airflow_server) == before


def test_audit_events_after_a_patch_show_the_api_user(airflow_server):
    airflow_server.reset()
    b, _ = backend(airflow_server, bulk=False)
    with b:
        b.set_paused(["report_020"], False)
        events = b.audit_events(["report_020"])
    assert events, "no event logged"
    top = events[0]
    assert (top.dag_id, top.event, top.user, top.is_paused, top.via) == \
        ("report_020", "patch_dag", airflow_server.username, False, "api")
    assert top.describe().startswith(f"unpaused by {airflow_server.username} via UI/API at ")


def test_audit_events_show_bulk_patterns(airflow_server):
    airflow_server.reset()
    b, rec = backend(airflow_server, bulk_min=2)
    with b:
        # ml_000..ml_029: on AF2 (no OR in patterns) the common prefix ml_0 matches exactly these
        b.set_paused([f"ml_{i:03d}" for i in range(30)], False)
        events = b.audit_events(["ml_002"])
    assert rec.count("PATCH", lambda p: "/dags/" in p) == 0
    bulk = [e for e in events if e.via == "bulk"]
    # the bulk event (dag_id empty in Airflow) is attributed to the DAG its pattern matches
    assert bulk and bulk[0].dag_id == "ml_002" and bulk[0].event == "patch_dags"
    match = prefix_matches if bulk[0].pattern_kind == "prefix" else ilike_matches
    assert match(bulk[0].pattern or "", "ml_002", or_terms=b.capabilities.pattern_or)
    assert bulk[0].user == airflow_server.username and bulk[0].is_paused is False


def test_af2_password_token_uses_one_login_session(airflow2):
    b, rec = backend(airflow2)
    with b:
        b.list_dags()
        b.set_paused(["etl_004"], True)
    form = [r for r in rec.requests if r.url.path == "/login/"]
    trail = [(r.method, r.url.path, r.extensions.get("pausectl_status"),
              "authorization" in r.headers) for r in rec.requests]
    assert [r.method for r in form] in (["GET", "POST"], ["GET"]), trail   # never retried
    api = [r for r in rec.requests[rec.requests.index(form[-1]) + 1:]
           if r.url.path.startswith("/api/v1/dags") and "limit=1" not in str(r.url)]
    assert api, trail
    if any(r.extensions["pausectl_status"] == 429 for r in form):
        # AF2 rate-limits its login form (5 per 40 s) and other tests just logged in:
        # the backend falls back to basic auth at once instead of waiting
        assert all(r.headers["authorization"].startswith("Basic ") for r in api), trail
    else:
        assert [r.method for r in form] == ["GET", "POST"], trail
        assert all("authorization" not in r.headers for r in api), trail   # cookie only


def test_wrong_password_is_one_clear_line(airflow_server):
    b, _ = backend(airflow_server, password="definitely-wrong-pw")
    with b, pytest.raises(BackendError) as e:
        b.list_dags()
    assert str(e.value) == "authentication failed for live (check AF_USER and AF_PASS)"
    assert "definitely-wrong-pw" not in str(e.value)


def test_unknown_dag(airflow_server):
    airflow_server.reset()
    before = db_states(airflow_server)
    b, _ = backend(airflow_server)
    with b:
        res = b.set_paused(["no_such_dag_xyz"], False)
        assert res.errors == {"no_such_dag_xyz": "DAG no_such_dag_xyz not found in live"}
        assert res.changed == []
        with pytest.raises(BackendError, match="^DAG no_such_dag_xyz not found in live$"):
            b.dag_runs("no_such_dag_xyz")
        assert b.dag_runs("etl_001") == []           # no scheduler: no runs, but a valid answer
    assert db_states(airflow_server) == before


def test_variables_create_get_set_delete(airflow_server):
    airflow_server.reset()
    b, _ = backend(airflow_server)
    with b:
        key = "pausectl.lock.live"
        assert b.get_variable(key) is None
        assert b.create_variable(key, '{"holder": "a"}') is True
        assert b.create_variable(key, '{"holder": "b"}') is False
        assert b.get_variable(key) == '{"holder": "a"}'
        b.set_variable(key, "x")
        assert b.get_variable(key) == "x"
        b.delete_variable(key)
        b.delete_variable(key)
        assert b.get_variable(key) is None
        b.set_variable("pausectl.marker", "1")          # set on an absent key creates it
        assert b.get_variable("pausectl.marker") == "1"
        b.delete_variable("pausectl.marker")


def test_emergency_marker_reads_back_whole_though_airflow_masks_secret_looking_keys(
        airflow_server):
    """Airflow 3 masks string values of a JSON Variable under keys that look secret ("token",
    "secret", "dsn", ...) when it is read; the marker's prior map holds booleans under DAG ids
    (which may look secret), so it reads back whole and is compared by identity, not text."""
    from reconciler.apply import emergency as em
    airflow_server.reset()
    b, _ = backend(airflow_server)
    with b:
        data = {"version": 1, "environment": "live", "reason": "r", "owner": "o",
                "started": "2026-01-01T00:00:00Z", "by": "t", "except": [],
                "prior": {"rotate_token_daily": False, "etl_001": False}, "kept": [],
                "revision": 1}
        b.set_variable(em.marker_key("live"), json.dumps(data))
        marker = em.read_marker(b, "live")
        b.set_variable("pausectl.test.masked", json.dumps({"api_token": "abc", "n": "abc"}))
        masked = json.loads(b.get_variable("pausectl.test.masked"))
    assert marker["prior"] == data["prior"] and em._same_marker(marker, data)
    assert masked == ({"api_token": "***", "n": "abc"} if airflow_server.major == 3
                      else {"api_token": "abc", "n": "abc"})
    airflow_server.reset()
