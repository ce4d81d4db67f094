"""Maintenance windows on the wall clock, across both DST changes in two time zones.

Exact instants are spelled out (UTC); a brute-force simulation of the clock minute by minute
checks the same rules independently of zoneinfo's fold handling. `plan --at` is checked at the
boundaries through the real CLI (start inclusive, end exclusive).
"""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from reconciler.core.timeutil import (check_cron, local_to_utc, next_fires, window_intervals,
                                 window_start_at)

try:
    from helpers import BASE_FILES
except ImportError:  # pragma: no cover
    from tests.helpers import BASE_FILES

UTC = timezone.utc
BERLIN = "Europe/Berlin"
NY = "America/New_York"


def t(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def H(hours: float) -> timedelta:
    return timedelta(hours=hours)


# ---- exact windows --------------------------------------------------------------------------
# 2026: Berlin springs forward Sun 29 Mar 01:00 UTC (02:00 CET -> 03:00 CEST) and falls back
# Sun 25 Oct 01:00 UTC (03:00 CEST -> 02:00 CET); New York springs forward Sun 8 Mar 07:00 UTC
# (02:00 EST -> 03:00 EDT) and falls back Sun 1 Nov 06:00 UTC (02:00 EDT -> 01:00 EST).

CASES = [
    # (cron, duration, zone, a day to look at, [(start, end) in UTC])
    ("0 2 * * SUN", H(2), BERLIN, "2026-11-29", [("2026-11-29T01:00", "2026-11-29T03:00")]),
    ("0 2 * * SUN", H(2), BERLIN, "2026-07-05", [("2026-07-05T00:00", "2026-07-05T02:00")]),
    # spring forward: 02:00 is skipped; the window moves to 03:00 CEST and keeps its 2 hours
    ("0 2 * * SUN", H(2), BERLIN, "2026-03-29", [("2026-03-29T01:00", "2026-03-29T03:00")]),
    # fall back: 02:00 CEST until the clock shows 04:00 CET, 3 real hours, no second start
    ("0 2 * * SUN", H(2), BERLIN, "2026-10-25", [("2026-10-25T00:00", "2026-10-25T03:00")]),
    # a window ending inside the repeated hour ends when the clock first shows its end
    ("0 1 * * *", timedelta(minutes=90), BERLIN, "2026-10-25",
     [("2026-10-24T23:00", "2026-10-25T00:30")]),
    # a window starting inside the repeated hour starts at its first pass
    ("45 2 * * *", timedelta(minutes=30), BERLIN, "2026-10-25",
     [("2026-10-25T00:45", "2026-10-25T02:15")]),
    # a window wholly inside the skipped hour is moved, not lost
    ("30 2 * * *", timedelta(minutes=20), BERLIN, "2026-03-29",
     [("2026-03-29T01:00", "2026-03-29T01:20")]),
    # New York
    ("30 1 * * *", H(1), NY, "2026-11-01", [("2026-11-01T05:30", "2026-11-01T07:30")]),
    ("30 1 * * *", H(1), NY, "2026-11-02", [("2026-11-02T06:30", "2026-11-02T07:30")]),
    ("30 1 * * *", H(1), NY, "2026-03-08", [("2026-03-08T06:30", "2026-03-08T07:00")]),
    ("30 2 * * *", H(1), NY, "2026-03-08", [("2026-03-08T07:00", "2026-03-08T08:00")]),
    ("30 2 * * *", H(1), NY, "2026-11-01", [("2026-11-01T07:30", "2026-11-01T08:30")]),
    ("30 2 * * *", H(1), NY, "2026-07-01", [("2026-07-01T06:30", "2026-07-01T07:30")]),
    # a weekend budget always ends Monday 08:00 local, across both changes
    ("0 19 * * FRI", timedelta(days=2, hours=13), NY, "2026-03-07",
     [("2026-03-07T00:00", "2026-03-09T12:00")]),
    ("0 19 * * FRI", timedelta(days=2, hours=13), NY, "2026-10-31",
     [("2026-10-30T23:00", "2026-11-02T13:00")]),
    ("0 19 * * FRI", timedelta(days=2, hours=13), BERLIN, "2026-03-28",
     [("2026-03-27T18:00", "2026-03-30T06:00")]),
    ("0 19 * * FRI", timedelta(days=2, hours=13), BERLIN, "2026-10-24",
     [("2026-10-23T17:00", "2026-10-26T07:00")]),
]


def _windows_near(cron, duration, tz, s0):
    """Windows starting within 12 hours of s0."""
    got = window_intervals(cron, duration, tz, s0 - H(12), s0 + H(12))
    return [w for w in got if abs(w[0] - s0) < H(12)]


@pytest.mark.parametrize("cron,duration,tz,day,want", CASES,
                         ids=[f"{c[2].split('/')[-1]}-{c[0].replace(' ', '_')}-{c[3]}" for c in CASES])
def test_exact_windows(cron, duration, tz, day, want):
    want = [(t(s), t(e)) for s, e in want]
    assert _windows_near(cron, duration, tz, want[0][0]) == want
    for start, end in want:
        # start inclusive, end exclusive, and window_start_at agrees with window_intervals
        assert window_start_at(cron, duration, tz, start) == start
        assert window_start_at(cron, duration, tz, start + (end - start) / 2) == start
        assert window_start_at(cron, duration, tz, end - timedelta(seconds=1)) == start
        assert window_start_at(cron, duration, tz, end) is None
        assert window_start_at(cron, duration, tz, start - timedelta(seconds=1)) is None


def test_fall_back_second_pass_is_inside_the_window_not_a_new_one():
    # 02:50 CET (second pass, 01:50 UTC) lies between 02:45 CEST and the clock's 03:15
    assert window_start_at("45 2 * * *", timedelta(minutes=30), BERLIN,
                           t("2026-10-25T01:50")) == t("2026-10-25T00:45")
    # the old implementation gave 00:45 UTC here for a 30-minute window starting at 00:45 UTC
    # via wall-clock arithmetic, and started a second window in the repeated hour
    assert next_fires("45 2 * * *", BERLIN, t("2026-10-24T12:00"), t("2026-10-25T12:00")) == \
        [t("2026-10-25T00:45")]
    assert next_fires("0 2 * * SUN", BERLIN, t("2026-10-24T12:00"), t("2026-10-26T12:00")) == \
        [t("2026-10-25T00:00")]


def test_local_to_utc_skipped_and_repeated():
    tz = ZoneInfo(BERLIN)
    assert local_to_utc(datetime(2026, 3, 29, 2, 30), tz) == t("2026-03-29T01:00")
    assert local_to_utc(datetime(2026, 10, 25, 2, 30), tz) == t("2026-10-25T00:30")
    assert local_to_utc(datetime(2026, 10, 25, 3, 0), tz) == t("2026-10-25T02:00")
    ny = ZoneInfo(NY)
    assert local_to_utc(datetime(2026, 3, 8, 2, 15), ny) == t("2026-03-08T07:00")
    assert local_to_utc(datetime(2026, 11, 1, 1, 15), ny) == t("2026-11-01T05:15")


def test_hourly_windows_tile_the_repeated_hour():
    got = window_intervals("0 * * * *", H(1), BERLIN, t("2026-10-24T22:00"), t("2026-10-25T04:00"))
    # no instant of the night is outside every window
    u = t("2026-10-24T22:00")
    while u < t("2026-10-25T04:00"):
        assert any(s <= u < e for s, e in got), u
        assert window_start_at("0 * * * *", H(1), BERLIN, u) is not None, u
        u += timedelta(minutes=5)


# ---- an independent check: simulate the clock minute by minute ----------------------------

def _brute(cron: str, duration: timedelta, tz_name: str, lo: datetime, hi: datetime):
    """Instants (each minute in [lo, hi)) inside some window, by the definition: a fire time n
    starts when the clock's high-water mark first reaches n; it ends when the mark first
    reaches n + (mark at start - n) + duration."""
    import bisect
    from croniter import croniter
    tz = ZoneInfo(tz_name)
    start_sim = lo - duration - H(4)
    minutes = int((hi + duration + H(4) - start_sim).total_seconds() // 60)
    instants, marks = [], []        # each minute, and the highest wall time shown so far
    mark = None
    for i in range(minutes + 1):
        u = start_sim + timedelta(minutes=i)
        w = u.astimezone(tz).replace(tzinfo=None)
        mark = w if mark is None or w > mark else mark
        instants.append(u)
        marks.append(mark)

    def first_reach(n):
        i = bisect.bisect_left(marks, n)
        return (instants[i], marks[i]) if i < len(marks) else (None, None)

    it = croniter(cron, marks[0])
    windows = []
    while True:
        n = it.get_next(datetime)          # wall-clock fire times (naive)
        if n > marks[-1]:
            break
        s, ms = first_reach(n)
        e, _ = first_reach(n + (ms - n) + duration)
        windows.append((s, e))
    return {u for u in instants if lo <= u < hi and any(s <= u < e for s, e in windows)}


@pytest.mark.parametrize("tz,day", [(BERLIN, "2026-03-29"), (BERLIN, "2026-10-25"),
                                    (NY, "2026-03-08"), (NY, "2026-11-01")])
@pytest.mark.parametrize("cron,minutes", [("0 2 * * *", 120), ("30 1 * * *", 60),
                                          ("45 2 * * *", 30), ("*/40 1-3 * * *", 25)])
def test_brute_force_agrees_around_dst(tz, day, cron, minutes):
    lo = t(day + "T00:00") - H(1)
    hi = t(day + "T00:00") + H(9)
    duration = timedelta(minutes=minutes)
    want = _brute(cron, duration, tz, lo, hi)
    got = set()
    u = lo
    while u < hi:
        if window_start_at(cron, duration, tz, u) is not None:
            got.add(u)
        u += timedelta(minutes=1)
    assert got == want
    # and window_intervals describes the same instants
    iv = window_intervals(cron, duration, tz, lo, hi)
    assert {u for u in want} == {u for u in (lo + timedelta(minutes=i) for i in
                                             range(int((hi - lo).total_seconds() // 60)))
                                 if any(s <= u < e for s, e in iv)}


def test_random_instants_agree_with_intervals():
    rng = random.Random(7)
    for tz in (BERLIN, NY):
        for cron, dur in (("0 2 * * SUN", H(2)), ("15 */3 * * *", H(4)), ("0 19 * * 1-5", H(13))):
            lo, hi = t("2026-03-01T00:00"), t("2026-04-10T00:00")
            iv = window_intervals(cron, dur, tz, lo, hi)
            for _ in range(150):
                u = lo + timedelta(seconds=rng.randrange(int((hi - lo).total_seconds())))
                inside = [s for s, e in iv if s <= u < e]
                got = window_start_at(cron, dur, tz, u)
                assert (got is not None) == bool(inside), (tz, cron, u)
                if got is not None:
                    assert got == max(inside)


def test_cron_needs_five_fields():
    check_cron("0 2 * * SUN")
    check_cron("@daily")
    for bad in ("0 2 * * SUN 5", "0 0 2 * * SUN", "every sunday", "0 25 * * *"):
        with pytest.raises(ValueError, match="bad cron"):
            check_cron(bad)


# ---- rules: overlapping windows, windows with until/from ----------------------------------

def _rule(windows, until=None, from_=None):
    from reconciler.state.loader import Rule, Window
    from reconciler.core.timeutil import parse_duration
    ws = tuple(Window(c, parse_duration(d), tz, "f:1") for c, d, tz in windows)
    return Rule(layer="group", name="g", paused=True, where="f:1", reason="r", owner="o",
                windows=ws, until=until, from_=from_)


def test_overlapping_windows_union():
    r = _rule([("0 1 * * *", "2h", "UTC"), ("0 2 * * *", "2h", "UTC")])
    day = "2026-06-01"
    assert r.inactive_reason(t(day + "T00:59:59")) is not None
    for at in ("T01:00", "T02:00", "T02:59:59", "T03:30", "T03:59:59"):
        assert r.inactive_reason(t(day + at)) is None, at
    assert r.inactive_reason(t(day + "T04:00")) == "outside its maintenance windows"


def test_self_overlapping_cron_is_continuous():
    r = _rule([("0 */2 * * *", "3h", BERLIN)])
    u = t("2026-10-24T20:00")
    while u < t("2026-10-25T06:00"):
        assert r.inactive_reason(u) is None, u
        u += timedelta(minutes=10)


def test_until_cuts_a_window_short_and_from_starts_late():
    # Berlin fall-back window 00:00-03:00 UTC; until 01:30 UTC ends the rule mid-window
    r = _rule([("0 2 * * SUN", "2h", BERLIN)], until=t("2026-10-25T01:30"))
    assert r.inactive_reason(t("2026-10-25T01:29:59")) is None
    assert r.inactive_reason(t("2026-10-25T01:30")).startswith("expired")
    r = _rule([("0 2 * * SUN", "2h", BERLIN)], from_=t("2026-10-25T01:30"))
    assert r.inactive_reason(t("2026-10-25T01:29:59")).startswith("not yet in force")
    assert r.inactive_reason(t("2026-10-25T01:30")) is None
    assert r.inactive_reason(t("2026-10-25T03:00")) == "outside its maintenance windows"


# ---- plan --at at the boundaries, through the CLI and the testing kit -------------------------
# (the state repo comes from reconciler.testing's pausectl_state fixture, the pytest plugin
# users get; its verdict must agree with the CLI's plan at every boundary)

PLAN_PROD = """\
environment: prod
dags:
  billing_daily: {paused: false, reason: "runs", owner: team-billing}
groups:
  - name: etl-maintenance
    match: {tags: [etl]}
    paused: true
    reason: "warehouse maintenance"
    owner: data-eng
    windows:
      - {cron: "0 2 * * SUN", duration: 2h, timezone: Europe/Berlin}
      - {cron: "30 1 * * SUN", duration: 1h, timezone: America/New_York}
    until: 2026-11-01T06:15:00Z
"""


@pytest.fixture
def window_repo(pausectl_state):
    return pausectl_state({**BASE_FILES, "prod.yaml": PLAN_PROD}, dags={"prod": [
        {"dag_id": "etl_orders", "tags": ["etl"], "owners": ["data-eng"]},
        {"dag_id": "billing_daily", "tags": ["billing"], "owners": ["team-billing"]}]})


def _plan(cwd, at, capsys, monkeypatch):
    from reconciler.cli.main import main
    monkeypatch.chdir(cwd)
    with pytest.raises(SystemExit) as e:
        main(["plan", "prod", "--at", at, "--format", "json"])
    out = capsys.readouterr().out
    assert e.value.code == 0, out
    return {c["dag_id"]: c["action"] for c in json.loads(out)["changes"]}


@pytest.mark.parametrize("at,want", [
    # Berlin fall-back Sunday: 00:00-03:00 UTC
    ("2026-10-24T23:59:59Z", {}),
    ("2026-10-25T00:00:00Z", {"etl_orders": "pause"}),
    ("2026-10-25T02:59:59Z", {"etl_orders": "pause"}),
    ("2026-10-25T03:00:00Z", {}),
    # Berlin spring-forward Sunday: 01:00-03:00 UTC
    ("2026-03-29T00:59:59Z", {}),
    ("2026-03-29T01:00:00Z", {"etl_orders": "pause"}),
    ("2026-03-29T03:00:00Z", {}),
    # New York spring-forward Sunday: 01:30 EST until the clock shows 02:30 (skipped) = 03:00 EDT
    ("2026-03-08T06:29:59Z", {}),
    ("2026-03-08T06:30:00Z", {"etl_orders": "pause"}),
    ("2026-03-08T06:59:59Z", {"etl_orders": "pause"}),
    ("2026-03-08T07:00:00Z", {}),
    # New York fall-back Sunday: 05:30-07:30 UTC, but `until` ends the rule at 06:15
    ("2026-11-01T05:29:59Z", {}),
    ("2026-11-01T05:30:00Z", {"etl_orders": "pause"}),
    ("2026-11-01T06:14:59Z", {"etl_orders": "pause"}),
    ("2026-11-01T06:15:00Z", {}),
])
def test_plan_at_boundaries(window_repo, at, want, capsys, monkeypatch):
    assert _plan(window_repo.root.parent, at, capsys, monkeypatch) == want
    if want:
        window_repo.assert_paused("prod", "etl_orders", at=at)
    else:
        window_repo.assert_running("prod", "etl_orders", at=at)
