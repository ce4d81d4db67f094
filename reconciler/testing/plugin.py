"""The pytest plugin `pausectl` (entry point `pytest11`; docs/testing.md).

Fixtures:
    pausectl_state      a factory: pausectl_state(files, dags=...) -> StateRepo in tmp_path
    pausectl_snapshot   a factory: pausectl_snapshot(dags, env="test") -> a snapshot backend
    pausectl_airflow    a real local Airflow for the session (testkit.AirflowServer), reset
                        before each test: version with `--pausectl-airflow VERSION` (e.g.
                        3.3.2, 2.11.2, or a major 3 / 2), its DAGs and scheduler with the
                        `pausectl_airflow_dags` / `pausectl_airflow_scheduler` fixtures a
                        conftest may override

The Airflow fixture imports `testkit` (shipped in the wheel beside `reconciler`) only when it
is used, so a suite that never asks for a real Airflow never loads it.
"""

from __future__ import annotations

import pytest

from reconciler.testing import StateRepo, snapshot_backend


def pytest_addoption(parser):
    group = parser.getgroup("pausectl")
    group.addoption("--pausectl-airflow", default=None, metavar="VERSION",
                    help="Airflow version (or major 2/3) for the pausectl_airflow fixture "
                         "(default: $PAUSECTL_AIRFLOW_VERSION or 3).")
    group.addoption("--pausectl-airflow-root", default=None, metavar="DIR",
                    help="Where Airflow venvs are kept (.airflow/venv-<version>; default: "
                         "$PAUSECTL_AIRFLOW_ROOT or the rootdir).")


@pytest.fixture
def pausectl_state(tmp_path):
    """Build a state repo from dicts: `pausectl_state({"pausectl.yaml": {...}, ...},
    dags={"prod": [...]})`; returns a StateRepo (assert_paused, assert_running, plan)."""
    def build(files, dags=None) -> StateRepo:
        return StateRepo.build(tmp_path, files, dags)
    return build


@pytest.fixture
def pausectl_snapshot(tmp_path):
    """A snapshot backend from DAG ids or dicts, closed after the test."""
    made = []

    def build(dags, env: str = "test"):
        b = snapshot_backend(tmp_path / f"snapshot-{len(made)}.json", dags, env)
        made.append(b)
        return b
    yield build
    for b in made:
        b.close()


@pytest.fixture(scope="session")
def pausectl_airflow_dags():
    """The DAGs of the pausectl_airflow server (testkit DagSpec values); override in a
    conftest.py to serve your own."""
    from testkit.harness import STANDARD_DAGS
    return list(STANDARD_DAGS)


@pytest.fixture(scope="session")
def pausectl_airflow_scheduler():
    """Whether a scheduler runs (DAGs really run; slower to start). Override to turn on."""
    return False


@pytest.fixture(scope="session")
def _pausectl_airflow_server(request, pausectl_airflow_dags, pausectl_airflow_scheduler):
    import os

    from testkit.harness import AirflowServer
    opt = request.config.getoption
    version = opt("--pausectl-airflow") or os.environ.get("PAUSECTL_AIRFLOW_VERSION") or "3"
    root = opt("--pausectl-airflow-root") or os.environ.get("PAUSECTL_AIRFLOW_ROOT") \
        or str(request.config.rootpath)
    kind = {"version": version} if "." in version else {"major": int(version)}
    server = AirflowServer(dags=pausectl_airflow_dags, root=root,
                           scheduler=pausectl_airflow_scheduler, **kind)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def pausectl_airflow(_pausectl_airflow_server):
    """A real local Airflow (url, api_url, auth_headers(), airflow(...) CLI), with every DAG
    back at its creation pause state and no Variables before each test."""
    _pausectl_airflow_server.reset()
    return _pausectl_airflow_server
