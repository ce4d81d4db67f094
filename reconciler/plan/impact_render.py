"""The impact preview's lines in the plan renderers (plan/render.py) and diff (issue 15).

Nothing is added when the plan's impact has nothing to say, so the output of such plans is
byte for byte what it was (tests/golden). Every string came from Airflow: neutralised for the
sink (term for text, md_text/md_code for Markdown) here.
"""

from __future__ import annotations

from reconciler.core.sanitize import md_code, md_text, term
from reconciler.plan.impact import names


def _impact(plan):
    impact = getattr(plan, "impact", None)
    return impact if impact else None


def _levels_text(levels, quote) -> str:
    return "; ".join(f"level {i + 1}: " + ", ".join(quote(d) for d in lv)
                     for i, lv in enumerate(levels))


def text_lines(plan) -> list[str]:
    """`impact   DAG  pause: ...` per DAG with something to say, the coordinated unpause order,
    then the notes (what could not be read)."""
    impact = _impact(plan)
    if impact is None:
        return []
    out = [f"impact   {term(d.dag_id)}  {d.action}: {term('; '.join(d.phrases()))}"
           for d in impact.shown()]
    if len(impact.levels) > 1:
        out.append(f"order    coordinated unpause, upstream first, a gate between levels: "
                   f"{_levels_text(impact.levels, term)}")
    notes = list(impact.notes)
    if out:     # per-DAG notes (AF2: no backfills) only beside something shown
        notes += sorted({n for d in impact.dags for n in d.notes})
    out += [f"note     impact: {term(n)}" for n in notes]
    return out


def markdown_rows(plan) -> list[str]:
    """Rows of the "Impact" section of the PR comment."""
    impact = _impact(plan)
    if impact is None:
        return []
    rows = [f"- {md_code(d.dag_id)} ({d.action}): {md_text('; '.join(d.phrases()))}"
            for d in impact.shown()]
    if len(impact.levels) > 1:
        rows.append("- coordinated unpause, upstream first, a gate between levels: "
                    + _levels_text(impact.levels, md_code))
    notes = list(impact.notes) + (sorted({n for d in impact.dags for n in d.notes})
                                  if rows else [])
    rows += [f"- note: {md_text(n)}" for n in notes]
    return rows


def guard_line(plan, limit: int | None) -> str | None:
    """The catch-up guard's one line (apply refuses; nothing changed), or None. With a limit,
    an unpause whose runs were not counted is refused too: it could create any number."""
    impact = _impact(plan)
    if impact is None or limit is None:
        return None
    over, unknown = impact.catchup_over(limit), impact.uncounted()
    parts = []
    if over:
        parts.append(", ".join(f"{d} would create {n} catch-up runs" for d, n in over)
                     + f", more than safety.max_catchup_runs ({limit})")
    if unknown:
        why = (" (not previewed: raise impact.max_detail_reads to count them)"
               if impact.unread() else "")
        parts.append(f"{len(unknown)} unpause(s) would create catch-up runs that were not "
                     f"counted: {names(unknown)}{why}; safety.max_catchup_runs is {limit}")
    if not parts:
        return None
    return "; ".join(parts) + "; nothing changed. Re-run with --allow-catchup if that is intended"


def note_lines(plan) -> list[str]:
    """`diff`'s notes for its live plan at head: `impact: DAG pause: ...`, the order and the
    notes, as the plan shows them (the diff renderers neutralise notes for their sink)."""
    impact = _impact(plan)
    if impact is None:
        return []
    out = [f"impact: {d.dag_id} {d.action}: {'; '.join(d.phrases())}" for d in impact.shown()]
    if len(impact.levels) > 1:
        out.append("impact: coordinated unpause, upstream first, a gate between levels: "
                   + _levels_text(impact.levels, str))
    return out + [f"impact: {n}" for n in impact.notes]
