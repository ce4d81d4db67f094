"""Timestamps, durations and maintenance windows (cron + duration + time zone)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from functools import lru_cache

_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?$")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def parse_timestamp(text: str) -> datetime:
    """ISO 8601 date or date-time; a missing zone means UTC. Raises ValueError."""
    s = text.strip()
    if s.endswith(("Z", "z")):
        s = s[:-1] + "+00:00"
    dt = datetime.fromisoformat(s)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt


def iso(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def parse_duration(text: str) -> timedelta:
    """`2h`, `30m`, `1h30m`, `1d`. Raises ValueError."""
    m = _DURATION.match(text.strip())
    if not m or not any(m.groups()):
        raise ValueError(f"bad duration {text!r} (use e.g. 2h, 30m, 1h30m, 1d)")
    d, h, mi = (int(x) if x else 0 for x in m.groups())
    td = timedelta(days=d, hours=h, minutes=mi)
    if td <= timedelta(0):
        raise ValueError(f"duration {text!r} must be positive")
    return td


@lru_cache(maxsize=256)
def zone(name: str):
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}") from None


def check_cron(expr: str) -> None:
    from croniter import croniter
    if not croniter.is_valid(expr):
        raise ValueError(f"bad cron expression {expr!r}")


def window_start_at(cron: str, duration: timedelta, tz_name: str, at: datetime) -> datetime | None:
    """The start of the window in force at `at` (start inclusive, end exclusive), or None.

    The latest cron fire at or before `at` is the only candidate: any earlier window ends no later.
    Fire times are computed in the window's own zone so 02:00 Europe/Berlin stays 02:00 across DST.
    """
    from croniter import croniter
    tz = zone(tz_name)
    local = at.astimezone(tz)
    it = croniter(cron, local + timedelta(seconds=1))
    start = it.get_prev(datetime)
    if start.tzinfo is None:
        start = start.replace(tzinfo=tz)
    if start <= at < start + duration:
        return start
    return None


def next_fires(cron: str, tz_name: str, after: datetime, until: datetime, limit: int = 1000):
    """Cron fire times in (after, until], in UTC."""
    from croniter import croniter
    tz = zone(tz_name)
    it = croniter(cron, after.astimezone(tz))
    out = []
    while len(out) < limit:
        t = it.get_next(datetime)
        if t.tzinfo is None:
            t = t.replace(tzinfo=tz)
        if t > until:
            break
        out.append(t.astimezone(timezone.utc))
    return out
