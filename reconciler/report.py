"""Render plans, problems and explanations: rich tables on a terminal, plain text when piped,
JSON for machines, markdown for pull-request comments, `::error` lines for GitHub annotations."""

from __future__ import annotations

import json
import sys
from typing import IO

from .plan import Plan

GITHUB_COMMENT_LIMIT = 65_536


def is_tty(stream: IO | None = None) -> bool:
    stream = stream or sys.stdout
    return hasattr(stream, "isatty") and stream.isatty()


def console(stream: IO | None = None):
    from rich.console import Console
    return Console(file=stream or sys.stdout, highlight=False, soft_wrap=True)


def dump_json(data, stream: IO | None = None) -> None:
    stream = stream or sys.stdout
    json.dump(data, stream, indent=2, sort_keys=False, default=str)
    stream.write("\n")


# ---- plans ----------------------------------------------------------------------------------

def _sym(action: str) -> str:
    return "+pause" if action == "pause" else "-pause"


def plan_text(plan: Plan, stream: IO | None = None) -> None:
    stream = stream or sys.stdout
    s = plan.summary()
    head = (f"Plan for {plan.environment}: {s['pause']} to pause, {s['unpause']} to unpause, "
            f"{s['unchanged']} unchanged, {s['unmanaged']} unmanaged, {s['missing']} missing, "
            f"{s['held']} held, {s['skipped']} skipped, {s['conflicts']} conflicts")
    if is_tty(stream):
        _plan_rich(plan, head, stream)
        return
    w = stream.write
    for warning in plan.warnings:
        w(f"warning: {warning}\n")
    for c in plan.changes:
        w(f"{c.action:8} {c.dag_id}  {'paused' if c.live_paused else 'running'} -> "
          f"{'paused' if c.desired_paused else 'running'}  rule={c.rule}"
          f"{'  reason=' + repr(c.reason) if c.reason else ''}"
          f"{'  owner=' + c.owner if c.owner else ''}"
          f"{'  last_changed_by=' + repr(c.last_changed_by) if c.last_changed_by else ''}\n")
    for c in plan.conflicts:
        w(f"conflict {c['dag_id']}  {c['message']}\n")
    for h in plan.held:
        w(f"held     {h['dag_id']}  {h['why']}\n")
    for sk in plan.skipped:
        w(f"skipped  {sk['dag_id']}  {sk['why']}\n")
    for m in plan.missing:
        w(f"missing  {m['dag_id']}  in {m['rule']} but not in Airflow\n")
    if plan.unmanaged:
        shown = ", ".join(plan.unmanaged[:20]) + (" ..." if len(plan.unmanaged) > 20 else "")
        w(f"unmanaged {len(plan.unmanaged)}: {shown}\n")
    for line in batch_lines(plan):
        w(line + "\n")
    w(head + "\n")
    if not plan.changes:
        w("No changes. Live state matches git.\n")


def _plan_rich(plan: Plan, head: str, stream: IO) -> None:
    from rich.table import Table
    con = console(stream)
    for warning in plan.warnings:
        con.print(f"[yellow]warning:[/] {warning}")
    if plan.changes:
        t = Table(title=f"pausectl plan: {plan.environment}", title_justify="left")
        for col in ("action", "dag_id", "live", "desired", "rule", "reason", "owner",
                    "last changed by"):
            t.add_column(col, overflow="fold")
        for c in plan.changes:
            color = "red" if c.action == "pause" else "green"
            t.add_row(f"[{color}]{c.action}[/]", c.dag_id,
                      "paused" if c.live_paused else "running",
                      "paused" if c.desired_paused else "running", c.rule, c.reason or "",
                      c.owner or "", c.last_changed_by or "")
        con.print(t)
    for c in plan.conflicts:
        con.print(f"[bold red]conflict[/] {c['dag_id']}: {c['message']}")
    for h in plan.held:
        con.print(f"[yellow]held[/] {h['dag_id']}: {h['why']}")
    for sk in plan.skipped:
        con.print(f"[magenta]skipped[/] {sk['dag_id']}: {sk['why']}")
    for m in plan.missing:
        con.print(f"[cyan]missing[/] {m['dag_id']}: in {m['rule']} but not in Airflow")
    if plan.unmanaged:
        shown = ", ".join(plan.unmanaged[:20]) + (" ..." if len(plan.unmanaged) > 20 else "")
        con.print(f"[dim]unmanaged ({len(plan.unmanaged)}): {shown}[/]")
    for line in batch_lines(plan):
        con.print(line, markup=False)
    con.print(f"[bold]{head}[/]")
    if not plan.changes:
        con.print("[green]No changes. Live state matches git.[/]")


def batch_lines(plan: Plan, names: int = 8) -> list[str]:
    """`batch 1/3: 3 DAG(s) (2 pause, 1 unpause): a, b, c`: the order apply will follow."""
    out = []
    n = len(plan.batches)
    for i, b in enumerate(plan.batches):
        ids = b["dag_ids"]
        shown = ", ".join(ids[:names]) + (f" ... (+{len(ids) - names})" if len(ids) > names else "")
        out.append(f"batch {i + 1}/{n}: {len(ids)} DAG(s) ({b.get('pause', 0)} pause, "
                   f"{b.get('unpause', 0)} unpause): {shown}")
    return out


def _md_escape(text: str | None) -> str:
    if not text:
        return ""
    return (text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")
            .replace("<", "&lt;").replace(">", "&gt;"))


def plan_markdown(plan: Plan, limit: int = GITHUB_COMMENT_LIMIT - 1_000) -> str:
    """A PR comment: summary table, then collapsible details; stays under `limit` characters."""
    s = plan.summary()
    out = [f"### pausectl plan: `{plan.environment}`", "",
           "| pause | unpause | unchanged | unmanaged | missing | held | skipped | conflicts |",
           "|---:|---:|---:|---:|---:|---:|---:|---:|",
           f"| {s['pause']} | {s['unpause']} | {s['unchanged']} | {s['unmanaged']} | "
           f"{s['missing']} | {s['held']} | {s['skipped']} | {s['conflicts']} |", ""]
    for w in plan.warnings:
        out.append(f"> :warning: {_md_escape(w)}")
    if plan.warnings:
        out.append("")
    if not plan.changes:
        out.append("No changes. Live state matches git.")
    sections = [
        ("Changes", ["| action | dag_id | rule | reason | owner | last changed by |",
                     "|---|---|---|---|---|---|"],
         [f"| {c.action} | `{c.dag_id}` | {_md_escape(c.rule)} | {_md_escape(c.reason)} | "
          f"{_md_escape(c.owner)} | {_md_escape(c.last_changed_by)} |" for c in plan.changes]),
        ("Conflicts", [], [f"- `{c['dag_id']}`: {_md_escape(c['message'])}" for c in plan.conflicts]),
        ("Held", [], [f"- `{h['dag_id']}`: {_md_escape(h['why'])}" for h in plan.held]),
        ("Skipped", [], [f"- `{k['dag_id']}`: {_md_escape(k['why'])}" for k in plan.skipped]),
        ("Missing in Airflow", [], [f"- `{m['dag_id']}` ({_md_escape(m['rule'])})" for m in plan.missing]),
        ("Unmanaged", [], [f"- `{d}`" for d in plan.unmanaged]),
        ("Rollout batches", [], [f"- {_md_escape(line)}" for line in batch_lines(plan)]),
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
    return "\n".join(out) + "\n"


# ---- problems (validate, lint) --------------------------------------------------------------

def problems_out(problems: list[dict], fmt: str, stream: IO | None = None) -> None:
    """problems: [{severity, file, line, col, message, id?}]"""
    stream = stream or sys.stdout
    if fmt == "json":
        dump_json({"problems": problems,
                   "errors": sum(p["severity"] == "error" for p in problems),
                   "warnings": sum(p["severity"] == "warning" for p in problems)}, stream)
        return
    for p in problems:
        if fmt == "github":
            level = "error" if p["severity"] == "error" else "warning"
            props = []
            if p.get("file"):
                props.append(f"file={p['file']}")
            if p.get("line"):
                props.append(f"line={p['line']}")
            if p.get("col"):
                props.append(f"col={p['col']}")
            msg = p["message"].replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
            title = f"title=pausectl {p.get('id', level)}"
            stream.write(f"::{level} {','.join(props + [title])}::{msg}\n")
        else:
            loc = ":".join(str(x) for x in (p.get("file"), p.get("line"), p.get("col")) if x)
            rid = f" [{p['id']}]" if p.get("id") else ""
            stream.write(f"{loc + ': ' if loc else ''}{p['severity']}{rid}: {p['message']}\n")
