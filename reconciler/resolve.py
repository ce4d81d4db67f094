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

from .backends.base import LiveDag
from .selectors import SelectorIndex
from .state import Config, EnvState, Rule

SPEC_DAG = 3


@dataclass(slots=True)
class Candidate:
    rule: Rule
    key: tuple            # precedence key; smaller wins
    inactive: str | None  # why it is not in force, or None


@dataclass(slots=True)
class Decision:
    dag_id: str
    paused: bool | None              # None: not managed, or a conflict
    rule: Rule | None                # the winner
    candidates: list[Candidate]      # every rule that matched, best first (inactive last)
    conflict: list[Rule] | None = None
    unmanaged: bool = False
    why: str = ""


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
    decisions: dict[str, Decision] = field(default_factory=dict)
    missing: list[tuple[str, Rule]] = field(default_factory=list)   # dag rules with no live DAG


class Resolver:
    """Built once per environment; `decide` is called per DAG (hot path: 100k DAGs)."""

    def __init__(self, cfg: Config, state: EnvState, at: datetime,
                 emergency: Emergency | None = None):
        self.cfg = cfg
        self.state = state
        self.at = at
        self.emergency = emergency
        self.layer_rank = {name: i for i, name in enumerate(cfg.layers)}
        self.group_index = SelectorIndex((g.selector, g) for g in state.groups)
        self._inactive_cache: dict[int, str | None] = {}
        self._emergency_rule = emergency.rule() if emergency else None
        d = state.defaults
        self._unmanaged_rule = None
        if d.unmanaged in ("pause", "unpause"):
            self._unmanaged_rule = Rule(layer="defaults", name="defaults",
                                        paused=d.unmanaged == "pause", where=d.where,
                                        reason=d.reason or "defaults.unmanaged", owner=d.owner)
        self._ended_rule = Rule(layer="defaults", name="defaults", paused=False, where=d.where,
                                reason="no rule in force (pause ended)", owner=None)

    def _inactive(self, rule: Rule) -> str | None:
        k = id(rule)
        if k not in self._inactive_cache:
            self._inactive_cache[k] = rule.inactive_reason(self.at)
        return self._inactive_cache[k]

    def _key(self, rule: Rule, spec: int) -> tuple:
        return (self.layer_rank[rule.layer], -spec, -rule.priority, rule.depth)

    def candidates(self, dag: LiveDag) -> list[Candidate]:
        out: list[Candidate] = []
        if self._emergency_rule is not None:
            ex = self.emergency.except_index
            if not (ex and ex.lookup(dag.dag_id, dag.tags, dag.owners)):
                out.append(Candidate(self._emergency_rule, self._key(self._emergency_rule, SPEC_DAG), None))
        for rule in self.state.dag_rules.get(dag.dag_id, ()):
            out.append(Candidate(rule, self._key(rule, SPEC_DAG), self._inactive(rule)))
        if self.group_index:
            for rule in self.group_index.lookup(dag.dag_id, dag.tags, dag.owners):
                out.append(Candidate(rule, self._key(rule, rule.selector.specificity(dag.dag_id)),
                                     self._inactive(rule)))
        out.sort(key=lambda c: (c.inactive is not None, c.key))
        return out

    def decide(self, dag: LiveDag) -> Decision:
        cands = self.candidates(dag)
        active = [c for c in cands if c.inactive is None]
        if not active:
            if cands:  # known to git, but every rule has ended or is outside its window
                return Decision(dag.dag_id, False, self._ended_rule, cands,
                                why="no rule in force: " + "; ".join(
                                    f"{c.rule.label()} {c.inactive}" for c in cands))
            if self._unmanaged_rule is not None:
                return Decision(dag.dag_id, self._unmanaged_rule.paused, self._unmanaged_rule, cands,
                                why=f"matched by no rule; defaults.unmanaged is "
                                    f"{self.state.defaults.unmanaged}")
            return Decision(dag.dag_id, None, None, cands, unmanaged=True,
                            why=f"matched by no rule; defaults.unmanaged is "
                                f"{self.state.defaults.unmanaged}")
        best = active[0]
        tied = [c for c in active if c.key == best.key]
        if len(tied) == 1 or all(c.rule.paused == best.rule.paused for c in tied):
            why = _why(best, active)
            return Decision(dag.dag_id, best.rule.paused, best.rule, cands, why=why)
        tie = self.cfg.tie
        rules = [c.rule for c in tied]
        if tie == "error":
            return Decision(dag.dag_id, None, None, cands, conflict=rules,
                            why="conflict: " + " vs ".join(f"{r.label()} ({r.where})" for r in rules)
                                + " have equal precedence and tie is 'error'")
        want = tie == "pause"
        winner = next(c for c in tied if c.rule.paused == want)
        return Decision(dag.dag_id, want, winner.rule, cands,
                        why=f"{winner.rule.label()} ties with " + ", ".join(
                            f"{c.rule.label()} ({c.rule.where})" for c in tied if c is not winner)
                            + f"; tie is '{tie}'")


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
            emergency: Emergency | None = None) -> Resolution:
    resolver = Resolver(cfg, state, at, emergency)
    res = Resolution()
    decide = resolver.decide
    for dag in live:
        res.decisions[dag.dag_id] = decide(dag)
    for dag_id, rules in state.dag_rules.items():
        if dag_id not in res.decisions:
            best = min(rules, key=lambda r: r.depth)
            res.missing.append((dag_id, best))
    return res
