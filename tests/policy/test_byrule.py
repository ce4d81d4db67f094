"""The by-rule resolver (policy/byrule.py, Resolver.decide_all) against the per-DAG one
(Resolver.decide, kept as the reference and as the fallback) on random states and DAG sets.

Each round writes a random state repo (dag entries in the environment file and in an
included one, groups matching by exact ids, globs with classes and negated classes, tags and
owners, priorities, expired and not-yet rules, a random layer order, tie and
defaults.unmanaged), loads it with the real loaders and compares every DAG's decision: the
same winner (the same Rule object), the same conflict list in the same order, the same
unmanaged flag, in the same order of DAGs; and observe.differing, DIFFERING for all DAGs at
once, selects what the predicate selects.
"""

from __future__ import annotations

import json
import random
from datetime import datetime, timezone
from pathlib import Path

from reconciler.live.base import LiveDag
from reconciler.observe import DIFFERING, differing
from reconciler.policy.resolve import Emergency, Resolver, resolve

try:
    from helpers import load, make_state, snapshot_json, rand_dag_id, rand_glob
except ImportError:  # pragma: no cover
    from tests.helpers import load, make_state, snapshot_json, rand_dag_id, rand_glob

AT = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)
ALPHA = "ab_1"
TAGS = ["t1", "t2", "t3", "t4", "t5"]
OWNERS = ["o1", "o2", "o3", "o4"]


def _id(rng: random.Random) -> str:
    return rand_dag_id(rng, ALPHA, 5)


def _glob(rng: random.Random) -> str:
    return rand_glob(rng, ALPHA, 0.72)


def _match(rng: random.Random, ids: list[str]) -> dict:
    spec: dict = {}
    while True:
        if rng.random() < 0.6:
            pats = [rng.choice(ids) if ids and rng.random() < 0.3 else
                    _glob(rng) if rng.random() < 0.7 else _id(rng)
                    for _ in range(rng.randint(1, 3))]
            spec["dag_id"] = pats[0] if len(pats) == 1 and rng.random() < 0.5 else pats
        if rng.random() < 0.4:
            spec["tags"] = rng.sample(TAGS, rng.randint(1, 2))
        if rng.random() < 0.25:
            spec["owners"] = rng.sample(OWNERS, rng.randint(1, 2))
        if spec:        # (an empty `match` is refused by the schema)
            return spec


def _timing(rng: random.Random) -> dict:
    k = rng.random()
    if k < 0.1:
        return {"until": "2026-11-01T00:00:00Z"}       # expired
    if k < 0.18:
        return {"from": "2026-12-01T00:00:00Z"}        # not yet in force
    return {}


def _rule(rng: random.Random, name: str) -> dict:
    return {"paused": rng.random() < 0.5, "reason": f"r-{name}", "owner": "o", **_timing(rng)}


def _groups(rng: random.Random, prefix: str, ids: list[str]) -> list[dict]:
    return [{"name": f"{prefix}{i}", "match": _match(rng, ids), **_rule(rng, f"{prefix}{i}"),
             "priority": rng.choice([0, 0, 1, 2])} for i in range(rng.randint(0, 14))]


def _state(rng: random.Random, ids: list[str]) -> dict[str, str]:
    layers = ["emergency", "dag", "group", "defaults"]
    rng.shuffle(layers)
    tie = rng.choice(["pause", "unpause", "error"])
    unmanaged = rng.choice(["report", "ignore", "pause", "unpause"])
    named = ids + [_id(rng) for _ in range(3)]         # some dag entries name no live DAG
    env = {"environment": "prod", "include": ["common.yaml"],
           "defaults": {"unmanaged": unmanaged, "reason": "d", "owner": "platform"},
           "dags": {d: _rule(rng, d) for d in rng.sample(named, rng.randint(0, len(named) // 2))},
           "groups": _groups(rng, "g", ids)}
    common = {"dags": {d: _rule(rng, d) for d in rng.sample(named, rng.randint(0, 4))},
              "groups": _groups(rng, "c", ids)}
    cfg = {"environments": {"prod": {"backend": {"type": "snapshot",
                                                 "path": "snapshots/prod.json"}}},
           "precedence": {"layers": layers, "tie": tie}}
    return {"pausectl.yaml": json.dumps(cfg), "prod.yaml": json.dumps(env, indent=1),
            "common.yaml": json.dumps(common, indent=1)}


def _live(rng: random.Random) -> list[LiveDag]:
    ids = sorted({_id(rng) for _ in range(rng.randint(1, 70))}, key=lambda _: rng.random())
    return [LiveDag(d, rng.random() < 0.4, tuple(rng.sample(TAGS, rng.randint(0, 3))),
                    tuple(rng.sample(OWNERS, rng.randint(0, 2)))) for d in ids]


def _shape(dec) -> tuple:
    """A decision by the identity of its rules (the same Rule object, not an equal one)."""
    return (dec.dag_id, dec.paused, id(dec.rule),
            None if dec.conflict is None else [id(r) for r in dec.conflict], dec.unmanaged)


def test_by_rule_decides_every_dag_as_the_per_dag_resolver(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rng = random.Random(20261202)
    ties = conflicts = ended = 0
    for round_ in range(160):
        live = _live(rng)
        make_state(tmp_path, _state(rng, [d.dag_id for d in live]), with_base=False)
        (tmp_path / "state/snapshots").mkdir(exist_ok=True)
        cfg, state = load(Path("state"), "prod", now=AT)
        resolver = Resolver(cfg, state, AT)
        want = [_shape(resolver.decide(d)) for d in live]
        got = resolver.decide_all(live)
        assert got is not None
        assert [_shape(dec) for dec in got.values()] == want, round_
        assert list(got) == [d.dag_id for d in live]
        res = resolve(cfg, state, live, AT)       # the path resolve() takes
        assert [_shape(d)[:2] + _shape(d)[3:] for d in res.decisions.values()] == \
            [w[:2] + w[3:] for w in want]       # another Resolver: its own stand-in rules
        odd = [LiveDag(d.dag_id, None) for d in live[:3]]    # a backend's unknown state too
        for dags in (live, odd):
            assert differing(dags, got) == [d for d in dags if DIFFERING(d, got[d.dag_id])]
        conflicts += sum(1 for w in want if w[3])
        ended += sum(1 for d in got.values() if d.rule is resolver.ended_rule)
        ties += sum(1 for d in live if len({c.rule.paused for c in resolver.candidates(d)
                                            if c.inactive is None}) > 1)
    # the rounds exercised what they are for: conflicts, ended rules, disagreeing rules
    assert conflicts > 20 and ended > 20 and ties > 200, (conflicts, ended, ties)


def test_an_emergency_and_repeated_ids_take_the_per_dag_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    make_state(tmp_path, {
        "pausectl.yaml": "environments: {prod: {backend: {type: snapshot, path: s.json}}}\n",
        "prod.yaml": "environment: prod\ngroups:\n  - {name: g, match: {tags: [t1]}, "
                     "paused: true, reason: r, owner: o}\n",
        "s.json": snapshot_json([])}, with_base=False)
    cfg, state = load(Path("state"), "prod", now=AT)
    live = [LiveDag("a", False, ("t1",)), LiveDag("b", True)]
    assert Resolver(cfg, state, AT).decide_all(live) is not None
    emergency = Emergency("outage", "ops", "2026-11-25T11:00:00Z", "state/x:1")
    assert Resolver(cfg, state, AT, emergency).decide_all(live) is None
    assert Resolver(cfg, state, AT).decide_all(live + [LiveDag("a", True)]) is None
    twice = resolve(cfg, state, live + [LiveDag("a", True)], AT)   # the later one decides
    assert twice.decisions["a"].unmanaged and twice.decisions["b"].unmanaged
    res = resolve(cfg, state, live, AT, emergency)
    assert all(d.rule.layer == "emergency" for d in res.decisions.values())
