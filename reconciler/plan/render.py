"""Render plans, problems and explanations: rich tables on a terminal, plain text when piped,
JSON for machines, markdown for pull-request comments, `::error` lines for GitHub annotations."""

from __future__ import annotations

import sys
from typing import IO

from reconciler.plan.model import Plan, drain_note
from reconciler.plan.render_json import write_json
from reconciler.core.sanitize import GITHUB_COMMENT_LIMIT, md_cap, md_code, md_text, term
from reconciler.core.sanitize import rich as _r
from reconciler.plan.impact_render import markdown_rows as impact_md, text_lines as impact_lines
from reconciler.core.tables import Col


def _q(value) -> str:
    """A quoted data value on a text line (repr's escapes, then no workflow command)."""
    return term(repr(value))


def is_tty(stream: IO | None = None) -> bool:
    stream = stream or sys.stdout
    return hasattr(stream, "isatty") and stream.isatty()


def console(stream: IO | None = None):
    """A rich console on the stream below the output guard (rich's own escape codes must
    pass); whatever data it prints is escaped with sanitize.rich first."""
    from reconciler.core.sanitize import raw
    from reconciler.core.tables import console as make
    return make(raw(stream or sys.stdout))


def dump_json(data, stream: IO | None = None) -> None:
    # the bytes of json.dump(indent=2, default=str), streamed and fast (plan/render_json.py)
    write_json(data, stream)


# ---- plans ----------------------------------------------------------------------------------

def _sym(action: str) -> str:
    return "+pause" if action == "pause" else "-pause"


def plan_text(plan: Plan, stream: IO | None = None) -> None:
    stream = stream or sys.stdout
    s = plan.summary()
    head = (f"Plan for {term(plan.environment)}: {s['pause']} to pause, {s['unpause']} to unpause, "
            f"{s['unchanged']} unchanged, {s['unmanaged']} unmanaged, {s['missing']} missing, "
            f"{s['held']} held, {s['skipped']} skipped, {s['conflicts']} conflicts")
    if is_tty(stream):
        _plan_rich(plan, head, stream)
        return
    w = stream.write
    t = term
    for warning in plan.warnings:
        w(f"warning: {t(warning)}\n")
    for c in plan.changes:
        w(f"{c.action:8} {t(c.dag_id)}  {'paused' if c.live_paused else 'running'} -> "
          f"{'paused' if c.desired_paused else 'running'}  rule={t(c.rule)}"
          f"{'  reason=' + _q(c.reason) if c.reason else ''}"
          f"{'  owner=' + t(c.owner) if c.owner else ''}"
          f"{'  last_changed_by=' + _q(c.last_changed_by) if c.last_changed_by else ''}"
          f"{'  ' + drain_note(c.drain) if c.drain else ''}\n")
    for line in impact_lines(plan):         # only when the impact has something to say
        w(line + "\n")
    for c in plan.conflicts:
        w(f"conflict {t(c['dag_id'])}  {t(c['message'])}\n")
    for h in plan.held:
        w(f"held     {t(h['dag_id'])}  {t(h['why'])}\n")
    for sk in plan.skipped:
        w(f"skipped  {t(sk['dag_id'])}  {t(sk['why'])}\n")
    for m in plan.missing:
        w(f"missing  {t(m['dag_id'])}  in {t(m['rule'])} but not in Airflow\n")
    if plan.unmanaged:
        shown = ", ".join(t(d) for d in plan.unmanaged[:20]) + (
            " ..." if len(plan.unmanaged) > 20 else "")
        w(f"unmanaged {len(plan.unmanaged)}: {shown}\n")
    for line in batch_lines(plan):
        w(line + "\n")
    w(head + "\n")
    if not plan.changes:
        w("No changes. Live state matches git.\n")


# a terminal's plan table: identifiers first and never cut; free text last ("change" says
# the action: running -> paused is a pause)
PLAN_COLS = (Col("dag_id", "id", "bold"), Col("change", "id"), Col("rule", "id"),
             Col("owner", "id"), Col("reason", "text"), Col("last changed by", "text"))


def _state(paused: bool) -> str:
    return "paused" if paused else "running"


def _change_line(row) -> tuple[str, str]:
    """The one-line form below the width a table fits: `~ dag_id  running -> paused  rule`."""
    dag, change, rule, owner, reason, last = row
    extra = "  ".join(x for x in (reason, f"owner {owner}" if owner else "",
                                  f"last changed by {last}" if last else "") if x)
    return f"~ {dag}  {change}  {rule}", extra


def _plan_rich(plan: Plan, head: str, stream: IO) -> None:
    from reconciler.core.tables import say, show
    con = console(stream)
    for warning in plan.warnings:
        con.print(f"[yellow]warning:[/] {_r(warning)}")
    if plan.changes:
        rows = [(term(c.dag_id),
                 f"{_state(c.live_paused)} -> {_state(c.desired_paused)}", term(c.rule),
                 term(c.owner), term(c.reason), term(c.last_changed_by)) for c in plan.changes]
        show(con, PLAN_COLS, rows, _change_line, title=f"pausectl plan: {term(plan.environment)}",
             row_style=lambda r: "red" if r[1].endswith("paused") else "green")
    for line in impact_lines(plan):         # neutralised by term(); no markup in them
        say(con, line)
    for c in plan.conflicts:
        con.print(f"[bold red]conflict[/] {_r(c['dag_id'])}: {_r(c['message'])}")
    for c in plan.changes:
        if c.drain:
            con.print(f"[yellow]draining[/] {_r(c.dag_id)}: {_r(drain_note(c.drain))}")
    for h in plan.held:
        con.print(f"[yellow]held[/] {_r(h['dag_id'])}: {_r(h['why'])}")
    for sk in plan.skipped:
        con.print(f"[magenta]skipped[/] {_r(sk['dag_id'])}: {_r(sk['why'])}")
    for m in plan.missing:
        con.print(f"[cyan]missing[/] {_r(m['dag_id'])}: in {_r(m['rule'])} but not in Airflow")
    if plan.unmanaged:
        shown = _r(", ".join(plan.unmanaged[:20]) + (" ..." if len(plan.unmanaged) > 20 else ""))
        con.print(f"[dim]unmanaged ({len(plan.unmanaged)}): {shown}[/]")
    for line in batch_lines(plan):          # folded at spaces, continuation indented
        say(con, line)
    say(con, head, "bold")
    if not plan.changes:
        con.print("[green]No changes. Live state matches git.[/]")


def batch_lines(plan: Plan, names: int = 8) -> list[str]:
    """`batch 1/3: 3 DAG(s) (2 pause, 1 unpause): a, b, c`: the order apply will follow."""
    out = []
    n = len(plan.batches)
    for i, b in enumerate(plan.batches):
        ids = b["dag_ids"]
        shown = ", ".join(term(d) for d in ids[:names]) + (
            f" ... (+{len(ids) - names})" if len(ids) > names else "")
        out.append(f"batch {i + 1}/{n}: {len(ids)} DAG(s) ({b.get('pause', 0)} pause, "
                   f"{b.get('unpause', 0)} unpause): {shown}")
    return out


def md_escape(text: str | None) -> str:
    """Data in Markdown text or a table cell (sanitize.md_text; gitdiff.py uses it too)."""
    return md_text(text) if text else ""


def _c(value) -> str:
    """A DAG id (or any data) as a code span inside a table cell."""
    return md_code(value, table=True)


def plan_markdown(plan: Plan, limit: int = GITHUB_COMMENT_LIMIT - 1_000) -> str:
    """A PR comment: summary table, then collapsible details; stays under `limit` characters."""
    s = plan.summary()
    out = [f"### pausectl plan: {md_code(plan.environment)}", "",
           "| pause | unpause | unchanged | unmanaged | missing | held | skipped | conflicts |",
           "|---:|---:|---:|---:|---:|---:|---:|---:|",
           f"| {s['pause']} | {s['unpause']} | {s['unchanged']} | {s['unmanaged']} | "
           f"{s['missing']} | {s['held']} | {s['skipped']} | {s['conflicts']} |", ""]
    for w in plan.warnings:
        out.append(f"> :warning: {md_escape(w)}")
    if plan.warnings:
        out.append("")
    if not plan.changes:
        out.append("No changes. Live state matches git.")
    sections = [
        ("Changes", ["| action | dag_id | rule | reason | owner | last changed by |",
                     "|---|---|---|---|---|---|"],
         [f"| {c.action} | {_c(c.dag_id)} | {md_escape(c.rule)} | {md_escape(c.reason)} | "
          f"{md_escape(c.owner)} | {md_escape(c.last_changed_by)} |" for c in plan.changes]),
        ("Impact", [], impact_md(plan)),
        ("Conflicts", [], [f"- {md_code(c['dag_id'])}: {md_escape(c['message'])}"
                           for c in plan.conflicts]),
        ("Draining", [], [f"- {md_code(c.dag_id)}: {md_escape(drain_note(c.drain))}"
                          for c in plan.changes if c.drain]),
        ("Held", [], [f"- {md_code(h['dag_id'])}: {md_escape(h['why'])}" for h in plan.held]),
        ("Skipped", [], [f"- {md_code(k['dag_id'])}: {md_escape(k['why'])}"
                         for k in plan.skipped]),
        ("Missing in Airflow", [], [f"- {md_code(m['dag_id'])} ({md_escape(m['rule'])})"
                                    for m in plan.missing]),
        ("Unmanaged", [], [f"- {md_code(d)}" for d in plan.unmanaged]),
        ("Rollout batches", [], [f"- {md_escape(line)}" for line in batch_lines(plan)]),
    ]
    budget = limit - sum(len(x) + 1 for x in out) - 200
    for title, header, rows in sections:
        if not rows:
            continue
        block = [f"<details><summary>{title} ({len(rows)})</summary>", ""] + header
        used = sum(len(x) + 1 for x in block) + 20
        shown = 0
        for r in rows:
            if used + len(r) + 1 > budget:
                break
            block.append(r)
            used += len(r) + 1
            shown += 1
        if shown < len(rows):
            block.append("")
            block.append(f"... and {len(rows) - shown} more (see the job's plan artifact)")
        block += ["", "</details>", ""]
        budget -= used
        out += block
    return md_cap("\n".join(out) + "\n", limit, "see the job's plan artifact")


# ---- problems (validate, lint) --------------------------------------------------------------

def problems_out(problems: list[dict], fmt: str, stream: IO | None = None) -> None:
    """problems: [{severity, file, line, col, message, id?}]"""
    stream = stream or sys.stdout
    if fmt == "json":
        dump_json({"problems": problems,
                   "errors": sum(p["severity"] == "error" for p in problems),
                   "warnings": sum(p["severity"] == "warning" for p in problems)}, stream)
        return
    from reconciler.core.sanitize import emit_command, gh_command
    for p in problems:
        if fmt == "github":
            level = "error" if p["severity"] == "error" else "warning"
            emit_command(stream, gh_command(level, p["message"], file=p.get("file"),
                                            line=p.get("line"), col=p.get("col"),
                                            title=f"pausectl {p.get('id', level)}"))
        else:
            loc = ":".join(term(x) for x in (p.get("file"), p.get("line"), p.get("col")) if x)
            rid = f" [{term(p['id'])}]" if p.get("id") else ""
            stream.write(f"{loc + ': ' if loc else ''}{p['severity']}{rid}: "
                         f"{term(p['message'])}\n")
