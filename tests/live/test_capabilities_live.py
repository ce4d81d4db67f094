"""Capabilities by server version, measured on every real Airflow of the matrix
(`matrix_server`: 2.9.3 .. 3.3.2, each with harness.matrix_dags(), >= 350 DAGs).

1. What capabilities_for(version) says is what the server does: each fact is probed with raw
   HTTP (bulk PATCH scope, `|` in patterns, dag_id_prefix_pattern, the `paused` filter on the
   bulk PATCH, trustworthy event values), not taken from the table.
2. set_paused of >= 300 flips and an emergency pause of >= 300 DAGs with exceptions leave no
   DAG at the old state and change nothing else (every DAG read from Airflow's DB), with the
   number of bulk requests this version needs: one on 3.2.2+, one page per request elsewhere.
3. Airflow's own pause (the scheduler's write, reproduced through Airflow's ORM), the CLI with
   --treat-dag-id-as-regex, and a bulk pattern are each attributed to the DAGs they changed.
"""

from __future__ import annotations

import json
import math
import time
import urllib.parse
from datetime import datetime, timezone

import httpx
import pytest

from reconciler.apply import emergency as em
from reconciler.live.capabilities import capabilities_for
from reconciler.live.events import ilike_matches, prefix_matches
from testkit.harness import _http

from helpers import db_states
from test_airflow_api_live import backend

PAGE = 100            # [api] maximum_page_limit, the default on every version


def api_of(server) -> str:
    return "v2" if server.major == 3 else "v1"


def raw(server, method: str, path: str, query: dict | None = None, body=None):
    q = "?" + urllib.parse.urlencode(query, doseq=True) if query else ""
    status, text = _http(method, f"{server.api_url}{path}{q}", timeout=60, data=body,
                         headers=server.auth_headers())
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text


def set_db(server, states: dict[str, bool]) -> None:
    import sqlite3
    with sqlite3.connect(server.db_path, timeout=30) as db:
        db.executemany("UPDATE dag SET is_paused = ? WHERE dag_id = ?",
                       [(int(p), d) for d, p in states.items()])


def bulk_patches(rec) -> int:
    return rec.count("PATCH", lambda p: p.endswith("/dags"))


def single_patches(rec) -> list[str]:
    return [r.url.path.rsplit("/", 1)[1] for r in rec.requests
            if r.method == "PATCH" and "/dags/" in r.url.path]


# ---------------------------------------------------------------- 1. the table, measured

def test_capabilities_are_what_the_server_does(matrix_server):
    server = matrix_server
    server.reset()
    api = api_of(server)
    b, _ = backend(server)
    with b:
        caps = b.caps()
    assert b.server_version == server.version
    assert caps == capabilities_for(server.version, api)
    n = len(db_states(server))

    # `|` ORs terms (else it is part of the ILIKE text and matches nothing)
    stale = {"exclude_stale": "false"} if api == "v2" else {"only_active": "false"}
    _, got = raw(server, "GET", "/dags", {"dag_id_pattern": "etl_001|report_001", "limit": 5,
                                          **stale})
    assert (got["total_entries"] == 2) is caps.pattern_or, got["total_entries"]

    # dag_id_prefix_pattern filters (an unknown parameter is ignored on AF3, 400 on AF2)
    status, got = raw(server, "GET", "/dags", {"dag_id_prefix_pattern": "etl_00", "limit": 1,
                                               **stale})
    prefix_works = status == 200 and got["total_entries"] < n
    assert prefix_works is caps.prefix_pattern, (status, got if status != 200 else "")

    if caps.prefix_pattern:
        # Airflow bug (3.2.2, 3.3.2): a bulk PATCH with dag_id_prefix_pattern alone matches
        # nothing (its absent dag_id_pattern filters ILIKE '%None%'); bulk.py adds `~`
        for extra, want in (({}, 0), ({"dag_id_pattern": "~"}, got["total_entries"])):
            status, patched = raw(server, "PATCH", "/dags", {      # paused ones: no change
                "dag_id_prefix_pattern": "etl_00", "paused": "true", "limit": 1, **extra},
                {"is_paused": True})
            assert (status, patched["total_entries"]) == (200, want)

    # the bulk PATCH's `paused` filter: AF3 has it; AF2's strict validation rejects it
    status, _ = raw(server, "PATCH", "/dags", {"dag_id_pattern": "no_such_dag_zzz",
                                               "paused": "true", "update_mask": "is_paused"},
                    {"is_paused": True})
    assert (status == 200) is caps.bulk_paused_filter, status

    # bulk PATCH scope: every DAG matches `%`; how many did one request change?
    q = {"dag_id_pattern": "%", "update_mask": "is_paused", "limit": PAGE, **stale}
    status, got = raw(server, "PATCH", "/dags", q, {"is_paused": False})
    assert status == 200
    changed = sum(1 for p in db_states(server).values() if not p)
    assert got["total_entries"] == n                       # the count always says "all" ...
    assert changed == (n if caps.bulk_all else PAGE), changed      # ... the DB does not
    server.reset()

    # event values: 3.0.x logs is_paused false for every PATCH (apache/airflow #55074)
    status, _ = raw(server, "PATCH", "/dags/etl_003", {"update_mask": "is_paused"},
                    {"is_paused": True})
    assert status == 200
    event = "patch_dag" if api == "v2" else "api.patch_dag"
    _, logs = raw(server, "GET", "/eventLogs", {"dag_id": "etl_003", "event": event,
                                                "order_by": "-when", "limit": 1})
    row = logs["event_logs"][0]
    assert row["owner"] == server.username
    assert (json.loads(row["extra"]).get("is_paused") is True) is caps.event_is_paused_trusted


# ---------------------------------------------------------------- 2. >= 300 changes

def check_bulk_requests(rec, caps, targets: set[str]) -> int:
    """Each distinct bulk pattern sent took the requests this version needs for the targets
    it stood for: one on 3.2.2+ (every match), one page per request elsewhere. Returns
    the number of bulk PATCH requests."""
    sent = [r for r in rec.requests if r.method == "PATCH" and r.url.path.endswith("/dags")]
    patterns: list[tuple[str, str]] = []
    for r in sent:
        params = r.url.params
        key = (("prefix", params["dag_id_prefix_pattern"]) if "dag_id_prefix_pattern" in params
               else ("ilike", params["dag_id_pattern"]))
        if key not in patterns:
            patterns.append(key)
    left = set(targets)
    for kind, pattern in patterns:
        match = prefix_matches if kind == "prefix" else ilike_matches
        cover = {d for d in left if match(pattern, d, or_terms=caps.pattern_or)}
        left -= cover
        n = sum(1 for r in sent if r.url.params.get(
            "dag_id_prefix_pattern" if kind == "prefix" else "dag_id_pattern") == pattern)
        # a page is the `limit` pausectl asks for, capped at PAGE except on 3.0.x, whose
        # PATCH /dags does not cap it (test_matrix's limit_1000_rows fact)
        limit = int(next(r for r in sent if pattern in r.url.params.values())
                     .url.params.get("limit", PAGE))
        page = limit if (caps.version or "").startswith("3.0.") else min(limit, PAGE)
        assert n == (1 if caps.bulk_all else math.ceil(len(cover) / page)), (pattern, n)
    assert not left, sorted(left)[:5]                   # every target went through a pattern
    assert len(patterns) <= 12                          # few patterns, whatever the version
    return len(sent)


def test_set_paused_300_flips_leaves_no_dag_at_the_old_state(matrix_server):
    server = matrix_server
    server.reset()                                   # every matrix DAG starts paused
    before = db_states(server)
    targets = sorted(d for d in before if not d.startswith(("critical_", "misc_")))
    assert len(targets) >= 300
    b, rec = backend(server)
    with b:
        b.list_dags()                                # what apply does: plan, then apply
        rec.requests.clear()
        t = time.perf_counter()
        res = b.set_paused(targets, False)
        seconds = time.perf_counter() - t
        caps = b.capabilities
    after = db_states(server)
    assert sorted(res.changed) == targets and res.errors == {}
    assert [d for d in targets if after[d]] == []                   # none at the old state
    assert {d for d in after if after[d] != before[d]} == set(targets)   # nothing else
    assert single_patches(rec) == []
    assert check_bulk_requests(rec, caps, set(targets)) == b.bulk_requests
    if caps.bulk_all:
        assert bulk_patches(rec) == 1                  # the one-request path (3.2.2+)
    print(f"\n{server.version}: set_paused {len(targets)} flips: {bulk_patches(rec)} bulk "
          f"PATCH, {len(rec.requests)} requests, {seconds:.2f}s")
    server.reset()


def test_emergency_pause_300_with_exceptions_through_the_bulk_path(matrix_server):
    server = matrix_server
    server.reset(paused=False)                       # everything running
    before = db_states(server)
    critical = {d for d, s in server.specs.items() if "critical" in s.tags and d in before}
    b, rec = backend(server)
    with b:
        t = time.perf_counter()
        summary = em.pause(b, "live", "db down", "oncall", ["tag:critical"], [], by="test")
        seconds = time.perf_counter() - t
        caps = b.capabilities
        marker = em.read_marker(b, "live")
    after = db_states(server)
    targets = set(before) - critical
    assert len(targets) >= 300 and summary["errors"] == {}
    assert summary["paused"] == len(targets) and sorted(summary["kept_running"]) == \
        sorted(critical)
    assert [d for d in targets if not after[d]] == []               # none still running
    assert all(after[d] is False for d in critical)                 # exceptions untouched
    assert set(marker["prior"]) == targets and not any(marker["prior"].values())
    # ids next to a kept one (etl_012.. beside the critical-tagged etl_010/011) cannot share a
    # term: the few of them are single PATCHes; a kept DAG never is
    assert set(single_patches(rec)) <= targets and len(single_patches(rec)) <= 20
    check_bulk_requests(rec, caps, targets - set(single_patches(rec)))
    if caps.bulk_all:
        assert bulk_patches(rec) == 1
    print(f"\n{server.version}: emergency pause of {len(targets)}: {bulk_patches(rec)} bulk "
          f"PATCH, {len(rec.requests)} requests, {seconds:.2f}s")
    server.reset()


# ---------------------------------------------------------------- 3. who paused it

def af2_ui_toggle(server, dag_id: str, pause: bool) -> None:
    """What the Airflow 2 UI's pause toggle sends: POST /paused?dag_id=&is_paused=<current>
    with the login session and its CSRF token (www/views.py Airflow.paused)."""
    import re
    for attempt in range(2):
        with httpx.Client(base_url=server.url, timeout=60) as c:
            page = c.get("/login/")
            if page.status_code == 429 and attempt == 0:   # AF2 rate-limits its login form
                time.sleep(41)
                continue
            tok = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page.text).group(1)
            r = c.post("/login/", data={"username": server.username,
                                        "password": server.password, "csrf_token": tok})
            assert r.status_code in (302, 303), r.status_code
            home = c.get("/home")
            csrf = re.search(r'name="csrf_token"\s+content="([^"]+)"', home.text).group(1)
            r = c.post("/paused", params={"dag_id": dag_id,
                                          "is_paused": "false" if pause else "true"},
                       headers={"X-CSRFToken": csrf, "Referer": f"{server.url}/home"})
            assert (r.status_code, r.text) == (200, "OK")
            return
    raise AssertionError("AF2 login form stayed rate-limited")


def test_events_attribute_airflow_cli_regex_and_bulk(matrix_server):
    server = matrix_server
    server.reset()
    since = datetime.now(timezone.utc)
    set_db(server, {"etl_autopause_a": False, "report_001": False, "report_002": False,
                    "report_010": False, "ml_001": False})
    out = server.auto_pause("etl_autopause_a", failed_runs=3)
    assert out["paused"] is True
    server.cli_pause("^report_00[12]$", True, regex=True)
    server.bulk_patch("ml_001", True)
    if server.major == 2:
        af2_ui_toggle(server, "report_010", True)       # logs `paused`, owner = the user
    b, _ = backend(server)
    with b:
        events = b.audit_events(["etl_autopause_a", "report_001", "report_002", "report_010",
                                 "ml_001"], since=since)
        only = b.audit_events(["etl_autopause_a"], since=since)
        caps = b.capabilities
    first = {}
    for e in events:
        first.setdefault(e.dag_id, e)
    auto = first["etl_autopause_a"]
    assert (auto.via, auto.user, auto.is_paused, auto.detail, auto.event) == \
        ("airflow", "scheduler", True, "auto-paused by Airflow", "paused")
    assert only[0] == auto
    if caps.event_regex_rows:
        for d in ("report_001", "report_002"):
            cli = first[d]
            assert (cli.via, cli.is_paused, cli.pattern_kind, cli.pattern) == \
                ("cli", True, "regex", "^report_00[12]$")
            assert "--treat-dag-id-as-regex" in cli.detail
    else:
        # 3.1+: GET /eventLogs hides a row whose dag_id is no DAG (the regex), though the
        # DB holds it: the REST API cannot attribute a CLI regex pause there
        assert "report_001" not in first and "report_002" not in first
        rows = server.query("SELECT dag_id FROM log WHERE event = 'cli_dag_pause'")
        assert ("^report_00[12]$",) in rows
    if server.major == 2:                       # the UI toggle: a user, not the scheduler
        ui = first["report_010"]
        assert (ui.via, ui.user, ui.is_paused, ui.event) == \
            ("api", server.username, True, "patch_dag")
    else:
        assert "report_010" not in first                # the regex does not match it
    bulk = first["ml_001"]
    assert (bulk.via, bulk.user, bulk.pattern) == ("bulk", server.username, "ml_001")
    assert bulk.is_paused is (True if b.capabilities.event_is_paused_trusted else None)
    server.reset()


def test_dag_id_prefix_pattern_is_used_where_it_exists(matrix_server):
    server = matrix_server
    server.reset()
    b, rec = backend(server, bulk_min=2)
    with b:
        b.list_dags()
        res = b.set_paused([f"etl_{i:03d}" for i in range(10, 20)], False)
        prefix = b.capabilities.prefix_pattern
    assert len(res.changed) == 10 and not res.errors
    sent = [r for r in rec.requests if r.url.path.endswith("/dags") and
            ("dag_id_prefix_pattern" in r.url.params or "dag_id_pattern" in r.url.params)]
    assert sent and all(("dag_id_prefix_pattern" in r.url.params) is prefix for r in sent)
    server.reset()


def test_explicit_api_still_reads_the_version_once(matrix_server):
    server = matrix_server
    b, rec = backend(server, api=api_of(server))
    with b:
        b.list_dags()
        b.list_dags()
    versions = [r.url.path for r in rec.requests if r.url.path.endswith("/version")]
    assert versions == [f"/api/{api_of(server)}/version"]
    assert b.capabilities.version == server.version


@pytest.mark.airflow
def test_all_admins_mode_logs_anonymous_and_is_told_apart():
    """AF3 `[core] simple_auth_manager_all_admins`: every token is user "Anonymous", and so is
    every event's owner (services/login.py _create_anonymous_admin_user)."""
    import os
    from testkit.harness import AirflowServer, DagSpec
    server = AirflowServer(version="3.3.2", dags=[DagSpec(f"solo_{c}") for c in "abc"],
                           extra_env={"AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True"})
    try:
        server.start()
    except Exception as exc:
        server.stop()
        if os.environ.get("CI", "").lower() in ("true", "1"):
            pytest.fail(f"Airflow 3.3.2 (all-admins) could not start: {exc}", pytrace=False)
        pytest.skip(f"Airflow 3.3.2 (all-admins) could not start: {str(exc).splitlines()[0]}")
    try:
        since = datetime.now(timezone.utc)
        b, _ = backend(server, password="anything")        # all-admins: any credentials
        with b:
            res = b.set_paused(["solo_b"], False)
            events = b.audit_events(["solo_b"], since=since)
        assert res.changed == ["solo_b"]
        (e,) = events
        assert (e.user, e.via, e.is_paused) == ("Anonymous", "api", False)
        assert "no user recorded (Airflow all-admins mode)" in e.describe()
    finally:
        server.stop()
