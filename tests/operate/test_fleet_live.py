"""Fleet drift on a real Airflow: environments that point at the same server as the same user
share its answers (live/rest/shared.py: each listing page and the event log read once), and
each environment's report is exactly what `pausectl drift ENV` alone prints, in text and JSON.
Counted with a recording wrapper around httpx's real transport (counts, never times)."""

from __future__ import annotations

import json
import threading

import httpx
import pytest

from helpers import run_inprocess, write_files
from reconciler.engine import load, open_backend
from reconciler.live.rest.shared import shared_reads
from reconciler.operate import fleet
from reconciler.operations import drift_env

pytestmark = pytest.mark.airflow

ENVS = {
    # each has two or more DAGs that differ from git, so each reads the whole event log
    "alpha": "groups:\n  - {name: etl, match: {dag_id: \"etl_0*\"}, paused: true, "
             "reason: quiet, owner: data-eng}\n",
    "beta": "groups:\n  - {name: reports, match: {tags: [reporting]}, paused: true, "
            "reason: quiet, owner: analytics}\n",
    "gamma": "groups:\n  - {name: ml, match: {tags: [ml]}, paused: true, reason: quiet, "
             "owner: ml-team}\n",
}


class _Count:
    """What went on the wire, per (method, path), from any client in this process."""

    def __init__(self, monkeypatch) -> None:
        self.sent: dict[tuple[str, str], int] = {}
        self.lock = threading.Lock()
        real = httpx.HTTPTransport.handle_request

        def handle(transport, request):
            path = request.url.path.rsplit("/api/", 1)[-1]
            if path.endswith("/dags") and "offset" not in request.url.params:
                path += " (AF2 login probe)"        # each env's own login, never shared
            with self.lock:
                key = (request.method, path)
                self.sent[key] = self.sent.get(key, 0) + 1
            return real(transport, request)
        monkeypatch.setattr(httpx.HTTPTransport, "handle_request", handle)

    def take(self) -> dict[tuple[str, str], int]:
        with self.lock:
            out, self.sent = self.sent, {}
        return out


def _state(tmp_path, server, bad_password: bool = False):
    backend = ("{type: airflow-api, url: '%s', auth: password-token, username_env: AF_USER, "
               "password_env: %s}")
    envs = "".join(f"  {name}:\n    backend: {backend % (server.url, 'AF_PASS')}\n"
                   for name in ENVS)
    if bad_password:
        envs += f"  delta:\n    backend: {backend % (server.url, 'AF_BAD')}\n"
    files = {"pausectl.yaml": "environments:\n" + envs + "safety: {max_changes: 1000}\n"}
    for name, body in {**ENVS, **({"delta": ENVS["alpha"]} if bad_password else {})}.items():
        files[f"{name}.yaml"] = f"environment: {name}\ndefaults: {{unmanaged: report}}\n{body}"
    write_files(tmp_path / "state", files)
    return tmp_path / "state"


@pytest.fixture
def live(airflow_server, tmp_path, monkeypatch):
    server = airflow_server
    server.reset(events=True)
    monkeypatch.setenv("AF_USER", server.username)
    monkeypatch.setenv("AF_PASS", server.password)
    monkeypatch.setenv("AF_BAD", server.password + "-wrong")
    monkeypatch.setenv("PAUSECTL_JOURNAL_DIR", str(tmp_path / "journals"))
    # drift by hand, seen by every environment's event read: API PATCHes and a bulk one
    for dag_id in ("etl_001", "etl_002", "report_003", "report_004"):
        server.api_patch(dag_id, False)
    server.bulk_patch("ml_01", False)
    return server


def test_fleet_reports_are_the_single_env_reports_and_share_the_server(live, tmp_path,
                                                                       monkeypatch):
    state = _state(tmp_path, live)
    count = _Count(monkeypatch)
    alone_json, alone_text, alone_sent = [], [], []
    for env in ENVS:
        r = run_inprocess(["--state", str(state), "drift", env, "--format", "json"], tmp_path)
        assert r.returncode == 0, r.stderr
        alone_json += json.loads(r.stdout)["environments"]
        alone_sent.append(count.take())
        r = run_inprocess(["--state", str(state), "drift", env], tmp_path)
        assert r.returncode == 0, r.stderr
        alone_text.append(r.stdout)
        count.take()
    assert [len(r["drifted"]) > 0 for r in alone_json] == [True] * 3   # events were read

    r = run_inprocess(["--state", str(state), "drift", *ENVS, "--format", "json"], tmp_path)
    assert r.returncode == 0, r.stderr
    fleet_sent = count.take()
    assert json.loads(r.stdout)["environments"] == alone_json
    r = run_inprocess(["--state", str(state), "drift", *ENVS], tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("".join(alone_text))
    assert r.stdout[len("".join(alone_text)):].splitlines()[0].startswith("environment ")

    # the server saw one environment's listing and event-log pages, not three
    api = "v2" if live.major == 3 else "v1"
    for path in (f"{api}/dags", f"{api}/eventLogs"):
        assert fleet_sent[("GET", path)] == alone_sent[0][("GET", path)] > 0, path
    # each environment still logs in itself (AF2's login form is rate-limited: not counted)
    if live.major == 3:
        assert fleet_sent[("POST", "/auth/token")] == len(ENVS)
    assert sum(fleet_sent.values()) < sum(sum(s.values()) for s in alone_sent)


def test_other_credentials_share_nothing_and_keep_their_own_error(live, tmp_path):
    state = _state(tmp_path, live, bad_password=True)
    runs = fleet.run_envs(state, [*ENVS, "delta"], drift_env, read_only=True)
    assert [r.error is None for r in runs] == [True, True, True, False]
    assert "authentication failed for delta" in str(runs[-1].error)
    assert "AF_BAD" in str(runs[-1].error)


def test_a_write_in_the_scope_drops_what_was_read(live, tmp_path, monkeypatch):
    state = _state(tmp_path, live)
    ctx = load(state, "alpha")
    count = _Count(monkeypatch)
    api = "v2" if live.major == 3 else "v1"
    with shared_reads() as reads:
        backend = open_backend(ctx.cfg, "alpha")
        try:
            first = backend.list_dags()
            pages = count.take()[("GET", f"{api}/dags")]
            assert backend.list_dags() == first and count.take() == {}   # answered again
            backend.set_variable("pausectl.test.fleet", "x")
            count.take()
            assert backend.list_dags() == first
            assert count.take()[("GET", f"{api}/dags")] == pages
        finally:
            backend.close()
    assert reads.shared == pages
