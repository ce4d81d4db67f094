"""Airflow 2: the same pages as a Flask AppBuilder view under a "pausectl" menu.

Access follows Airflow's auth: an anonymous user is sent to the login page, and the DAGs shown
are exactly those the auth manager lets the user read (`get_permitted_dag_ids(methods=["GET"])`,
i.e. the FAB roles' DAG permissions). Read-only: GET only.
"""

from __future__ import annotations

from datetime import datetime, timezone

from flask import Response, g, redirect, request
from flask_appbuilder import BaseView, expose

from reconciler.airflow.plugin import pages, store

BASE = "/pausectl"


def _permitted() -> set[str] | None:
    """The user's readable DAG ids; None when nobody is logged in."""
    user = getattr(g, "user", None)
    if user is None or not getattr(user, "is_authenticated", False) or \
            getattr(user, "is_anonymous", True):
        return None
    from airflow.www.extensions.init_auth_manager import get_auth_manager
    return set(get_auth_manager().get_permitted_dag_ids(methods=["GET"], user=user))


def _html(text: str) -> Response:
    return Response(text, mimetype="text/html", headers={
        "Content-Security-Policy": pages.CSP, "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-store"})


class PausectlView(BaseView):
    route_base = BASE
    default_view = "index"

    def _login(self):
        from airflow.www.extensions.init_auth_manager import get_auth_manager
        return redirect(get_auth_manager().get_url_login(next_url=request.url))

    @expose("/")
    def index(self):
        permitted = _permitted()
        if permitted is None:
            return self._login()
        docs, rows = store.visible(store.read_documents(), permitted)
        q = {k: request.args.get(k, "")[:200]
             for k in ("state", "owner", "tag", "drift", "min_days")}
        return _html(pages.instance_page(docs, rows, q, BASE, datetime.now(timezone.utc)))

    @expose("/dag/<string:dag_id>")
    def dag(self, dag_id: str):
        permitted = _permitted()
        if permitted is None:
            return self._login()
        found = store.for_dag(store.read_documents(), dag_id, permitted)
        return _html(pages.dag_page(dag_id, found, BASE))


VIEW = {"name": "Pause policy", "category": "pausectl", "view": PausectlView()}
