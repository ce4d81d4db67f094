"""What an environment's rules can match, as a few Airflow `dag_id_pattern` terms, so a plan
lists only those DAGs instead of the whole server (an Airflow shared by many teams, each
managing its own prefix).

Only when nothing else is managed: `defaults.unmanaged: ignore` (an unmatched DAG is not
in the plan at all), no cascade and no `sensors:` (they follow edges to DAGs no rule names),
and every group restricted by a dag_id glob with a literal run of at least MIN_TERM
characters. Any other state gets None: the full listing, as before.

A term is a literal that every DAG a rule can match contains (an exact id, or a glob's
longest literal run). Airflow matches `dag_id_pattern` as ILIKE '%term%', where `_` is a
wildcard and case is ignored: the server answers a superset, and `resolve` drops what no
rule matches. Many terms are compacted to their common prefixes (still a superset) so the
read stays a few requests: `max_terms` is what the server's patterns can carry (`|` ORs on
3.2.1+; one request per term before).
"""

from __future__ import annotations

import re

from reconciler.state.model import EnvState

MIN_TERM = 3                      # "et" would match most of a server: not worth a scope
_GLOB_SPLIT = re.compile(r"\*|\?|\[[^\]]*\]")


def _literal_run(glob: str) -> str:
    """The glob's longest run of literal characters (every match contains it)."""
    return max(_GLOB_SPLIT.split(glob), key=len)


def rule_literals(state: EnvState, extra_ids: tuple[str, ...] = ()) -> list[str] | None:
    """One literal per exact id and per group glob, or None when the rules can match a DAG
    that contains none of them (or a DAG outside every rule is still in the plan)."""
    if state.defaults.unmanaged != "ignore" or state.sensors:
        return None
    out: list[str] = list(extra_ids)
    for dag_id, rules in state.dag_rules.items():
        if any(r.cascade != "none" for r in rules):
            return None
        out.append(dag_id)
    for rule in state.groups:
        sel = rule.selector
        if rule.cascade != "none" or sel is None or not sel.dag_ids:
            return None               # by tags or owners alone: any DAG may match
        for glob in sel.dag_ids:
            run = _literal_run(glob)
            if len(run) < MIN_TERM:
                return None
            out.append(run)
    return out


def compact(literals: list[str], max_terms: int) -> list[str] | None:
    """At most `max_terms` terms that every literal contains one of (prefixes of at least
    MIN_TERM characters), or None. The longest prefix length that fits is found by bisection:
    fewer distinct prefixes the shorter they are."""
    lits = sorted(set(literals))
    if not lits or max_terms < 1 or min(map(len, lits)) < MIN_TERM:
        return None
    if len(lits) > max_terms:
        lo, hi = MIN_TERM, max(map(len, lits))
        if len({t[:lo] for t in lits}) > max_terms:
            return None
        while lo < hi:                # the largest length whose prefixes fit
            mid = (lo + hi + 1) // 2
            if len({t[:mid] for t in lits}) <= max_terms:
                lo = mid
            else:
                hi = mid - 1
        lits = sorted({t[:lo] for t in lits})
    # a term containing another term adds nothing (ILIKE is a substring match)
    keep: list[str] = []
    for t in sorted(lits, key=len):
        low = t.lower()
        if not any(k.lower() in low for k in keep):
            keep.append(t)
    return sorted(keep)


def listing_terms(state: EnvState, max_terms: int,
                  extra_ids: tuple[str, ...] = ()) -> list[str] | None:
    """The terms a scoped listing reads, or None for the full listing."""
    lits = rule_literals(state, extra_ids)
    return None if lits is None else compact(lits, max_terms)
