"""The plugin's two pages as HTML, the same on Airflow 3 and 2 (stdlib only).

Every string comes from a status document in an Airflow Variable, which anyone with Variable
write access can set: all of it is HTML-escaped here, links are kept only when they are
https:// URLs, and the pages carry no script (a Content-Security-Policy header from the view
says so to the browser). Unknown fields are ignored; `hold`, `draining` and `impact` are shown
as key/value lists when a document has them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from html import escape
from urllib.parse import quote

from reconciler.core.timeutil import parse_timestamp

CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
       "form-action 'self'; frame-ancestors 'self'; base-uri 'none'")
CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:16px;color:#1d2733;background:#fff}
h1{font-size:20px;margin:0 0 6px}h2{font-size:16px;margin:18px 0 6px}
.muted{color:#66717d}.banner{background:#b3261e;color:#fff;padding:8px 12px;border-radius:6px;
margin:8px 0;font-weight:600}
table{border-collapse:collapse}th,td{border:1px solid #d6dbe1;padding:4px 8px;text-align:left;
vertical-align:top}th{background:#f2f4f7}dl.kv{display:grid;grid-template-columns:max-content auto;
gap:4px 14px;margin:6px 0}dl.kv dt{font-weight:600;color:#4a5560}dl.kv dd{margin:0}
.paused{color:#a35b00;font-weight:600}.running{color:#1e7d3a;font-weight:600}
.drift{background:#fdecea}form.filters{display:flex;gap:10px;flex-wrap:wrap;align-items:end;
margin:8px 0}form.filters label{display:flex;flex-direction:column;font-size:12px;color:#4a5560}
"""
STATES = ("", "paused", "running")


def e(value) -> str:
    return escape("" if value is None else str(value), quote=True)


def _safe_url(value) -> str | None:
    return value if isinstance(value, str) and value.startswith("https://") else None


def _page(title: str, body: str) -> str:
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{e(title)}'
            f'</title><style>{CSS}</style></head><body>{body}</body></html>')


def _when(value) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return parse_timestamp(value)
    except ValueError:      # not a time (or out of range): "unknown", never an error page
        return None


def paused_days(d: Mapping, now: datetime) -> float | None:
    since = _when(d.get("paused_since"))
    return None if since is None or not d.get("live_paused") else \
        (now - since).total_seconds() / 86400


def _kv(pairs: Iterable[tuple[str, object]]) -> str:
    rows = "".join(f"<dt>{e(k)}</dt><dd>{v}</dd>" for k, v in pairs)
    return f'<dl class="kv">{rows}</dl>'


def _extra(name: str, value) -> str:
    if not isinstance(value, Mapping):
        return ""
    items = [(str(k), e(v)) for k, v in list(value.items())[:30]]
    return f"<h3>{e(name)}</h3>{_kv(items)}"


def _banner(doc: Mapping) -> str:
    em = doc.get("emergency")
    if not isinstance(em, Mapping):
        return ""
    return (f'<div class="banner" role="alert">EMERGENCY in {e(doc.get("environment"))}: '
            f'{e(em.get("reason"))} (by {e(em.get("owner"))}, since {e(em.get("started"))})'
            f'</div>')


def _state(paused) -> str:
    if paused is None:
        return '<span class="muted">not decided by git</span>'
    return '<span class="paused">paused</span>' if paused else '<span class="running">running</span>'


def dag_page(dag_id: str, found: list[tuple[Mapping, Mapping]], base: str) -> str:
    """One DAG in every environment whose document names it: (document, dag entry) pairs,
    already filtered to what the user may read (empty: nothing is shown)."""
    if not found:
        return _page("Pause policy", "<h1>Pause policy</h1><p class=\"muted\" id=\"none\">"
                     "pausectl has no status for this DAG that you may read.</p>")
    parts = [f"<h1>Pause policy: {e(dag_id)}</h1>"]
    for doc, d in found:
        link = _safe_url(d.get("rule_link"))
        rule = (f'<a href="{e(link)}" target="_blank" rel="noopener noreferrer">'
                f'{e(d.get("rule"))}</a>' if link else e(d.get("rule") or "none"))
        drift = d.get("drift") if isinstance(d.get("drift"), Mapping) else None
        nxt = d.get("next") if isinstance(d.get("next"), Mapping) else None
        pairs = [
            ("live", _state(bool(d.get("live_paused")))),
            ("git wants", _state(d.get("desired_paused"))),
            ("reason", f'<span class="reason">{e(d.get("reason") or "")}</span>'),
            ("owner", f'<span class="owner">{e(d.get("owner") or "")}</span>'),
            ("ticket", f'<span class="ticket">{e(d.get("ticket") or "")}</span>'),
            ("until", f'<span class="until">{e(d.get("until") or "")}</span>'),
        ]
        if d.get("from"):
            pairs.append(("from", e(d.get("from"))))
        pairs += [("rule", f"{rule} {e(d.get('rule_name') or '')}"),
                  ("paused since", e(d.get("paused_since") or "unknown")
                   if d.get("live_paused") else "")]
        if d.get("last_change"):
            pairs.append(("last change", e(d.get("last_change"))))
        if drift:
            by = f" (by {e(drift.get('by'))})" if drift.get("by") else ""
            pairs.append(("drift", f'<span class="drift">{e(drift.get("description"))}{by}</span>'))
        if nxt:
            pairs.append(("next", f"{e(nxt.get('action'))} at {e(nxt.get('at'))}"))
        extras = "".join(_extra(n, d.get(n)) for n in ("hold", "draining", "impact"))
        parts.append(f'<section class="env" data-env="{e(doc.get("environment"))}">'
                     f'<h2>{e(doc.get("environment"))}</h2>{_banner(doc)}{_kv(pairs)}{extras}'
                     f'<p class="muted">status written by pausectl {e(doc.get("command"))} at '
                     f'{e(doc.get("generated_at"))}, git {e(doc.get("desired_ref") or "?")}</p>'
                     "</section>")
    parts.append(f'<p><a href="{e(base)}/">all managed DAGs</a></p>')
    return _page(f"Pause policy: {dag_id}", "".join(parts))


def filter_rows(rows: list[tuple[Mapping, Mapping]], q: Mapping[str, str],
                now: datetime) -> list[tuple[Mapping, Mapping]]:
    """The instance page's filters: state, owner (rule owner or DAG owner, substring), tag,
    drift (yes/no), min_days (paused for more than N days)."""
    state = q.get("state") or ""
    owner = (q.get("owner") or "").strip().lower()
    tag = (q.get("tag") or "").strip().lower()
    drift = q.get("drift") or ""
    try:
        min_days = float(q.get("min_days") or 0)
    except ValueError:
        min_days = 0.0
    out = []
    for doc, d in rows:
        paused = bool(d.get("live_paused"))
        if state == "paused" and not paused or state == "running" and paused:
            continue
        owners = [str(d.get("owner") or "")] + [str(o) for o in d.get("owners") or []]
        if owner and not any(owner in o.lower() for o in owners):
            continue
        if tag and tag not in [str(t).lower() for t in d.get("tags") or []]:
            continue
        drifted = isinstance(d.get("drift"), Mapping) and \
            d["drift"].get("cause") in ("manual", "airflow")
        if drift == "yes" and not drifted or drift == "no" and drifted:
            continue
        if min_days > 0:
            days = paused_days(d, now)
            if days is None or days <= min_days:
                continue
        out.append((doc, d))
    return out


def _select(name: str, options: Iterable[str], current: str) -> str:
    opts = "".join(f'<option value="{e(o)}"{" selected" if o == current else ""}>'
                   f'{e(o or "any")}</option>' for o in options)
    return f'<label>{e(name)}<select name="{e(name)}">{opts}</select></label>'


def instance_page(docs: list[Mapping], rows: list[tuple[Mapping, Mapping]],
                  q: Mapping[str, str], base: str, now: datetime) -> str:
    """Every managed DAG the user may read, in every environment, with the filters."""
    shown = filter_rows(rows, q, now)
    form = ('<form class="filters" method="get">'
            + _select("state", STATES, q.get("state") or "")
            + f'<label>owner<input name="owner" value="{e(q.get("owner") or "")}"></label>'
            + f'<label>tag<input name="tag" value="{e(q.get("tag") or "")}"></label>'
            + _select("drift", ("", "yes", "no"), q.get("drift") or "")
            + '<label>paused more than N days<input name="min_days" type="number" min="0" '
            f'step="any" value="{e(q.get("min_days") or "")}"></label>'
            '<button type="submit">Filter</button></form>')
    body = []
    for doc, d in shown:
        days = paused_days(d, now)
        drift = d.get("drift") if isinstance(d.get("drift"), Mapping) else None
        drifted = bool(drift and drift.get("cause") in ("manual", "airflow"))
        href = f"{base}/dag/{quote(str(d.get('dag_id')), safe='')}"
        body.append(
            f'<tr class="{"drift" if drifted else ""}" data-dag="{e(d.get("dag_id"))}">'
            f'<td><a href="{e(href)}">{e(d.get("dag_id"))}</a></td>'
            f'<td>{e(doc.get("environment"))}</td><td>{_state(bool(d.get("live_paused")))}</td>'
            f'<td>{_state(d.get("desired_paused"))}</td><td>{e(d.get("reason") or "")}</td>'
            f'<td>{e(d.get("owner") or "")}</td><td>{e(d.get("ticket") or "")}</td>'
            f'<td>{e(d.get("until") or "")}</td>'
            f'<td>{e(", ".join(str(t) for t in d.get("tags") or []))}</td>'
            f'<td>{"" if days is None else f"{days:.1f}"}</td>'
            f'<td>{e(drift.get("description")) if drifted else ""}</td></tr>')
    banners = "".join(_banner(doc) for doc in docs)
    table = ('<table id="dags"><thead><tr><th>DAG</th><th>environment</th><th>live</th>'
             '<th>git wants</th><th>reason</th><th>owner</th><th>ticket</th><th>until</th>'
             '<th>tags</th><th>paused days</th><th>drift</th></tr></thead><tbody>'
             + "".join(body) + "</tbody></table>") if body else \
        '<p class="muted" id="none">No managed DAG you may read matches.</p>'
    envs = ", ".join(f"{e(doc.get('environment'))} ({e(doc.get('generated_at'))})"
                     for doc in docs)
    return _page("pausectl", f"<h1>pausectl: managed DAGs</h1>{banners}"
                 f'<p class="muted">status documents: {envs or "none"} · '
                 f'<span id="count">{len(shown)}</span> of {len(rows)} shown</p>{form}{table}')


