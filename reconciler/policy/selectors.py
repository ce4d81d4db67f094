"""DAG selectors: dag_id globs, tags, owners; and an index that finds the matching rules fast.

A selector `{tags: [...], dag_id: glob | [globs], owners: [...]}` matches a DAG when every key
given matches (AND); within a key any listed value may match (OR). Globs are fnmatch-style:
`*` any run of characters, `?` one character, `[abc]`/`[!abc]` a class; matching is
case-sensitive, like Airflow dag_ids.

Globs come from pull requests, so matching never backtracks: a glob is split at its `*`s into
fixed-length segments (each a regex without quantifiers); the first must match at the start,
the last at the end, and the middle ones are found leftmost in order (optimal for globs). So
`*a*a*a*a*a*a*a*a*a*a*a*a*b` against 250 `a`s costs one look at the end, not minutes of a
backtracking `.*a.*a...` regex: matching is O(len(dag_id) x len(glob)) at worst.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Iterable

GLOB_CHARS = set("*?[")
_ORDER = itemgetter(0)
_ALLOWED = re.compile(r"^[A-Za-z0-9_.\-*?\[\]!]+$")


def is_glob(pattern: str) -> bool:
    return any(c in GLOB_CHARS for c in pattern)


def _glob_atoms(pattern: str) -> list[str]:
    """The glob as atoms: "*" or a regex matching exactly one character. ValueError."""
    if not pattern:
        raise ValueError("empty glob")
    if len(pattern) > 1000:
        raise ValueError(f"bad glob {pattern[:40]!r}...: longer than 1000 characters")
    if not _ALLOWED.match(pattern):
        bad = next(c for c in pattern if not _ALLOWED.match(c))
        raise ValueError(f"bad glob {pattern!r}: character {bad!r} cannot appear in a dag_id")
    out, i, n = [], 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "*":
            while i + 1 < n and pattern[i + 1] == "*":
                i += 1
            out.append("*")
        elif c == "?":
            out.append(".")
        elif c == "[":
            j = pattern.find("]", i + 1)
            if j == -1:
                raise ValueError(f"bad glob {pattern!r}: unclosed '['")
            body = pattern[i + 1:j]
            negate = body.startswith("!")
            if negate:
                body = body[1:]
            if not body:
                raise ValueError(f"bad glob {pattern!r}: empty character class")
            if "[" in body:
                raise ValueError(f"bad glob {pattern!r}: nested '['")
            out.append("[" + ("^" if negate else "") + re.escape(body).replace("\\-", "-") + "]")
            i = j
        elif c == "]" or c == "!":
            raise ValueError(f"bad glob {pattern!r}: unexpected {c!r}")
        else:
            out.append(re.escape(c))
        i += 1
    return out


def glob_to_regex(pattern: str) -> str:
    """Validate a glob; its regex (for display and callers that only check syntax: match
    with Glob, which never backtracks). Raises ValueError with a short reason."""
    regex = "".join(".*" if a == "*" else a for a in _glob_atoms(pattern))
    try:
        re.compile(regex)
    except re.error as e:
        raise ValueError(f"bad glob {pattern!r}: {e}") from None
    return regex


class Glob:
    """One glob, matched in O(len(text) x len(glob)) without backtracking (module doc)."""

    __slots__ = ("pattern", "_segs", "_lens", "_star")

    def __init__(self, pattern: str):
        atoms = _glob_atoms(pattern)
        segs: list[list[str]] = [[]]
        for a in atoms:
            if a == "*":
                segs.append([])
            else:
                segs[-1].append(a)
        self.pattern = pattern
        self._star = len(segs) > 1
        self._lens = [len(seg) for seg in segs]
        try:
            self._segs = [re.compile("".join(seg), re.S) for seg in segs]
        except re.error as e:
            raise ValueError(f"bad glob {pattern!r}: {e}") from None

    def match(self, text: str) -> bool:
        segs, lens, n = self._segs, self._lens, len(text)
        if not self._star:
            return n == lens[0] and segs[0].match(text) is not None
        first, last = lens[0], lens[-1]
        if first + last > n:
            return False
        if first and segs[0].match(text) is None:
            return False
        if last and segs[-1].fullmatch(text, n - last) is None:
            return False
        pos, end = first, n - last
        for seg, k in zip(segs[1:-1], lens[1:-1]):
            if k == 0:
                continue
            m = seg.search(text, pos, end)
            if m is None:
                return False
            pos = m.end()
        return True


class GlobSet:
    """Any of several globs (a selector's dag_id list); `.match(text)` like a regex's."""

    __slots__ = ("globs",)

    def __init__(self, patterns):
        self.globs = tuple(Glob(p) for p in patterns)

    def match(self, text: str) -> bool:
        return any(g.match(text) for g in self.globs)


def literal_prefix(pattern: str) -> str:
    for i, c in enumerate(pattern):
        if c in GLOB_CHARS:
            return pattern[:i]
    return pattern


@dataclass(frozen=True)
class Selector:
    tags: frozenset[str] = frozenset()
    dag_ids: tuple[str, ...] = ()     # globs or exact ids
    owners: frozenset[str] = frozenset()
    _regex: GlobSet | None = field(default=None, compare=False, repr=False)

    @classmethod
    def from_spec(cls, spec: dict) -> "Selector":
        """Build from a validated `match:` mapping; ValueError on a bad glob."""
        ids = spec.get("dag_id") or ()
        if isinstance(ids, str):
            ids = (ids,)
        regex = GlobSet(ids) if ids else None
        return cls(frozenset(spec.get("tags") or ()), tuple(ids),
                   frozenset(spec.get("owners") or ()), regex)

    def matches(self, dag_id: str, tags: Iterable[str], owners: Iterable[str]) -> bool:
        if self._regex is not None and not self._regex.match(dag_id):
            return False
        if self.tags and self.tags.isdisjoint(tags):
            return False
        if self.owners and self.owners.isdisjoint(owners):
            return False
        return True

    def dag_id_globs(self) -> list[tuple[str, Glob]] | None:
        """Each dag_id pattern with its Glob, or None when dag_ids do not restrict (byrule)."""
        return None if self._regex is None else list(zip(self.dag_ids, self._regex.globs))

    def specificity(self, dag_id: str) -> int:
        """2: named exactly; 1: by glob; 0: by tags/owners only."""
        if dag_id in self.dag_ids:
            return 2
        return 1 if self.dag_ids else 0

    def describe(self) -> str:
        parts = []
        if self.dag_ids:
            parts.append("dag_id " + "|".join(self.dag_ids))
        if self.tags:
            parts.append("tags " + ",".join(sorted(self.tags)))
        if self.owners:
            parts.append("owners " + ",".join(sorted(self.owners)))
        return " and ".join(parts)


class SelectorIndex:
    """Finds, for one DAG, the items whose selector matches, without testing every selector.

    Each item is filed under one key of its selector: each exact dag_id or the literal prefix of
    each dag_id glob, else each tag, else each owner, else "always". A lookup gathers candidates
    from those keys and tests only them; where the key alone decides (an exact id, `prefix*`, a
    tags-only or owners-only selector) the test is skipped.
    """

    def __init__(self, items: Iterable[tuple[Selector, object]]):
        self._by_exact: dict[str, list] = {}
        self._by_prefix: dict[str, list] = {}
        self._by_tag: dict[str, list] = {}
        self._by_owner: dict[str, list] = {}
        self._by_pair: dict[tuple[str, str], list] = {}
        self._always: list = []
        for order, (sel, item) in enumerate(items):
            if sel.dag_ids:
                only_ids = not sel.tags and not sel.owners
                for g in sel.dag_ids:
                    if not is_glob(g):
                        self._by_exact.setdefault(g, []).append((order, sel, item, only_ids))
                    else:
                        p = literal_prefix(g)
                        sure = only_ids and len(sel.dag_ids) == 1 and g == p + "*"
                        self._by_prefix.setdefault(p, []).append((order, sel, item, sure))
            elif sel.tags and sel.owners and len(sel.tags) * len(sel.owners) <= _MAX_PAIRS:
                # tags AND owners: filed under each (tag, owner) pair, the key alone decides
                for t in sel.tags:
                    for o in sel.owners:
                        self._by_pair.setdefault((t, o), []).append((order, sel, item, True))
            elif sel.tags:
                for t in sel.tags:
                    self._by_tag.setdefault(t, []).append((order, sel, item, not sel.owners))
            elif sel.owners:
                for o in sel.owners:
                    self._by_owner.setdefault(o, []).append((order, sel, item, True))
            else:
                self._always.append((order, sel, item, True))
        self._prefix_lengths = sorted({len(p) for p in self._by_prefix})
        # whether some item is filed under two keys (a lookup may find it twice)
        filed = [e[0] for kind in (self._by_exact, self._by_prefix, self._by_tag,
                                   self._by_owner, self._by_pair) for es in kind.values()
                 for e in es] + [e[0] for e in self._always]
        self._once = len(filed) == len(set(filed))

    def __bool__(self) -> bool:
        return bool(self._by_exact or self._by_prefix or self._by_tag or self._by_owner
                    or self._by_pair or self._always)

    def lookup(self, dag_id: str, tags: Iterable[str], owners: Iterable[str]) -> list:
        """Matching items, in the order they were given (hot path: once per DAG per index)."""
        found = []
        hit = self._by_exact.get(dag_id)
        if hit:
            found += hit
        if self._prefix_lengths:
            by_prefix = self._by_prefix
            n = len(dag_id)
            for k in self._prefix_lengths:
                if k > n:
                    break
                hit = by_prefix.get(dag_id[:k])
                if hit:
                    found += hit
        if self._by_tag:
            by_tag = self._by_tag
            for t in tags:
                hit = by_tag.get(t)
                if hit:
                    found += hit
        if self._by_owner:
            by_owner = self._by_owner
            for o in owners:
                hit = by_owner.get(o)
                if hit:
                    found += hit
        if self._by_pair:
            by_pair = self._by_pair
            for t in tags:
                for o in owners:
                    hit = by_pair.get((t, o))
                    if hit:
                        found += hit
        if self._always:
            found += self._always
        if not found:
            return []
        if len(found) > 1:
            # keep the order items were given in; an item filed under several keys once
            if self._once:
                found.sort(key=_ORDER)
            else:
                unique = {e[0]: e for e in found}
                found = [unique[k] for k in sorted(unique)]
        return [e[2] for e in found if e[3] or e[1].matches(dag_id, tags, owners)]


# a selector of tags AND owners is filed per (tag, owner) pair up to this many pairs, else
# under its tags and tested (50 tags x 50 owners would file one group 2,500 times)
_MAX_PAIRS = 64

_SELECTOR_KEYS = {"tag": "tags", "tags": "tags", "dag_id": "dag_id", "dag": "dag_id",
                  "owner": "owners", "owners": "owners"}


def parse_selector(text: str) -> dict:
    """A command-line selector -> a `match:` spec. `tag:critical`, `dag_id:critical_*`,
    `owner:data-eng`; a comma lists alternatives (`tag:a,b`), `+` joins keys that must all
    match (`tag:etl+owner:data-eng`); a bare glob is a dag_id. Raises ValueError."""
    spec: dict = {}
    for part in text.strip().split("+"):
        key, sep, value = part.partition(":")
        if not sep:
            key, value = "dag_id", part
        name = _SELECTOR_KEYS.get(key.strip().lower())
        if name is None:
            raise ValueError(f"bad selector {text!r}: unknown key {key!r} "
                             "(use tag:NAME, dag_id:GLOB or owner:NAME)")
        values = [v.strip() for v in value.split(",") if v.strip()]
        if not values:
            raise ValueError(f"bad selector {text!r}: {key} needs a value")
        if name == "dag_id":
            for v in values:
                glob_to_regex(v)
        spec.setdefault(name, []).extend(values)
    return spec
