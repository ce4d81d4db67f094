"""pausectl_drift: is every environment's Airflow still what git says?

Checks every environment of the pausectl state repo in parallel (dynamic task mapping: one
mapped task instance per environment), pushes each plan and drift report to XCom (keys
`plan` and `drift`; the return value holds both) and fails the mapped task of any environment
where a DAG was paused or unpaused by hand, away from git. The state repo's `notify:` webhooks
are told about the drift.

Copy this file into the DAGs folder of an Airflow that has pausectl installed
(`pip install airflow-pause-reconciler`), and set:

    PAUSECTL_STATE_REPO    state repo path, or a git URL (https://, ssh://, file://, git@host:...)
    PAUSECTL_STATE_REF     git ref to check out (default: the default branch / working tree)
    PAUSECTL_LOCAL_ENV     the environment that is this Airflow: read through its ORM (dagmodel)
    PAUSECTL_ENVIRONMENTS  only these environments, comma-separated (default: all)
    PAUSECTL_DRIFT_SCHEDULE  cron (default: every 30 minutes)
    PAUSECTL_MAX_PARALLEL  environments checked at once (default 16; the executor's slots)
"""

from __future__ import annotations

import os
from datetime import datetime, timezone

try:                                    # Airflow 3
    from airflow.sdk import DAG, task
except ImportError:                     # Airflow 2
    from airflow import DAG
    from airflow.decorators import task

from reconciler.airflow import PauseReconcileOperator, list_environments

STATE = os.environ.get("PAUSECTL_STATE_REPO", "/opt/airflow/pausectl-state")
REF = os.environ.get("PAUSECTL_STATE_REF") or None
ONLY = os.environ.get("PAUSECTL_ENVIRONMENTS") or None
MAX_PARALLEL = int(os.environ.get("PAUSECTL_MAX_PARALLEL") or 16)

with DAG(
    dag_id="pausectl_drift",
    schedule=os.environ.get("PAUSECTL_DRIFT_SCHEDULE", "*/30 * * * *"),
    start_date=datetime(2024, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    max_active_runs=1,
    tags=["pausectl"],
    default_args={"owner": "platform", "retries": 0},
    doc_md=__doc__,
) as dag:

    @task
    def environments() -> list[str]:
        """The environments to check, read from the state repo at run time."""
        return list_environments(STATE, REF, only=ONLY)

    # one mapped task instance per environment, at most PAUSECTL_MAX_PARALLEL at once: the
    # executor's slots are the fleet's bound (docs/scale.md: 200 Airflows in ~13 waves of 16)
    PauseReconcileOperator.partial(
        task_id="drift", state=STATE, ref=REF, mode="drift", fail_on="drift",
        max_active_tis_per_dagrun=MAX_PARALLEL,
    ).expand(env=environments())
