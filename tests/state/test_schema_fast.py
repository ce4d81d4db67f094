"""schema_fast's yes is jsonschema's yes: mutated state and config documents, both checked."""

from __future__ import annotations

import copy
import random

import pytest

from reconciler.state import schema

VALUES = [None, True, False, 0, 1, -1, 1.0, 1.5, float("inf"), "", "x", "drain", "pause",
          "report", "2026-01-01T00:00:00Z", "1h", [], ["a"], [1], ["a", "a"], {}, {"a": 1},
          {"tags": ["t"]}, {"dag_id": "a*"}, "a" * 300, 10 ** 7]
STATE = {"environment": "e", "defaults": {"unmanaged": "report"},
         "dags": {"a": {"paused": True, "reason": "r", "owner": "o",
                        "until": "2030-01-01T00:00:00Z"},
                  "b": {"paused": "drain", "reason": "r", "owner": "o"}},
         "groups": [{"name": "g", "match": {"tags": ["t"], "dag_id": ["x*"]}, "paused": False,
                     "reason": "r", "owner": "o", "priority": 1}]}
CONFIG = {"environments": {"prod": {"backend": {"type": "snapshot", "path": "s.json"}}},
          "precedence": {"layers": ["emergency", "dag", "group", "defaults"], "tie": "pause"}}


def _paths(node, at=()):
    yield at
    items = node.items() if isinstance(node, dict) else (
        enumerate(node) if isinstance(node, list) else ())
    for k, v in items:
        yield from _paths(v, at + (k,))


def _mutate(doc, rnd):
    paths = list(_paths(doc))[1:]
    for _ in range(rnd.choice((1, 1, 2))):
        at = rnd.choice(paths)
        parent = doc
        try:
            for k in at[:-1]:
                parent = parent[k]
            if rnd.random() < 0.15:
                del parent[at[-1]]
            elif rnd.random() < 0.15 and isinstance(parent, dict):
                parent[rnd.choice(("zz", "tags", "until", "windows", "cascade"))] = \
                    copy.deepcopy(rnd.choice(VALUES))
            else:
                parent[at[-1]] = copy.deepcopy(rnd.choice(VALUES))
        except (KeyError, IndexError, TypeError):
            pass        # a path a previous mutation removed
    return doc


@pytest.mark.parametrize("name,base", [("state.schema.json", STATE),
                                       ("pausectl.schema.json", CONFIG)])
def test_fast_yes_only_when_jsonschema_agrees(name, base):
    rnd = random.Random(name)
    fast, full = schema._fast(name), schema._validator(name)
    assert fast(base) is True and not list(full.iter_errors(base))
    verdicts = {True: 0, False: 0, None: 0}
    for _ in range(1500):
        doc = _mutate(copy.deepcopy(base), rnd)
        got = fast(doc)
        valid = not any(True for _ in full.iter_errors(doc))
        verdicts[got] += 1
        assert got is not True or valid, doc     # a yes is never wrong
        assert got is not False or not valid, doc
    assert verdicts[True] > 50 and verdicts[False] > 500    # both outcomes were exercised
