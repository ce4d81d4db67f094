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
