"""The status documents as the plugin reads them: every Airflow Variable `pausectl.status.*`,
read from Airflow's own metadata database inside the webserver/API server, parsed with a size
bound, and cut down to the DAGs the current user may read (Airflow's auth manager decides)."""

from __future__ import annotations

import json
from collections.abc import Mapping

PREFIX = "pausectl.status."
MAX_BYTES = 1024 * 1024     # a larger Variable is not ours (status_doc bounds it at 256 KiB)
MAX_DOCS = 50


def parse(key: str, text: str | None) -> dict | None:
    """A status document, or None when the value is not one (too large, not JSON, wrong
    shape): a hostile Variable shows nothing rather than an error page."""
    if not text or len(text) > MAX_BYTES:
        return None
    try:
        doc = json.loads(text)
    except ValueError:
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("dags"), list):
        return None
    if not isinstance(doc.get("version"), int) or doc["version"] < 1:
        return None
    doc["environment"] = str(doc.get("environment") or key[len(PREFIX):])
    doc["dags"] = [d for d in doc["dags"] if isinstance(d, dict)
                   and isinstance(d.get("dag_id"), str)]
    return doc


def read_documents() -> list[dict]:
    """Every parseable status document in this Airflow, sorted by environment."""
    from airflow.models.variable import Variable
    from airflow.utils.session import create_session
    from sqlalchemy import select
    docs = []
    with create_session() as session:
        rows = session.scalars(select(Variable).where(Variable.key.startswith(PREFIX))
                               .order_by(Variable.key).limit(MAX_DOCS)).all()
        for var in rows:
            doc = parse(var.key, var.val)
            if doc is not None:
                docs.append(doc)
    return docs


def visible(docs: list[dict], permitted: set[str]) -> tuple[list[dict], list[tuple[Mapping, Mapping]]]:
    """Documents and (document, DAG entry) rows cut to the DAGs in `permitted`: a document
    naming none of them is dropped entirely (its environment and banner included)."""
    out_docs, rows = [], []
    for doc in docs:
        mine = [d for d in doc["dags"] if d["dag_id"] in permitted]
        if not mine:
            continue
        out_docs.append(doc)
        rows += [(doc, d) for d in mine if d.get("managed") or d.get("live_paused")]
    return out_docs, rows


def for_dag(docs: list[dict], dag_id: str, permitted: set[str]) -> list[tuple[Mapping, Mapping]]:
    if dag_id not in permitted:
        return []
    return [(doc, d) for doc in docs for d in doc["dags"] if d["dag_id"] == dag_id]
