"""Airflow 3: the plugin's FastAPI app, mounted by the API server at /pausectl.

Access follows Airflow's auth: the user comes from Airflow's own `get_user` dependency (the
`Authorization: Bearer` token, or on 3.1+ the UI's `_token` cookie: what an iframe'd external
view sends), and the DAGs shown are exactly those the auth manager lets that user read
(`get_authorized_dag_ids(method="GET")`). No user: 401, like the REST API. Read-only: GET only.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated

from airflow.api_fastapi.core_api.security import get_user
from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from reconciler.airflow.plugin import pages, store

BASE = "/pausectl"
UserDep = Annotated[object, Depends(get_user)]     # Airflow's own user resolution


def _permitted(user) -> set[str]:
    from airflow.api_fastapi.app import get_auth_manager
    return set(get_auth_manager().get_authorized_dag_ids(user=user, method="GET"))


def _html(text: str) -> HTMLResponse:
    return HTMLResponse(text, headers={"Content-Security-Policy": pages.CSP,
                                       "X-Content-Type-Options": "nosniff",
                                       "Cache-Control": "no-store"})


def create_app() -> FastAPI:
    app = FastAPI(title="pausectl", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("", include_in_schema=False)
    def _slash():
        return RedirectResponse(f"{BASE}/")

    @app.get("/", response_class=HTMLResponse)
    def instance(request: Request, user: UserDep):
        docs, rows = store.visible(store.read_documents(), _permitted(user))
        q = {k: request.query_params.get(k, "")[:200]
             for k in ("state", "owner", "tag", "drift", "min_days")}
        return _html(pages.instance_page(docs, rows, q, BASE, datetime.now(timezone.utc)))

    @app.get("/dag/{dag_id}", response_class=HTMLResponse)
    def dag(dag_id: str, user: UserDep):
        found = store.for_dag(store.read_documents(), dag_id, _permitted(user))
        return _html(pages.dag_page(dag_id, found, BASE))

    return app
