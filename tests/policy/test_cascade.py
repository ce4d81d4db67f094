"""`cascade: downstream`: offline (snapshot assets, sensors) and against real Airflow, where
`report_assets_consumer` is scheduled on the asset `pausectl_orders` that
`etl_assets_producer` produces (harness.STANDARD_DAGS)."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from helpers import main_captured

from reconciler.live.base import AssetEdge, LiveDag
from reconciler.policy.resolve import resolve

try:
    from helpers import dag, load, make_state, snapshot_json
except ImportError:  # pragma: no cover
    from tests.helpers import dag, load, make_state, snapshot_json

AT = datetime(2026, 11, 25, 12, tzinfo=timezone.utc)
SUNDAY = datetime(2026, 11, 29, 1, 30, tzinfo=timezone.utc)   # inside 02:00-04:00 Berlin

PROD = """\
environment: prod
dags:
  vendor_feed:
    paused: true
    reason: "vendor outage"
    owner: data-eng
    cascade: downstream
groups:
  - name: nightly
    match: {tags: [etl]}
    paused: true
    reason: "maintenance"
    owner: data-eng
    cascade: downstream
    windows: [{cron: "0 2 * * SUN", duration: 2h, timezone: Europe/Berlin}]
  - name: reports
    match: {tags: [reporting]}
    paused: false
    reason: "reports run"
    owner: analytics
sensors:
  report_orders: [sensor_waiter]
"""

LIVE = [
    dag("vendor_feed", False, ["vendor"], ["data-eng"]),
    dag("etl_orders", False, ["etl"], ["data-eng"]),
    dag("report_orders", False, ["reporting"], ["analytics"]),
    dag("report_pinned", False, ["reporting"], ["analytics"]),
    dag("sensor_waiter", True, [], ["ops"]),
    dag("unrelated", False, [], ["ops"]),
]
ASSETS = [
    {"name": "raw_feed", "producers": ["vendor_feed"], "consumers": ["etl_orders"]},
    {"name": "orders", "producers": ["etl_orders"], "consumers": ["report_orders", "report_pinned"]},
]


def _snapshot(assets=ASSETS) -> str:
    doc = json.loads(snapshot_json(LIVE, "prod"))
    if assets is not None:
        doc["assets"] = assets
    return json.dumps(doc, indent=1)


@pytest.fixture
def repo(tmp_path):
    make_state(tmp_path, {"prod.yaml": PROD, "snapshots/prod.json": _snapshot()})
    return tmp_path


def _resolve(root, at, extra_prod: str = "", edges=None):
    if extra_prod:
        (root / "prod.yaml").write_text(PROD + extra_prod)
    cfg, state = load(root, "prod", now=at)
    from reconciler.live.snapshot import SnapshotBackend
    from reconciler.policy.cascade import load_edges
    backend = SnapshotBackend("prod", root / "snapshots" / "prod.json")
    live = backend.list_dags()
    edges = load_edges(state, backend) if edges is None else edges
    return resolve(cfg, state, live, at, None, edges), live


def test_snapshot_assets_are_edges(repo):
    from reconciler.live.snapshot import SnapshotBackend
    b = SnapshotBackend("prod", repo / "state" / "snapshots" / "prod.json")
    assert sorted(b.asset_edges()) == [
        ("etl_orders", "report_orders", "orders"), ("etl_orders", "report_pinned", "orders"),
        ("vendor_feed", "etl_orders", "raw_feed")]
    assert all(isinstance(e, AssetEdge) for e in b.asset_edges())
    # (producer, consumer) pairs unpack from the tuple
    assert ("vendor_feed", "etl_orders") in [e[:2] for e in b.asset_edges()]


def test_cascade_reaches_consumers_transitively_and_sensors(repo):
    res, _ = _resolve(repo / "state", AT)
    d = res.decisions
    assert d["vendor_feed"].paused is True and d["vendor_feed"].rule.origin is None
    for dag_id in ("etl_orders", "report_orders", "report_pinned", "sensor_waiter"):
        assert d[dag_id].paused is True, dag_id
        assert d[dag_id].rule.origin is not None and d[dag_id].rule.origin.name == "vendor_feed"
    assert [c for c, _ in d["sensor_waiter"].rule.chain] == [
        "vendor_feed", "etl_orders", "report_orders", "sensor_waiter"]
    assert [v for _, v in d["sensor_waiter"].rule.chain] == [None, "raw_feed", "orders", None]
    assert d["unrelated"].unmanaged


def test_an_explicit_rule_of_the_same_layer_beats_the_cascade(repo):
    extra = "  # pinned\n"
    (repo / "state" / "prod.yaml").write_text(PROD.replace(
        "groups:\n", "  report_pinned: {paused: false, reason: \"must run\", owner: analytics}\n"
                     "groups:\n") + extra)
    res, _ = _resolve(repo / "state", AT)
    assert res.decisions["report_pinned"].paused is False
    assert res.decisions["report_pinned"].rule.name == "report_pinned"
    assert res.decisions["report_orders"].paused is True


def test_cascade_from_a_group_follows_its_window(repo):
    # without the vendor pause: only the windowed group cascades
    (repo / "state" / "prod.yaml").write_text(PROD.replace("    cascade: downstream\ngroups:",
                                                           "groups:", 1))
    res, _ = _resolve(repo / "state", AT)            # Wednesday: outside the window
    assert res.decisions["etl_orders"].paused is False
    # report_orders has its own group (unpause); sensor_waiter only the cascade, not in force:
    # it runs (the cascade ended), like any DAG whose every rule ended
    assert res.decisions["sensor_waiter"].paused is False
    assert "not in force" in res.resolver.inactive[id(res.decisions["sensor_waiter"].rule)] \
        if res.decisions["sensor_waiter"].rule.origin else True
    res, _ = _resolve(repo / "state", SUNDAY)        # inside the window
    assert res.decisions["etl_orders"].paused is True
    # report_orders: the group layer cascade (spec -1) loses to the explicit reports group
    assert res.decisions["report_orders"].paused is False
    # so the chain stops there: sensor_waiter is not paused by this cascade
    assert res.decisions["sensor_waiter"].paused is False


def test_no_cascade_rule_means_no_edges_fetched(repo):
    from reconciler.policy.cascade import load_edges

    class Boom:
        def asset_edges(self):
            raise AssertionError("fetched")
    (repo / "state" / "prod.yaml").write_text(PROD.replace("    cascade: downstream\n", ""))
    _, state = load(repo / "state", "prod", now=AT)
    assert load_edges(state, Boom()) == []


def test_cycles_terminate(repo):
    edges = [AssetEdge("vendor_feed", "etl_orders", "a"), AssetEdge("etl_orders", "vendor_feed", "b"),
             AssetEdge("etl_orders", "etl_orders", "self")]
    res, _ = _resolve(repo / "state", AT, edges=edges)
    assert res.decisions["etl_orders"].paused is True


def _cli(cwd, args, capsys, monkeypatch, code=0):
    got, out, err = main_captured(cwd, args, capsys, monkeypatch)
    assert got == code, out + err
    return out


def test_plan_and_explain_show_the_chain(repo, capsys, monkeypatch):
    plan = json.loads(_cli(repo, ["plan", "prod", "--at", "2026-11-25T12:00:00Z", "--format",
                                  "json"], capsys, monkeypatch))
    acts = {c["dag_id"]: c for c in plan["changes"]}
    assert {k: v["action"] for k, v in acts.items()} == {
        "vendor_feed": "pause", "etl_orders": "pause", "report_orders": "pause",
        "report_pinned": "pause"}     # sensor_waiter is already paused
    assert acts["report_orders"]["rule"] == "state/prod.yaml:3"
    assert "cascade: vendor_feed -> asset raw_feed -> etl_orders -> asset orders -> " \
           "report_orders" in acts["report_orders"]["reason"]
    text = _cli(repo, ["explain", "prod", "sensor_waiter", "--at", "2026-11-25T12:00:00Z"],
                capsys, monkeypatch)
    assert ("cascade of dag entry vendor_feed (state/prod.yaml:3): paused, cascade vendor_feed "
            "-> asset raw_feed -> etl_orders -> asset orders -> report_orders -> sensor -> "
            "sensor_waiter") in text
    x = json.loads(_cli(repo, ["explain", "prod", "report_orders", "--at",
                               "2026-11-25T12:00:00Z", "--format", "json"], capsys, monkeypatch))
    casc = [r for r in x["rules"] if r.get("cascade")]
    assert casc[0]["winner"] and casc[0]["cascade"] == [
        {"dag_id": "vendor_feed", "via": None}, {"dag_id": "etl_orders", "via": "asset raw_feed"},
        {"dag_id": "report_orders", "via": "asset orders"}]


# ---- real Airflow -------------------------------------------------------------------------

def test_asset_edges_from_real_airflow(airflow_server):
    from reconciler.live.airflow_api import AirflowApiBackend
    b = AirflowApiBackend("live", {"type": "airflow-api", "url": airflow_server.url,
                                   "username_env": "AF_USER", "password_env": "AF_PASS"},
                          env={"AF_USER": airflow_server.username,
                               "AF_PASS": airflow_server.password})
    with b:
        edges = b.asset_edges()
    assert ("etl_assets_producer", "report_assets_consumer") in [e[:2] for e in edges]
    e = next(e for e in edges if e.consumer == "report_assets_consumer")
    assert "pausectl_orders" in e.asset     # AF3: the name; AF2: the dataset URI
    # every edge is backed by the DAG specs the harness wrote
    for p, c, _ in edges:
        assert airflow_server.specs[p].outlets
        assert airflow_server.specs[c].schedule or airflow_server.specs[c].inlets


LIVE_PROD = """\
environment: prod
dags:
  etl_assets_producer:
    paused: true
    reason: "upstream data broken"
    owner: data-eng
    ticket: INC-7
    cascade: downstream
sensors:
  report_assets_consumer: [misc_orphan]
"""


def test_cascade_plan_and_explain_against_real_airflow3(airflow3, tmp_path, capsys, monkeypatch):
    airflow3.reset(paused=False)
    make_state(tmp_path, {
        "pausectl.yaml": "environments:\n  prod:\n    backend: {type: airflow-api, url: "
                         f"\"{airflow3.url}\", username_env: AF_USER, password_env: AF_PASS}}\n",
        "prod.yaml": LIVE_PROD, "common.yaml": None, "staging.yaml": None})
    monkeypatch.setenv("AF_USER", airflow3.username)
    monkeypatch.setenv("AF_PASS", airflow3.password)
    plan = json.loads(_cli(tmp_path, ["plan", "prod", "--format", "json"], capsys, monkeypatch))
    acts = {c["dag_id"]: c for c in plan["changes"]}
    assert set(acts) == {"etl_assets_producer", "report_assets_consumer", "misc_orphan"}
    assert all(c["action"] == "pause" for c in acts.values())
    assert "cascade: etl_assets_producer -> asset pausectl_orders -> report_assets_consumer" \
        in acts["report_assets_consumer"]["reason"]
    x = json.loads(_cli(tmp_path, ["explain", "prod", "misc_orphan", "--format", "json"],
                        capsys, monkeypatch))
    assert x["desired_paused"] is True
    assert x["rules"][0]["cascade"] == [
        {"dag_id": "etl_assets_producer", "via": None},
        {"dag_id": "report_assets_consumer", "via": "asset pausectl_orders"},
        {"dag_id": "misc_orphan", "via": "sensor"}]
    # the plan changed nothing in Airflow
    assert not any(p for _, p in airflow3.query("SELECT dag_id, is_paused FROM dag"))
    airflow3.reset()


# ---- issue 13: doctor, explain and plan read one Observation and agree ---------------------

SENSOR_PROD = """\
environment: prod
defaults: {unmanaged: report}
dags:
  etl_orders:
    paused: true
    reason: "orders source down"
    owner: data-eng
    cascade: downstream
sensors:
  etl_orders: [report_daily_sales]
"""


@pytest.mark.parametrize("sales_paused", [True, False])
def test_doctor_explain_and_plan_agree_on_a_sensor_cascade(tmp_path, capsys, monkeypatch,
                                                           sales_paused):
    """report_daily_sales waits on etl_orders (sensors:); etl_orders is paused with
    `cascade: downstream`: every command says the cascade pauses report_daily_sales."""
    live = [dag("etl_orders", True, [], ["data-eng"]),
            dag("report_daily_sales", sales_paused, [], ["analytics"])]
    make_state(tmp_path, {"prod.yaml": SENSOR_PROD,
                          "snapshots/prod.json": snapshot_json(live, "prod")})
    plan = json.loads(_cli(tmp_path, ["plan", "prod", "--format", "json"], capsys, monkeypatch))
    x = json.loads(_cli(tmp_path, ["explain", "prod", "report_daily_sales", "--format", "json"],
                        capsys, monkeypatch))
    doc = json.loads(_cli(tmp_path, ["doctor", "prod", "report_daily_sales", "--format", "json"],
                          capsys, monkeypatch))
    changes = {c["dag_id"]: c for c in plan["changes"]}
    if sales_paused:
        assert changes == {} and plan["summary"]["unchanged"] == 2, plan
    else:
        assert changes["report_daily_sales"]["action"] == "pause"
        assert changes["report_daily_sales"]["rule"] == "state/prod.yaml:4"
    assert x["desired_paused"] is True and x["decided_by"] == "state/prod.yaml:4", x
    assert doc["desired_paused"] is True and doc["decided_by"] == "state/prod.yaml:4", doc
    first = doc["findings"][0]
    if sales_paused:
        assert first["code"] == "paused_by_rule", doc
        assert "cascade: etl_orders -> sensor -> report_daily_sales" in first["title"], doc
    else:
        assert first["code"] == "will_pause", doc
    text = _cli(tmp_path, ["doctor", "prod", "report_daily_sales"], capsys, monkeypatch)
    assert "git: paused (state/prod.yaml:4)" in text and "no rule decides" not in text, text
