"""A health gate over 1,000 DAGs costs a constant number of HTTP requests, on real Airflow 3.3.2
(REST v2) and 2.11.2 (REST v1): one listing (import errors, staleness, schedules) and the
batch run endpoint `POST /dags/~/dagRuns/list`, paged; never a read per DAG. Counted with a
recording transport around the real one (a count, never a time).

A dedicated server per version holds 1,000 generated DAGs (the session servers hold ~30);
it is prepared in the background (tests/early.py) while earlier modules run.
"""

from __future__ import annotations

import contextlib
import math
import sqlite3
import threading
from datetime import timedelta

import httpx
import pytest

from early import Early
from helpers import REPO
from reconciler.apply.gates import evaluate, gate_settings
from reconciler.core.timeutil import utcnow
from reconciler.live.airflow_api import AirflowApiBackend
from reconciler.live.rest import reads
from testkit.harness import AirflowServer, make_dags

pytestmark = pytest.mark.airflow

N = 1000
FAILED, SUCCEEDED, OLD = 10, 40, 10          # runs made for the first 60 DAGs
PAGE = 20                                    # runs per batch page here: 50 new runs = 3 pages


class Counting(httpx.HTTPTransport):
    """The real transport, counting what was sent."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            self.sent.append((request.method, request.url.path))
        return super().handle_request(request)


def _server(name: str) -> AirflowServer:
    return AirflowServer(major=int(name[-1]), dags=make_dags(N), root=REPO)


EARLY = Early("gate-requests-af", _server)


def prestart() -> None:
    """conftest calls this once collection shows tests of this module will run."""
    EARLY.prestart("gate3", "gate2")


@pytest.fixture(scope="module", autouse=True)
def _drop_unused_servers():
    yield
    EARLY.drop_unused()


@pytest.fixture(scope="module", params=[3, 2], ids=["af3", "af2"])
def gate_server(request):
    server = EARLY.get(f"gate{request.param}")
    yield server
    server.stop()


def _unpause_all_state(tmp_path, url: str, extra: str = ""):
    """A state repo whose env `big` (credentials from $U/$P) unpauses every DAG."""
    state = tmp_path / "state"
    state.mkdir()
    (state / "pausectl.yaml").write_text(
        "environments:\n  big:\n    backend: {type: airflow-api, url: '%s', username_env: U, "
        "password_env: P}\nsafety: {max_changes: 100000}\n" % url + extra)
    (state / "big.yaml").write_text("environment: big\ngroups:\n  - {name: all, match: "
                                    "{dag_id: '*'}, paused: false, reason: go, owner: o}\n")
    return state


def _backend(ctx, server, transport) -> AirflowApiBackend:
    """Env `big`'s backend over `transport`, its version probe already sent and forgotten."""
    b = AirflowApiBackend("big", ctx.cfg.env("big").backend,
                          env={"U": server.username, "P": server.password}, transport=transport)
    b.caps()
    transport.sent.clear()
    return b


def _make_runs(server: AirflowServer, dag_ids: list[str], since) -> None:
    """Trigger one run per DAG through the API, then give the runs their outcome and start
    in the metadata DB (no scheduler runs here): FAILED failed and SUCCEEDED successful runs
    started after `since`, OLD failed runs that started the day before (outside the gate)."""
    body = {"logical_date": None} if server.major == 3 else {}
    with httpx.Client(base_url=server.api_url, headers=server.auth_headers(), timeout=60) as c:
        for d in dag_ids:
            r = c.post(f"/dags/{d}/dagRuns", json=body)
            assert r.status_code == 200, (d, r.status_code, r.text[:300])
    after = (since + timedelta(seconds=5)).strftime("%Y-%m-%d %H:%M:%S.%f")
    before = (since - timedelta(days=1)).strftime("%Y-%m-%d %H:%M:%S.%f")
    outcome = ([("failed", after)] * FAILED + [("success", after)] * SUCCEEDED
               + [("failed", before)] * OLD)
    with contextlib.closing(sqlite3.connect(server.db_path, timeout=30)) as db, db:
        db.executemany("UPDATE dag_run SET state = ?, start_date = ?, end_date = ? "
                       "WHERE dag_id = ?", [(s, t, t, d) for (s, t), d in zip(outcome, dag_ids)])


def test_a_1000_dag_gate_costs_a_listing_and_one_paged_batch_read(gate_server, monkeypatch):
    ids = sorted(gate_server.specs)
    assert len(ids) == N
    since = utcnow()
    _make_runs(gate_server, ids[:FAILED + SUCCEEDED + OLD], since)
    monkeypatch.setattr(reads, "RUNS_PAGE", PAGE)
    transport = Counting()
    b = AirflowApiBackend("gate", {"type": "airflow-api", "url": gate_server.url,
                                   "username_env": "U", "password_env": "P"},
                          env={"U": gate_server.username, "P": gate_server.password},
                          transport=transport)
    settings = gate_settings({"gate": {"wait_seconds": 0, "max_failed_runs": 0}})
    with b:
        b.caps()                                 # version detection and login, not the gate's
        transport.sent.clear()
        gate = evaluate(b, ids, since, settings, log=lambda s: None)
        sent = list(transport.sent)
        transport.sent.clear()
        small = evaluate(b, ids[:2], since, settings, log=lambda s: None)
        sent_small = list(transport.sent)
    assert not gate["passed"]
    assert gate["failed_runs"] == {d: 1 for d in ids[:FAILED]}, gate["failed_runs"]
    assert gate["import_errors"] == [] and gate["stale"] == []
    api = f"/api/{gate_server.api_version}"
    listing = math.ceil(N / 100)                 # [api] maximum_page_limit 100 (the default)
    batch = math.ceil((FAILED + SUCCEEDED) / PAGE)
    assert sent.count(("GET", f"{api}/dags")) == listing
    assert sent.count(("POST", f"{api}/dags/~/dagRuns/list")) == batch
    assert len(sent) == listing + batch, sorted(set(sent) - {("GET", f"{api}/dags")})
    # the same requests as a gate of two DAGs: the count does not grow with the batch
    assert small["failed_runs"] == {d: 1 for d in ids[:2]}
    assert len(sent_small) == listing + 1


def test_the_impact_preview_of_1000_unpauses_costs_a_bounded_number_of_requests(
        gate_server, tmp_path, monkeypatch):
    """Issue 15's preview at scale (plan/impact.py): runs in flight in one batch read, AF3's
    backfills in one UI page, details only for the unpauses that may catch up, at most
    impact.max_detail_reads (default 50) of them; the others named in one note, and refused
    by the catch-up guard. Counted as the difference between a plan with and without it."""
    import reconciler.engine as engine
    from reconciler.plan.impact_render import guard_line
    gate_server.reset(paused=True, events=True)
    behind = (utcnow() - timedelta(days=2)).strftime("%Y-%m-%d %H:%M:%S.%f")
    with contextlib.closing(sqlite3.connect(gate_server.db_path, timeout=30)) as db, db:
        db.execute("UPDATE dag SET next_dagrun_create_after = ?", (behind,))
    scheduled = [d for d, s in gate_server.specs.items() if s.schedule]
    state = _unpause_all_state(tmp_path, gate_server.url)
    monkeypatch.setenv("U", gate_server.username)
    monkeypatch.setenv("P", gate_server.password)
    ctx = engine.load(state, "big")
    real = engine.observe

    def plan(preview: bool):
        monkeypatch.setattr(engine, "observe",
                            lambda *a, **kw: real(*a, **{**kw, "impact": preview}))
        transport = Counting()
        with _backend(ctx, gate_server, transport) as b:
            p, _, _ = engine.plan_env(ctx, b)
        return p, transport.sent

    with_it, sent = plan(True)
    _, bare = plan(False)
    assert len(with_it.changes) == N
    api = f"/api/{gate_server.api_version}"
    extra = {k: sent.count(k) - bare.count(k) for k in set(sent)}
    details = sum(n for (m, path), n in extra.items() if path.endswith("/details"))
    assert details == 50 and extra[("POST", f"{api}/dags/~/dagRuns/list")] == 1
    assert extra.get(("GET", "/ui/backfills"), 0) == (1 if gate_server.major == 3 else 0)
    # 1,000 unpauses: ~52 more requests (+ the dependency graph), not 1,000 or 2,000
    assert len(sent) - len(bare) <= 50 + 8, sorted((k, n) for k, n in extra.items() if n)
    unread = with_it.impact.unread()
    assert len(unread) == len(scheduled) - 50 and set(unread) < set(scheduled)
    assert any(n.startswith(f"not previewed: {len(unread)} DAG(s)") for n in with_it.impact.notes)
    assert f"{len(unread)} unpause(s) would create catch-up runs that were not counted" in \
        guard_line(with_it, 100_000)


class Recording(Counting):
    """Counting, also noting whether a GET /dags named a pattern (a bulk pattern's GET or
    read-back) or not (a page of the full listing)."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "GET" and request.url.path.endswith("/dags"):
            with self._lock:
                self.patterned = getattr(self, "patterned", 0) + (
                    "pattern" in str(request.url.query))
        return super().handle_request(request)


def test_an_apply_of_1000_flips_lists_once_and_costs_a_few_requests_per_batch(
        gate_server, tmp_path, monkeypatch):
    """A whole `pausectl apply` (operations.apply_env: lock, plan under it, the rollout
    [1, "25%", "100%"], the gate after each batch with wait_seconds 0) of 1,000 unpauses:
    one full listing (the plan's; the gates read the writes' own read-back), then per batch
    the GET of each bulk pattern, its PATCH(es), the read-back of the pattern, one batch runs
    read, the lock check and the emergency marker. No listing per gate, no read per DAG.
    The impact preview is off here (the test above counts it)."""
    import reconciler.engine as engine
    from reconciler import operations as ops
    from reconciler.apply.executor import ApplyOptions
    from reconciler.plan.records import ApplyStatus
    gate_server.reset(paused=True, events=True)
    state = _unpause_all_state(tmp_path, gate_server.url,
                               "rollout: {batches: [1, '25%', '100%'], gate: {wait_seconds: 0, "
                               "max_failed_runs: 0}}\n")
    for k, v in {"U": gate_server.username, "P": gate_server.password,
                 "PAUSECTL_JOURNAL_DIR": str(tmp_path / "journal")}.items():
        monkeypatch.setenv(k, v)
    real = engine.observe
    monkeypatch.setattr(engine, "observe", lambda *a, **kw: real(*a, **{**kw, "impact": False}))
    ctx = engine.load(state, "big")
    transport = Recording()
    with _backend(ctx, gate_server, transport) as b:
        transport.patterned = 0
        applied = ops.apply_env(ctx, b, ApplyOptions(log=lambda s: None))
        sent = list(transport.sent)
    assert applied.result.status == ApplyStatus.DONE, applied.result.errors
    sizes = [len(x["dag_ids"]) for x in applied.result.journal.data["batches"]]
    # the canary, then 25% and the rest (where 1 DAG falls depends on the dependency levels
    # each version exposes: 3.3.2 cuts 1/249/750, 2.11.2 1/250/749)
    assert sizes[0] == 1 and sum(sizes) == N and len(sizes) == 3 and 249 <= sizes[1] <= 250
    assert [p for _, p in gate_server.query("SELECT dag_id, is_paused FROM dag")] == [0] * N
    api = f"/api/{gate_server.api_version}"
    count = {k: sent.count(k) for k in set(sent)}
    listing = math.ceil(N / 100)                 # [api] maximum_page_limit 100 (the default)
    bulk = count.get(("PATCH", f"{api}/dags"), 0)
    read_backs = transport.patterned
    # one full listing: the plan's; every other GET /dags reads a bulk pattern
    assert count[("GET", f"{api}/dags")] - read_backs == listing
    assert len(gate_server.api_version) and bulk >= 2
    # gates: the canary's runs (one DAG: its own runs read), one batch runs read per batch
    assert count.get(("POST", f"{api}/dags/~/dagRuns/list"), 0) == 2
    per_dag = {k: n for k, n in count.items() if k[1].startswith(f"{api}/dags/")
               and k[1] != f"{api}/dags/~/dagRuns/list"}
    singles = sum(n for (m, p), n in per_dag.items() if m == "PATCH")
    if gate_server.major == 3:
        assert sum(per_dag.values()) <= 3, per_dag    # the canary: its PATCH and its runs
    else:
        # 2.11.2 has no `|` in patterns: a batch's ids that no ILIKE term can hold without
        # also matching a DAG of a later batch go one PATCH each (51 of 1,000 measured); no
        # other read per DAG
        assert singles <= N // 10 and sum(per_dag.values()) - singles <= 2, per_dag
    other = len(sent) - listing - read_backs - bulk - 2 - sum(per_dag.values())
    # lock (create, read-back, check, delete), the emergency marker (plan + batches 2 and 3),
    # holds (plan, end of apply), the event log page, one batch check each
    assert other <= 12, sorted(count.items())
    if gate_server.major == 3:
        # 3.3.2: one PATCH per batch updates every match; its pattern read before and after,
        # at 100 per page
        assert bulk == 2 and read_backs == 2 * sum(math.ceil(n / 100) for n in sizes[1:])
    print(f"\n[apply-requests] {gate_server.version}: {len(sent)} requests "
          f"({listing} listing pages, {bulk} bulk PATCHes, {read_backs} pattern pages): "
          f"{sorted(count.items())}")


class Overlap(Counting):
    """Counting; a read-back's one-row count (`limit=1` on a pattern) waits for its
    `paused=false` page to arrive, so it completes only if both were sent at once (a
    sequential pair would wait out the 60 s and be noted, never hang)."""

    def __init__(self) -> None:
        super().__init__()
        self.page_sent = threading.Event()
        self.waited: list[bool] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        params = request.url.params
        if request.method == "GET" and "dag_id_pattern" in params:
            if params.get("paused") == "false":
                self.page_sent.set()
            elif params.get("limit") == "1":
                self.waited.append(self.page_sent.wait(60))
        return super().handle_request(request)


def test_an_emergency_pause_of_1000_dags_costs_its_listing_and_six_requests(gate_server):
    """`pausectl emergency pause` (apply/emergency.py, what the CLI runs) of 1,000 running
    DAGs: the listing, the marker created without a read first, the bulk PATCH(es), the
    read-back's count and `paused=false` page sent at once, then the marker's re-read and
    the apply lock's holder at once. Counted after version detection and login."""
    from reconciler.apply import emergency as em
    gate_server.reset(paused=False, events=True)
    transport = Overlap()
    b = AirflowApiBackend("em", {"type": "airflow-api", "url": gate_server.url,
                                 "username_env": "U", "password_env": "P"},
                          env={"U": gate_server.username, "P": gate_server.password},
                          transport=transport)
    with b:
        b.caps()
        transport.sent.clear()
        s = em.pause(b, "big", "db down", "oncall", [], [], by="test")
        sent = list(transport.sent)
        marker = em.read_marker(b, "big")
    assert s["paused"] == N and not s["errors"] and s["apply_holder"] is None
    assert [p for _, p in gate_server.query("SELECT dag_id, is_paused FROM dag")] == [1] * N
    assert marker["prior"] == {d: False for d in gate_server.specs}
    assert transport.waited == [True]             # the count went out with the page
    api = f"/api/{gate_server.api_version}"
    count = {k: sent.count(k) for k in set(sent)}
    listing = math.ceil(N / 100)                  # [api] maximum_page_limit 100 (the default)
    marker_get = ("GET", f"{api}/variables/{em.marker_key('big')}")
    assert count[("GET", f"{api}/dags")] == listing + 2          # + count, paused=false page
    assert count[("POST", f"{api}/variables")] == 1
    assert count[("GET", f"{api}/variables/pausectl.lock.big")] == 1
    # AF3 creates with one POST (409 if present); AF2's POST is an upsert, so it looks first
    assert count.get(marker_get, 0) == (1 if gate_server.major == 3 else 2)
    # 3.3.2: one PATCH updates every match; 2.11.2 pages it by offset, 100 at a time
    assert count[("PATCH", f"{api}/dags")] == (1 if gate_server.major == 3 else listing)
    assert len(sent) == sum(count.values()) == (
        listing + 6 if gate_server.major == 3 else 2 * listing + 6), sorted(count.items())
    print(f"\n[emergency-requests] {gate_server.version}: {len(sent)} requests "
          f"({listing} listing pages): {sorted(count.items())}")
    gate_server.reset(paused=True, events=True)
