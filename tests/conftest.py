"""Session-wide real Airflow servers for tests (all logic lives in testkit/harness.py).

Fixtures: `airflow3` (3.3.2, REST v2), `airflow2` (2.11.2, REST v1), and `airflow_server`
(parametrized over both). Each serves `harness.STANDARD_DAGS` and is started once per session.
`matrix_server` is parametrized over the whole version matrix (`harness.MATRIX`, ids `af2.9.3`
... `af3.3.2`); each version's server holds `harness.matrix_dags()` (>= 350 DAGs) and is reused
by every test of that version (tests/compat/). As soon as collection shows which servers the
selected tests need, missing venvs install (two at a time, apart from the starts; `make test`
has already begun them) and the servers start in the background, two at a time (a 2-core
box). The run orders files without Airflow first, then the Airflow files, then the matrix
tests, so the servers are ready by their turn; a matrix server stops, in the background,
after its version's last test.
Tests using them are marked `airflow` (`-m "not airflow"` skips them).
Tests that change pause state or Variables should call `server.reset()` first.

If Airflow cannot be installed or started the tests skip locally, but fail when CI=true.
PAUSECTL_SKIP_AIRFLOW=1 skips them without trying (ignored when CI=true).
"""

from __future__ import annotations

import concurrent.futures
import os
from pathlib import Path

import pytest

from testkit import harness, install

ROOT = Path(__file__).resolve().parent.parent
_FIXTURE_MAJORS = {"airflow3": {3}, "airflow2": {2}, "airflow_server": {2, 3}}
MATRIX_FIXTURE = "matrix_server"
# one pool for every start: at most two Airflows install/migrate/register at a time
_pool = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="airflow")
# installs of missing venvs, apart from the starts: a start never queues behind another
# version's install (`make test` already installs them from its start; these then just wait)
_installs = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="af-install")
# a matrix server stops in the background once its version's last test is done
_stops = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="af-stop")
_stopping: set[str] = set()             # matrix versions whose stop is submitted
# key: 2 / 3 for the standard servers, "m<version>" for the matrix ones
_starts: dict[int | str, tuple[harness.AirflowServer, concurrent.futures.Future]] = {}
# AF2's login form allows 5 POSTs per 40 s per client address; every pausectl run logs in
# once, and past the limit falls back to HTTP basic (a password hash per request: ~140 ms CPU)
# and a UI login waits out the 40 s: off on the shared servers, which serve pausectl many times
# a minute (the fallback itself: tests/live/test_airflow_api_faults.py). AF3 ignores it.
NO_LOGIN_RATE_LIMIT = {"AIRFLOW__FAB__AUTH_RATE_LIMITED": "False"}


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("true", "1")


def _begin(key: int | str) -> tuple[harness.AirflowServer, concurrent.futures.Future]:
    if key not in _starts:
        if isinstance(key, int):
            server = harness.AirflowServer(major=key, dags=harness.STANDARD_DAGS, root=ROOT,
                                           extra_env=NO_LOGIN_RATE_LIMIT)
        else:
            # AF2: two gunicorn workers, as pausectl sends up to 8 requests at once and one
            # sync worker serves them one by one
            version = key[1:]
            server = harness.AirflowServer(version=version, dags=harness.matrix_dags(),
                                           root=ROOT, workers=2 if version[0] == "2" else 1,
                                           extra_env=NO_LOGIN_RATE_LIMIT)
        _starts[key] = (server, _pool.submit(server.start, attempts=2))
    return _starts[key]


def _wait(key: int | str, version: str) -> harness.AirflowServer:
    if os.environ.get("PAUSECTL_SKIP_AIRFLOW") == "1" and not _in_ci():
        pytest.skip(f"Airflow {version}: PAUSECTL_SKIP_AIRFLOW=1")
    server, future = _begin(key)
    try:
        future.result()
    except Exception as exc:  # HarnessError, or an OSError from pip/venv
        reason = f"Airflow {version} could not be installed or started: {exc}"
        if _in_ci():
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason.splitlines()[0])
    return server


def _server(major: int) -> harness.AirflowServer:
    return _wait(major, harness.AIRFLOW_VERSIONS[major])


def _matrix_version(item) -> str | None:
    callspec = getattr(item, "callspec", None)
    if callspec is None or MATRIX_FIXTURE not in getattr(item, "fixturenames", ()):
        return None
    return callspec.params.get(MATRIX_FIXTURE)


# Files without Airflow that `make test` runs in the second process, first (lane2): that
# process has nothing else to do for its first ~4 min (venv installs, then its first matrix
# server migrates and registers), while the first process runs every other test without
# Airflow before its own servers are needed. CPU-bound files, ~2 min in CI together (from a
# loaded box's --durations, /2.4 as test_fuzz measured both): well under that wait of ~4 min
# (the first process's own wait for its servers is shorter than its tests without Airflow).
LANE2_FIRST_FILES = frozenset({"tests/golden/test_golden.py", "tests/hostile/test_fuzz.py",
                               "tests/plan/test_plan_offline.py"})


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    # before -m selection runs, so `-m "not airflow"` also drops tests using the fixtures
    for item in items:
        if set(getattr(item, "fixturenames", ())) & (set(_FIXTURE_MAJORS) | {MATRIX_FIXTURE}):
            item.add_marker(pytest.mark.airflow)
        if _matrix_version(item) is not None:
            item.add_marker(pytest.mark.matrix)     # `make test` runs these in a 2nd process
        elif item.nodeid.split("::")[0] in LANE2_FIRST_FILES:
            item.add_marker(pytest.mark.lane2)


def _uses_airflow(item) -> bool:
    return item.get_closest_marker("airflow") is not None


class _MatrixLast:
    """Test order: files without Airflow first, then the files using one (in pytest's order:
    by server, then the dedicated ones), then the matrix tests, version after version in the
    matrix order, then the long lane2 scenarios (lane2 files without Airflow go before the
    matrix). While the tests that need no Airflow keep the CPU busy, the servers install
    and start in the background; each matrix version's server is ready by its turn and all
    its scenarios use it in one stretch. trylast: after pytest's own reordering by fixture
    parameter."""

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, items):
        order = {v: i for i, v in enumerate(harness.MATRIX)}
        rest = [i for i in items if _matrix_version(i) is None]
        matrix = [i for i in items if _matrix_version(i) is not None]
        matrix.sort(key=lambda i: order[_matrix_version(i)])    # stable: file order within
        live_files = {i.nodeid.split("::")[0] for i in rest if _uses_airflow(i)}
        rest.sort(key=lambda i: i.nodeid.split("::")[0] in live_files)      # stable
        # lane2: what `make test` runs in the matrix's process: the files without Airflow
        # before the matrix (its servers start meanwhile), the long scenarios after it
        lane2 = [i for i in rest if i.get_closest_marker("lane2") is not None]
        rest = [i for i in rest if i.get_closest_marker("lane2") is None]
        first = [i for i in lane2 if not _uses_airflow(i)]
        last = [i for i in lane2 if _uses_airflow(i)]
        items[:] = rest + first + matrix + last


def pytest_configure(config):
    config.addinivalue_line("markers", "matrix: a version-matrix test (the matrix_server "
                            "fixture); `-m matrix` / `-m 'not matrix'` split the run in two")
    config.addinivalue_line("markers", "lane2: a test `make test` runs in the second process "
                            "with the matrix (`-m 'matrix or lane2'`), to balance them")
    # a plugin object: a conftest module holds only one pytest_collection_modifyitems
    config.pluginmanager.register(_MatrixLast(), "pausectl-matrix-last")


def pytest_collection_finish(session):
    if os.environ.get("PYTEST_XDIST_WORKER") or os.environ.get("PAUSECTL_SKIP_AIRFLOW") == "1" \
            or session.config.option.collectonly:
        return      # xdist workers start lazily, only if they get an Airflow test
    needed: set[int] = set()
    late: set[int] = set()          # needed only by lane2 tests, which run after the matrix
    versions: list[str] = []
    for item in session.items:
        for name in getattr(item, "fixturenames", ()):
            (late if item.get_closest_marker("lane2") else needed).update(
                _FIXTURE_MAJORS.get(name, set()))
        v = _matrix_version(item)
        if v is not None and v not in versions:
            versions.append(v)
    late -= needed
    wanted = [harness.AIRFLOW_VERSIONS[m] for m in sorted(needed | late, reverse=True)] + versions
    for v in install.missing(ROOT, [v for v in harness.MATRIX if v in wanted]):
        _installs.submit(harness.ensure_venv, v, ROOT)
    for major in sorted(needed, reverse=True):
        _begin(major)
    for v in versions:                  # in the order their tests run
        _begin(f"m{v}")
    for major in sorted(late, reverse=True):
        _begin(major)
    # test modules that run a dedicated Airflow of their own define `prestart()`: it starts
    # that server in the background now, while earlier tests run (see tests/operate/test_doctor.py)
    started: set[str] = set()
    for item in session.items:
        module = getattr(item, "module", None)
        prestart = getattr(module, "prestart", None)
        if callable(prestart) and module.__name__ not in started:
            started.add(module.__name__)
            prestart()
    _plan_launch_ahead(session.items)


# nodeid of the first test of a stretch of one module's tests -> (the module of the next
# stretch, that stretch's tests)
_AHEAD: dict[str, tuple[object, list]] = {}


def _plan_launch_ahead(items) -> None:
    """A module with a dedicated server may define `launch_ahead(items)`: it is called as the
    stretch of tests just before its own `items` starts, to start its server's processes then
    (tests/early.Early.launch_ahead), so that its first test does not wait for the whole
    start-up (a scheduler's: ~1 min in CI). The module decides from `items` (a stretch may
    not use its server: pytest groups tests by the session servers' parameter first)."""
    stretches: list[tuple[object, list]] = []
    for item in items:
        module = getattr(item, "module", None)
        if stretches and stretches[-1][0] is module:
            stretches[-1][1].append(item)
        else:
            stretches.append((module, [item]))
    for (_, current), (module, upcoming) in zip(stretches, stretches[1:]):
        if callable(getattr(module, "launch_ahead", None)):
            _AHEAD[current[0].nodeid] = (module, upcoming)


def pytest_runtest_setup(item):
    ahead = _AHEAD.pop(item.nodeid, None)
    if ahead is not None:
        ahead[0].launch_ahead(ahead[1])


def pytest_runtest_teardown(item, nextitem):
    """A matrix version's server stops once its last test is done (they run grouped by
    _MatrixLast; not under xdist, where a worker's next test is not the run's)."""
    v = _matrix_version(item)
    if os.environ.get("PYTEST_XDIST_WORKER"):
        return
    if v is not None and (nextitem is None or _matrix_version(nextitem) != v):
        started = _starts.get(f"m{v}")
        if started is not None and started[1].done() and v not in _stopping:
            _stopping.add(v)
            _stops.submit(started[0].stop)


def pytest_sessionfinish(session, exitstatus):
    for future in [f for _, f in _starts.values()]:
        future.cancel()                 # not started yet: never start it
    _installs.shutdown(wait=True, cancel_futures=True)
    _stops.shutdown(wait=True)
    left = [(server, future) for key, (server, future) in _starts.items()
            if not future.cancelled() and not (isinstance(key, str) and key[1:] in _stopping)]

    def finish(server, future):
        try:
            future.result()
        except Exception:
            pass
        server.stop()
    # all at once: each stop waits for its processes to exit
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, len(left))) as pool:
        list(pool.map(lambda pair: finish(*pair), left))
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


@pytest.fixture(scope="session", params=list(harness.MATRIX),
                ids=[f"af{v}" for v in harness.MATRIX])
def matrix_server(request) -> harness.AirflowServer:
    """The Airflow of one matrix version with `harness.matrix_dags()`, shared by every test of
    that version: tests call `server.reset()` before they change anything."""
    return _wait(f"m{request.param}", request.param)


@pytest.fixture(scope="session")
def _pausectl_airflow_server(airflow3) -> harness.AirflowServer:
    """reconciler.testing's `pausectl_airflow` fixture (the plugin users get) runs on this
    session's Airflow 3.3.2 here instead of starting a server of its own."""
    return airflow3
