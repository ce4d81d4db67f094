"""`pausectl report ENV... --html FILE`: the fleet dashboard, one self-contained HTML file.

Each environment is observed once (the same stages as plan: observe, resolve, plan) and turned
into its status document (operate/status_doc.py), so the dashboard shows exactly what the
Airflow plugin shows. The page: an emergency banner per environment in emergency, the DAGs
side by side (one column per environment, drift highlighted, environments that disagree
marked), pause age as a bar chart and the next 14 days of windows, holds and transitions as a
timeline (report_svg.py). No script, no external font, stylesheet, image or link target is
loaded: a strict Content-Security-Policy in the file itself says so to the browser too.
"""

from __future__ import annotations

from datetime import datetime
from html import escape

from reconciler.core.timeutil import parse_timestamp, utcnow
from reconciler.operate import report_svg

CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#1d2733;background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}
.muted{color:#66717d}.banner{background:#b3261e;color:#fff;padding:10px 14px;border-radius:6px;
margin:8px 0;font-weight:600}
table{border-collapse:collapse;margin-top:6px}th,td{border:1px solid #d6dbe1;padding:4px 8px;
text-align:left;vertical-align:top}th{background:#f2f4f7}
td.paused{background:#fff4e0}td.running{background:#eaf7ee}td.absent{color:#9aa3ad}
td.drift{outline:3px solid #d93025;outline-offset:-3px}td.pending{outline:2px dashed #b26b00;
outline-offset:-2px}tr.differs th{color:#8a1c12}
.small{font-size:12px;color:#4a5560}.chart text{font:12px system-ui,sans-serif;fill:#1d2733}
.chart .axis{fill:#66717d}.bar{fill:#e0a030}.bar.old{fill:#c0392b}
.grid{stroke:#e3e7eb}.lane{stroke:#c9ced4}.win.pause{fill:#e0a030}.win.run{fill:#3c9d5d}
.hold{fill:#7c4dff}.tick.pause{fill:#b3261e}.tick.run{fill:#1e7d3a}
.legend span{display:inline-block;margin-right:14px}.sw{display:inline-block;width:12px;
height:12px;margin-right:4px;vertical-align:middle}
"""
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


def _e(value) -> str:
    return escape("" if value is None else str(value), quote=True)


def collect(state_dir, envs: list[str], at: datetime | None = None) -> list[dict]:
    """The status document of each environment, observed now (paused DAGs' audit events
    read, for their pause age)."""
    from reconciler.engine import load, open_backend, plan_observed
    from reconciler.observe import PAUSED, observe
    from reconciler.operate import status_doc
    at = at or utcnow()
    docs = []
    for env in envs:
        ctx = load(state_dir, env, at)
        backend = open_backend(ctx.cfg, env)
        try:
            obs = observe(ctx, backend, at, events_for=PAUSED)
            plan, res = plan_observed(ctx, obs)
        finally:
            backend.close()
        docs.append(status_doc.build(env, command="report", live=obs.live, resolution=res,
                                     plan=plan, events=obs.last_events(), at=at,
                                     emergency=obs.emergency, desired_ref=obs.desired_ref))
    return docs


def _age_days(d: dict, at: datetime) -> float | None:
    try:
        since = parse_timestamp(str(d["paused_since"])) if d.get("paused_since") else None
    except ValueError:
        return None
    return None if since is None else max(0.0, (at - since).total_seconds() / 86400)


def _cell(d: dict | None) -> str:
    if d is None:
        return '<td class="absent">absent</td>'
    state = "paused" if d.get("live_paused") else "running"
    drift = d.get("drift") or {}
    cls = [state]
    note = ""
    if drift.get("cause") in ("manual", "airflow"):
        cls.append("drift")
        note = f'<div class="small">drift: {_e(drift.get("description"))}</div>'
    elif drift.get("cause") == "git":
        cls.append("pending")
        want = "paused" if d.get("desired_paused") else "running"
        note = f'<div class="small">git wants {want}</div>'
    why = ""
    if d.get("managed"):
        why = (f'<div class="small">{_e(d.get("reason") or "")}'
               f'{" · " + _e(d.get("owner")) if d.get("owner") else ""}'
               f'{" · " + _e(d.get("ticket")) if d.get("ticket") else ""}'
               f'{" · until " + _e(d.get("until")) if d.get("until") else ""}</div>'
               f'<div class="small">{_e(d.get("rule"))}</div>')
    else:
        why = '<div class="small">not managed</div>'
    return f'<td class="{" ".join(cls)}"><b>{state}</b>{why}{note}</td>'


def side_by_side(docs: list[dict]) -> str:
    by_env = [{d["dag_id"]: d for d in doc.get("dags") or [] if isinstance(d, dict)}
              for doc in docs]
    ids = sorted(set().union(*[set(m) for m in by_env])) if by_env else []
    head = "".join(f"<th>{_e(doc.get('environment'))}</th>" for doc in docs)
    rows = []
    for dag_id in ids:
        cells = [m.get(dag_id) for m in by_env]
        states = {None if c is None else bool(c.get("live_paused")) for c in cells}
        cls = ' class="differs"' if len(states - {None}) > 1 else ""
        rows.append(f"<tr{cls}><th>{_e(dag_id)}</th>{''.join(_cell(c) for c in cells)}</tr>")
    return (f'<table id="fleet"><thead><tr><th>DAG</th>{head}</tr></thead><tbody>'
            f'{"".join(rows)}</tbody></table>')


def render_html(docs: list[dict], at: datetime | None = None) -> str:
    at = at or utcnow()
    banners = "".join(
        f'<div class="banner" role="alert">EMERGENCY in {_e(doc.get("environment"))}: '
        f'{_e(em.get("reason"))} (by {_e(em.get("owner"))}, since {_e(em.get("started"))})'
        f'</div>'
        for doc in docs if isinstance(em := doc.get("emergency"), dict))
    ages = [(doc.get("environment"), d["dag_id"], age)
            for doc in docs for d in doc.get("dags") or []
            if d.get("live_paused") and (age := _age_days(d, at)) is not None]
    unknown = sum(1 for doc in docs for d in doc.get("dags") or []
                  if d.get("live_paused") and _age_days(d, at) is None)
    summary = "".join(
        f"<tr><th>{_e(doc.get('environment'))}</th>"
        + "".join(f"<td>{_e((doc.get('summary') or {}).get(k, 0))}</td>"
                  for k in ("dags", "paused", "managed", "drifted", "pending"))
        + f"<td>{_e(doc.get('desired_ref') or '')}</td></tr>" for doc in docs)
    legend = ('<div class="legend small"><span><i class="sw" style="background:#e0a030"></i>'
              'pause window</span><span><i class="sw" style="background:#3c9d5d"></i>run window'
              '</span><span><i class="sw" style="background:#7c4dff"></i>hold</span><span>'
              '<i class="sw" style="background:#b3261e"></i>next pause</span><span>'
              '<i class="sw" style="background:#1e7d3a"></i>next unpause</span></div>')
    envs = ", ".join(_e(doc.get("environment")) for doc in docs)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        f"<title>pausectl fleet report: {envs}</title><style>{CSS}</style></head><body>"
        f"<h1>pausectl fleet report</h1><p class=\"muted\">{envs} · generated "
        f"{_e(at.isoformat(timespec='seconds'))}</p>{banners}"
        "<h2>Summary</h2><table id=\"summary\"><thead><tr><th>environment</th><th>DAGs</th>"
        "<th>paused</th><th>managed</th><th>drifted</th><th>pending apply</th><th>git ref</th>"
        f"</tr></thead><tbody>{summary}</tbody></table>"
        "<h2>Upcoming windows, holds and transitions (14 days)</h2>"
        f"{legend}{report_svg.timeline(docs, at)}"
        "<h2>Pause age</h2>" + report_svg.pause_age_chart(ages)
        + (f'<p class="muted">{unknown} paused DAG(s) with no pause event in the audit log: '
           'age unknown.</p>' if unknown else "")
        + "<h2>DAGs side by side</h2><p class=\"muted\">Red outline: changed live outside git "
        "(drift). Dashed: git changed, not applied yet. Red name: environments disagree.</p>"
        + side_by_side(docs) + "</body></html>\n")


def write_report(path: str, docs: list[dict], at: datetime | None = None) -> None:
    from pathlib import Path
    Path(path).write_text(render_html(docs, at), encoding="utf-8")
