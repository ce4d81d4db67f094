"""Cross-DAG edges Airflow knows (issue 15): ExternalTaskSensor and TriggerDagRunOperator.

Airflow computes them when it serialises a DAG (`SerializedDAG.detect_task_dependencies`, the
same in 2.9 ... 3.3): a sensor gives `DagDependency(source=external_dag_id, target=sensing
dag, dependency_type="sensor", dependency_id=task_id)`, a trigger `(source=triggering dag,
target=trigger_dag_id, "trigger", task_id)`; assets come through the asset endpoints already
(cascade.py). ExternalTaskMarker is NOT serialised as a dependency by any version (read in
serialized_objects.py): it stays a `sensors:` entry. Where each backend reads them:

- dagmodel: `SerializedDagModel.get_dag_dependencies()` (the serialized DAG's
  `dag_dependencies`).
- REST AF3 (3.0 ... 3.3): `GET /ui/dependencies` (the UI's graph: nodes `{id, label, type}`,
  edges `{source_id, target_id}`; a node `sensor:<up>:<down>:<task>` sits between
  `dag:<up>` and `dag:<down>`). It is a UI route (`include_in_schema=False`): no public
  `/api/v2` endpoint serves the DAG dependencies in any 3.x.
- REST AF2 (2.9 ... 2.11): `/api/v1` has none (`/dags/{id}/details` has no dependencies);
  `/object/dataset_dependencies` keeps only dataset/dag nodes (sensors and triggers dropped);
  the `/dag-dependencies` page embeds the full graph as `let dagNodes = [...]` and
  `let edges = [{u, v}]` (tojson) and needs the webserver login session.

A sensor's `timeout` is serialised by no version (BaseOperator.get_serialized_fields: sensors
add only `reschedule`) and no REST route shows it (TaskResponse has execution_timeout, not
timeout): the preview names the waiting sensors and says so. ExternalTaskSensor's default is
7 days.

Every string here came from Airflow and is untrusted: ids are kept only when they are DAG
ids of the live listing (the caller filters) and are never interpreted beyond splitting.
"""

from __future__ import annotations

import json
import re
from typing import Any, Iterable

from reconciler.live.base import DagEdge

KINDS = ("sensor", "trigger")
_MAX_ID = 250                  # Airflow's dag_id limit; anything longer is not a DAG id


def _dag_id(node_id: Any) -> str | None:
    if isinstance(node_id, str) and node_id.startswith("dag:"):
        dag = node_id[4:]
        return dag if 0 < len(dag) <= _MAX_ID else None
    return None


def _list(value: Any) -> list:
    return value if isinstance(value, list) else []


def _edges_through(kinds: dict[str, tuple[str, str | None]],
                   pairs: Iterable[tuple[Any, Any]]) -> list[DagEdge]:
    """DAG -> dependency node -> DAG paths as DagEdges. `kinds`: node id -> (kind, label)."""
    into: dict[str, set[str]] = {}
    out_of: dict[str, set[str]] = {}
    for src, dst in pairs:
        if not (isinstance(src, str) and isinstance(dst, str)):
            continue
        up, down = _dag_id(src), _dag_id(dst)
        if up is not None and dst in kinds:
            into.setdefault(dst, set()).add(up)
        if down is not None and src in kinds:
            out_of.setdefault(src, set()).add(down)
    edges = set()
    for node, (kind, label) in kinds.items():
        for up in into.get(node, ()):
            for down in out_of.get(node, ()):
                if up != down:
                    edges.add(DagEdge(up, down, kind, label))
    return sorted(edges, key=lambda e: (e.producer, e.consumer, e.kind, e.task_id or ""))


def from_ui_graph(data: Any) -> list[DagEdge]:
    """AF3 `GET /ui/dependencies`: {nodes: [{id, label, type}], edges: [{source_id, target_id}]}."""
    if not isinstance(data, dict):
        return []
    kinds = {}
    for n in _list(data.get("nodes")):
        if isinstance(n, dict) and n.get("type") in KINDS and isinstance(n.get("id"), str):
            label = n.get("label")
            kinds[n["id"]] = (n["type"], label if isinstance(label, str) else None)
    pairs = [(e.get("source_id"), e.get("target_id")) for e in _list(data.get("edges"))
             if isinstance(e, dict)]
    return _edges_through(kinds, pairs)


_JS_VAR = re.compile(r"^\s*let (dagNodes|edges) = (.*);\s*$", re.M)


def from_af2_page(html: str) -> list[DagEdge] | None:
    """AF2's `/dag-dependencies` page; None when it is not that page (a login form)."""
    found = {}
    for m in _JS_VAR.finditer(html):
        try:
            found[m.group(1)] = json.loads(m.group(2))
        except ValueError:
            return None
    if set(found) != {"dagNodes", "edges"}:
        return None
    kinds = {}
    for n in _list(found["dagNodes"]):
        value = n.get("value") if isinstance(n, dict) else None
        if isinstance(value, dict) and value.get("class") in KINDS and isinstance(n.get("id"), str):
            label = value.get("label")
            kinds[n["id"]] = (value["class"], label if isinstance(label, str) else None)
    return _edges_through(kinds, [(e.get("u"), e.get("v")) for e in _list(found["edges"])
                                  if isinstance(e, dict)])


def from_serialized(deps: dict[str, list]) -> list[DagEdge]:
    """dagmodel: {dag_id: [DagDependency]} from SerializedDagModel.get_dag_dependencies()."""
    edges = set()
    for deps_of in deps.values():
        for d in deps_of or ():
            kind = getattr(d, "dependency_type", None)
            src, dst = getattr(d, "source", None), getattr(d, "target", None)
            if kind not in KINDS or not isinstance(src, str) or not isinstance(dst, str) \
                    or src == dst or not src or not dst:
                continue
            task = getattr(d, "dependency_id", None)
            task = task if isinstance(task, str) else None
            edges.add(DagEdge(src, dst, kind, task))
    return sorted(edges, key=lambda e: (e.producer, e.consumer, e.kind, e.task_id or ""))


def operator_name(kind: str) -> str:
    return {"sensor": "ExternalTaskSensor", "trigger": "TriggerDagRunOperator"}.get(kind, kind)
