"""Rules -> desired pause state per DAG, with the rule that decided it.

Precedence, in order (earlier decides):
1. layer, in the configured order (default: emergency, dag, group, defaults);
2. specificity: a dag entry, then a group naming the dag_id exactly, then a glob, then tags/owners;
3. group priority (higher wins);
4. nearness: a rule in the environment file beats one from an include (overlay semantics);
5. `tie`: pause | unpause | error (a conflict, reported with both rules' file:line).

A rule is in force unless expired (`until`), not yet started (`from`) or outside its windows.
A DAG some rule knows but none is in force runs (unpaused): the pause ended. A DAG no rule
knows follows `defaults.unmanaged`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from itertools import repeat
from operator import attrgetter, itemgetter

import msgspec

from reconciler.live.base import LiveDag
from reconciler.policy.byrule import DagSets, Entry, winners
from reconciler.policy.selectors import SelectorIndex, is_glob
from reconciler.state.loader import Config, EnvState, Rule

SPEC_DAG = 3
_KEY = itemgetter(0)
_PAUSED = attrgetter("paused")
_DAG_ID, _TAGS, _OWNERS = attrgetter("dag_id"), attrgetter("tags"), attrgetter("owners")


@dataclass(slots=True)
class Candidate:
    rule: Rule
    key: tuple            # precedence key; smaller wins
    inactive: str | None  # why it is not in force, or None


class Decision(msgspec.Struct, gc=False):
    """What git wants for one DAG, and the rule that says so. A msgspec Struct: decide_all
    makes 100k of them with its C constructor (a third of a slotted dataclass's time)."""

    dag_id: str
    paused: bool | None              # None: not managed, or a conflict
    rule: Rule | None                # the winner
    conflict: list[Rule] | None = None
    unmanaged: bool = False


@dataclass
class Emergency:
    """An active emergency pause: everything paused except the exceptions."""

    reason: str
    owner: str
    started: str
    where: str
    except_index: SelectorIndex | None = None

    def rule(self) -> Rule:
        return Rule(layer="emergency", name="emergency", paused=True, where=self.where,
                    reason=self.reason, owner=self.owner)


@dataclass
class Resolution:
    resolver: "Resolver"
    decisions: dict[str, Decision] = field(default_factory=dict)
    missing: list[tuple[str, Rule]] = field(default_factory=list)   # dag rules with no live DAG

    def why(self, dec: Decision, dag: LiveDag) -> str:
        return self.resolver.why(dec, dag)


class Resolver:
    """Built once per environment; `decide` is called per DAG (hot path: 100k DAGs)."""

    def __init__(self, cfg: Config, state: EnvState, at: datetime,
                 emergency: Emergency | None = None):
        self.cfg = cfg
        self.state = state
        self.at = at
        self.emergency = emergency
        self.layer_rank = {name: i for i, name in enumerate(cfg.layers)}
        # whether each rule is in force is fixed for one `at`: compute it once per rule
        self.inactive: dict[int, str | None] = {id(r): r.inactive_reason(at)
                                                for r in state.all_rules()}
        # each group filed with its precedence key, or None where it varies per DAG (a group
        # naming some dag_ids exactly), so the hot path looks nothing else up
        # each item is already the (key, rule) pair _matches returns
        self.group_index = SelectorIndex(
            (g.selector, (self._key(g, g.selector.specificity(""))
                          if all(is_glob(p) for p in g.selector.dag_ids) else None, g))
            for g in state.groups)
        self._has_groups = bool(self.group_index)
        self._varying = any(not all(is_glob(p) for p in g.selector.dag_ids) for g in state.groups)
        self._dag_matches = {dag_id: [(self._key(r, SPEC_DAG), r) for r in rules]
                             for dag_id, rules in state.dag_rules.items()}
        self._all_active = all(v is None for v in self.inactive.values())
        self._emergency_key = self._key(emergency.rule(), SPEC_DAG) if emergency else None
        self._emergency_rule = emergency.rule() if emergency else None
        d = state.defaults
        self._unmanaged_rule = None
        if d.unmanaged in ("pause", "unpause"):
            self._unmanaged_rule = Rule(layer="defaults", name="defaults",
                                        paused=d.unmanaged == "pause", where=d.where,
                                        reason=d.reason or "defaults.unmanaged", owner=d.owner)
        self._ended_rule = Rule(layer="defaults", name="defaults", paused=False, where=d.where,
                                reason="no rule in force (pause ended)", owner=None)
        self.derived: dict[str, list[tuple[tuple, Rule]]] = {}   # cascade.py: dag_id -> rules

    @property
    def ended_rule(self) -> Rule:
        """The stand-in rule of a DAG whose every rule has ended (it runs again)."""
        return self._ended_rule

    def add_derived(self, dag_id: str, rule: Rule, inactive: str | None) -> None:
        """A cascade rule for one DAG (see cascade.py); `inactive` says why it is not in force."""
        from reconciler.policy.cascade import SPEC_CASCADE
        self.derived.setdefault(dag_id, []).append((self._key(rule, SPEC_CASCADE), rule))
        self.inactive[id(rule)] = inactive
        self._all_active = self._all_active and inactive is None

    def matching_rules(self, dag: LiveDag) -> list[Rule]:
        """Every rule matching `dag`, in force or not, in no particular order."""
        return [rule for _, rule in self._matches(dag)]

    def _key(self, rule: Rule, spec: int) -> tuple:
        return (self.layer_rank[rule.layer], -spec, -rule.priority, rule.depth)

    def _matches(self, dag: LiveDag) -> list[tuple[tuple, Rule]]:
        """(precedence key, rule) for every rule matching `dag`, in force or not."""
        out = []
        if self._emergency_rule is not None:
            ex = self.emergency.except_index
            if not (ex and ex.lookup(dag.dag_id, dag.tags, dag.owners)):
                out.append((self._emergency_key, self._emergency_rule))
        rules = self._dag_matches.get(dag.dag_id)
        if rules:
            out += rules
        if self._has_groups:
            found = self.group_index.lookup(dag.dag_id, dag.tags, dag.owners)
            if self._varying:     # a group naming some dag_ids exactly: specificity varies
                key = self._key
                found = [m if m[0] is not None else
                         (key(m[1], m[1].selector.specificity(dag.dag_id)), m[1]) for m in found]
            out += found
        if self.derived:
            out.extend(self.derived.get(dag.dag_id, ()))
        return out

    def candidates(self, dag: LiveDag) -> list[Candidate]:
        """Every rule matching `dag`, in force first, each in precedence order (explain)."""
        inactive = self.inactive
        out = [Candidate(rule, key, inactive.get(id(rule))) for key, rule in self._matches(dag)]
        out.sort(key=_candidate_order)
        return out

    def decide(self, dag: LiveDag) -> Decision:
        matches = self._matches(dag)
        if self._all_active:      # usual: no rule expired, pending or outside its window
            active = matches
        else:
            inactive = self.inactive
            active = [m for m in matches if inactive.get(id(m[1])) is None]
        if not active:
            if matches:  # known to git, but every rule has ended or is outside its window
                return Decision(dag.dag_id, False, self._ended_rule)
            if self._unmanaged_rule is not None:
                return Decision(dag.dag_id, self._unmanaged_rule.paused, self._unmanaged_rule)
            return Decision(dag.dag_id, None, None, unmanaged=True)
        if len(active) == 1:
            rule = active[0][1]
            return Decision(dag.dag_id, rule.paused, rule)
        best_key, best = min(active, key=_KEY)      # the first of the best
        tied = [m[1] for m in active if m[0] == best_key]
        if len(tied) == 1 or len(set(map(_PAUSED, tied))) == 1:
            return Decision(dag.dag_id, best.paused, best)
        tie = self.cfg.tie
        if tie == "error":
            return Decision(dag.dag_id, None, None, conflict=tied)
        want = tie == "pause"
        return Decision(dag.dag_id, want, next(r for r in tied if r.paused == want))

    def decide_all(self, live: list[LiveDag]) -> dict[str, Decision] | None:
        """`decide` of every DAG, in `live`'s order, rule by rule (byrule.py: set operations in
        C instead of an index lookup per DAG). None where only `decide` answers: an emergency
        (its exceptions are an index per DAG), cascade rules, a dag_id listed twice."""
        if self.emergency is not None or self.derived:
            return None
        ids = list(map(_DAG_ID, live))
        sets = DagSets(ids, list(map(_TAGS, live)), list(map(_OWNERS, live)),
                       (g.selector for g in self.state.groups))
        if len(sets.all) != len(ids):
            return None
        inactive = self.inactive
        entries = [Entry(key, r, {dag_id}, inactive.get(id(r)) is None)   # Resolver._matches'
                   for dag_id, pairs in self._dag_matches.items() if dag_id in sets.all  # order
                   for key, r in pairs]
        for g in self.state.groups:
            dags, sel, on = sets.select(g.selector), g.selector, inactive.get(id(g)) is None
            if all(is_glob(p) for p in sel.dag_ids):
                entries.append(Entry(self._key(g, sel.specificity("")), g, dags, on))
            else:                 # the dag_ids it names exactly match more specifically
                exact = dags.intersection(sel.dag_ids)
                entries.append(Entry(self._key(g, 2), g, exact, on))
                entries.append(Entry(self._key(g, sel.specificity("")), g, dags - exact, on))
        win, conflict, ended = winners(entries, self.cfg.tie)
        special = {}
        for dag_id in sets.all.difference(win):
            if dag_id in conflict:
                special[dag_id] = Decision(dag_id, None, None, conflict=conflict[dag_id])
            elif dag_id in ended:      # every rule it matches has ended or is outside its window
                win[dag_id] = self._ended_rule
            elif self._unmanaged_rule is not None:
                win[dag_id] = self._unmanaged_rule
            else:
                special[dag_id] = Decision(dag_id, None, None, unmanaged=True)
        rules = list(map(win.get, ids, repeat(self._ended_rule)))   # specials: replaced below
        out = dict(     # 100k Decisions, each by the Struct's C constructor
                   zip(ids, map(Decision, ids, map(_PAUSED, rules), rules)))
        out.update(special)
        return out

    def why(self, dec: Decision, dag: LiveDag) -> str:
        """Why `dec` came out as it did, in one sentence (explain, conflicts)."""
        cands = self.candidates(dag)
        active = [c for c in cands if c.inactive is None]
        if dec.conflict:
            return ("conflict: " + " vs ".join(f"{r.label()} ({r.where})" for r in dec.conflict)
                    + " have equal precedence and tie is 'error'")
        if not active:
            if cands:
                return "no rule in force: " + "; ".join(
                    f"{c.rule.label()} {c.inactive}" for c in cands)
            return f"matched by no rule; defaults.unmanaged is {self.state.defaults.unmanaged}"
        winner = next(c for c in active if c.rule is dec.rule)
        tied = [c for c in active if c.key == winner.key and c.rule.paused != winner.rule.paused]
        if tied:
            return (f"{winner.rule.label()} ties with " + ", ".join(
                f"{c.rule.label()} ({c.rule.where})" for c in tied) + f"; tie is '{self.cfg.tie}'")
        return _why(winner, active)


def _candidate_order(c: Candidate):
    return (c.inactive is not None, c.key)


def _why(best: Candidate, active: list[Candidate]) -> str:
    r = best.rule
    layer, neg_spec, neg_prio, depth = best.key
    text = f"{r.label()} ({r.where})"
    beaten = [c for c in active if c is not best]
    if not beaten:
        return text + " is the only rule in force"
    reasons = []
    for c in beaten:
        if c.key[0] != layer:
            reasons.append(f"{c.rule.label()}: lower layer ({c.rule.layer})")
        elif c.key[1] != neg_spec:
            reasons.append(f"{c.rule.label()}: less specific match")
        elif c.key[2] != neg_prio:
            reasons.append(f"{c.rule.label()}: lower priority ({c.rule.priority})")
        elif c.key[3] != depth:
            reasons.append(f"{c.rule.label()}: from an included file")
        else:
            reasons.append(f"{c.rule.label()}: agrees")
    return text + " wins over " + "; ".join(reasons)


def resolve(cfg: Config, state: EnvState, live: list[LiveDag], at: datetime,
            emergency: Emergency | None = None, edges: list | None = None) -> Resolution:
    """Decide every live DAG. `edges` (cascade.load_edges) feed `cascade: downstream` rules."""
    resolver = Resolver(cfg, state, at, emergency)
    res = Resolution(resolver)
    decided = resolver.decide_all(live)
    if decided is not None:
        res.decisions = decided
    else:
        decide = resolver.decide
        for dag in live:
            res.decisions[dag.dag_id] = decide(dag)
    if edges:
        from reconciler.policy.cascade import apply_cascade
        apply_cascade(resolver, res.decisions, live, edges)
    for dag_id, rules in state.dag_rules.items():
        if dag_id not in res.decisions:
            best = min(rules, key=lambda r: r.depth)
            res.missing.append((dag_id, best))
    return res
