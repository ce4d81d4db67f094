"""lint rules about the rules in git: expired-until, matches-nothing, missing-reason,
missing-ticket, forgotten-pause."""

from __future__ import annotations

from datetime import timedelta

from reconciler.core.timeutil import iso
from reconciler.operate.lint_age import paused_line
from reconciler.operate.lint_config import PLACEHOLDER, Lint, split_where
from reconciler.state.loader import Rule


def permanent(rule: Rule) -> bool:
    return rule.paused and rule.until is None and not rule.windows


def matched(lint: Lint) -> dict[int, list]:
    """id(rule) -> the live DAGs it matches (cascade-derived rules are not in git)."""
    out: dict[int, list] = {}
    for d in lint.live:
        for r in lint.res.resolver.matching_rules(d):
            if r.origin is None:
                out.setdefault(id(r), []).append(d)
    return out


def check_rules(lint: Lint) -> None:
    at, add, state = lint.at, lint.add, lint.state
    hits_of = matched(lint)
    for r in state.all_rules():
        hits = hits_of.get(id(r), [])
        if r.until is not None and r.until <= at:
            add("expired-until", f"{r.label()} expired at {iso(r.until)} and no longer applies",
                r.where)
        if not hits:
            what = f"no DAG named {r.name!r}" if r.layer == "dag" else \
                f"no DAG ({r.selector.describe() if r.selector else 'match'})"
            add("matches-nothing", f"{r.label()} matches {what} in {state.name}", r.where)
        if not r.paused:
            continue
        bad = [k for k in ("reason", "owner")
               if not getattr(r, k) or PLACEHOLDER.match(getattr(r, k))]
        if bad:
            add("missing-reason", f"{r.label()} pauses with no real {' or '.join(bad)} "
                                  f"({', '.join(repr(getattr(r, k)) for k in bad)})", r.where)
        if not permanent(r):
            continue
        if not r.ticket:
            add("missing-ticket", f"{r.label()} pauses permanently without a ticket", r.where)
        if lint.st.enabled("forgotten-pause", split_where(r.where)[0]) \
                and r.inactive_reason(at) is None:
            _forgotten(lint, r, hits)


def _forgotten(lint: Lint, r: Rule, hits: list) -> None:
    """forgotten-pause: how long the pause has been in git (else in Airflow's audit log)."""
    at = lint.at
    days_limit = lint.st.values["forgotten_pause_days"]
    file, _ = split_where(r.where)
    since = None
    line = paused_line(r)
    if file and line:
        since = lint.ages.line_time(file, line)
    source = "in git"
    if since is None and not lint.offline and hits:
        last = lint.last_pauses()
        whens = [last[d.dag_id].when for d in hits if d.dag_id in last]
        since = max(whens) if whens else None
        source = "in Airflow (audit log)"
    if since is not None and at - since > timedelta(days=days_limit):
        days = (at - since).days
        lint.add("forgotten-pause", f"{r.label()} has paused {len(hits)} DAG(s) for {days} "
                                    f"days {source} with no `until` (limit "
                                    f"{days_limit} days)", r.where, [d.dag_id for d in hits])
