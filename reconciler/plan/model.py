"""Diff desired against live: the plan, a documented value that apply executes and render shows.

Like terraform's plan (internal/plans/plan.go) it is made once and then honoured: `freeze`
cuts its rollout batches (plan/rollout.py, the one place batches are computed) and seals it;
apply, resume, rollback and emergency recover run exactly `plan.batches` and journal them.
A frozen plan refuses every change (its lists are FrozenList), so nothing downstream can
quietly re-cut what `plan` showed. Records and enums: plan/records.py.
"""

from __future__ import annotations

import hashlib
from collections import deque
from itertools import compress, repeat
from operator import add, and_, attrgetter, is_not, ne, not_, or_
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import msgspec
from msgspec.structs import force_setattr

from reconciler.core.errors import PausectlError
from reconciler.live.base import AuditEvent, LiveDag
from reconciler.plan.records import (Action, Batch, Conflict, FrozenList, Hold, Missing, Skip)
from reconciler.policy.resolve import Resolution
from reconciler.policy.selectors import SelectorIndex, Selector
from reconciler.state.loader import Config, EnvState
from reconciler.core.timeutil import iso, utcnow

FORMAT_VERSION = 1


class Change(msgspec.Struct, frozen=True, gc=False):
    """One flip the plan makes. A frozen msgspec Struct: a 100k-DAG plan makes its changes
    with the C constructor (plain_changes), ~4x a slotted dataclass filled a slot at a time."""

    dag_id: str
    action: Action
    live_paused: bool
    desired_paused: bool
    rule: str                # file:line
    reason: str | None
    owner: str | None
    last_changed_by: str | None = None
    rule_name: str = ""
    ticket: str | None = None
    until: str | None = None
    auto_paused: dict | None = None   # Airflow paused it after failed runs (autopause.py)
    drain: dict | None = None   # paused: drain: {deadline_seconds, in_flight} (apply/drain.py)

    def __post_init__(self):
        if type(self.action) is not Action:       # "pause" from JSON
            force_setattr(self, "action", Action(self.action))

    def to_json(self) -> dict:
        # a shallow dict in field order (asdict deep-copies: 70% of a 100k plan's JSON time);
        # the nested dicts are shared, as JSON is all that is made of them
        out = dict(zip(_CHANGE_FIELDS, _change_values(self)))
        out["action"] = str(self.action)          # its value (StrValue), as a plain str
        if out["drain"] is None:      # only drains carry it: other plans' JSON is unchanged
            del out["drain"]
        return out


_CHANGE_FIELDS = Change.__struct_fields__
_PAUSE, _UNPAUSE = Action.PAUSE, Action.UNPAUSE
_DAG_ID = attrgetter("dag_id")
_PAUSED, _IS_PAUSED, _RULE = attrgetter("paused"), attrgetter("is_paused"), attrgetter("rule")
_STALE, _ERRORS = attrgetter("is_stale"), attrgetter("has_import_errors")
_ACTION = {True: Action.PAUSE, False: Action.UNPAUSE}
_change_values = attrgetter(*_CHANGE_FIELDS)
_DRAIN, _AUTO = attrgetter("drain"), attrgetter("auto_paused")


def changes_json(changes: list[Change]) -> list[dict]:
    """`[c.to_json() for c in changes]`, made in C when no change drains or was auto-paused
    (the usual plan: msgspec turns 100k Structs into dicts, the action into its str value,
    and the None drains are popped in one more C pass; their nested values take to_json)."""
    try:
        if any(map(_DRAIN, changes)) or any(map(_AUTO, changes)):
            raise TypeError
        out = msgspec.to_builtins(changes)
    except TypeError:           # also a value msgspec does not take (a str subclass)
        return [c.to_json() for c in changes]
    deque(map(dict.pop, out, repeat("drain")), 0)
    return out


_LISTS = ("changes", "conflicts", "missing", "unmanaged", "held", "skipped", "warnings",
          "batches")


@dataclass
class Plan:
    environment: str
    generated_at: str
    at: str
    desired_ref: str | None
    changes: list[Change] = field(default_factory=list)
    unchanged: int = 0
    conflicts: list[Conflict] = field(default_factory=list)
    missing: list[Missing] = field(default_factory=list)
    unmanaged: list[str] = field(default_factory=list)
    held: list[Hold] = field(default_factory=list)
    skipped: list[Skip] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    live_hash: str = ""
    batches: list[Batch] = field(default_factory=list)  # apply's order, set by freeze()
    emergency: str | None = None                         # start of the emergency in force, if any
    # the effective rollout (pausectl.yaml's with this run's flags) the batches were cut
    # with; apply journals it and gates by it. Not in the JSON (the plan format is stable)
    rollout: dict = field(default_factory=dict)
    # the impact preview (plan/impact.py; issue 15): in the JSON only when it has something
    impact: object = None
    frozen: bool = field(default=False, compare=False)

    def __setattr__(self, name, value):
        if self.__dict__.get("frozen"):
            raise TypeError(f"a frozen plan is not changed (tried to set {name})")
        object.__setattr__(self, name, value)

    def freeze(self, rollout: dict, live=(), levels=()) -> "Plan":
        """Cut the batches (from the effective `rollout` and the live DAGs' tags/owners) and
        seal the plan. Every planner ends here: engine.plan_observed, recover, restore.
        `levels`: the coordinated unpause order (impact.unpause_levels), upstream first."""
        from reconciler.plan.rollout import cut_batches
        self.batches = cut_batches(self.changes, rollout, live, levels)
        self.rollout = dict(rollout)
        return self._seal()

    def _seal(self) -> "Plan":
        for name in _LISTS:
            object.__setattr__(self, name, FrozenList(getattr(self, name)))
        object.__setattr__(self, "frozen", True)
        return self

    def batch_changes(self) -> list[list[Change]]:
        """`batches` as the changes they hold, first to last; every change in exactly one."""
        by_id = {c.dag_id: c for c in self.changes}
        out = [[by_id[d] for d in b.dag_ids if d in by_id] for b in self.batches]
        named = [d for b in self.batches for d in b.dag_ids]
        if sorted(named) != sorted(by_id) or sum(map(len, out)) != len(named):
            raise PausectlError("the plan's batches do not hold each of its changes exactly "
                                "once; run `pausectl plan` again")
        return out

    @property
    def has_changes(self) -> bool:
        return bool(self.changes)

    def summary(self) -> dict:
        return {
            "pause": sum(1 for c in self.changes if c.action == Action.PAUSE),
            "unpause": sum(1 for c in self.changes if c.action == Action.UNPAUSE),
            "unchanged": self.unchanged, "unmanaged": len(self.unmanaged),
            "missing": len(self.missing), "held": len(self.held),
            "conflicts": len(self.conflicts), "skipped": len(self.skipped),
        }

    def change_key(self) -> list[tuple[str, str]]:
        """What apply will do, for comparing a saved plan with a fresh one."""
        return sorted((c.dag_id, c.action.value) for c in self.changes)

    def to_json(self) -> dict:
        return {
            "format_version": FORMAT_VERSION,
            "environment": self.environment, "generated_at": self.generated_at, "at": self.at,
            "desired_ref": self.desired_ref, "live_hash": self.live_hash,
            "summary": self.summary(),
            "changes": changes_json(self.changes),
            "conflicts": self.conflicts, "missing": self.missing, "unmanaged": self.unmanaged,
            "held": self.held, "skipped": self.skipped, "warnings": self.warnings,
            "batches": self.batches,
            **({"emergency": self.emergency} if self.emergency else {}),
            **({"impact": self.impact.to_json()} if self.impact else {}),
        }

    @classmethod
    def from_json(cls, data: dict) -> "Plan":
        """A saved plan, frozen with the batches it was shown with (checked to hold each of
        its changes once). Bad shapes raise KeyError/TypeError/ValueError (or PausectlError)."""
        plan = cls(environment=data["environment"], generated_at=data["generated_at"],
                   at=data.get("at", data["generated_at"]), desired_ref=data.get("desired_ref"))
        plan.changes = [Change(**c) for c in data["changes"]]
        plan.unchanged = data["summary"]["unchanged"]
        for key, record in (("conflicts", Conflict), ("missing", Missing), ("held", Hold),
                            ("skipped", Skip), ("batches", Batch)):
            setattr(plan, key, [record.of(x) for x in data.get(key) or []])
        plan.unmanaged = list(data.get("unmanaged") or [])
        plan.warnings = list(data.get("warnings") or [])
        plan.live_hash = data.get("live_hash", "")
        plan.emergency = data.get("emergency")
        from reconciler.plan.impact import Impact
        plan.impact = Impact.of(data.get("impact")) if data.get("impact") else None
        try:
            plan.batch_changes()
        except PausectlError as e:       # a bad plan file: its loader names the file
            raise ValueError(e.message) from None
        return plan._seal()


def live_hash(live: list[LiveDag]) -> str:
    """Identifies the live pause state a plan was made against."""
    try:        # in C; an is_paused not a bool (a backend's 0/1) takes the loop
        lines = list(map(add, map(_DAG_ID, live), map(_BIT.get, map(_IS_PAUSED, live))))
    except TypeError:
        lines = [d.dag_id + (_BIT.get(d.is_paused) or f"={d.is_paused:d}") for d in live]
    lines.sort()
    text = "\n".join(lines)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


_BIT = {True: "=1", False: "=0"}


def protect_index(cfg: Config, state: EnvState) -> SelectorIndex:
    globs = list(cfg.protect) + list(state.protect)
    return SelectorIndex((Selector.from_spec({"dag_id": g}), g) for g in globs)


def last_events(events: list[AuditEvent]) -> dict[str, AuditEvent]:
    """The newest pause event per DAG (events come newest first)."""
    out: dict[str, AuditEvent] = {}
    for e in events:
        if e.dag_id and e.dag_id not in out:
            out[e.dag_id] = e
    return out


def build_plan(cfg: Config, state: EnvState, live: list[LiveDag], resolution: Resolution,
               at: datetime, desired_ref: str | None = None,
               events: list[AuditEvent] | None = None,
               auto: dict | None = None, holds=None, in_flight=None) -> Plan:
    """`auto`: autopause.detect's {dag_id: AutoPause}, DAGs Airflow paused by itself.
    `holds`: policy.holds.HoldView (`pausectl hold`: in force, a DAG is left as it is and
    shown held; expired, its flip back to git is pausectl's own, never a manual change).
    `in_flight`: {dag_id: runs running or queued} of the DAGs a drain pauses."""
    plan = Plan(environment=state.name, generated_at=iso(utcnow()), at=iso(at),
                desired_ref=desired_ref, live_hash=live_hash(live))
    plan.warnings.extend(state.warnings)
    protect = protect_index(cfg, state)
    last = last_events(events or [])
    hold_until = at - timedelta(hours=cfg.hold_manual_hours)
    decisions = resolution.decisions
    held_now = holds.active if holds else {}
    expired = holds.expired if holds else {}
    protected = protect if protect else None
    auto = auto or {}
    report = state.defaults.unmanaged == "report"
    unchanged = 0
    from_rule: dict[int, tuple] = {}    # id(rule) -> what a Change takes from it, made once
    ordered = sorted(live, key=_DAG_ID)
    decs = list(map(decisions.__getitem__, map(_DAG_ID, ordered)))
    rows = zip(ordered, decs)
    if not (held_now or last or auto or protected or in_flight):
        # usual offline: nothing per DAG but what git wants and live has (in C, below)
        rows, unchanged, plan.changes = plain_changes(ordered, decs, from_rule)
    for dag, dec in rows:
        if held_now and dag.dag_id in held_now:
            plan.held.append(_held(held_now[dag.dag_id], dag, dec, at))
            continue
        if dec.conflict:
            plan.conflicts.append(Conflict(dag.dag_id, [r.where for r in dec.conflict],
                                           resolution.why(dec, dag)))
            continue
        if dec.unmanaged:
            if report:
                plan.unmanaged.append(dag.dag_id)
            continue
        if dec.paused == dag.is_paused:
            unchanged += 1
            continue
        rule = dec.rule
        event = last.get(dag.dag_id)
        skip_why = None
        if dag.is_stale:
            skip_why = "stale: its DAG file is gone; not flipped"
        elif dag.has_import_errors:
            skip_why = "has import errors; fix the DAG file first"
        elif rule.layer != "dag" and protected and protected.lookup(dag.dag_id, (), ()):
            # the emergency layer too: protected DAGs keep running through an emergency, even
            # when safety.protect gained them after it was declared
            skip_why = f"protected by safety.protect; only a dag entry may change it (rule {rule.where})"
        if skip_why:
            plan.skipped.append(Skip(dag.dag_id, skip_why))
            continue
        ap = auto.get(dag.dag_id) if not dec.paused else None
        ap_json = None
        if ap is not None:
            from reconciler.live.autopause import outcome
            result = outcome(ap, cfg.auto_paused)
            ap_json = ap.to_json(cfg.auto_paused, result)
            if result == "held":
                plan.held.append(Hold(dag.dag_id, ap.held_why(rule), dag.is_paused, dec.paused,
                                      rule.where, ap_json))
                continue
        manual = event is not None and event.via != "pausectl" and event.is_paused in (None, dag.is_paused)
        if ap is not None and ap.changed_after:
            manual = False   # a human acted in git after Airflow's pause: a plain git change
        if expired and dag.dag_id in expired:
            manual = False   # the flip was the hold's: its end puts back git
        if manual and rule.layer != "emergency":
            held_why = None
            what = ap.summary() if ap is not None else event.describe()
            if cfg.drift_mode in ("report", "adopt"):
                held_why = f"manual change kept (drift.mode {cfg.drift_mode}): {what}"
            elif cfg.hold_manual_hours and event.when > hold_until:
                held_why = (f"manual change held for {cfg.hold_manual_hours:g}h "
                            f"(drift.hold_manual_hours): {what}")
            if held_why:
                plan.held.append(Hold(dag.dag_id, held_why, dag.is_paused, dec.paused,
                                      rule.where,
                                      {**ap_json, "outcome": "held"} if ap_json else None))
                continue
        r = from_rule.get(id(rule)) or rule_fields(rule, from_rule)
        plan.changes.append(Change(
            dag.dag_id, _PAUSE if dec.paused else _UNPAUSE, dag.is_paused, dec.paused,
            r[0], r[1], r[2],
            ap.released_why() if ap is not None else event.describe() if event else None,
            r[3], r[4], r[5], ap_json,
            None if rule.drain is None else _drain(rule, dag, dec, in_flight)))
    plan.unchanged = unchanged
    for dag_id, rule in sorted(resolution.missing):
        plan.missing.append(Missing(dag_id, rule.where, rule.paused))
    if holds:
        plan.warnings.extend(holds.warnings)
    return plan


def rule_fields(rule, cache: dict) -> tuple:
    """What a Change takes from its rule (where, reason, owner, label, ticket, until), made
    once per rule."""
    r = cache[id(rule)] = (rule.where, rule.reason, rule.owner, rule.label(), rule.ticket,
                           iso(rule.until) if rule.until else None)
    return r


def plain_changes(ordered: list[LiveDag], decs: list, from_rule: dict):
    """build_plan's loop where no hold, event, auto-pause, protect or drain read applies: the
    DAGs whose decision equals live are counted, the changes (git decides, live differs,
    neither stale nor broken) are built a column at a time, in C, and only the rest
    (conflicts, unmanaged, stale, import errors, rules that drain) is left to the loop, in
    order. Returns (the rest as (dag, decision) rows, unchanged count, the changes)."""
    live = list(map(_IS_PAUSED, ordered))
    if None in live:        # an unknown live state: the loop decides (conflicts come first)
        return zip(ordered, decs), 0, []
    differ = list(map(ne, map(_PAUSED, decs), live))
    dags, decs = list(compress(ordered, differ)), list(compress(decs, differ))
    rules = list(map(_RULE, decs))
    broken = map(or_, map(_STALE, dags), map(_ERRORS, dags))
    plain = list(map(and_, map(is_not, rules, repeat(None)), map(not_, broken)))
    used = list(compress(rules, plain))
    if any(map(_DRAIN, used)):                # its changes carry the drain: the loop makes them
        plain = [p and r.drain is None for p, r in zip(plain, rules)]
        used = list(compress(rules, plain))
    for rule in dict(zip(map(id, used), used)).values():
        if id(rule) not in from_rule:
            rule_fields(rule, from_rule)
    fields = list(map(from_rule.__getitem__, map(id, used)))
    where, reason, owner, label, ticket, until = zip(*fields) if fields else ((),) * 6
    rows = list(compress(dags, plain))
    desired = list(compress(map(_PAUSED, decs), plain))
    changes = list(map(Change, map(_DAG_ID, rows), map(_ACTION.__getitem__, desired),
                       map(_IS_PAUSED, rows), desired, where, reason, owner, repeat(None),
                       label, ticket, until))
    rest = list(compress(zip(dags, decs), map(not_, plain)))
    return rest, differ.count(False), changes


def _held(h, dag: LiveDag, dec, at: datetime) -> Hold:
    """A DAG under `pausectl hold`: left as it is, shown `held (by, reason, ends in)`."""
    desired = dec.paused if dec.paused is not None else h.paused
    where = dec.rule.where if dec.rule is not None else "pausectl hold"
    return Hold(dag.dag_id, h.describe(at), dag.is_paused, desired, where, hold=h.to_json())


def drain_note(drain: dict) -> str:
    """`draining (2 run(s) in flight; paused when they end, at the latest after 2h00m)`."""
    from reconciler.policy.holds import ends_in
    n = drain.get("in_flight")
    runs = "runs in flight unknown" if n is None else f"{n} run(s) in flight"
    return (f"draining ({runs}; paused when they end, at the latest after "
            f"{ends_in(timedelta(seconds=drain['deadline_seconds']))})")


def _drain(rule, dag: LiveDag, dec, in_flight) -> dict | None:
    """A pause the rule wants drained: apply waits for the runs in flight (apply/drain.py)."""
    if rule.drain is None or not dec.paused or dag.is_paused:
        return None
    return {"deadline_seconds": int(rule.drain.total_seconds()),
            "in_flight": None if in_flight is None else int(in_flight.get(dag.dag_id, 0))}
