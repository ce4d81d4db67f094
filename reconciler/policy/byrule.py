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
from itertools import chain, compress, groupby, repeat
from operator import eq, itemgetter
from typing import Iterable, NamedTuple

from reconciler.policy.selectors import Selector, is_glob, literal_prefix

_KEY, _RULE = itemgetter(0), itemgetter(1)
_NONE: frozenset = frozenset()
_NO_ENTRY = (None,)      # best.get's default where a conflict removed the DAG: no key


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
    """(dag_id -> winning rule, dag_id -> conflicting rules, the dag_ids rules not in force
    match: where no rule in force does, the pause ended).

    Per DAG this is Resolver.decide: among the rules in force matching it, the smallest key
    wins, the first listed of those with that key; rules of that key that disagree make a tie,
    broken by `tie` (pause | unpause; error: a conflict listing them, no winner)."""
    active = sorted((e for e in entries if e.active and e.dags), key=_KEY)   # stable: order kept
    best: dict = {}
    for e in reversed(active):    # the best key, first listed, written last: it stays
        best.update(dict.fromkeys(e.dags, e))
    conflict: dict = {}
    for key, same in groupby(active, key=_KEY):
        same = list(same)
        pausing = [e.dags for e in same if e.rule.paused]
        running = [e.dags for e in same if not e.rule.paused]
        if not pausing or not running:
            continue              # usual: rules of one key agree; no tie possible
        both = list(set().union(*pausing) & set().union(*running))
        # ties: DAGs whose best key this is (a conflict of a better key left `best` already),
        # picked in C (100k DAGs under tag groups that disagree: ~50k ties)
        ties = set(compress(both, map(eq, map(_KEY, map(best.get, both, repeat(_NO_ENTRY))),
                                      repeat(key))))
        if not ties:
            continue
        if tie != "error":        # each tie's first listed entry of this key that wants `tie`
            want = tie == "pause"
            for e in reversed([e for e in same if e.rule.paused == want]):
                best.update(dict.fromkeys(e.dags & ties, e))
            continue
        tied: dict = {d: [] for d in ties}
        for e in same:            # each tied DAG's entries of this key, in order
            for d in e.dags & ties:
                tied[d].append(e)
        for d, es in tied.items():
            del best[d]
            conflict[d] = [e.rule for e in es]
    win = dict(zip(best, map(_RULE, best.values())))
    ended = set().union(*(e.dags for e in entries if not e.active))
    return win, conflict, ended
