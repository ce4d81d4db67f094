"""doctor's vocabulary: a Finding, the collector every check adds to, and shared helpers."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from reconciler.core.timeutil import iso, parse_timestamp, window_intervals
from reconciler.live.base import Diagnostics

SEVERITIES = ("blocking", "warning", "info")


@dataclass
class Finding:
    code: str
    severity: str
    title: str
    evidence: list[str] = field(default_factory=list)
    fix: str | None = None


class Findings:
    """What the checks of one diagnosis share: the inputs, and what they found."""

    def __init__(self, ctx, backend, at: datetime):
        self.ctx, self.backend, self.at = ctx, backend, at
        self.findings: list[Finding] = []
        self.notes: list[str] = []           # checks that could not run, and why

    def add(self, code, severity, title, evidence=(), fix=None) -> None:
        self.findings.append(Finding(code, severity, title, list(evidence), fix))


def ts(value) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value
    try:
        return parse_timestamp(str(value))
    except ValueError:
        return None


def ago(then: datetime | None, now: datetime) -> str:
    if then is None:
        return "at an unknown time"
    secs = int((now - then).total_seconds())
    if secs < 0:
        return f"at {iso(then)}"
    for unit, n in (("d", 86400), ("h", 3600), ("m", 60)):
        if secs >= n:
            return f"{secs // n}{unit} ago ({iso(then)})"
    return f"{secs}s ago ({iso(then)})"


def rule_text(rule) -> str:
    parts = [f"{rule.label()} ({rule.where})"]
    if rule.reason:
        parts.append(f"reason {rule.reason!r}")
    if rule.owner:
        parts.append(f"owner {rule.owner}")
    if rule.ticket:
        parts.append(f"ticket {rule.ticket}")
    if rule.until:
        parts.append(f"until {iso(rule.until)}")
    return ", ".join(parts)


def windows(rule, at: datetime) -> tuple[tuple[datetime, datetime] | None,
                                          tuple[datetime, datetime] | None]:
    """(the window of `rule` open at `at`, the next one to open after `at`)."""
    current = nxt = None
    for w in rule.windows:
        for start, end in window_intervals(w.cron, w.duration, w.timezone, at,
                                           at + timedelta(days=400), limit=3):
            if start <= at < end:
                if current is None or end > current[1]:
                    current = (start, end)
            elif start > at and (nxt is None or start < nxt[0]):
                nxt = (start, end)
                break
    return current, nxt


def capability(backend, name: str):
    """An optional backend method (dag_details, import_errors, task_instances: the
    Diagnostics capability), else None."""
    return getattr(backend, name) if isinstance(backend, Diagnostics) else None


def backend_kind(backend) -> str:
    return {"SnapshotBackend": "snapshot", "AirflowApiBackend": "airflow-api",
            "DagModelBackend": "dagmodel"}.get(type(backend).__name__, type(backend).__name__)
