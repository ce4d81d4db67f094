"""Turn a plan's changes into ordered batches: canary DAGs first, then deterministic slices.

`batches: [1, "10%", "50%", "100%"]` are cumulative targets: after batch k, that many (or that
share) of the unpauses are done (pauses are not staged, see below). Order inside the canary
set and the rest is by dag_id, so the same plan always yields the same batches, and `plan`
can show them before anything happens. `cut_batches` is the one place a plan's batches are
computed (Plan.freeze calls it, once per plan, with the run's resolved rollout).
Pauses are safe and need no watching; only unpauses are rolled out in stages, and all pauses
go in the first batch (stopping things is never the risky direction).
"""

from __future__ import annotations

import math
import re
from itertools import compress, repeat
from operator import attrgetter, eq, not_

from reconciler.core.errors import PausectlError
from reconciler.plan.records import Action, Batch
from reconciler.policy.selectors import Selector, SelectorIndex

_DAG_ID, _ACTION = attrgetter("dag_id"), attrgetter("action")

# (changes here are plan.model.Change values: anything with dag_id and action; no import of
# the model, which imports this module to freeze a plan)


def parse_batches(spec) -> list:
    """From config (list) or --batches "1,10%,100%" (str)."""
    if spec is None:
        return ["100%"]
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    out = []
    for item in items:
        item = item.strip() if isinstance(item, str) else item
        # ASCII digits, at most 7 (str.isdigit() also takes "²", which int() refuses)
        if isinstance(item, int) and not isinstance(item, bool) and 1 <= item <= 1_000_000:
            out.append(item)
        elif isinstance(item, str) and re.fullmatch(r"[0-9]{1,7}", item) \
                and 1 <= int(item) <= 1_000_000:
            out.append(int(item))
        elif isinstance(item, str) and re.fullmatch(r"[0-9]{1,3}%", item) \
                and 1 <= int(item[:-1]) <= 100:
            out.append(item)
        else:
            raise PausectlError(f"bad batch size {item!r} (use a count like 1 or a share like 25%)")
    return out


def canary_index(canary: dict | list | None) -> SelectorIndex | None:
    """From config (`{tags, dag_id, dags}`: any of them marks a canary) or from `--canary`
    selectors (a list of match specs; any of them marks a canary)."""
    if not canary:
        return None
    if isinstance(canary, list):
        return SelectorIndex((Selector.from_spec(spec), True) for spec in canary)
    items = []
    sel = {k: v for k, v in canary.items() if k in ("tags", "dag_id") and v}
    if sel:
        # tags and dag_id in the canary selector are alternatives: either marks a canary
        for key, value in sel.items():
            items.append((Selector.from_spec({key: value}), True))
    if canary.get("dags"):
        items.append((Selector.from_spec({"dag_id": list(canary["dags"])}), True))
    return SelectorIndex(items) if items else None


def make_batches(changes: list, spec, canary: dict | list | None,
                 live_tags: dict[str, tuple] | None = None,
                 live_owners: dict[str, tuple] | None = None) -> list[list]:
    """Batches of changes, first to last. Every change is in exactly one batch."""
    if not changes:
        return []
    sizes = parse_batches(spec)
    is_pause = list(map(eq, map(_ACTION, changes), repeat(Action.PAUSE)))   # in C (50k)
    pauses = sorted(compress(changes, is_pause), key=_DAG_ID)
    unpauses = list(compress(changes, map(not_, is_pause)))
    idx = canary_index(canary)
    tags = live_tags or {}
    owners = live_owners or {}

    def is_canary(c) -> bool:
        return bool(idx and idx.lookup(c.dag_id, tags.get(c.dag_id, ()), owners.get(c.dag_id, ())))

    # canaries first, each part by dag_id (no canary: by dag_id alone, the same order)
    ordered = (sorted(unpauses, key=lambda c: (not is_canary(c), c.dag_id)) if idx
               else sorted(unpauses, key=_DAG_ID))
    total = len(ordered)
    batches: list[list] = []
    done = 0
    for s in sizes:
        target = s if isinstance(s, int) else math.ceil(total * int(s[:-1]) / 100)
        target = min(max(target, done), total)
        if target > done:
            batches.append(ordered[done:target])
            done = target
    if done < total:
        batches.append(ordered[done:])
    if pauses:
        if batches:
            batches[0] = pauses + batches[0]
        else:
            batches.append(pauses)
    return batches


GATE_KEYS = ("wait_seconds", "min_runs", "timeout_seconds", "max_failed_runs", "import_errors",
             "stale")


def effective_rollout(base: dict | None, overrides: dict | None = None) -> dict:
    """`rollout` from pausectl.yaml with this run's overrides (CLI flags) on top:
    batches, canary (a list of selector specs), on_gate_failure, and any gate key."""
    r = dict(base or {})
    gate = dict(r.get("gate") or {})
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        if key in GATE_KEYS:
            gate[key] = value
        else:
            r[key] = value
    r["gate"] = gate
    return r


def resolve_rollout(cfg, env: str, overrides: dict | None = None) -> dict:
    """The rollout of one run, resolved once: pausectl.yaml's for `env` with the run's flags."""
    return effective_rollout(cfg.rollout_for(env), overrides)


def cut_batches(changes: list, rollout: dict, live, levels=()) -> list[Batch]:
    """The batches apply will run, from the effective rollout and the live DAGs' tags/owners.
    The only place batches are computed (Plan.freeze calls it).

    Coordinated unpause (issue 15): with `levels` (impact.unpause_levels: dag_id lists,
    upstream first, when a dependency chain is unpaused), each level is rolled out on its own
    (canary and sizes within it) after the level before, so upstream DAGs run first and the
    gate after each batch (apply/executor.py) stands between levels. Pauses stay in batch 1."""
    # tags and owners only mark canaries: not read (100k DAGs) when there are none
    canary = rollout.get("canary")
    tags = {d.dag_id: d.tags for d in live} if canary else None
    owners = {d.dag_id: d.owners for d in live} if canary else None
    level_of = {d: i for i, lv in enumerate(levels) for d in lv}
    cut: list[list] = []
    for i in range(max(1, len(levels))):
        part = changes if not levels else [      # one level: every change, in order
            c for c in changes if (c.action == Action.PAUSE and i == 0) or
            (c.action == Action.UNPAUSE and level_of.get(c.dag_id, 0) == i)]
        cut += make_batches(part, rollout.get("batches"), canary, tags, owners)
    out = []
    for b in cut:
        actions = [c.action for c in b]
        out.append(Batch([c.dag_id for c in b], actions.count(Action.PAUSE),
                         actions.count(Action.UNPAUSE)))
    return out
