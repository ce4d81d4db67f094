"""`pausectl diff` as text (a terminal, a CI log) and as Markdown (a pull request comment)."""

from __future__ import annotations

import sys

from reconciler.core.sanitize import (GITHUB_COMMENT_LIMIT, line_writer, md_cap, md_code,
                                      md_text, term)
from reconciler.core.tables import Col, say, show, terminal
from reconciler.operate.diff import DagDiff, DiffResult, EnvDiff, Side
from reconciler.plan.render import dump_json


def _arrow(c: DagDiff) -> str:
    return f"{c.old.state_word()} -> {c.new.state_word()}"


def _live_unknown(c: DagDiff) -> str | None:
    """What to show when the DAG's live pause state is not known; None when it is."""
    if c.in_airflow is None or (c.in_airflow and c.live_paused is None):
        return ""
    return None if c.in_airflow else "not in Airflow"


def _live_word(c: DagDiff) -> str:
    if (unknown := _live_unknown(c)) is not None:
        return unknown
    now = "paused" if c.live_paused else "running"
    if c.apply in (None, "none"):
        return f"live {now}"
    if c.apply in ("pause", "unpause"):
        return f"live {now}, apply will {c.apply}"
    return f"live {now}, {c.apply}"


def render_diff(result: DiffResult, fmt: str) -> None:
    """The diff on stdout as text, markdown or json (json as plan.render.dump_json writes)."""
    if fmt == "json":
        dump_json(result.to_json())
        return
    if fmt == "markdown":
        sys.stdout.write(diff_markdown(result))
        return
    diff_text(result)


DIFF_COLS = (Col("", "id"), Col("dag_id", "id", "bold"), Col("change", "id"),
             Col("rule", "id"), Col("owner", "id"), Col("live", "text"), Col("reason", "text"))


def _diff_line(row) -> tuple[str, str]:
    kind, dag, change, rule, owner, live, reason = row
    return (f"~ {dag}  {change}  {rule}  ({kind})",
            "  ".join(x for x in (reason, f"owner {owner}" if owner else "", live) if x))


def _diff_rich(result: DiffResult, con) -> None:
    """A terminal: one table per environment (core/tables: no identifier cut)."""
    t = term
    say(con, f"pausectl diff {t(result.base)} -> {t(result.head)}", "bold")
    if not result.environments:
        say(con, "No environment is affected.")
    for e in result.environments:
        say(con, "")
        say(con, f"== {t(e.environment)} ==", "bold")
        if e.error:
            say(con, f"error: {t(e.error)}", "red")
            continue
        for n in e.notes:
            say(con, f"note: {t(n)}", "yellow")
        rows = [(c.kind, t(c.dag_id), _arrow(c),
                 t(c.new.rule or c.old.rule or ""), t(c.new.owner), t(_live_word(c)),
                 t(c.new.reason)) for c in e.changes]
        if rows:
            show(con, DIFF_COLS, rows, _diff_line)
        say(con, t(_env_line(e)))


def _env_line(e: EnvDiff) -> str:
    k = e.counts()
    line = (f"{e.environment}: {k['pause']} to pause, {k['unpause']} to unpause, "
            f"{k['rule']} rule-only, {k['managed']} newly managed, {k['unmanaged']} "
            f"no longer managed, {k['conflict']} conflicts")
    if e.plan_summary is not None:
        p = e.plan_summary
        line += (f"; live plan at head: {p['pause']} pause, {p['unpause']} unpause, "
                 f"{p['held']} held, {p['skipped']} skipped")
    return line


def diff_text(result: DiffResult, stream=None) -> None:
    con = terminal(stream)
    if con is not None:
        _diff_rich(result, con)
        return
    w = line_writer(stream or sys.stdout)      # data cannot add lines or commands
    w(f"pausectl diff {result.base} -> {result.head}\n")
    if not result.environments:
        w("No environment is affected.\n")
    for e in result.environments:
        w(f"\n== {e.environment} ==\n")
        if e.error:
            w(f"error: {e.error}\n")
            continue
        for n in e.notes:
            w(f"note: {n}\n")
        for c in e.changes:
            old = f"{c.old.label} ({c.old.rule})" if c.old.rule else c.old.state_word()
            new = f"{c.new.label} ({c.new.rule})" if c.new.rule else c.new.state_word()
            extra = _live_word(c)
            reason = repr(c.new.reason) if c.new.reason else ""
            if c.old.reason and c.old.reason != c.new.reason and c.old.status == "managed":
                reason = f"{c.old.reason!r} -> {reason or 'none'}"
            w(f"{c.kind:9} {c.dag_id}  {_arrow(c)}  rule: {old} -> {new}"
              f"{'  reason=' + reason if reason else ''}"
              f"{'  owner=' + c.new.owner if c.new.owner else ''}"
              f"{'  [' + extra + ']' if extra else ''}\n")
        w(_env_line(e) + "\n")


def _md(text) -> str:
    """Data in Markdown text or a table cell; None and "" are empty."""
    s = None if text is None else str(text)
    return md_text(s) if s else ""


def _code(text) -> str:
    """A DAG id or environment name as a code span, safe in a table cell (sanitize.md_code)."""
    return md_code(text, table=True)


def _short(text: str | None, n: int = 60) -> str:
    if not text:
        return ""
    return text if len(text) <= n else text[: n - 3] + "..."


def diff_markdown(result: DiffResult, limit: int | None = None) -> str:
    """A PR comment: one summary table, then per environment the changes grouped by rule
    transition and every DAG in a collapsible block; always under GitHub's comment limit."""
    limit = limit or GITHUB_COMMENT_LIMIT - 1_000
    out = [f"### pausectl diff {_code(result.base)} -> {_code(result.head)}", ""]
    if not result.environments:
        out.append("No environment is affected by this change.")
        return "\n".join(out) + "\n"
    out += ["| environment | pause | unpause | rule only | newly managed | unmanaged | "
            "conflicts | live plan at head | live DAGs from |",
            "|---|---:|---:|---:|---:|---:|---:|---|---|"]
    for e in result.environments:
        if e.error:
            out.append(f"| {_code(e.environment)} | | | | | | | :x: {_md(_short(e.error, 120))} | |")
            continue
        k = e.counts()
        p = e.plan_summary
        plan = f"{p['pause']} pause / {p['unpause']} unpause" if p else "n/a"
        src = {"backend": f"Airflow ({e.live_dags} DAGs)", "rules-only": ":warning: rules only",
               "none": "not read"}[e.live_source]
        out.append(f"| {_code(e.environment)} | {k['pause']} | {k['unpause']} | {k['rule']} | "
                   f"{k['managed']} | {k['unmanaged']} | {k['conflict']} | {plan} | {src} |")
    out.append("")
    budget = limit - sum(len(x) + 1 for x in out) - 200
    per_env = max(budget // max(1, len(result.environments)), 2_000)
    for e in result.environments:
        block = _env_markdown(e, min(per_env, budget))
        budget -= sum(len(x) + 1 for x in block)
        out += block
    # belt and braces: never exceed the limit
    return md_cap("\n".join(out) + "\n", limit, "see the job's diff artifact")


def _rule_group(side: Side) -> str:
    """A rule as named in the grouped table: dag entries by file, groups by name and place."""
    if side.status != "managed" or not side.rule:
        return ""
    if side.label and side.label.startswith("dag entry "):
        return f"dag entries in {side.rule.rpartition(':')[0]}"
    return f"{side.label} ({side.rule})"


def _live_short(c: DagDiff) -> str:
    if (unknown := _live_unknown(c)) is not None:
        return unknown
    text = "paused" if c.live_paused else "running"
    if c.apply in ("pause", "unpause"):
        return f"will {c.apply}"          # live is the opposite, by definition
    if c.apply in ("held", "skipped"):
        return f"{text}, {c.apply}"
    return text


TOP_GROUPS = 15


def _env_markdown(e: EnvDiff, budget: int) -> list[str]:
    out = [f"#### {_code(e.environment)}", ""]
    if e.error:
        return out + [f":x: {_md(e.error)}", ""]
    for n in e.notes:
        out.append(f"> :warning: {_md(n)}")
    if e.notes:
        out.append("")
    if not e.changes:
        return out + ["No change to the desired state of any DAG.", ""]
    # 1. grouped: one row per (change, old -> new, rule, reason, owner), largest first
    groups: dict[tuple, list[DagDiff]] = {}
    for c in e.changes:
        old_reason = c.old.reason if c.old.label != "defaults" else None
        key = (c.kind, c.old.state_word(), _rule_group(c.old), old_reason,
               c.new.state_word(), _rule_group(c.new), c.new.reason, c.new.owner)
        groups.setdefault(key, []).append(c)
    ordered = sorted(groups.items(), key=lambda kv: -len(kv[1]))
    out += ["| change | DAGs | was | now | reason | owner |", "|---|---|---|---|---|---|"]
    for (kind, ow, orule, oreason, nw, nrule, reason, owner), items in ordered[:TOP_GROUPS]:
        dags = _code(items[0].dag_id) if len(items) == 1 else f"{len(items)} DAGs"
        was = ow + (f"; {_md(orule)}" if orule else "")
        if oreason and oreason != reason:
            was += f"; {_md(_short(oreason, 40))}"
        now = nw + (f"; {_md(nrule)}" if nrule else "")
        out.append(f"| {kind} | {dags} | {was} | {now} | {_md(_short(reason))} | "
                   f"{_md(_short(owner, 30))} |")
    if len(ordered) > TOP_GROUPS:
        rest = sum(len(v) for _, v in ordered[TOP_GROUPS:])
        out += ["", f"... and {len(ordered) - TOP_GROUPS} smaller group(s) of changes "
                    f"({rest} DAGs): every DAG is listed below"]
    out.append("")
    used = sum(len(x) + 1 for x in out)
    # 2. every DAG, one compact row each, collapsed
    detail = [f"<details><summary>{_md(e.environment)}: all {len(e.changes)} DAG change(s)</summary>",
              "", "| dag_id | change | rule | reason | owner | live |", "|---|---|---|---|---|---|"]
    d_used = sum(len(x) + 1 for x in detail) + 120
    n = 0
    for c in e.changes:
        side = c.new if c.new.rule else c.old
        r = (f"| {_code(c.dag_id)} | {c.kind} | {_md(side.rule or '')} | "
             f"{_md(_short(side.reason, 40))} | {_md(_short(side.owner, 20))} | "
             f"{_md(_live_short(c))} |")
        if used + d_used + len(r) + 1 > budget:
            break
        detail.append(r)
        d_used += len(r) + 1
        n += 1
    if n < len(e.changes):
        detail += ["", f"... and {len(e.changes) - n} more DAG(s) (see the job's diff artifact)"]
    detail += ["", "</details>", ""]
    return out + detail
