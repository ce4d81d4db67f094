"""`pausectl schedule`: upcoming pause/unpause transitions from windows, budgets, `from`, `until`.

For a horizon [start, end) every time-bound rule (windows, budget, from, until) yields the
intervals in which it is in force (windows.py rules: wall clock, DST-correct). Each boundary is
an event; at each event time the affected DAGs are resolved again (full precedence, cascades
included) and every change of a DAG's desired state is a transition, attributed to the events
of that instant whose rule matches the DAG.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from reconciler.live.base import LiveDag
from reconciler.core.errors import PausectlError
from reconciler.policy.resolve import Emergency, resolve
from reconciler.state.loader import Config, EnvState, Rule
from reconciler.core.sanitize import term
from reconciler.core.tables import Col, say, show, terminal
from reconciler.core.timeutil import iso, window_intervals


MAX_EVENT_TIMES = 2_000   # distinct boundary times in one horizon (7 days of 5-minute windows)


@dataclass(frozen=True)
class RuleEvent:
    at: datetime
    rule: Rule
    kind: str            # "window start" | "window end" | "budget start" | "budget end" | "from" | "until"
    starts: bool         # the rule comes into force (True) or goes out of force (False)

    def to_json(self) -> dict:
        return {"at": iso(self.at), "event": self.kind, "in_force": self.starts,
                "rule": self.rule.label(), "where": self.rule.where}


@dataclass
class Transition:
    at: datetime
    dag_id: str
    action: str          # pause | unpause
    rule: Rule | None    # the rule deciding after the transition
    causes: list[RuleEvent] = field(default_factory=list)

    def to_json(self) -> dict:
        r = self.rule
        return {"at": iso(self.at), "dag_id": self.dag_id, "action": self.action,
                "rule": r.where if r else None, "rule_name": r.label() if r else None,
                "reason": r.reason if r else None, "owner": r.owner if r else None,
                "causes": [{"event": c.kind, "rule": c.rule.label(), "where": c.rule.where}
                           for c in self.causes]}


def _merge(intervals):
    out = []
    for s, e in sorted(intervals):
        if out and s <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return out


def _too_many(where: str, what: str) -> None:
    file, _, line = where.rpartition(":")
    raise PausectlError(f"the schedule horizon holds {what}: use a shorter --next",
                        file or None, int(line) if line.isdigit() else None)


def in_force_intervals(rule: Rule, lo: datetime, hi: datetime) -> list[tuple[datetime, datetime]]:
    """Where `rule` is in force within [lo, hi), merged."""
    s0 = max(lo, rule.from_) if rule.from_ else lo
    e0 = min(hi, rule.until) if rule.until else hi
    if s0 >= e0:
        return []
    if not rule.windows:
        return [(s0, e0)]
    iv = []
    for w in rule.windows:
        found = window_intervals(w.cron, w.duration, w.timezone, s0, e0,
                                 limit=MAX_EVENT_TIMES + 1)
        if len(found) > MAX_EVENT_TIMES:
            _too_many(rule.where, f"more than {MAX_EVENT_TIMES:,} windows of this rule")
        for s, e in found:
            iv.append((max(s, s0), min(e, e0)))
    return [(s, e) for s, e in _merge(iv) if s < e]


def rule_events(rule: Rule, lo: datetime, hi: datetime) -> list[RuleEvent]:
    """When `rule` comes into or goes out of force, within (lo, hi)."""
    if not (rule.windows or rule.until or rule.from_):
        return []
    kind = "budget" if rule.windows and all(w.budget for w in rule.windows) else "window"
    out = []
    for s, e in in_force_intervals(rule, lo, hi):
        if s > lo:
            out.append(RuleEvent(s, rule, "from" if rule.from_ == s else f"{kind} start", True))
        if e < hi:
            out.append(RuleEvent(e, rule, "until" if rule.until == e else f"{kind} end", False))
    return out


@dataclass
class Schedule:
    environment: str
    start: datetime
    end: datetime
    transitions: list[Transition]
    events: list[RuleEvent]

    def to_json(self) -> dict:
        return {"environment": self.environment, "from": iso(self.start), "to": iso(self.end),
                "transitions": [t.to_json() for t in self.transitions],
                "rule_events": [e.to_json() for e in self.events]}


def compute(cfg: Config, state: EnvState, live: list[LiveDag], start: datetime,
            horizon: timedelta, emergency: Emergency | None = None,
            edges: list | None = None) -> Schedule:
    end = start + horizon
    rules = [r for r in state.all_rules() if r.windows or r.until or r.from_]
    events = sorted((e for r in rules for e in rule_events(r, start, end)),
                    key=lambda e: (e.at, e.rule.where, not e.starts))
    times = sorted({e.at for e in events})
    if len(times) > MAX_EVENT_TIMES:
        # each boundary resolves the affected DAGs again: `* * * * *` over a year would
        # run for hours; name the rule with the most boundaries
        counts: dict[str, int] = {}
        for e in events:
            counts[e.rule.where] = counts.get(e.rule.where, 0) + 1
        where = max(counts, key=counts.get)
        _too_many(where, f"{len(times):,} rule boundaries, more than {MAX_EVENT_TIMES:,}; "
                         f"this rule has {counts[where]:,}")
    transitions: list[Transition] = []
    if times:
        res = resolve(cfg, state, live, start, emergency, edges)
        # only DAGs some time-bound rule (or a cascade) can reach may change
        timed = {id(r) for r in rules}
        if edges:
            watch = list(live)
        else:
            watch = [d for d in live
                     if any(id(r) in timed for r in res.resolver.matching_rules(d))]
        current = {d.dag_id: res.decisions[d.dag_id].paused for d in watch}
        for t in times:
            res = resolve(cfg, state, watch, t, emergency, edges)
            at_t = [e for e in events if e.at == t]
            for d in watch:
                dec = res.decisions[d.dag_id]
                before = current[d.dag_id]
                if dec.paused is None or dec.paused == before:
                    continue
                current[d.dag_id] = dec.paused
                matching = {id(r) for r in res.resolver.matching_rules(d)}
                matching |= {id(r.origin) for r in res.resolver.matching_rules(d) if r.origin}
                causes = [e for e in at_t if id(e.rule) in matching]
                rule = None if dec.rule is res.resolver.ended_rule else dec.rule
                transitions.append(Transition(t, d.dag_id, "pause" if dec.paused else "unpause",
                                              rule, causes))
    transitions.sort(key=lambda tr: (tr.at, tr.dag_id))
    return Schedule(state.name, start, end, transitions, events)


SCHEDULE_COLS = (Col("at", "id"), Col("", "id"), Col("dag_id", "id", "bold"),
                 Col("rule", "id"), Col("from", "id"), Col("why", "text"))


def _cause(t) -> str:
    return "; ".join(f"{c.rule.label()} {c.kind} ({c.rule.where})" for c in t.causes) \
        or "cascade"


def _schedule_rich(s: Schedule, con) -> None:
    """A terminal: the transitions as a table (core/tables: no identifier cut)."""
    say(con, f"Schedule for {term(s.environment)}: {iso(s.start)} .. {iso(s.end)}", "bold")
    rows = [(iso(t.at), t.action, term(t.dag_id),
             term(t.rule.where) if t.rule is not None else "(no rule in force)",
             # the cause's file:line and its text apart: free text may be cut, a place not
             term(", ".join(c.rule.where for c in t.causes)),
             term("; ".join(f"{c.rule.label()} {c.kind}" for c in t.causes) or "cascade"))
            for t in s.transitions]
    if rows:
        show(con, SCHEDULE_COLS, rows,
             lambda r: (f"~ {r[2]}  {r[1]} at {r[0]}  {r[3]}", f"{r[5]} ({r[4]})"))
    if s.events:
        say(con, "rule events:")
        for e in s.events:
            say(con, f"  {iso(e.at)}  {term(e.rule.label())} ({term(e.rule.where)}): {e.kind}")


def schedule_text(s: Schedule, stream=None) -> None:
    con = terminal(stream)
    if con is not None:
        _schedule_rich(s, con)
        dags = len({t.dag_id for t in s.transitions})
        say(con, f"{len(s.transitions)} transition(s) for {dags} DAG(s), "
                 f"{len(s.events)} rule event(s)")
        return
    w = (stream or sys.stdout).write
    w(f"Schedule for {s.environment}: {iso(s.start)} .. {iso(s.end)}\n")
    for t in s.transitions:
        cause = _cause(t)
        rule = f"  rule={t.rule.where}" if t.rule is not None else "  (no rule in force)"
        w(f"{iso(t.at)}  {t.action:8} {t.dag_id}  {cause}{rule}\n")
    if s.events:
        w("rule events:\n")
        for e in s.events:
            w(f"  {iso(e.at)}  {e.rule.label()} ({e.rule.where}): {e.kind}\n")
    dags = len({t.dag_id for t in s.transitions})
    w(f"{len(s.transitions)} transition(s) for {dags} DAG(s), {len(s.events)} rule event(s)\n")
