"""Session-wide real Airflow servers for tests (all logic lives in reconciler/harness.py).

Fixtures: `airflow3` (3.3.2, REST v2), `airflow2` (2.11.2, REST v1), and `airflow_server`
(parametrized over both). Each serves `harness.STANDARD_DAGS` and is started once per session;
as soon as collection shows which ones are needed, they start in the background, concurrently,
while other tests run. Tests using them are marked `airflow` (`-m "not airflow"` skips them).
Tests that change pause state or Variables should call `server.reset()` first.

If Airflow cannot be installed or started the tests skip locally, but fail when CI=true.
PAUSECTL_SKIP_AIRFLOW=1 skips them without trying (ignored when CI=true).
"""

from __future__ import annotations

import concurrent.futures
import os
from pathlib import Path

import pytest

from reconciler import harness

ROOT = Path(__file__).resolve().parent.parent
_FIXTURE_MAJORS = {"airflow3": {3}, "airflow2": {2}, "airflow_server": {2, 3}}
_pool = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="airflow")
_starts: dict[int, tuple[harness.AirflowServer, concurrent.futures.Future]] = {}


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("true", "1")


def _begin(major: int) -> tuple[harness.AirflowServer, concurrent.futures.Future]:
    if major not in _starts:
        server = harness.AirflowServer(major=major, dags=harness.STANDARD_DAGS, root=ROOT)
        _starts[major] = (server, _pool.submit(server.start))
    return _starts[major]


def _server(major: int) -> harness.AirflowServer:
    version = harness.AIRFLOW_VERSIONS[major]
    if os.environ.get("PAUSECTL_SKIP_AIRFLOW") == "1" and not _in_ci():
        pytest.skip(f"Airflow {version}: PAUSECTL_SKIP_AIRFLOW=1")
    server, future = _begin(major)
    try:
        future.result()
    except Exception as exc:  # HarnessError, or an OSError from pip/venv
        reason = f"Airflow {version} could not be installed or started: {exc}"
        if _in_ci():
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason.splitlines()[0])
    return server


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    # before -m selection runs, so `-m "not airflow"` also drops tests using the fixtures
    for item in items:
        if set(getattr(item, "fixturenames", ())) & set(_FIXTURE_MAJORS):
            item.add_marker(pytest.mark.airflow)


def pytest_collection_finish(session):
    if os.environ.get("PYTEST_XDIST_WORKER") or os.environ.get("PAUSECTL_SKIP_AIRFLOW") == "1":
        return      # xdist workers start lazily, only if they get an Airflow test
    needed: set[int] = set()
    for item in session.items:
        for name in getattr(item, "fixturenames", ()):
            needed |= _FIXTURE_MAJORS.get(name, set())
    for major in sorted(needed, reverse=True):
        _begin(major)
    # test modules that run a dedicated Airflow of their own define `prestart()`: it starts
    # that server in the background now, while earlier tests run (see tests/test_doctor.py)
    started: set[str] = set()
    for item in session.items:
        module = getattr(item, "module", None)
        prestart = getattr(module, "prestart", None)
        if callable(prestart) and module.__name__ not in started:
            started.add(module.__name__)
            prestart()


def pytest_sessionfinish(session, exitstatus):
    for server, future in list(_starts.values()):
        try:
            future.result()
        except Exception:
            pass
        server.stop()
    _pool.shutdown(wait=True)


@pytest.fixture(scope="session")
def airflow3() -> harness.AirflowServer:
    return _server(3)


@pytest.fixture(scope="session")
def airflow2() -> harness.AirflowServer:
    return _server(2)


@pytest.fixture(scope="session", params=[3, 2], ids=["af3", "af2"])
def airflow_server(request) -> harness.AirflowServer:
    return _server(request.param)
