"""`reconciler.airflow`: pausectl's operators for Airflow DAG files.

    from reconciler.airflow import PauseReconcileOperator, PauseDagsOperator, list_environments

The code lives in `reconciler/airflow/operators.py`; this module only re-exports it under the name
the docs use. Its imports are absolute, so `airflow` here is always Airflow itself.
"""

from __future__ import annotations

from reconciler.airflow.operators import (PauseDagsOperator, PauseReconcileOperator, is_git_url,
                                    list_environments, state_checkout)

__all__ = ["PauseReconcileOperator", "PauseDagsOperator", "list_environments",
           "state_checkout", "is_git_url"]
