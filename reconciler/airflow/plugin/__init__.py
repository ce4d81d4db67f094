"""pausectl's Airflow plugin: the pause policy pausectl published, shown in Airflow itself.

Registered through the `airflow.plugins` entry point (pyproject.toml), so installing pausectl
into Airflow's environment is enough. What it adds depends on the version (read from each
version's plugins_manager and UI):

- Airflow 3.1+ : a FastAPI app at /pausectl (`fastapi_apps`), an external view per DAG
  (`destination: "dag"`: a "Pause policy" tab on every DAG page, href /pausectl/dag/{DAG_ID})
  and one in the navigation (the instance page, /pausectl/).
- Airflow 3.0   : only the FastAPI app (no `external_views`/`react_apps` yet, and `get_user`
  reads only a Bearer token, not the UI cookie): the pages answer API clients; no UI entry.
- Airflow 2     : a Flask AppBuilder view under a "pausectl" menu (`appbuilder_views`),
  /pausectl/ and /pausectl/dag/<dag_id>.

Pages: reconciler/airflow/plugin/pages.py; data: store.py (the `pausectl.status.<env>`
Variables, schemas/status.schema.json).
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin
from airflow.version import version as _airflow_version

_MAJOR_MINOR = tuple(int(p) for p in _airflow_version.split(".")[:2])


def _af3_parts() -> dict:
    from reconciler.airflow.plugin.af3 import BASE, create_app
    parts: dict = {"fastapi_apps": [{"app": create_app(), "url_prefix": BASE,
                                     "name": "pausectl"}]}
    if _MAJOR_MINOR >= (3, 1):
        parts["external_views"] = [
            {"name": "Pause policy", "href": BASE + "/dag/{DAG_ID}", "destination": "dag",
             "url_route": "pause-policy"},
            {"name": "pausectl", "href": BASE + "/", "destination": "nav",
             "category": "browse", "url_route": "pausectl"},
        ]
    return parts


def _af2_parts() -> dict:
    from reconciler.airflow.plugin.af2 import VIEW
    return {"appbuilder_views": [VIEW]}


_PARTS = _af3_parts() if _MAJOR_MINOR[0] >= 3 else _af2_parts()


class PausectlPlugin(AirflowPlugin):
    name = "pausectl"
    fastapi_apps = _PARTS.get("fastapi_apps", [])
    external_views = _PARTS.get("external_views", [])
    appbuilder_views = _PARTS.get("appbuilder_views", [])
