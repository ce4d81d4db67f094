"""The airflow-api backend's bulk path: flip many DAGs with few `PATCH /dags?<pattern>`
requests, the way this server version does it correctly (capabilities.py), and prove the
result by listing.

1. Terms: `compact_terms` (patterns.py) finds few pattern terms that match every target and
   no DAG that must not be touched (`avoid`), emulating the server's matching (ILIKE
   substring with `_`/`%` wildcards, or 3.2.2's case-sensitive prefix range). Servers with
   `|` get several terms per request (within max_pattern_length); others one term each.
2. Before: the DAGs the pattern matches now, either from a GET with the same pattern (the
   server's own matching decides; set_paused) or from a listing just taken (the emergency
   path). A pattern that matches a DAG outside the targets at the other state is not sent:
   its terms are dropped (their targets go to exact ids, then to single PATCHes).
3. PATCH, by capability: one request where the server updates every match (3.2.2+); on
   3.0-3.2.1 (one page, no order) the same PATCH with `paused=!target` repeated until no match
   is left (bounded rounds); on Airflow 2 (one page ordered by dag_id, no `paused` filter) page
   by offset.
4. Verify: list the pattern's matches again, always (set_paused: every match, whose rows
   also serve the batch's gate; the emergency: only those still at the old state, `paused=`,
   a page of few rows, sent at once with a one-row count of the pattern that tells whether
   that page suffices), and check each target's is_paused. A
   target still at the old state (or absent) goes to a single PATCH; a DAG outside the
   targets that the responses prove was flipped is put back at once; any other DAG outside
   the targets now at the requested state (one absent from the pre-listing appeared
   meanwhile) is named in a warning, never written. Neither total_entries nor an empty
   retry page (the first attempt's answer lost) is taken as proof of anything.
"""

from __future__ import annotations

import logging
import math
from concurrent import futures

from reconciler.core.errors import BackendError
from reconciler.live.base import LiveDag, SetPausedResult
from reconciler.live.capabilities import Capabilities
# MATCH_ALL, compact_terms, chunk_terms are also read as bulk.* (tests)
from reconciler.live.patterns import (MATCH_ALL, chunk_terms, compact_terms,  # noqa: F401
                                      matching, term_matcher)

log = logging.getLogger(__name__)

class BulkRun:
    """One bulk set_paused / pause_except call on an AirflowApiBackend `b`."""

    def __init__(self, b, caps: Capabilities, paused: bool, targets: list[str],
                 result: SetPausedResult, kind: str):
        self.b = b
        self.caps = caps
        self.paused = paused
        self.targets = set(targets)
        self.remaining = set(targets)
        self.result = result
        self.kind = kind                  # "ilike" | "prefix"
        self.param = "dag_id_prefix_pattern" if kind == "prefix" else "dag_id_pattern"
        self.match = term_matcher(kind)
        self.leftover: list[str] = []     # for single PATCHes
        self.requests = 0
        self.filtered_verify = False      # read back only what is still unchanged (read_back)

    # ---- server access
    def _pattern_params(self, pattern: str) -> dict:
        if self.kind == "prefix":
            # 3.2.2/3.3.2: the bulk PATCH's dag_id_pattern, absent, filters ILIKE '%None%'
            # (QueryDagIdPatternSearchWithNone): with the prefix alone it matches nothing
            # (measured); `~` (all) keeps it neutral. The GET gets the same filters.
            return {self.param: pattern, "dag_id_pattern": "~"}
        return {self.param: pattern}

    def listing(self, pattern: str, only_unchanged: bool = False) -> dict[str, LiveDag]:
        """The pattern's matches as the server lists them (stale ones included); with
        `only_unchanged`, only those still at the other state (`paused=` on GET /dags: every
        version 2.9 through 3.3), which after a successful PATCH is a page of few rows."""
        extra = {"paused": "false" if self.paused else "true"} if only_unchanged else {}
        rows = self.b._get_all("/dags", {**self._pattern_params(pattern), **extra,
                                         **self.b._dag_params(), "order_by": "dag_id"}, "dags")
        out = {}
        for r in rows:
            dag = self.b._live_dag(r)
            if dag is not None:
                out[dag.dag_id] = dag
        return out

    def read_back(self, pattern: str, pre: dict[str, bool]) -> dict[str, bool]:
        """The state after the PATCH of every DAG the pattern matches: a full listing of the
        matches (set_paused: its rows also serve the batch's gate), or with `filtered_verify`
        (the emergency), when the server counts exactly the matches of `pre`, only those still
        at the other state, every other DAG of `pre` then at the requested state."""
        if self.filtered_verify:
            # the count and the filtered page are independent reads taken after the PATCH:
            # sent at once (one round trip instead of two; the filtered page is thrown away
            # in the rare case the count disagrees)
            count, left = self._at_once(lambda: self._count(pattern),
                                        lambda: self.listing(pattern, only_unchanged=True))
            if count == len(pre):
                return {**{d: self.paused for d in pre},
                        **{d: v.is_paused for d, v in left.items()}}
        # a DAG that appeared meanwhile (not in `pre`) and was flipped would be invisible to
        # the `paused=` filter: when the server counts other matches than `pre`, read them all
        rows = self.listing(pattern)
        self.result.read_back.update((d, v) for d, v in rows.items() if d in self.targets)
        return {d: v.is_paused for d, v in rows.items()}

    def _at_once(self, first, second):
        """(first(), second()), the second on the backend's pool while the first runs here;
        one after the other when the backend is configured for one request at a time."""
        if self.b.concurrency <= 1:
            return first(), second()
        later = self.b._executor().submit(second)
        try:
            one = first()
        except BaseException:
            futures.wait([later])       # never leave it running; the first error is raised
            raise
        return one, later.result()

    def _count(self, pattern: str) -> int | None:
        """How many DAGs (stale ones included) the pattern matches now, by the server's
        total_entries of a one-row page: it only decides whether the filtered read-back
        suffices (None: unreadable, so it does not)."""
        _, data = self.b._call("GET", "/dags", params={**self._pattern_params(pattern),
                                                       **self.b._dag_params(), "limit": 1})
        total = data.get("total_entries") if isinstance(data, dict) else None
        return total if isinstance(total, int) and not isinstance(total, bool) else None

    def _patch(self, params: dict) -> tuple[list[str], int | None]:
        _, data = self.b._call("PATCH", "/dags", params=params,
                               json_body={"is_paused": self.paused})
        self.requests += 1
        rows = self.b._rows(data, "dags", "/dags")
        total = data.get("total_entries") if isinstance(data, dict) else None
        return ([r["dag_id"] for r in rows if isinstance(r.get("dag_id"), str)],
                total if isinstance(total, int) and not isinstance(total, bool) else None)

    def patch(self, pattern: str, expected: int) -> set[str]:
        """Send the PATCH(es) for one pattern. Returns the DAGs the responses name (a lost
        answer's are missing: only the read-back after it is proof of the end state)."""
        params: dict = {**self._pattern_params(pattern), "update_mask": "is_paused",
                        "limit": self.b.page_size, **self.b.dialect.bulk_filters(self.paused)}
        touched: set[str] = set()
        if self.caps.bulk_all:
            # every match is updated whatever the limit; the answer is one page of them, and
            # serialising 1,000 rows took the server 4 s of a raised limit's PATCH (measured,
            # 3.3.2) against <1 s for 100, the default cap: ask for 100
            rows, _total = self._patch({**params, "limit": min(self.b.page_size, 100)})
            touched.update(rows)
            return touched
        if self.caps.bulk_paused_filter:
            # one page per request, no ORDER BY: what it flips leaves the `paused` filter, so
            # the same request again takes the next page
            rounds, bound = 0, 2
            while True:
                rows, total = self._patch(params)
                touched.update(rows)
                rounds += 1
                if rounds == 1:
                    bound = math.ceil(max(expected, 1) / max(len(rows), 1)) + 2
                outside = [d for d in rows if d not in self.targets]
                if (not rows or outside or (total is not None and len(rows) >= total)
                        or rounds >= bound):
                    return touched
        # Airflow 2: one page ordered by dag_id, offset honoured, no paused filter
        offset, pages, bound = 0, 0, 2
        while True:
            rows, total = self._patch({**params, "offset": offset})
            touched.update(rows)
            pages += 1
            if pages == 1:
                bound = math.ceil(max(total or expected, 1) / max(len(rows), 1)) + 2
            offset += len(rows)
            if not rows or total is None or offset >= total or pages >= bound:
                return touched

    # ---- one pattern
    def group(self, terms: list[str], before: dict[str, bool] | None,
              min_bulk: int, exact_fallback: bool) -> None:
        """Flip the remaining targets these terms match. `before`: the pre-state from a
        listing just taken (None: GET the pattern first)."""
        for _round in range(4):
            if not terms:
                return
            pattern = "|".join(terms)
            pre = ({d: v.is_paused for d, v in self.listing(pattern).items()}
                   if before is None else self._matching(terms, before))
            offending = [d for d, p in pre.items() if d not in self.targets and p != self.paused]
            if offending:
                kept, dropped = [], False
                for t in terms:
                    if any(self.match(t, d) for d in offending):
                        dropped = True
                        cover = [d for d in self.remaining if self.match(t, d)]
                        if exact_fallback and cover != [t]:
                            kept.extend(c for c in cover if not any(
                                self.match(c, o) for o in offending))
                    else:
                        kept.append(t)
                if not dropped:          # the emulation disagrees with the server: stop here
                    return
                terms = sorted(set(kept))
                continue
            mine = [d for d in pre if d in self.remaining]
            to_change = [d for d in mine if pre[d] != self.paused]
            self.remaining -= set(mine)
            if len(to_change) < min_bulk:
                self.result.changed.extend(d for d in mine if pre[d] == self.paused)
                self.leftover.extend(to_change)
                return
            touched = self.patch(pattern, len(to_change))
            post = self.read_back(pattern, pre)
            self._settle(mine, post)
            self._outside(pattern, pre, post, touched)
            return

    def _matches(self, terms: list[str], d: str) -> bool:
        return any(self.match(t, d) for t in terms)

    def _matching(self, terms: list[str], before: dict[str, bool]) -> dict[str, bool]:
        """The DAGs of `before` the terms match (patterns.matching: one scan per term)."""
        return {d: before[d] for d in matching(terms, list(before), self.kind)}

    def _settle(self, mine: list[str], post: dict[str, bool]) -> None:
        for d in mine:
            if post.get(d) == self.paused:
                self.result.changed.append(d)
            else:
                self.leftover.append(d)

    def _outside(self, pattern: str, pre: dict[str, bool], post: dict[str, bool],
                 touched: set[str]) -> None:
        """DAGs outside the targets that are at the requested state after this pattern's
        PATCH, from the read-back `post` (never from a count or an empty retry page: a lost
        answer whose retry found nothing left proves nothing). Put back what the responses
        prove this PATCH flipped; name every other one."""
        p = self.paused
        # proof: with the `paused` filter a DAG in a response was at the other state when the
        # PATCH ran; without it (AF2) only a pre-state of !p tells a flip from a same-value
        # write. A DAG absent from the pre-listing appeared meanwhile: it was not ours to
        # change, so it is named, never written (we cannot know the state it appeared with)
        flipped = sorted(d for d in touched if d not in self.targets and post.get(d) == p
                         and d in pre and (self.caps.bulk_paused_filter or pre[d] != p))
        for d in flipped:
            log.warning("%s: bulk PATCH %r also changed %s (it matched meanwhile); putting it "
                        "back", self.b.name, pattern[:200], d)
            try:
                err = self.b._patch_one(d, not p)
            except BackendError as e:
                err = str(e)
            if err:
                self.result.errors[d] = (f"{self.b.name}: {d} is outside the requested set, was "
                                         f"changed by a concurrent bulk match and could not be "
                                         f"restored: {err}")
        unknown = sorted(d for d, v in post.items() if d not in self.targets and v == p
                         and d not in flipped and (d not in pre or pre[d] != p))
        if unknown:
            msg = (f"{self.b.name}: {len(unknown)} DAG(s) outside the requested set appeared "
                   f"or changed during bulk pattern {pattern[:100]!r} and are now paused={p} "
                   f"(left as they are: their state before is unknown): "
                   f"{', '.join(unknown[:10])}; check them")
            self.result.warnings.append(msg)     # the caller shows it (apply, emergency)


def run(b, caps: Capabilities, targets: list[str], paused: bool, result: SetPausedResult,
        *, avoid: list[str] | None, before: dict[str, bool] | None, min_bulk: int,
        kind: str, filtered_verify: bool = False, within=None) -> list[str]:
    """Flip `targets` through the bulk path; returns the ids left for single PATCHes.
    A BackendError stops the bulk path (the caller PATCHes what is not yet changed)."""
    bulk = BulkRun(b, caps, paused, targets, result, kind)
    bulk.filtered_verify = filtered_verify and before is not None
    terms, rest = compact_terms(targets, avoid, kind, within)   # within: a scoped listing
    bulk.leftover.extend(rest)
    bulk.remaining -= set(rest)
    try:
        for chunk in chunk_terms(terms, b.max_pattern_length, caps.pattern_or):
            if not bulk.remaining:
                break
            live = [t for t in chunk if any(bulk.match(t, d) for d in bulk.remaining)]
            bulk.group(live, before, min_bulk, exact_fallback=avoid is not None)
    finally:
        b.bulk_requests += bulk.requests
    done = set(result.changed) | set(bulk.leftover)
    return list(dict.fromkeys(bulk.leftover + sorted(bulk.remaining - done)))
