"""Timestamps, durations and maintenance windows (cron + duration + time zone)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from functools import lru_cache

_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?$")
MAX_DURATION = timedelta(days=366)   # windows and `--next`: a year covers every real schedule
# Instants pausectl accepts (until, from, --at): far enough for "forever", near enough that
# arithmetic (a horizon, a forgotten-pause age, a time zone shift) never leaves datetime's range.
MIN_TIME = datetime(1970, 1, 1, tzinfo=timezone.utc)
MAX_TIME = datetime(9000, 1, 1, tzinfo=timezone.utc)
CRON_ALIASES = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")


class TimeRangeError(ValueError):
    """A well-formed time or duration outside what pausectl accepts."""


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def parse_timestamp(text: str) -> datetime:
    """ISO 8601 date or date-time; a missing zone means UTC. Raises ValueError."""
    s = text.strip()
    if len(s) > 64:
        raise ValueError("timestamp too long")
    if s.endswith(("Z", "z")):
        s = s[:-1] + "+00:00"
    dt = datetime.fromisoformat(s)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    try:
        in_range = MIN_TIME <= dt < MAX_TIME
    except OverflowError:    # 9999-12-31T23:59-01:00 cannot even be compared
        in_range = False
    if not in_range:
        raise TimeRangeError(f"timestamp {text.strip()!r} is out of range (use a time from "
                             f"{MIN_TIME.year} to before {MAX_TIME.year})")
    return dt


def iso(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def parse_duration(text: str) -> timedelta:
    """`2h`, `30m`, `1h30m`, `1d`, at most 366d. Raises ValueError."""
    m = _DURATION.match(text.strip()) if len(text) <= 32 else None
    if not m or not any(m.groups()):
        raise ValueError(f"bad duration {text!r} (use e.g. 2h, 30m, 1h30m, 1d)")
    d, h, mi = (int(x) if x else 0 for x in m.groups())
    minutes = d * 1440 + h * 60 + mi       # ints first: timedelta(days=10**20) overflows
    if minutes <= 0:
        raise ValueError(f"duration {text!r} must be positive")
    if minutes > MAX_DURATION.total_seconds() // 60:
        raise TimeRangeError(f"duration {text!r} is longer than {MAX_DURATION.days}d")
    return timedelta(minutes=minutes)


@lru_cache(maxsize=256)
def zone(name: str):
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError
    # ZoneInfo opens a file named by the key: only IANA-shaped names reach it (a directory
    # like "Europe" raised IsADirectoryError, a 5,000-character name ENAMETOOLONG)
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+){0,3}",
                                                     name) or len(name) > 64:
        raise ValueError(f"unknown time zone {name!r}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(f"unknown time zone {name!r}") from None


def check_cron(expr: str) -> None:
    """A 5-field cron expression (minute hour day month weekday) or an @alias (@hourly,
    @daily, @midnight, @weekly, @monthly, @yearly, @annually) that fires; ValueError."""
    from croniter import CroniterError, croniter
    text = expr.strip()
    fields = text.split()
    if text.lower() == "@reboot":
        raise ValueError("cron @reboot has no time of day to open a window at (use e.g. "
                         "@daily or '0 2 * * *')")
    if text.startswith("@"):
        if text.lower() not in CRON_ALIASES:
            raise ValueError(f"bad cron expression {expr!r} (aliases: "
                             f"{', '.join(CRON_ALIASES)})")
    elif len(fields) != 5:
        raise ValueError(f"bad cron expression {expr!r} (use 5 fields: minute hour day month "
                         "weekday, e.g. '0 2 * * SUN', or @daily/@weekly/...)")
    if not croniter.is_valid(text):
        raise ValueError(f"bad cron expression {expr!r}")
    # a valid cron may still never fire (`0 0 30 2 *`): 29 February fires within 8 years
    try:
        croniter(text, datetime(2000, 1, 1), max_years_between_matches=9).get_next(datetime)
    except (CroniterError, ValueError, OverflowError):
        raise ValueError(f"cron expression {expr!r} never fires (no such date)") from None


# ---- wall-clock windows, DST-correct ------------------------------------------------------
#
# A window is `cron` + `duration` on the wall clock of its time zone:
# - the cron fires at local wall-clock times: 02:00 Europe/Berlin stays 02:00 all year;
# - a window starts at the first instant the clock shows the fire time, and ends at the first
#   instant after that at which the clock shows fire time + duration (or later). So
#   `0 19 * * FRI` + `2d13h` always ends Monday 08:00 local, and `0 2 * * SUN` + `2h` covers
#   02:00-04:00 on the clock: 3 real hours on the night the clocks go back (the hour
#   02:00-03:00 passes twice), and the fire never repeats in the second pass;
# - a fire time the clocks skip (spring forward: 02:30 on the night 02:00 -> 03:00) moves the
#   whole window to when the clock resumes, by the amount skipped: 02:30 + 1h becomes
#   03:00-04:00 summer time, and no window is lost;
# - start inclusive, end exclusive. All returned instants are UTC.

_UTC = timezone.utc


def local_to_utc(naive: datetime, tz) -> datetime:
    """The first instant at which the clock of `tz` shows `naive` (its first occurrence when
    the clocks go back), or, when the clocks skip it, the instant they resume."""
    a = naive.replace(tzinfo=tz, fold=0)
    b = naive.replace(tzinfo=tz, fold=1)
    ua, ub = a.astimezone(_UTC), b.astimezone(_UTC)
    if ua == ub:
        return ua
    lo, hi = (ua, ub) if ua < ub else (ub, ua)
    if lo.astimezone(tz).replace(tzinfo=None) == naive:
        return lo                          # shown twice (fall back): the first time
    # skipped (spring forward): the first instant whose wall time is at or after `naive`
    lo_s, hi_s = int(lo.timestamp()), int(hi.timestamp()) + 1
    while lo_s < hi_s:
        mid = (lo_s + hi_s) // 2
        if datetime.fromtimestamp(mid, tz).replace(tzinfo=None) >= naive:
            hi_s = mid
        else:
            lo_s = mid + 1
    return datetime.fromtimestamp(lo_s, _UTC)


def window_of(fire: datetime, duration: timedelta, tz) -> tuple[datetime, datetime]:
    """(start, end) in UTC of the window of wall-clock fire time `fire` (naive, local)."""
    start = local_to_utc(fire, tz)
    shift = _wall(start, tz) - fire        # > 0 only when the clocks skipped `fire`
    return start, local_to_utc(fire + shift + duration, tz)


def _wall(at: datetime, tz) -> datetime:
    return at.astimezone(tz).replace(tzinfo=None)


def _latest_wall_at_or_before(at: datetime, tz) -> datetime:
    """The latest wall time whose first occurrence is at or before `at`: the wall time of `at`,
    or up to one DST shift later when `at` lies in the second pass of a repeated hour."""
    wall = _wall(at, tz)
    first = local_to_utc(wall, tz)
    if first >= at:
        return wall
    # `at` is in the second pass: walls up to the end of the repeated hour qualify
    lo_s, hi_s = 0, int((at - first).total_seconds())
    while lo_s < hi_s:
        mid = (lo_s + hi_s + 1) // 2
        if local_to_utc(wall + timedelta(seconds=mid), tz) <= at:
            lo_s = mid
        else:
            hi_s = mid - 1
    return wall + timedelta(seconds=lo_s)


def window_start_at(cron: str, duration: timedelta, tz_name: str, at: datetime) -> datetime | None:
    """The start (UTC) of the window in force at `at`, or None.

    Only the latest start at or before `at` can be in force: starts and ends both move forward
    with the cron's wall-clock fire times, so any earlier window ends no later.
    """
    from croniter import croniter
    tz = zone(tz_name)
    at = at.astimezone(_UTC)
    hi = _latest_wall_at_or_before(at, tz)
    it = croniter(cron, hi + timedelta(seconds=1))
    for _ in range(10_000):
        start, end = window_of(it.get_prev(datetime), duration, tz)
        if start <= at:
            return start if at < end else None
    return None  # pragma: no cover (a cron firing more than 10,000 times in one DST shift)


def window_intervals(cron: str, duration: timedelta, tz_name: str, lo: datetime,
                     hi: datetime, limit: int = 100_000) -> list[tuple[datetime, datetime]]:
    """(start, end) in UTC of every window of this cron overlapping [lo, hi), in order."""
    from croniter import croniter
    tz = zone(tz_name)
    lo, hi = lo.astimezone(_UTC), hi.astimezone(_UTC)
    out: list[tuple[datetime, datetime]] = []
    # a window in force at `lo` started at most `duration` (plus a DST shift) before it
    begin = _latest_wall_at_or_before(lo, tz) - duration - timedelta(hours=3)
    it = croniter(cron, begin)
    while len(out) < limit:
        start, end = window_of(it.get_next(datetime), duration, tz)
        if start >= hi:
            break
        if end > lo and end > start and (not out or out[-1] != (start, end)):
            out.append((start, end))
    return out


def next_fires(cron: str, tz_name: str, after: datetime, until: datetime, limit: int = 1000):
    """Cron fire times (window starts) in (after, until], in UTC."""
    from croniter import croniter
    tz = zone(tz_name)
    after, until = after.astimezone(_UTC), until.astimezone(_UTC)
    it = croniter(cron, _latest_wall_at_or_before(after, tz))
    out: list[datetime] = []
    while len(out) < limit:
        t = local_to_utc(it.get_next(datetime), tz)
        if t > until:
            break
        if t > after and (not out or out[-1] != t):
            out.append(t)
    return out
