"""Precedence: which rule decides a DAG (reconciler.policy.resolve), on state loaded by the real loaders.

Each test writes a small state repo into a temp dir, chdirs there (so rules are located as
`state/<file>:<line>`), loads it with reconciler.state.loader and asks the resolver about LiveDags.
"""

from __future__ import annotations

import fnmatch
import json
import random
from datetime import datetime, timedelta, timezone

import pytest

from reconciler.live.base import LiveDag
from reconciler.plan.model import build_plan
from reconciler.policy.resolve import Emergency, Resolver, resolve
from reconciler.policy.selectors import Selector, SelectorIndex

try:
    from helpers import dag, load, make_state, run_cli, snapshot_json, rand_dag_id, rand_glob
except ImportError:  # pragma: no cover
    from tests.helpers import dag, load, make_state, run_cli, snapshot_json, rand_dag_id, rand_glob

AT = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)     # a Wednesday
PAST = "2026-11-01T00:00:00Z"
FUTURE = "2026-12-01T00:00:00Z"


def config(layers=("emergency", "dag", "group", "defaults"), tie="pause") -> str:
    return (
        "environments:\n"
        "  prod:\n"
        "    backend: {type: snapshot, path: snapshots/prod.json}\n"
        "precedence:\n"
        f"  layers: [{', '.join(layers)}]\n"
        f"  tie: {tie}\n")


def env_file(body: str, include=(), unmanaged="report") -> str:
    head = "environment: prod\n"
    if include:
        head += f"include: [{', '.join(include)}]\n"
    head += f"defaults: {{unmanaged: {unmanaged}, reason: by default, owner: platform}}\n"
    return head + body


def group(name, match, paused, priority=0, extra="") -> str:
    text = (f"  - name: {name}\n    match: {match}\n    paused: {str(paused).lower()}\n"
            f"    reason: r-{name}\n    owner: o-{name}\n    priority: {priority}\n")
    return text + extra


def dag_entry(dag_id, paused, extra="") -> str:
    return (f"  {dag_id}:\n    paused: {str(paused).lower()}\n    reason: r-{dag_id}\n"
            f"    owner: o-{dag_id}\n" + extra)


@pytest.fixture
def repo(tmp_path, monkeypatch):
    """repo(prod_yaml, layers=..., tie=..., files={...}) -> (cfg, state), loaded at AT."""
    monkeypatch.chdir(tmp_path)

    def build(prod_yaml: str, layers=("emergency", "dag", "group", "defaults"), tie="pause",
              files=None, live=(), now=AT):
        make_state(tmp_path, {"pausectl.yaml": config(layers, tie), "prod.yaml": prod_yaml,
                              "snapshots/prod.json": snapshot_json(live or [dag("x")], "prod"),
                              **(files or {})}, with_base=False)
        from pathlib import Path
        return load(Path("state"), "prod", now=now)
    return build


def live(dag_id, paused=False, tags=(), owners=(), **kw) -> LiveDag:
    return LiveDag(dag_id=dag_id, is_paused=paused, tags=tuple(tags), owners=tuple(owners), **kw)


def decide(cfg, state, d: LiveDag, at=AT, emergency=None):
    return Resolver(cfg, state, at, emergency).decide(d)


ETL = live("etl_orders", tags=["etl"], owners=["data-eng"])


# ---- layers -------------------------------------------------------------------------------

@pytest.mark.parametrize("priority", [-1000, 0, 1000])
def test_dag_entry_beats_group_regardless_of_priority(repo, priority):
    cfg, state = repo(env_file("dags:\n" + dag_entry("etl_orders", False)
                               + "groups:\n" + group("etl", "{tags: [etl]}", True, priority)))
    dec = decide(cfg, state, ETL)
    assert dec.paused is False
    assert dec.rule.layer == "dag" and dec.rule.where == "state/prod.yaml:4"
    assert dec.conflict is None


def test_custom_layer_order_puts_group_first(repo):
    body = env_file("dags:\n" + dag_entry("etl_orders", False)
                    + "groups:\n" + group("etl", "{tags: [etl]}", True))
    cfg, state = repo(body, layers=("emergency", "group", "dag", "defaults"))
    dec = decide(cfg, state, ETL)
    assert dec.paused is True and dec.rule.layer == "group" and dec.rule.name == "etl"


@pytest.mark.parametrize("high_paused", [True, False])
def test_higher_group_priority_wins(repo, high_paused):
    cfg, state = repo(env_file("groups:\n"
                               + group("low", "{tags: [etl]}", not high_paused, priority=5)
                               + group("high", "{tags: [etl]}", high_paused, priority=10)),
                      tie="error")
    dec = decide(cfg, state, ETL)
    assert dec.paused is high_paused and dec.rule.name == "high" and dec.conflict is None


# ---- ties ---------------------------------------------------------------------------------

TIED = env_file("groups:\n"
                + group("stop-etl", "{tags: [etl]}", True, priority=3)      # line 4
                + group("run-data-eng", "{owners: [data-eng]}", False, priority=3))   # line 10


@pytest.mark.parametrize("tie,want", [("pause", True), ("unpause", False)])
def test_tie_pause_and_unpause(repo, tie, want):
    cfg, state = repo(TIED, tie=tie)
    dec = decide(cfg, state, ETL)
    assert dec.paused is want and dec.conflict is None
    assert dec.rule.name == ("stop-etl" if want else "run-data-eng")


def test_tie_error_is_a_conflict_naming_both_rules(repo):
    cfg, state = repo(TIED, tie="error")
    res = resolve(cfg, state, [ETL], AT)
    dec = res.decisions["etl_orders"]
    assert dec.paused is None and dec.rule is None
    assert sorted(r.where for r in dec.conflict) == ["state/prod.yaml:10", "state/prod.yaml:4"]
    why = res.why(dec, ETL)
    assert "state/prod.yaml:4" in why and "state/prod.yaml:10" in why
    plan = build_plan(cfg, state, [ETL], res, AT)
    assert plan.changes == []
    assert plan.conflicts == [{"dag_id": "etl_orders",
                               "rules": [r.where for r in dec.conflict], "message": why}]


def test_tie_error_makes_plan_exit_1(repo, tmp_path):
    repo(TIED, tie="error", live=[dag("etl_orders", False, ["etl"], ["data-eng"]),
                                  dag("other", False)])
    r = run_cli(["plan", "prod"], tmp_path)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "Traceback" not in r.stdout + r.stderr
    conflict = [ln for ln in r.stdout.splitlines() if ln.startswith("conflict")]
    assert len(conflict) == 1 and "etl_orders" in conflict[0]
    assert "state/prod.yaml:4" in conflict[0] and "state/prod.yaml:10" in conflict[0]
    assert "1 conflict(s)" in r.stderr
    rj = run_cli(["plan", "prod", "--format", "json"], tmp_path)
    assert rj.returncode == 1
    data = json.loads(rj.stdout)
    assert [c["dag_id"] for c in data["conflicts"]] == ["etl_orders"]
    assert sorted(data["conflicts"][0]["rules"]) == ["state/prod.yaml:10", "state/prod.yaml:4"]


def test_same_priority_agreeing_is_not_a_conflict(repo):
    cfg, state = repo(env_file("groups:\n"
                               + group("a", "{tags: [etl]}", True, priority=3)
                               + group("b", "{owners: [data-eng]}", True, priority=3)),
                      tie="error")
    dec = decide(cfg, state, ETL)
    assert dec.paused is True and dec.conflict is None and dec.rule is not None


# ---- specificity and nearness -------------------------------------------------------------

def test_exact_dag_id_beats_glob_beats_tags(repo):
    body = env_file("groups:\n"
                    + group("by-tag", "{tags: [etl]}", False)
                    + group("by-glob", '{dag_id: "etl_*"}', True)
                    + group("by-name", "{dag_id: etl_orders}", False))
    cfg, state = repo(body, tie="error")
    assert decide(cfg, state, ETL).rule.name == "by-name"
    # without the exact group, the glob beats the tags-only group
    other = live("etl_customers", tags=["etl"])
    dec = decide(cfg, state, other)
    assert dec.rule.name == "by-glob" and dec.paused is True
    # a DAG only the tags reach
    dec = decide(cfg, state, live("load_x", tags=["etl"]))
    assert dec.rule.name == "by-tag" and dec.paused is False


def test_exact_name_in_a_list_counts_as_exact(repo):
    body = env_file("groups:\n"
                    + group("glob", '{dag_id: "etl_*"}', True)
                    + group("list", '{dag_id: ["etl_orders", "zzz_*"]}', False))
    cfg, state = repo(body, tie="error")
    assert decide(cfg, state, ETL).rule.name == "list"
    assert decide(cfg, state, live("etl_customers")).rule.name == "glob"


def test_env_file_group_beats_included_group(repo):
    common = "groups:\n" + group("shared", "{tags: [etl]}", True, priority=5)
    body = env_file("groups:\n" + group("local", "{tags: [etl]}", False, priority=5),
                    include=["common.yaml"])
    cfg, state = repo(body, tie="error", files={"common.yaml": common})
    dec = decide(cfg, state, ETL)
    assert dec.paused is False and dec.rule.name == "local" and dec.conflict is None
    assert dec.rule.where == "state/prod.yaml:5"


def test_env_file_dag_entry_beats_included_dag_entry(repo):
    common = "dags:\n" + dag_entry("etl_orders", True)
    body = env_file("dags:\n" + dag_entry("etl_orders", False), include=["common.yaml"])
    cfg, state = repo(body, tie="error", files={"common.yaml": common})
    dec = decide(cfg, state, ETL)
    assert dec.paused is False and dec.rule.where == "state/prod.yaml:5"
    # ... and a priority in an included group does not beat nearness of a dag entry either
    assert len(state.dag_rules["etl_orders"]) == 2


def test_nearness_through_nested_includes(repo):
    files = {"common.yaml": "include: [deep.yaml]\ngroups:\n"
             + group("mid", "{tags: [etl]}", False),
             "deep.yaml": "groups:\n" + group("deep", "{tags: [etl]}", True)}
    cfg, state = repo(env_file("", include=["common.yaml"]), tie="error", files=files)
    assert decide(cfg, state, ETL).rule.name == "mid"


# ---- time: until, from, windows -----------------------------------------------------------

def test_expired_until_falls_through_to_next_rule(repo):
    body = env_file("dags:\n" + dag_entry("etl_orders", False, f"    until: {FUTURE}\n")
                    + "groups:\n" + group("etl", "{tags: [etl]}", True))
    cfg, state = repo(body)
    assert decide(cfg, state, ETL).rule.layer == "dag"                  # before until
    after = datetime(2026, 12, 1, tzinfo=timezone.utc)                   # until is exclusive
    dec = decide(cfg, state, ETL, at=after)
    assert dec.paused is True and dec.rule.name == "etl"
    cand = {c.rule.name: c for c in Resolver(cfg, state, after).candidates(ETL)}
    assert cand["etl_orders"].inactive.startswith("expired")
    dec = decide(cfg, state, ETL, at=after - timedelta(seconds=1))
    assert dec.rule.layer == "dag" and dec.paused is False


def test_from_in_the_future_is_not_yet_in_force(repo):
    body = env_file("dags:\n" + dag_entry("etl_orders", True, f"    from: {FUTURE}\n")
                    + "groups:\n" + group("etl", "{tags: [etl]}", False))
    cfg, state = repo(body)
    dec = decide(cfg, state, ETL)
    assert dec.paused is False and dec.rule.name == "etl"
    cand = {c.rule.name: c for c in Resolver(cfg, state, AT).candidates(ETL)}
    assert "not yet in force" in cand["etl_orders"].inactive
    start = datetime(2026, 12, 1, tzinfo=timezone.utc)                  # from is inclusive
    dec = decide(cfg, state, ETL, at=start)
    assert dec.paused is True and dec.rule.layer == "dag"


def test_dag_matched_only_by_expired_rules_runs_again(repo):
    body = env_file("dags:\n" + dag_entry("etl_orders", True, f"    until: {PAST}\n")
                    + "groups:\n" + group("etl", "{tags: [etl]}", True, extra=f"    until: {PAST}\n"),
                    unmanaged="pause")
    cfg, state = repo(body)
    res = resolve(cfg, state, [live("etl_orders", paused=True, tags=["etl"])], AT)
    dec = res.decisions["etl_orders"]
    # not "unmanaged" (that would follow defaults.unmanaged: pause): the pause ended
    assert dec.paused is False and not dec.unmanaged
    assert dec.rule.layer == "defaults" and "ended" in dec.rule.reason
    why = res.why(dec, live("etl_orders", paused=True, tags=["etl"]))
    assert why.startswith("no rule in force") and "expired" in why
    assert any("expired" in w for w in state.warnings)
    plan = build_plan(cfg, state, [live("etl_orders", paused=True, tags=["etl"])], res, AT)
    assert [(c.dag_id, c.action) for c in plan.changes] == [("etl_orders", "unpause")]


WINDOW = '    windows: [{cron: "0 2 * * SUN", duration: 2h, timezone: Europe/Berlin}]\n'


@pytest.mark.parametrize("at,in_force", [
    ("2026-11-29T00:59:59Z", False),   # Sunday 01:59:59 Berlin (CET, UTC+1)
    ("2026-11-29T01:00:00Z", True),    # 02:00 Berlin: start is inclusive
    ("2026-11-29T02:59:59Z", True),
    ("2026-11-29T03:00:00Z", False),   # 04:00 Berlin: end is exclusive
    ("2026-11-28T01:00:00Z", False),   # Saturday
    ("2026-07-05T00:00:00Z", True),    # summer (CEST, UTC+2): still 02:00 local
    ("2026-07-05T01:00:00Z", True),
    ("2026-07-05T02:00:00Z", False),
])
def test_window_in_force_start_inclusive_end_exclusive(repo, at, in_force):
    cfg, state = repo(env_file("groups:\n" + group("maint", "{tags: [etl]}", True, extra=WINDOW)))
    t = datetime.fromisoformat(at.replace("Z", "+00:00"))
    dec = decide(cfg, state, ETL, at=t)
    if in_force:
        assert dec.paused is True and dec.rule.name == "maint"
    else:
        assert dec.paused is False and dec.rule.layer == "defaults"   # known, not in force


def test_window_through_explain_and_plan_at(repo, tmp_path):
    repo(env_file("groups:\n" + group("maint", "{tags: [etl]}", True, extra=WINDOW)),
         live=[dag("etl_orders", False, ["etl"], ["data-eng"])])
    inside, outside = "2026-11-29T01:30:00Z", "2026-11-29T03:00:00Z"
    r = run_cli(["explain", "prod", "etl_orders", "--at", inside, "--format", "json"], tmp_path)
    assert r.returncode == 0, r.stderr
    x = json.loads(r.stdout)
    assert x["desired_paused"] is True and x["decided_by"] == "state/prod.yaml:4"
    r = run_cli(["explain", "prod", "etl_orders", "--at", outside, "--format", "json"], tmp_path)
    x = json.loads(r.stdout)
    assert x["desired_paused"] is False and "outside its maintenance windows" in x["why"]
    r = run_cli(["plan", "prod", "--at", inside, "--format", "json"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert [(c["dag_id"], c["action"]) for c in json.loads(r.stdout)["changes"]] == [
        ("etl_orders", "pause")]
    r = run_cli(["plan", "prod", "--at", outside, "--detailed-exitcode"], tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr


# ---- defaults.unmanaged -------------------------------------------------------------------

@pytest.mark.parametrize("mode,paused,unmanaged,listed", [
    ("report", None, True, True),
    ("ignore", None, True, False),
    ("pause", True, False, False),
    ("unpause", False, False, False),
])
def test_defaults_unmanaged(repo, mode, paused, unmanaged, listed):
    cfg, state = repo(env_file("groups:\n" + group("etl", "{tags: [etl]}", True),
                               unmanaged=mode))
    stray = live("adhoc_tool", paused=True)
    res = resolve(cfg, state, [stray, ETL], AT)
    dec = res.decisions["adhoc_tool"]
    assert dec.paused is paused and dec.unmanaged is unmanaged
    if paused is not None:
        assert dec.rule.layer == "defaults" and dec.rule.where == "state/prod.yaml:2"
    plan = build_plan(cfg, state, [stray, ETL], res, AT)
    assert ("adhoc_tool" in plan.unmanaged) is listed
    actions = {c.dag_id: c.action for c in plan.changes}
    assert actions.get("adhoc_tool") == ("unpause" if mode == "unpause" else None)
    assert actions["etl_orders"] == "pause"        # the managed DAG is unaffected by the mode


# ---- emergency ----------------------------------------------------------------------------

def test_emergency_beats_everything_and_exceptions_keep_running(repo):
    body = env_file("dags:\n" + dag_entry("billing_daily", False)
                    + "groups:\n" + group("run", "{tags: [etl]}", False, priority=1000))
    cfg, state = repo(body)
    except_index = SelectorIndex([(Selector.from_spec({"tags": ["critical"]}), "critical"),
                                  (Selector.from_spec({"dag_id": "canary_*"}), "canary")])
    em = Emergency(reason="db failover", owner="oncall", started="2026-11-25T11:00:00Z",
                   where="Variable pausectl.emergency.prod", except_index=except_index)
    dags = [live("billing_daily"), ETL, live("adhoc"), live("payments", tags=["critical"]),
            live("canary_heartbeat", paused=False)]
    res = resolve(cfg, state, dags, AT, em)
    d = res.decisions
    for dag_id in ("billing_daily", "etl_orders", "adhoc"):
        assert d[dag_id].paused is True and d[dag_id].rule.layer == "emergency", dag_id
        assert d[dag_id].conflict is None
    # exceptions are decided as without the emergency: here no rule -> unmanaged, left running
    assert d["payments"].unmanaged and d["canary_heartbeat"].unmanaged
    plan = build_plan(cfg, state, dags, res, AT)
    assert {c.dag_id: c.action for c in plan.changes} == {
        "billing_daily": "pause", "etl_orders": "pause", "adhoc": "pause"}
    assert all(c.reason == "db failover" and c.owner == "oncall" for c in plan.changes)


def test_emergency_exception_still_follows_its_rules(repo):
    body = env_file("dags:\n" + dag_entry("payments", True))
    cfg, state = repo(body)
    em = Emergency("x", "y", "z", "Variable v", SelectorIndex(
        [(Selector.from_spec({"tags": ["critical"]}), 1)]))
    dec = decide(cfg, state, live("payments", tags=["critical"]), emergency=em)
    assert dec.rule.layer == "dag" and dec.paused is True


def test_emergency_layer_follows_the_configured_order(repo):
    """The emergency wins by being first in `layers` (the default); the order is honoured."""
    body = env_file("dags:\n" + dag_entry("billing_daily", False))
    em = Emergency("x", "y", "z", "Variable v")
    cfg, state = repo(body)
    assert decide(cfg, state, live("billing_daily"), emergency=em).rule.layer == "emergency"
    cfg, state = repo(body, layers=("dag", "group", "defaults", "emergency"))
    assert decide(cfg, state, live("billing_daily"), emergency=em).rule.layer == "dag"
    dec = decide(cfg, state, live("adhoc"), emergency=em)       # no other rule: still paused
    assert dec.paused is True and dec.rule.layer == "emergency"


# ---- selectors: AND within a match, OR within a list --------------------------------------

def test_match_is_and_across_keys(repo):
    cfg, state = repo(env_file("groups:\n" + group(
        "g", '{tags: [etl], dag_id: "etl_*", owners: [data-eng]}', True)))
    r = Resolver(cfg, state, AT)
    assert r.decide(ETL).paused is True
    assert r.decide(live("etl_orders", owners=["data-eng"])).unmanaged         # no tag
    assert r.decide(live("load_orders", tags=["etl"], owners=["data-eng"])).unmanaged  # no glob
    assert r.decide(live("etl_orders", tags=["etl"], owners=["bi"])).unmanaged        # owner


def test_match_is_or_within_a_list(repo):
    cfg, state = repo(env_file("groups:\n"
                               + group("tags", "{tags: [etl, ml]}", True)
                               + group("ids", '{dag_id: ["a_*", "b_?"]}', True)
                               + group("owners", "{owners: [x, y]}", True)))
    r = Resolver(cfg, state, AT)
    assert r.decide(live("t1", tags=["ml"])).rule.name == "tags"
    assert r.decide(live("t2", tags=["other", "etl"])).rule.name == "tags"
    assert r.decide(live("a_long_name")).rule.name == "ids"
    assert r.decide(live("b_1")).rule.name == "ids"
    assert r.decide(live("b_12")).unmanaged
    assert r.decide(live("o", owners=["y"])).rule.name == "owners"
    assert r.decide(live("nothing", tags=["x"], owners=["z"])).unmanaged


def test_globs_are_case_sensitive_and_anchored(repo):
    cfg, state = repo(env_file("groups:\n" + group("g", '{dag_id: "etl_[ab]?"}', True)))
    r = Resolver(cfg, state, AT)
    assert r.decide(live("etl_a1")).paused is True
    assert r.decide(live("etl_c1")).unmanaged
    assert r.decide(live("ETL_a1")).unmanaged
    assert r.decide(live("etl_a12")).unmanaged
    assert r.decide(live("xetl_a1")).unmanaged


# ---- property: SelectorIndex.lookup == brute force ----------------------------------------

ALPHA = "ab_1"


def _rand_id(rng: random.Random) -> str:
    return rand_dag_id(rng, ALPHA, 6)


def _rand_glob(rng: random.Random) -> str:
    return rand_glob(rng, ALPHA, 0.7)


def _rand_selector(rng: random.Random) -> dict:
    spec: dict = {}
    while True:
        if rng.random() < 0.6:
            ids = [(_rand_glob(rng) if rng.random() < 0.7 else _rand_id(rng))
                   for _ in range(rng.randint(1, 3))]
            spec["dag_id"] = ids[0] if len(ids) == 1 and rng.random() < 0.5 else ids
        if rng.random() < 0.4:
            spec["tags"] = rng.sample(["t1", "t2", "t3", "t4"], rng.randint(1, 2))
        if rng.random() < 0.25:
            spec["owners"] = rng.sample(["o1", "o2", "o3"], rng.randint(1, 2))
        if spec or rng.random() < 0.05:   # an empty selector (matches all) now and then
            return spec


def test_selector_index_agrees_with_brute_force():
    rng = random.Random(20261125)
    for round_ in range(20):
        specs = [_rand_selector(rng) for _ in range(rng.randint(1, 60))]
        sels = [Selector.from_spec(s) for s in specs]
        index = SelectorIndex((s, i) for i, s in enumerate(sels))
        for _ in range(250):
            dag_id = _rand_id(rng)
            tags = tuple(rng.choices(["t1", "t2", "t3", "t4", "t5"], k=rng.randint(0, 3)))
            owners = tuple(rng.choices(["o1", "o2", "o3", "o4"], k=rng.randint(0, 2)))
            want = [i for i, s in enumerate(sels) if s.matches(dag_id, tags, owners)]
            got = index.lookup(dag_id, tags, owners)
            assert got == want, (round_, dag_id, tags, owners, [specs[i] for i in set(got) ^ set(want)])


def test_selector_globs_agree_with_fnmatch():
    rng = random.Random(7)
    for _ in range(3000):
        g = _rand_glob(rng)
        d = _rand_id(rng)
        sel = Selector.from_spec({"dag_id": g})
        assert sel.matches(d, (), ()) == fnmatch.fnmatchcase(d, g), (g, d)
