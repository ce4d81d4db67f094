"""Airflow's dag_id patterns, emulated: `dag_id_pattern` (ILIKE '%term%', `_` and `%`
wildcards, `|` ORs on 3.2.1+) and `dag_id_prefix_pattern` (3.2.2+, a case-sensitive range
scan), and the few terms a bulk request needs to cover its targets and nothing else. Used to
decide what to try; the server's own answer to a GET decides (bulk.py), and the event log's
bulk rows are attributed with the same matching (events.py)."""

from __future__ import annotations

import bisect
import functools
import re
from typing import Callable


def ilike_matches(pattern: str, dag_id: str, *, or_terms: bool = True) -> bool:
    """Emulate Airflow's dag_id_pattern: ILIKE '%term%' (`_`, `%` wildcards), `|` ORs on
    3.2.1+. Used only to decide which ids to try; the server's answer to a GET decides."""
    if pattern in ("~", "%"):
        return True
    terms = [pattern]
    if or_terms and "|" in pattern:
        terms = [t.strip() for t in pattern.split("|") if t.strip()] or [pattern]
    for term in terms:
        rx = "".join("." if c == "_" else ".*" if c == "%" else re.escape(c) for c in term.lower())
        if re.search(rx, dag_id.lower(), re.S):
            return True
    return False


def prefix_bounds(term: str) -> tuple[str, str | None]:
    """Airflow 3.2.2+ `_PrefixPatternParam`: trailing non-alphanumerics are dropped, then
    dag_id >= lower AND dag_id < upper (the last alphanumeric bumped by one, else dropped)."""
    lower = term
    while lower and not lower[-1].isalnum():
        lower = lower[:-1]
    upper = lower
    while upper:
        bumped = chr(ord(upper[-1]) + 1) if ord(upper[-1]) < 0x10FFFF else ""
        if bumped and bumped.isalnum():
            return lower, upper[:-1] + bumped
        upper = upper[:-1]
        while upper and not upper[-1].isalnum():
            upper = upper[:-1]
    return lower, None


def prefix_matches(pattern: str, dag_id: str, *, or_terms: bool = True) -> bool:
    """Emulate dag_id_prefix_pattern (binary collation, as SQLite): `|` ORs, `~` matches all."""
    if pattern == "~":
        return True
    terms = [pattern]
    if or_terms and "|" in pattern:
        terms = [t.strip() for t in pattern.split("|") if t.strip()] or [pattern]
    for term in terms:
        lower, upper = prefix_bounds(term)
        if dag_id >= lower and (upper is None or dag_id < upper):
            return True
    return False


@functools.lru_cache(maxsize=4096)
def ilike_rx(term: str) -> re.Pattern:
    """One ILIKE term as a regex over newline-separated ids (`_` and `%` never cross a line)."""
    return re.compile("".join("[^\n]" if c == "_" else "[^\n]*" if c == "%" else re.escape(c)
                              for c in term.lower()))


def matching(terms: list[str], ids: list[str], kind: str = "ilike") -> list[str]:
    """The ids (in their order) that some term matches, as the server would: for ILIKE one
    regex scan per term over all ids joined by newlines, not one match per id and term."""
    if kind == "prefix":
        match = term_matcher(kind)
        return [d for d in ids if any(match(t, d) for t in terms)]
    if any(t in ("%", "~") for t in terms):
        return list(ids)
    blob = "\n".join(d.lower() for d in ids)
    starts = [0]
    for d in ids[:-1]:
        starts.append(starts[-1] + len(d) + 1)
    hit: set[int] = set()
    for t in terms:
        rx = ilike_rx(t)
        pos = 0
        while True:
            m = rx.search(blob, pos)
            if m is None:
                break
            i = bisect.bisect_right(starts, m.start()) - 1
            hit.add(i)
            pos = starts[i + 1] if i + 1 < len(starts) else len(blob)
    return [ids[i] for i in sorted(hit)]


MATCH_ALL = {"ilike": "%", "prefix": "~"}
def term_matcher(kind: str) -> Callable[[str, str], bool]:
    """Does one term (no `|`) match a dag_id, as the server would (ASCII ids)?"""
    if kind == "prefix":
        return lambda term, d: prefix_matches(term, d, or_terms=False)
    return lambda term, d: term in ("%", "~") or ilike_rx(term).search(d.lower()) is not None


def compact_terms(targets: list[str], avoid: list[str] | None, kind: str = "ilike",
                  within: Callable[[str], bool] | None = None) -> tuple[list[str], list[str]]:
    """(terms, targets no term can cover). Greedy: for the first uncovered target, its
    shortest prefix that matches no id in `avoid`; that term also covers every other target it
    matches. `avoid` None (the DAGs are not known): one exact term per target. No id to
    avoid: one match-all term. `within`: `avoid` is only the DAGs of a scoped listing
    (policy/scope.py), so a term must also pass it (match nothing outside that scope)."""
    if avoid is None:
        return sorted(set(targets)), []
    if not avoid and within is None:
        return [MATCH_ALL[kind]], []
    if kind == "prefix":
        ordered = sorted(avoid)

        def clean(p: str) -> bool:
            lower, upper = prefix_bounds(p)
            i = bisect.bisect_left(ordered, lower)
            return i == len(ordered) or (upper is not None and ordered[i] >= upper)
    else:
        blob = "\n" + "\n".join(a.lower() for a in avoid) + "\n"

        def clean(p: str) -> bool:
            return ilike_rx(p).search(blob) is None
    match = term_matcher(kind)
    terms: list[str] = []
    rest: list[str] = []
    uncovered = sorted(set(targets))
    while uncovered:
        s = uncovered[0]
        term = next((s[:n] for n in range(1, len(s) + 1)
                     if clean(s[:n]) and (within is None or within(s[:n]))), None)
        if term is None:
            rest.append(s)
            uncovered = uncovered[1:]
            continue
        terms.append(term)
        uncovered = [u for u in uncovered if not match(term, u)]
    return terms, rest


def chunk_terms(terms: list[str], limit: int, or_terms: bool) -> list[list[str]]:
    """Terms grouped into patterns of at most `limit` characters (`|` is sent as %7C); one
    term per pattern without `|` support. A term longer than `limit` is left out."""
    out: list[list[str]] = []
    cur: list[str] = []
    length = 0
    for t in terms:
        if len(t) > limit:
            continue
        add = len(t) + (3 if cur else 0)
        if cur and (not or_terms or length + add > limit):
            out.append(cur)
            cur, length, add = [], 0, len(t)
        cur.append(t)
        length += add
    if cur:
        out.append(cur)
    return out


def within_scope(scope: list[str], kind: str = "ilike") -> Callable[[str], bool]:
    """Whether a term matches only DAGs a scoped listing of `scope` read: the term (for the
    prefix kind, the range's lower bound) contains a scope term literally, so every id the
    server matches with it also contains that scope term (ILIKE; `_` in both is a wildcard)."""
    lows = [s.lower() for s in scope]

    def ok(term: str) -> bool:
        t = (prefix_bounds(term)[0] if kind == "prefix" else term).lower()
        return any(s in t for s in lows)
    return ok
