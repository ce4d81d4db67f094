"""Runs-in-flight reads against a server that misbehaves in ways a real Airflow does not
(httpx.MockTransport): filters ignored, a page limit it does not honour, wrong shapes. The
answer never widens beyond the DAGs and states asked for, and a wrong shape is one clear
error line, not a DAG counted idle (which would pause it with its runs in flight)."""

from __future__ import annotations

import json

import httpx
import pytest

from reconciler.core.errors import BackendError
from reconciler.live.airflow_api import AirflowApiBackend
from reconciler.apply.drain import in_flight

RUNS = [{"dag_id": d, "dag_run_id": f"{d}-{i}", "state": s}
        for i, (d, s) in enumerate([("a", "running"), ("a", "queued"), ("b", "success"),
                                    ("other", "running"), ("b", "running"), ("a", "failed")])]


def _backend(handler) -> tuple[AirflowApiBackend, list[dict]]:
    bodies: list[dict] = []

    def route(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/v2/version":
            return httpx.Response(200, json={"version": "3.3.2"})
        if request.url.path == "/api/v2/dags/~/dagRuns/list" and request.method == "POST":
            body = json.loads(request.content)
            bodies.append(body)
            return handler(body)
        return httpx.Response(404, json={"detail": "no route"})

    b = AirflowApiBackend("prod", {"url": "https://airflow.test", "auth": "bearer"},
                          env={"AIRFLOW_TOKEN": "t0k3n"}, transport=httpx.MockTransport(route))
    b.sleep = lambda s: None
    return b, bodies


def test_a_server_that_ignores_the_filters_cannot_widen_the_answer():
    b, bodies = _backend(lambda body: httpx.Response(200, json={
        "dag_runs": RUNS, "total_entries": len(RUNS)}))
    assert in_flight(b, ["b", "a", "a"]) == {"a": 2, "b": 1}
    assert len(bodies) == 1                                  # one request for the batch
    assert bodies[0]["dag_ids"] == ["a", "b"] and bodies[0]["states"] == ["queued", "running"]


def test_a_page_limit_not_honoured_is_paged_on_by_the_rows_returned():
    def two_per_page(body):
        rows = [r for r in RUNS if r["state"] in ("queued", "running")]
        off = body["page_offset"]
        return httpx.Response(200, json={"dag_runs": rows[off:off + 2], "total_entries": len(rows)})
    b, bodies = _backend(two_per_page)
    assert in_flight(b, ["a", "b", "other"]) == {"a": 2, "b": 1, "other": 1}
    assert [x["page_offset"] for x in bodies] == [0, 2]


@pytest.mark.parametrize("payload", [{"dag_runs": "nope"}, {"runs": []}, [1, 2],
                                     {"dag_runs": [1], "total_entries": 1}])
def test_a_wrong_shape_is_one_error_line(payload):
    b, _ = _backend(lambda body: httpx.Response(200, json=payload))
    with pytest.raises(BackendError) as e:
        in_flight(b, ["a"])
    assert "\n" not in str(e.value) and "dagRuns/list" in str(e.value)
