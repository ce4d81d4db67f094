"""A local real Airflow for tests, the demo and benchmarks.

`ensure_venv` installs one Airflow of the version matrix (`MATRIX`: 2.9.3 ... 3.3.2; `major=3`
means 3.3.2, `major=2` 2.11.2) into its own virtualenv `ROOT/.airflow/venv-<version>`
(never into pausectl's own environment: pausectl only talks to Airflow over HTTP).
`AirflowServer` makes a throw-away AIRFLOW_HOME on SQLite, writes generated DAG files from
`DagSpec` values, registers them without a scheduler, and runs the API server (AF3,
`/api/v2`, JWT from `POST /auth/token`) or the webserver (AF2, `/api/v1`, HTTP basic auth)
on 127.0.0.1 only. Optionally a scheduler runs too, so DAGs really run.

    with AirflowServer(major=3, dags=STANDARD_DAGS) as af:
        httpx.get(f"{af.url}/api/v2/dags", headers=af.auth_headers())

    with AirflowServer(version="3.1.8", dags=STANDARD_DAGS) as af:   # any version of MATRIX
        af.auto_pause("etl_fails", failed_runs=3)                   # the scheduler's own write

CLI (testkit/cli.py): `python -m testkit.harness up --major 3 --dags 1000` (or `--version 3.1.8`)
starts one and prints its url/username/password as JSON, then stays in the foreground until
killed.

The code lives in testkit/: versions.py (MATRIX, EXTRA_PINS, ensure_venv), dags.py (DagSpec,
STANDARD_DAGS, make_dags, matrix_dags, the generated DAG file), server.py (AirflowServer),
registry.py / actors.py (its DAG registration and other actors' writes), airflow_env.py,
procs.py (processes, HTTP), cli.py. This module re-exports their public API, so
`from testkit import harness` and `from testkit.harness import ...` keep working.
"""

from __future__ import annotations

import sys

from testkit.cli import main
from testkit.dags import (AUTO_PAUSE_DAGS, DEFAULT_START, STANDARD_DAGS, DagSpec, make_dags,
                          matrix_dags)
from testkit.procs import (READY_TIMEOUT, HarnessError, _clean_environ, _http, _kill_tree,
                           free_port)
from testkit.registry import DAGS_PER_FILE
from testkit.server import AirflowServer, start_all
from testkit.versions import (AIRFLOW_VERSIONS, EXTRA_PINS, INSTALL_SECONDS, MARKER, MATRIX,
                              ensure_venv, resolve_version)

_main = main          # the old name of the CLI entry point

__all__ = ["AIRFLOW_VERSIONS", "AUTO_PAUSE_DAGS", "DAGS_PER_FILE", "DEFAULT_START", "EXTRA_PINS",
           "INSTALL_SECONDS", "MARKER", "MATRIX", "READY_TIMEOUT", "STANDARD_DAGS",
           "AirflowServer", "DagSpec", "HarnessError", "_clean_environ", "_http", "_kill_tree",
           "ensure_venv", "free_port", "main", "make_dags", "matrix_dags", "resolve_version",
           "start_all"]

if __name__ == "__main__":
    sys.exit(main())
