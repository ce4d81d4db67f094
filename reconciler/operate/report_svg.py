"""The two pictures of the fleet report, drawn as inline SVG (no script, no font, no CDN):
how long each paused DAG has been paused, and the upcoming windows/holds/transitions per
environment on one time axis. Every string placed in the SVG is HTML-escaped here."""

from __future__ import annotations

from datetime import datetime, timedelta
from html import escape

from reconciler.core.timeutil import parse_timestamp

ROW = 22
LABEL_W = 230


def _t(value) -> datetime | None:
    try:
        return parse_timestamp(str(value)) if value else None
    except Exception:   # noqa: BLE001 - an unreadable time in a Variable is just not drawn
        return None


def _e(value) -> str:
    return escape(str(value), quote=True)


def pause_age_chart(rows: list[tuple[str, str, float]], width: int = 760) -> str:
    """Horizontal bars: (env, dag_id, days paused), longest first (at most 40 bars)."""
    rows = sorted(rows, key=lambda r: -r[2])[:40]
    if not rows:
        return '<p class="muted">No paused DAG with a known pause time (the audit log names none).</p>'
    top = max(r[2] for r in rows) or 1.0
    plot = width - LABEL_W - 70
    h = ROW * len(rows) + 24
    parts = [(f'<svg class="chart" id="pause-age" role="img" width="{width}" height="{h}" '
              f'viewBox="0 0 {width} {h}" xmlns="http://www.w3.org/2000/svg">'
              '<title>Pause age per paused DAG (days)</title>')]
    for i, (env, dag, days) in enumerate(rows):
        y = 8 + i * ROW
        w = max(2.0, plot * days / top)
        cls = "bar old" if days >= 30 else "bar"
        parts.append(f'<text x="{LABEL_W - 6}" y="{y + 14}" text-anchor="end">'
                     f'{_e(env)} · {_e(dag)}</text>'
                     f'<rect class="{cls}" x="{LABEL_W}" y="{y + 2}" width="{w:.1f}" '
                     f'height="{ROW - 6}"><title>{_e(dag)} ({_e(env)}): paused '
                     f'{days:.1f} days</title></rect>'
                     f'<text x="{LABEL_W + w + 6:.1f}" y="{y + 14}">{days:.1f} d</text>')
    parts.append("</svg>")
    return "".join(parts)


def _spans(windows: list[dict], start: datetime, end: datetime) -> list[tuple]:
    """Window start/end events of one rule paired into (rule, paused, t0, t1) spans."""
    open_at: dict[str, datetime] = {}
    spans = []
    for w in windows:
        at = _t(w.get("at"))
        key = str(w.get("where"))
        if at is None:
            continue
        if w.get("in_force"):
            open_at.setdefault(key, at)
        else:
            t0 = open_at.pop(key, start)
            spans.append((w.get("rule"), bool(w.get("paused")), t0, at, w.get("where")))
    for key, t0 in open_at.items():
        rule = next((w.get("rule") for w in windows if str(w.get("where")) == key), key)
        paused = next((bool(w.get("paused")) for w in windows if str(w.get("where")) == key),
                      True)
        spans.append((rule, paused, t0, end, key))
    return spans


def timeline(docs: list[dict], start: datetime, days: int = 14, width: int = 960) -> str:
    """One lane per environment: rule windows as bars, holds as hatched bars, the next
    pause/unpause transitions as ticks, `now` at the left edge, a tick per day."""
    end = start + timedelta(days=days)
    plot = width - 140 - 20
    lanes: list[tuple[str, list[str]]] = []

    def x(t: datetime) -> float:
        t = min(max(t, start), end)
        return 140 + plot * (t - start).total_seconds() / (end - start).total_seconds()

    for i, doc in enumerate(docs):
        env = doc.get("environment", "?")
        y, y2 = 30 + 40 * i, 44 + 40 * i
        marks: list[str] = []
        for rule, paused, t0, t1, where in _spans(doc.get("windows") or [], start, end):
            cls = "win pause" if paused else "win run"
            marks.append(f'<rect class="{cls}" x="{x(t0):.1f}" y="{y}" '
                         f'width="{max(2.0, x(t1) - x(t0)):.1f}" height="8"><title>'
                         f'{_e(rule)} ({_e(where)}): {"paused" if paused else "runs"} '
                         f'{_e(t0.isoformat())} to {_e(t1.isoformat())}</title></rect>')
        for d in doc.get("dags") or []:
            hold = d.get("hold") if isinstance(d.get("hold"), dict) else None
            until = _t(hold.get("until")) if hold else None
            if hold:
                marks.append(f'<rect class="hold" x="{x(start):.1f}" y="{y2}" '
                             f'width="{max(4.0, x(until or end) - x(start)):.1f}" height="6">'
                             f'<title>hold on {_e(d.get("dag_id"))}: '
                             f'{_e(hold.get("why") or hold.get("reason") or "")}</title></rect>')
            nxt = d.get("next") if isinstance(d.get("next"), dict) else None
            at = _t(nxt.get("at")) if nxt else None
            if at is not None and start <= at <= end:
                cls = "tick pause" if nxt.get("action") == "pause" else "tick run"
                marks.append(f'<rect class="{cls}" x="{x(at) - 1:.1f}" y="{y2}" width="3" '
                             f'height="14"><title>{_e(d.get("dag_id"))}: '
                             f'{_e(nxt.get("action"))} at {_e(nxt.get("at"))}</title></rect>')
        lanes.append((env, marks))
    h = 30 + 40 * max(1, len(lanes))
    parts = [(f'<svg class="chart" id="timeline" role="img" width="{width}" height="{h}" '
              f'viewBox="0 0 {width} {h}" xmlns="http://www.w3.org/2000/svg">'
              f'<title>Windows, holds and transitions, next {days} days</title>')]
    for day in range(days + 1):
        t = start + timedelta(days=day)
        parts.append(f'<line class="grid" x1="{x(t):.1f}" y1="18" x2="{x(t):.1f}" '
                     f'y2="{h - 4}"/>')
        if day % 2 == 0:
            parts.append(f'<text class="axis" x="{x(t):.1f}" y="12" text-anchor="middle">'
                         f'{t.strftime("%b %d")}</text>')
    for i, (env, marks) in enumerate(lanes):
        y = 30 + 40 * i
        parts.append(f'<text x="130" y="{y + 12}" text-anchor="end">{_e(env)}</text>'
                     f'<line class="lane" x1="140" y1="{y + 12}" x2="{width - 20}" '
                     f'y2="{y + 12}"/>')
        parts += marks
    parts.append("</svg>")
    return "".join(parts)
