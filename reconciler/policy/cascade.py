"""Dependency cascades: `cascade: downstream` on a pause rule also pauses what depends on it.

Edges come from two places:
- Airflow's assets (datasets in Airflow 2): a DAG with a task that has the asset as an outlet
  produces it; a DAG scheduled on the asset, or with a task that has it as an inlet, consumes
  it. The backend's optional `asset_edges()` returns them (airflow-api: AF3
  `GET /api/v2/assets` `producing_tasks` -> `scheduled_dags` + `consuming_tasks`; AF2
  `GET /api/v1/datasets` `producing_tasks` -> `consuming_dags`; snapshot: its `assets` key).
- What Airflow serialises of cross-DAG operators (issue 15, live/deps.py): an
  ExternalTaskSensor in C waiting on P, a TriggerDagRunOperator in P triggering C. The
  backend's optional `dag_dependencies()` returns them as DagEdges; they join the asset edges.
- `sensors:` in the state file: `{dag: [dags whose sensors wait on it]}`, for what Airflow
  cannot see (ExternalTaskMarker, sensors built at run time, a backend without the graph).

Resolution: when a cascade rule R is the winning rule that pauses DAG P, every live DAG C
reachable from P through the edges (transitively: consumers of consumers) gets a derived rule:
R's layer, R's priority, lower specificity than any explicit match (so any explicit rule of the
same layer wins), paused, with R's reason/owner/ticket and the chain R -> P -> asset -> C.
Where R matches P but does not pause it now (outside its window, expired, beaten by another
rule), C still gets the derived rule, not in force, so C runs again when the cascade ends
(like any DAG whose every rule ended).
"""

from __future__ import annotations

from collections import deque
from typing import Iterable

from reconciler.core.errors import PausectlError
from reconciler.live.base import AssetEdge, AssetGraph, DagEdge, DependencyGraph, LiveDag
from reconciler.live.deps import operator_name
from reconciler.state.loader import EnvState, Rule

SPEC_CASCADE = -1      # below tags/owners (0): an explicit rule of the same layer always wins


def cascade_rules(state: EnvState) -> list[Rule]:
    return [r for r in state.all_rules() if r.cascade == "downstream" and r.paused]


def sensor_edges(state: EnvState) -> list[AssetEdge]:
    return [AssetEdge(dag, waiter, None) for dag, waiters in state.sensors.items()
            for waiter in waiters if waiter != dag]


def load_edges(state: EnvState, backend, notes: list | None = None) -> list[AssetEdge]:
    """Every dependency edge, or [] when no rule cascades (no API calls then). A dependency
    graph the server does not serve (AF2 without a login session, a user without the
    DEPENDENCIES permission) is a note in `notes` (a warning of the plan), not a failure:
    the asset and declared edges still cascade."""
    if not cascade_rules(state):
        return []
    return all_edges(state, backend, notes)


def all_edges(state: EnvState, backend, notes: list | None = None) -> list:
    """Asset, discovered and declared edges, whether or not a rule cascades (impact.py)."""
    edges: list = []
    if isinstance(backend, AssetGraph):
        edges.extend(AssetEdge(*e) if not isinstance(e, AssetEdge) else e
                     for e in backend.asset_edges())
    if isinstance(backend, DependencyGraph):
        try:
            edges.extend(backend.dag_dependencies())
        except PausectlError as e:      # BackendError too
            if notes is None:
                raise
            notes.append(f"Airflow's DAG dependencies not read ({e.message}); cascades use "
                         "assets and `sensors:` only")
    edges.extend(sensor_edges(state))
    return edges


class Discovered(str):
    """The `via` of a chain step through an edge Airflow serialised: shown as
    `ExternalTaskSensor wait_up` / `TriggerDagRunOperator trigger_down` (not `asset ...`)."""


def edge_via(e) -> str | None:
    """What a chain step through edge `e` says: the asset name, None for a declared sensor."""
    if isinstance(e, DagEdge):
        return Discovered(f"{operator_name(e.kind)} {e.task_id}" if e.task_id
                          else operator_name(e.kind))
    return e.asset


def via_text(via: str | None) -> str:
    if isinstance(via, Discovered):
        return str(via)
    return f"asset {via}" if via else "sensor"


def chain_text(origin_dag: str, chain: Iterable[tuple[str, str | None]]) -> str:
    """`etl_producer -> asset orders -> report_consumer -> sensor -> ...`."""
    parts = [origin_dag]
    for dag_id, via in chain:
        parts += [via_text(via), dag_id]
    return " -> ".join(parts)


def chain_json(rule: Rule) -> list[dict]:
    """The chain of a derived rule: [{dag_id, via}] from the origin's DAG (via null) onward."""
    return [{"dag_id": d, "via": (None if i == 0 else via_text(v))}
            for i, (d, v) in enumerate(rule.chain)]


def _derived(origin: Rule, chain: tuple) -> Rule:
    path = chain_text(chain[0][0], chain[1:])
    return Rule(layer=origin.layer, name=origin.name, paused=True, where=origin.where,
                reason=f"{origin.reason or 'paused'} (cascade: {path})", owner=origin.owner,
                ticket=origin.ticket, until=origin.until, from_=origin.from_,
                windows=origin.windows, priority=origin.priority, depth=origin.depth,
                budget=origin.budget, origin=origin, chain=chain)


def apply_cascade(resolver, decisions: dict, live: list[LiveDag],
                  edges: list[AssetEdge]) -> None:
    """Add derived rules to the resolver (resolve.Resolver: not imported, resolve imports this
    module) for every DAG downstream of a cascade rule's DAGs, and re-decide those DAGs (in
    `decisions`, dag_id -> resolve.Decision)."""
    rules = cascade_rules(resolver.state)
    if not rules or not edges:
        return
    by_id = {d.dag_id: d for d in live}
    out: dict[str, list[tuple[str, str | None]]] = {}
    for e in edges:
        if e.producer != e.consumer and e.consumer in by_id:
            lst = out.setdefault(e.producer, [])
            step = (e.consumer, edge_via(e))
            if step not in lst:
                lst.append(step)
    for targets in out.values():
        targets.sort(key=lambda t: (t[0], t[1] or ""))
    for rule in rules:
        seeds = [d.dag_id for d in live if d.dag_id in out and rule in resolver.matching_rules(d)]
        if not seeds:
            continue
        active = {p for p in seeds if decisions[p].rule is rule and decisions[p].paused}
        visited = set(seeds)
        rule_off = resolver.inactive.get(id(rule))
        for phase in (True, False):       # paths from DAGs the rule pauses now come first
            queue = deque((((p, None),), p) for p in seeds if (p in active) == phase)
            while queue:
                chain, x = queue.popleft()
                for c, via in out.get(x, ()):
                    if c in visited:
                        continue
                    visited.add(c)
                    new_chain = chain + ((c, via),)
                    derived = _derived(rule, new_chain)
                    if x in active:
                        why = None
                    elif rule_off:
                        why = f"{rule.label()} is not in force ({rule_off})"
                    else:
                        why = f"{rule.label()} does not pause {x} now"
                    resolver.add_derived(c, derived, why)
                    dec = resolver.decide(by_id[c])
                    decisions[c] = dec
                    if why is None and dec.rule is derived:
                        active.add(c)
                    queue.append((new_chain, c))
