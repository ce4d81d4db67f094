"""Notifications: a generic JSON webhook and a Slack-style message, on drift, apply, gate failure
and emergency. Configured in pausectl.yaml:

    notify:
      webhooks:
        - url_env: PAUSECTL_SLACK_WEBHOOK     # the URL comes from this env var, never the file
          format: slack                       # json (default) | slack
          events: [drift, gate_failure, emergency]   # default: all four
          timeout: 5                          # seconds per attempt (default 5)
          retries: 2                          # extra attempts (default 2)

Delivery never blocks or fails the command that notifies: every webhook is sent in its own
thread, retried with exponential backoff on connection errors, timeouts, 429 and 5xx (a
Retry-After is honoured up to the remaining time), and the whole notification is bounded by
`PAUSECTL_NOTIFY_BUDGET` seconds (default 15). Whatever fails becomes a one-line warning naming
the webhook by its env var; URLs (which carry tokens) are never printed.

`auto_pause` is sent by `pausectl drift` when Airflow paused DAGs by itself after failed runs
(max_consecutive_failed_dag_runs) that git wants running: held (drift.auto_paused: keep) or
about to be unpaused (enforce, or a git change to the rule since). An apply is announced as `apply`; an apply whose health gate failed (rolled back or halted) as
`gate_failure`, to webhooks that subscribe to either (one message, not two).

JSON body (format: json), version 1:
    {"source": "pausectl", "version": 1, "event": "drift", "environment": "prod",
     "severity": "warning", "title": "...", "text": "...", "details": {...}, "sent_at": "..."}
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from reconciler.plan.records import ApplyStatus

EVENTS = ("drift", "apply", "gate_failure", "emergency", "auto_pause", "hold")
DEFAULT_TIMEOUT = 5.0
DEFAULT_RETRIES = 2
DEFAULT_BUDGET = 15.0
RETRY_STATUSES = {408, 425, 429, 500, 502, 503, 504}
SLACK_TEXT_LIMIT = 2900
MAX_ITEMS = 25


@dataclass
class Message:
    event: str                 # drift | apply | gate_failure | emergency | auto_pause
    environment: str
    title: str
    severity: str = "info"     # info | warning | error
    lines: list[str] = field(default_factory=list)
    details: dict = field(default_factory=dict)

    @property
    def text(self) -> str:
        shown = self.lines[:MAX_ITEMS]
        more = len(self.lines) - len(shown)
        return "\n".join(shown + ([f"... and {more} more"] if more > 0 else []))

    def json_body(self) -> dict:
        from reconciler.core.timeutil import iso, utcnow
        return {"source": "pausectl", "version": 1, "event": self.event,
                "environment": self.environment, "severity": self.severity,
                "title": self.title, "text": self.text, "details": self.details,
                "sent_at": iso(utcnow())}

    def slack_body(self) -> dict:
        icon = {"error": ":rotating_light:", "warning": ":warning:"}.get(self.severity,
                                                                          ":information_source:")
        from reconciler.core.sanitize import one_line, slack      # data: no <!channel>, <@U..>, <url|label>
        text = "\n".join(slack(ln) for ln in self.text.split("\n"))
        if len(text) > SLACK_TEXT_LIMIT:
            cut = text[:SLACK_TEXT_LIMIT]
            amp = cut.rfind("&", SLACK_TEXT_LIMIT - 5)    # an entity cut in half goes whole
            text = (cut[:amp] if amp != -1 and ";" not in cut[amp:] else cut) + "\n..."
        blocks: list[dict] = [{"type": "header", "text": {
            "type": "plain_text", "text": one_line(self.title, 150)}}]
        if text:
            blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": text}})
        blocks.append({"type": "context", "elements": [
            {"type": "mrkdwn", "text": f"pausectl · `{slack(self.environment)}` · {self.event}"}]})
        return {"text": f"{icon} {slack(self.title)}", "blocks": blocks}


class _QuietNotifyThreads(logging.Filter):
    """httpx logs every request line at INFO, URL included (measured inside Airflow 2, whose
    logging prints INFO to stdout): webhook URLs carry tokens, so nothing httpx/httpcore log
    from a notification thread is let through."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not threading.current_thread().name.startswith("pausectl-notify")


_QUIET = _QuietNotifyThreads()
for _name in ("httpx", "httpcore"):
    _logger = logging.getLogger(_name)
    if _QUIET not in _logger.filters:
        _logger.addFilter(_QUIET)


def _hooks_for(cfg_notify: Mapping | None, event: str) -> list[tuple[int, dict]]:
    hooks = (cfg_notify or {}).get("webhooks") or []
    out = []
    for i, hook in enumerate(hooks, 1):
        events = hook.get("events") or EVENTS
        if event in events or (event == "gate_failure" and "apply" in events):
            out.append((i, hook))
    return out


def _scrub(text: str, url: str) -> str:
    if url:
        text = text.replace(url, "<url>")
        base = url.split("?", 1)[0]
        if base:
            text = text.replace(base, "<url>")
    return " ".join(text.split())[:300]


def _retry_after(resp) -> float | None:
    value = resp.headers.get("retry-after") if resp is not None else None
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _deliver(name: str, url: str, body: dict, event: str, timeout: float, retries: int,
             deadline: float, transport, sleep: Callable[[float], None]) -> str | None:
    """POST with retries until `deadline`; returns a warning, or None when delivered."""
    import httpx
    last = "not sent"
    attempts = 0
    with httpx.Client(transport=transport, follow_redirects=False,
                      headers={"User-Agent": "pausectl-notify/1"}) as client:
        for attempt in range(retries + 1):
            left = deadline - time.monotonic()
            if left <= 0.05:
                break
            attempts += 1
            wait = None
            try:
                resp = client.post(url, json=body, timeout=min(timeout, left))
            except httpx.TimeoutException:
                last = f"timed out after {min(timeout, left):.1f}s"
            except httpx.HTTPError as e:
                last = f"{type(e).__name__}: {_scrub(str(e), url) or 'connection failed'}"
            else:
                if resp.status_code < 300:
                    return None
                last = f"HTTP {resp.status_code}"
                if resp.status_code not in RETRY_STATUSES:
                    return f"notify: webhook {name} refused the {event} message " \
                           f"({last}); not retried"
                wait = _retry_after(resp)
            if attempt == retries:
                break
            backoff = 0.5 * (2 ** attempt) * (0.8 + 0.4 * random.random())
            pause = wait if wait is not None else backoff
            left = deadline - time.monotonic()
            if pause >= left:
                break
            sleep(pause)
    return f"notify: webhook {name} failed after {attempts} attempt(s) ({last}); " \
           "the command itself is not affected"


def send(cfg_notify: Mapping | None, message: Message, *,
         environ: Mapping[str, str] | None = None, transport=None,
         budget: float | None = None, sleep: Callable[[float], None] = time.sleep) -> list[str]:
    """Send `message` to every webhook subscribed to its event. Returns warnings (never raises).
    Returns within `budget` seconds (default PAUSECTL_NOTIFY_BUDGET or 15)."""
    environ = os.environ if environ is None else environ
    hooks = _hooks_for(cfg_notify, message.event)
    if not hooks:
        return []
    if budget is None:
        try:
            budget = float(environ.get("PAUSECTL_NOTIFY_BUDGET", DEFAULT_BUDGET))
        except ValueError:
            budget = DEFAULT_BUDGET
    deadline = time.monotonic() + max(0.1, budget)
    warnings: list[str] = []
    lock = threading.Lock()
    threads = []
    for i, hook in hooks:
        var = hook.get("url_env", "?")
        name = f"#{i} ({var})"
        url = (environ.get(var) or "").strip()
        if not url:
            warnings.append(f"notify: webhook {name}: environment variable {var} is not set; "
                            "skipped")
            continue
        if not url.lower().startswith(("https://", "http://")):
            warnings.append(f"notify: webhook {name}: {var} is not an http(s) URL; skipped")
            continue
        body = message.slack_body() if hook.get("format") == "slack" else message.json_body()
        timeout = float(hook.get("timeout") or DEFAULT_TIMEOUT)
        retries = int(hook.get("retries", DEFAULT_RETRIES))

        def run(name=name, url=url, body=body, timeout=timeout, retries=retries):
            try:
                w = _deliver(name, url, body, message.event, timeout, retries, deadline,
                             transport, sleep)
            except Exception as e:  # never let a notification break the command
                w = f"notify: webhook {name} failed: {type(e).__name__}: {_scrub(str(e), url)}"
            if w:
                with lock:
                    warnings.append(w)

        t = threading.Thread(target=run, name=f"pausectl-notify-{i}", daemon=True)
        t.start()
        threads.append((name, t))
    for name, t in threads:
        t.join(max(0.0, deadline - time.monotonic()) + 0.5)
        if t.is_alive():
            with lock:
                warnings.append(f"notify: webhook {name} still pending after {budget:g}s; "
                                "given up")
    return warnings


def warn(warnings: list[str]) -> None:
    import sys
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr, flush=True)


# ---- messages --------------------------------------------------------------------------------

def _s(paused) -> str:
    return "paused" if paused else "running"


def drift_message(report: dict) -> Message:
    env = report["environment"]
    drifted = report["drifted"]
    lines = [f"• {x['dag_id']}: live {_s(x['live_paused'])}, git says {_s(x['desired_paused'])} "
             f"({x['rule']}); {x['description']}" for x in drifted]
    if report.get("mode") == "enforce":
        lines.append(f"drift.mode is enforce: the next `pausectl apply {env}` reverts this")
    return Message("drift", env, f"pausectl: {len(drifted)} DAG(s) drifted from git in {env}",
                   "warning", lines,
                   {"drifted": [{k: x[k] for k in ("dag_id", "live_paused", "desired_paused",
                                                   "rule", "changed_by", "how", "when")}
                                for x in drifted],
                    "pending_git_changes": len(report.get("pending_git_changes") or []),
                    "mode": report.get("mode")})


_AUTO_OUTCOME = {"held": "held paused (drift.auto_paused: keep) until a human acts",
                 "released": "its rule changed in git since: the next apply unpauses it",
                 "enforced": "drift.auto_paused is enforce: the next apply unpauses it"}


def auto_pause_message(report: dict) -> Message:
    """Airflow paused these DAGs after failed runs; git wants them running."""
    env = report["environment"]
    items = report.get("auto_paused") or []
    lines = []
    for x in items:
        a = x["auto_paused"]
        runs = ", ".join(r["run_id"] for r in a["runs"][:3])
        lines.append(f"• {x['dag_id']}: {a['reason']} at {a['when']}"
                     f"{' (' + runs + ')' if runs else ''}; {_AUTO_OUTCOME[a['outcome']]}")
    return Message("auto_pause", env,
                   f"pausectl: {len(items)} DAG(s) auto-paused by Airflow in {env}", "warning",
                   lines,
                   {"auto_paused": [{"dag_id": x["dag_id"], "rule": x["rule"],
                                     **{k: x["auto_paused"][k] for k in
                                        ("when", "by", "outcome", "failed_runs", "runs")}}
                                    for x in items],
                    "policy": report.get("auto_paused_policy")})


def apply_message(env: str, plan, status: str, changed: int, gates: list | None = None,
                  errors: Mapping | None = None) -> Message:
    gates = gates or []
    failed_gate = next((g for g in gates if not g.get("passed")), None)
    changes = plan.changes if plan is not None else []      # None: a resumed apply
    lines = [f"• {c.action} {c.dag_id} ({c.rule}){': ' + c.reason if c.reason else ''}"
             for c in changes]
    if status in (ApplyStatus.ROLLED_BACK, ApplyStatus.HALTED):
        what = "rolled back" if status == ApplyStatus.ROLLED_BACK else "halted"
        title = f"pausectl: health gate failed in {env}; apply {what}"
        if failed_gate:
            lines.insert(0, f"gate: {failed_gate.get('message')}")
        return Message("gate_failure", env, title, "error", lines,
                       {"status": status, "changed": changed, "gates": gates})
    if status == ApplyStatus.FAILED:
        title = f"pausectl: apply failed in {env} ({len(errors or {})} error(s))"
        lines = [f"• {d}: {e}" for d, e in sorted((errors or {}).items())] + lines
        return Message("apply", env, title, "error", lines,
                       {"status": status, "changed": changed, "errors": dict(errors or {})})
    s = plan.summary() if plan is not None else {}
    title = f"pausectl: applied {changed} change(s) in {env}"
    if s:
        title += f" ({s['pause']} paused, {s['unpause']} unpaused)"
    return Message("apply", env, title, "info", lines, {"status": status, "changed": changed,
                                                        "summary": s, "gates": gates})


def emergency_message(env: str, action: str, reason: str | None = None,
                      owner: str | None = None, count: int | None = None,
                      detail: str | None = None) -> Message:
    if action == "pause":
        title = f"pausectl: EMERGENCY pause in {env}"
        lines = [f"reason: {reason}" if reason else "", f"owner: {owner}" if owner else "",
                 f"{count} DAG(s) paused" if count is not None else "", detail or ""]
        sev = "error"
    else:
        title = f"pausectl: emergency in {env} recovered"
        lines = [f"{count} DAG(s) put back" if count is not None else "", detail or ""]
        sev = "info"
    return Message("emergency", env, title, sev, [ln for ln in lines if ln],
                   {"action": action, "reason": reason, "owner": owner, "count": count})


def notify_drift(cfg, report: dict, **kw) -> list[str]:
    """`drift` for manual changes, `auto_pause` for Airflow's own pauses (each if any)."""
    warnings = []
    if report.get("drifted"):
        warnings += send(cfg.notify, drift_message(report), **kw)
    if report.get("auto_paused"):
        warnings += send(cfg.notify, auto_pause_message(report), **kw)
    return warnings


def notify_apply(cfg, env: str, plan, status: str, changed: int, gates=None, errors=None,
                 **kw) -> list[str]:
    if status == ApplyStatus.NOTHING:
        return []
    return send(cfg.notify, apply_message(env, plan, status, changed, gates, errors), **kw)


def notify_emergency(cfg, env: str, action: str, **fields: Any) -> list[str]:
    return send(cfg.notify, emergency_message(env, action, **fields))


def notify_hold(cfg, env: str, action: str, holds: list[tuple[str, str]]) -> list[str]:
    """`hold`: a `pausectl hold` placed, released, or expired (apply/holds_flow.py);
    `holds`: (dag_id, description) pairs."""
    title = {"hold": f"pausectl: {len(holds)} DAG(s) held in {env}",
             "release": f"pausectl: {len(holds)} hold(s) released in {env}",
             "expire": f"pausectl: {len(holds)} hold(s) ended in {env}; git applies again"}[action]
    return send(cfg.notify, Message("hold", env, title, "warning" if action == "hold" else "info",
                                    [f"{d}: {text}" for d, text in holds],
                                    {"action": action, "dag_ids": [d for d, _ in holds]}))
