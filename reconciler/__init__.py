"""pausectl: keep the pause state of Airflow DAGs in git and reconcile live Airflow to it."""

__version__ = "0.1.0"
