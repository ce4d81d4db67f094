"""Discovered dependencies (live/deps.py) offline: the three shapes Airflow serves them in, hostile
input, and cascades following a discovered sensor/trigger edge like an asset edge (the live
test against AF3/AF2 is tests/live/test_impact_live.py)."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from types import SimpleNamespace

from helpers import dag, load, make_state, snapshot_json

from reconciler.live.base import DagEdge
from reconciler.live.deps import from_af2_page, from_serialized, from_ui_graph
from reconciler.policy.cascade import chain_json, chain_text
from reconciler.policy.resolve import resolve

AT = datetime(2026, 11, 25, 12, tzinfo=timezone.utc)

# what AF3 3.3.2 answered for an ExternalTaskSensor in imp_sensor waiting on imp_up, a
# TriggerDagRunOperator in imp_trigger triggering imp_triggered, and an asset (measured)
UI_GRAPH = {
    "edges": [
        {"source_id": "asset:1", "target_id": "dag:imp_consumer"},
        {"source_id": "dag:imp_producer", "target_id": "asset:1"},
        {"source_id": "dag:imp_trigger",
         "target_id": "trigger:imp_trigger:imp_triggered:trigger_imp_triggered"},
        {"source_id": "dag:imp_up", "target_id": "sensor:imp_up:imp_sensor:wait_imp_up"},
        {"source_id": "sensor:imp_up:imp_sensor:wait_imp_up", "target_id": "dag:imp_sensor"},
        {"source_id": "trigger:imp_trigger:imp_triggered:trigger_imp_triggered",
         "target_id": "dag:imp_triggered"}],
    "nodes": [
        {"id": "dag:imp_consumer", "label": "imp_consumer", "type": "dag"},
        {"id": "asset:1", "label": "imp_asset", "type": "asset"},
        {"id": "sensor:imp_up:imp_sensor:wait_imp_up", "label": "wait_imp_up", "type": "sensor"},
        {"id": "trigger:imp_trigger:imp_triggered:trigger_imp_triggered",
         "label": "trigger_imp_triggered", "type": "trigger"}]}
EXPECTED = [DagEdge("imp_trigger", "imp_triggered", "trigger", "trigger_imp_triggered"),
            DagEdge("imp_up", "imp_sensor", "sensor", "wait_imp_up")]


def test_af3_ui_graph_gives_sensor_and_trigger_edges_not_assets():
    assert from_ui_graph(UI_GRAPH) == EXPECTED


def test_af2_page_embeds_the_same_graph():
    nodes = [{"id": n["id"], "value": {"label": n["label"], "class": n["type"]}}
             for n in UI_GRAPH["nodes"]]
    edges = [{"u": e["source_id"], "v": e["target_id"]} for e in UI_GRAPH["edges"]]
    page = ("<html><script>\n    let dagNodes = " + json.dumps(nodes) + ";\n"
            "    let edges = " + json.dumps(edges) + ";\n</script></html>")
    assert from_af2_page(page) == EXPECTED
    assert from_af2_page("<form action='/login/'>") is None          # the login form
    assert from_af2_page("let dagNodes = [;\nlet edges = [];\n") is None


def test_serialized_dependencies_of_the_dagmodel_backend():
    dep = lambda **kw: SimpleNamespace(**kw)     # noqa: E731 - airflow's DagDependency fields
    deps = {"imp_sensor": [dep(source="imp_up", target="imp_sensor", dependency_type="sensor",
                               dependency_id="wait_imp_up")],
            "imp_trigger": [dep(source="imp_trigger", target="imp_triggered",
                                dependency_type="trigger", dependency_id="trigger_imp_triggered")],
            "imp_producer": [dep(source="imp_producer", target="asset", dependency_type="asset",
                                 dependency_id="imp_asset")]}
    assert from_serialized(deps) == EXPECTED


def test_hostile_graphs_are_ignored_not_raised():
    for data in (None, [], "x", {"nodes": "x", "edges": 3}, {"nodes": [1, None, {"id": 5}],
                                                             "edges": [None, {"source_id": 1}]}):
        assert from_ui_graph(data) == []
    long = "dag:" + "x" * 300
    graph = {"nodes": [{"id": "sensor:s", "type": "sensor", "label": 7}],
             "edges": [{"source_id": long, "target_id": "sensor:s"},
                       {"source_id": "sensor:s", "target_id": "dag:b"},
                       {"source_id": "dag:b", "target_id": "sensor:s"}]}
    assert from_ui_graph(graph) == []        # an id past Airflow's limit; b -> b is no edge


PROD = """\
environment: prod
dags:
  imp_up: {paused: true, reason: "vendor outage", owner: data-eng, cascade: downstream}
"""


def test_a_cascade_follows_discovered_sensor_and_trigger_edges(tmp_path):
    live = [dag("imp_up"), dag("imp_sensor"), dag("imp_triggered"), dag("other")]
    root = make_state(tmp_path, {"prod.yaml": PROD,
                                 "snapshots/prod.json": snapshot_json(live, "prod")})
    cfg, state = load(root, "prod", now=AT)
    from reconciler.live.snapshot import SnapshotBackend
    dags = SnapshotBackend("prod", root / "snapshots" / "prod.json").list_dags()
    edges = [DagEdge("imp_up", "imp_sensor", "sensor", "wait_imp_up"),
             DagEdge("imp_sensor", "imp_triggered", "trigger", "go")]
    d = resolve(cfg, state, dags, AT, None, edges).decisions
    assert d["imp_triggered"].paused is True and d["other"].unmanaged
    rule = d["imp_triggered"].rule
    assert chain_text(rule.chain[0][0], rule.chain[1:]) == (
        "imp_up -> ExternalTaskSensor wait_imp_up -> imp_sensor -> TriggerDagRunOperator go "
        "-> imp_triggered")
    assert [c["via"] for c in chain_json(rule)] == [
        None, "ExternalTaskSensor wait_imp_up", "TriggerDagRunOperator go"]
