"""Every DAG's winning rule at once, rule by rule (resolve.resolve's path over 100k DAGs).

Resolver.decide asks, for one DAG, which rules match it and picks the best: a selector index
lookup in Python per DAG. Here each rule's matching DAGs are found as one set instead (a
bisect range of the sorted dag_ids for a glob's literal prefix, tested only inside the range;
a dict for exact ids, tags and owners), and the sets are combined in precedence order with
set operations, which run in C: a DAG costs Python time only where rules of equal precedence
disagree about it (a tie). The outcome is Resolver.decide's on every input (same winner, same
tie break, same conflict list, in the same order): tests/policy/test_byrule.py compares the
two on random rules and DAGs.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import deque
from itertools import chain, groupby, repeat
from operator import itemgetter
from typing import Iterable, NamedTuple

from reconciler.policy.selectors import Selector, is_glob, literal_prefix

_KEY = itemgetter(0)
_NONE: frozenset = frozenset()


class Entry(NamedTuple):
    """One rule and the live DAGs it matches; `key` is its precedence key there (smaller
    wins), entries are given in the order Resolver._matches lists their rules."""

    key: tuple
    rule: object
    dags: set
    active: bool      # in force at the resolution's time


class DagSets:
    """The live DAGs, indexed once to answer "which DAGs does this selector match"."""

    def __init__(self, ids: list[str], tags: list, owners: list,
                 selectors: Iterable[Selector]):
        self.all = set(ids)
        self._ids = ids
        self._sorted: list[str] | None = None    # made at the first glob
        sels = list(selectors)
        self.by_tag = _invert(ids, tags, set().union(*(s.tags for s in sels)))
        self.by_owner = _invert(ids, owners, set().union(*(s.owners for s in sels)))

    def select(self, sel: Selector) -> set[str]:
        """The DAGs `sel` matches: Selector.matches, a set at a time (never mutate it)."""
        out = None
        globs = sel.dag_id_globs()
        if globs is not None:
            out = set()
            for pattern, glob in globs:
                if not is_glob(pattern):
                    if pattern in self.all:
                        out.add(pattern)
                    continue
                prefix = literal_prefix(pattern)
                within = self._prefixed(prefix)     # every match starts with the prefix
                out.update(within if pattern == prefix + "*" else filter(glob.match, within))
        for wanted, index in ((sel.tags, self.by_tag), (sel.owners, self.by_owner)):
            if wanted:
                found = (index.get(next(iter(wanted)), _NONE) if len(wanted) == 1 else
                         set().union(*(index.get(k, ()) for k in wanted)))
                out = found if out is None else out & found
        return self.all if out is None else out

    def _prefixed(self, prefix: str) -> list[str]:
        """The sorted dag_ids starting with `prefix`: [prefix, the next string of its length)."""
        if self._sorted is None:
            self._sorted = sorted(self._ids)   # a listing's order sorts fast, a set's does not
        ids = self._sorted
        if not prefix:
            return ids
        lo = bisect_left(ids, prefix)
        last = ord(prefix[-1])
        hi = len(ids) if last == 0x10FFFF else bisect_left(ids, prefix[:-1] + chr(last + 1), lo)
        return ids[lo:hi]


def _invert(ids: list[str], values: list, wanted: set) -> dict[str, set[str]]:
    """value -> the dag_ids carrying it, for the values some selector names. One pass in C:
    each (value, dag_id) pair appended to its value's list (a sink list takes the others)."""
    if not wanted:
        return {}
    lists: dict[str, list[str]] = {v: [] for v in wanted}
    sink: list[str] = []
    pairs_of = chain.from_iterable(values)
    ids_of = chain.from_iterable(map(repeat, ids, map(len, values)))   # each id per value
    deque(map(list.append, map(lists.get, pairs_of, repeat(sink)), ids_of), 0)
    return {v: set(dag_ids) for v, dag_ids in lists.items() if dag_ids}


def winners(entries: list[Entry], tie: str) -> tuple[dict, dict, set]:
    """(dag_id -> winning rule, dag_id -> conflicting rules, every dag_id some rule matches).

    Per DAG this is Resolver.decide: among the rules in force matching it, the smallest key
    wins, the first listed of those with that key; rules of that key that disagree make a tie,
    broken by `tie` (pause | unpause; error: a conflict listing them, no winner)."""
    known = set().union(*(e.dags for e in entries))
    win: dict = {}
    conflict: dict = {}
    decided: set = set()          # DAGs some better key already decided
    active = sorted((e for e in entries if e.active and e.dags), key=_KEY)   # stable: order kept
    for _, same in groupby(active, key=_KEY):
        same = list(same)
        if len(same) == 1:        # usual: one rule of this key; no tie possible
            new = same[0].dags - decided if decided else same[0].dags
            win.update(dict.fromkeys(new, same[0].rule))
            decided |= new
            continue
        news = [(e.rule, e.dags - decided) for e in same]
        seen: set = set()
        for rule, new in news:    # the first listed wins where it matches
            fresh = new - seen
            win.update(dict.fromkeys(fresh, rule))
            seen |= fresh
        pausing = set().union(*(new for rule, new in news if rule.paused))
        running = set().union(*(new for rule, new in news if not rule.paused))
        ties = pausing & running              # equal precedence, opposite wants
        rules_of: dict = {dag_id: [] for dag_id in ties}
        for rule, new in news:    # each tied DAG's rules of this key, in order
            for dag_id in new & ties:
                rules_of[dag_id].append(rule)
        for dag_id, tied in rules_of.items():
            if tie == "error":
                del win[dag_id]
                conflict[dag_id] = tied
            else:
                want = tie == "pause"
                win[dag_id] = next(r for r in tied if r.paused == want)
        decided |= seen
    return win, conflict, known
