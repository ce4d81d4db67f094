"""The impact preview (issue 15): what each flip of a plan will do in Airflow, a pure function
of the observation (the DAGs, their dependency edges, the ImpactEvidence read for the DAGs the
plan changes) and the time.

Pausing is not an on/off switch: running task instances finish, but tasks not yet queued are
never queued while paused, so running and queued runs stall; backfill runs stop (AF3); asset
events for a paused consumer are not queued and are lost; sensors downstream wait until their
timeout. Unpausing a DAG with `catchup` creates every missed run at once, and stalled runs and
backfills resume.

Catch-up runs are counted exactly where the schedule is a cron expression or preset (croniter,
which Airflow's own cron timetables use) or a fixed interval: from the next run Airflow has
stored (`next_dagrun_create_after` / `next_dagrun_run_after`, where the scheduler resumes)
through now, in the DAG's time zone, up to its end_date. With catchup off Airflow creates at
most the latest run. Other timetables (custom, `@continuous`) are shown as not counted.

At scale (issue 14) the count needs one details read per unpause on REST (catchup, end_date
and time zone are in no DAG listing), so they are capped (`impact.max_detail_reads`): the
unpauses most runs behind are read first, the rest are named in one note, never silently.
An unpause whose runs are not counted (not read, or a timetable that cannot be counted with
catchup not known off) is refused by the `safety.max_catchup_runs` guard, like one over it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Iterable, Mapping

from reconciler.core.timeutil import iso, parse_timestamp

MAX_COUNT = 10_000            # counting stops here ("more than"): a minutely DAG paused a week
_PRESETS = {"@hourly": "0 * * * *", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
            "@weekly": "0 0 * * 0", "@monthly": "0 0 1 * *", "@quarterly": "0 0 1 */3 *",
            "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *"}
_DELTA = re.compile(r"^(?:(\d{1,5}) days?, )?(\d{1,2}):(\d\d):(\d\d)$")


@dataclass(frozen=True)
class Catchup:
    """The runs an unpause creates: `runs` None when not countable (`basis` says why)."""

    runs: int | None
    basis: str
    first: str | None = None
    last: str | None = None
    exact: bool = True
    unbounded: bool = False     # not counted and catchup not known off: could be any number

    def to_json(self) -> dict:
        out = {"runs": self.runs, "exact": self.exact, "basis": self.basis,
               "first": self.first, "last": self.last}
        return {**out, "unbounded": True} if self.unbounded else out


@dataclass(frozen=True)
class DagImpact:
    dag_id: str
    action: str                               # pause | unpause
    running: int = 0
    queued: int = 0
    backfills: tuple[dict, ...] = ()
    consumers: tuple[dict, ...] = ()          # {dag_id, asset}: get no events (pause)
    missed: tuple[str, ...] = ()              # assets whose events this consumer loses (pause)
    sensors: tuple[dict, ...] = ()            # {dag_id, task_id, timeout}: will wait (pause)
    triggered: tuple[dict, ...] = ()          # {dag_id, task_id}: not triggered (pause)
    catchup: Catchup | None = None            # unpause
    notes: tuple[str, ...] = ()
    drained: bool = False                     # `paused: drain`: apply waits for the runs
    unread: bool = False                      # details not read (the cap): one plan note

    def phrases(self) -> list[str]:
        """One short phrase per thing to say; empty when the flip touches nothing."""
        out = []
        n = self.running + self.queued
        if n:
            what = f"{self.running} running, {self.queued} queued run(s)"
            out.append(f"{what} resume" if self.action == "unpause" else
                       f"{what}: the drain waits for them, up to its deadline" if self.drained
                       else f"{what} will stall until unpaused")
        for b in self.backfills:
            span = f"{b.get('from_date')}..{b.get('to_date')}"
            verb = "stops" if self.action == "pause" else "resumes"
            if self.action == "unpause" and b.get("is_paused"):
                verb = "stays paused (the backfill itself is paused)"
            out.append(f"backfill #{b.get('id')} ({span}) {verb}")
        if self.catchup is not None and not self.unread and \
                (self.catchup.runs or self.catchup.runs is None):
            c = self.catchup
            if c.runs is None:
                out.append(f"catch-up runs not counted: {c.basis}")
            elif c.runs == 1:
                out.append(f"creates 1 run at once ({c.basis}; {c.last})")
            else:
                more = "more than " if not c.exact else ""
                out.append(f"creates {more}{c.runs} runs at once ({c.basis}; "
                           f"{c.first} .. {c.last})")
        if self.sensors:
            unknown = any(s.get("task_id") and not s.get("timeout") for s in self.sensors)
            out.append("sensors will wait: " + ", ".join(
                f"{s['dag_id']}.{s['task_id'] or 'sensor'}"
                f"{' (timeout ' + _secs(s['timeout']) + ')' if s.get('timeout') else ''}"
                for s in self.sensors) + (
                " (until their timeout, which Airflow does not serialise; ExternalTaskSensor's "
                "default is 7 days)" if unknown else ""))
        if self.triggered:
            out.append("no longer triggers: " + ", ".join(t["dag_id"] for t in self.triggered))
        if self.consumers:
            out.append("asset consumers get no events: " + ", ".join(
                f"{c['dag_id']} ({c['asset']})" for c in self.consumers))
        if self.missed:
            out.append("asset events for it are lost while paused: " + ", ".join(self.missed))
        return out

    def to_json(self) -> dict:
        return {"dag_id": self.dag_id, "action": self.action, "running": self.running,
                "queued": self.queued, "backfills": [dict(b) for b in self.backfills],
                "consumers": [dict(c) for c in self.consumers], "missed_assets": list(self.missed),
                "sensors": [dict(s) for s in self.sensors],
                "triggered": [dict(t) for t in self.triggered],
                "catchup": self.catchup.to_json() if self.catchup else None,
                "notes": list(self.notes)}


@dataclass(frozen=True)
class Impact:
    """The preview of one plan; `levels`: the coordinated unpause order (dag_id lists, upstream
    first) when a dependency chain is unpaused, else empty."""

    dags: tuple[DagImpact, ...] = ()
    levels: tuple[tuple[str, ...], ...] = ()
    notes: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.shown() or len(self.levels) > 1 or self.notes or self.unread())

    def unread(self) -> list[str]:
        """The unpauses not previewed: their details were over impact.max_detail_reads."""
        return [d.dag_id for d in self.dags if d.unread]

    def uncounted(self) -> list[str]:
        """Unpauses whose catch-up runs could be any number (not read, or not countable with
        catchup not known off): the guard refuses them as it refuses those over its limit."""
        return [d.dag_id for d in self.dags if d.catchup is not None and d.catchup.unbounded]

    def shown(self) -> list[DagImpact]:
        return [d for d in self.dags if d.phrases()]

    def catchup_over(self, limit: int | None) -> list[tuple[str, int]]:
        """(dag_id, runs) of every unpause creating more than `limit` runs."""
        if limit is None:
            return []
        return [(d.dag_id, d.catchup.runs) for d in self.dags
                if d.catchup is not None and d.catchup.runs is not None and d.catchup.runs > limit]

    def to_json(self) -> dict:
        out = {"dags": [d.to_json() for d in self.shown()],
               "levels": [list(x) for x in self.levels] if len(self.levels) > 1 else [],
               "notes": list(self.notes)}
        unread = self.unread()
        return {**out, "not_previewed": unread} if unread else out

    @classmethod
    def of(cls, data) -> "Impact":
        """From a saved plan's `impact` (for the catch-up guard of `apply --plan`)."""
        if not isinstance(data, dict):
            return cls()
        dags = []
        for d in data.get("dags") or ():
            c = d.get("catchup") if isinstance(d, dict) else None
            runs = c.get("runs") if isinstance(c, dict) else None
            runs = runs if isinstance(runs, int) and not isinstance(runs, bool) else None
            if isinstance(d, dict) and isinstance(d.get("dag_id"), str):
                dags.append(DagImpact(d["dag_id"], str(d.get("action")), catchup=Catchup(
                    runs, str(c.get("basis", "")), unbounded=c.get("unbounded") is True)
                    if isinstance(c, dict) else None))
        dags += [_not_read(d) for d in data.get("not_previewed") or () if isinstance(d, str)]
        return cls(tuple(dags))


def _not_read(dag_id: str) -> DagImpact:
    return DagImpact(dag_id, "unpause", unread=True, catchup=Catchup(
        None, "not previewed (impact.max_detail_reads)", unbounded=True))


def _secs(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s}s"


def _zone(name: str | None):
    from zoneinfo import ZoneInfo
    try:
        return ZoneInfo(name) if name else timezone.utc
    except (ValueError, KeyError, OSError):
        return None


def _when(text: str | None) -> datetime | None:
    try:
        return parse_timestamp(text) if isinstance(text, str) and text else None
    except ValueError:
        return None


def _times(schedule: str):
    """(after(t, tz) -> iterator of the runs after t, latest(t, tz) -> the last run at or
    before t, description), or None if the schedule is not countable."""
    text = schedule.strip()
    cron = _PRESETS.get(text, text)
    from croniter import croniter
    if len(cron.split()) in (5, 6) and croniter.is_valid(cron):
        def after(t, tz):
            it = croniter(cron, t.astimezone(tz), max_years_between_matches=9)
            while True:
                yield it.get_next(datetime).astimezone(timezone.utc)

        def latest(t, tz):
            it = croniter(cron, (t + timedelta(seconds=1)).astimezone(tz),
                          max_years_between_matches=9)
            return it.get_prev(datetime).astimezone(timezone.utc)
        return after, latest, f"cron {cron}"
    m = _DELTA.match(text)
    if m:
        step = timedelta(days=int(m.group(1) or 0), hours=int(m.group(2)),
                         minutes=int(m.group(3)), seconds=int(m.group(4)))
        if step > timedelta(0):
            def after_delta(t, tz):
                while True:
                    t = t + step
                    yield t
            return after_delta, None, f"every {text}"
    return None


def catchup_runs(ev, at: datetime) -> Catchup | None:
    """The runs Airflow creates when this DAG is unpaused at `at` (None: no schedule)."""
    if ev is None or not ev.schedule:
        return None
    sched = ev.schedule.strip()
    low = sched.lower()
    if "asset" in low or "dataset" in low:
        return Catchup(0, "asset-triggered: runs on new asset events only")
    first = _when(ev.next_run_after)
    if first is None:
        return Catchup(0, "Airflow has no next run for it")
    if first > at:
        return Catchup(0, f"next run {iso(first)} is in the future")
    if sched == "@once":
        return Catchup(1, "@once", iso(first), iso(first))
    times = _times(sched)
    tz = _zone(ev.timezone)
    if times is None or tz is None:
        return Catchup(None, f"timetable {sched!r} is not a cron or interval schedule",
                       unbounded=ev.catchup is not False)
    after, latest, what = times
    where = f"{what} in {ev.timezone or 'UTC'}"
    end = _when(ev.end_date)
    limit = at if end is None or end > at else end
    if first > limit:
        return Catchup(0, f"end_date {iso(limit)} is before the next run")
    try:
        if ev.catchup is False:     # Airflow skips to the latest interval: one run
            last = latest(limit, tz) if latest is not None else first
            last = max(last, first)
            return Catchup(1, f"catchup off: only the latest run, {where}", iso(last), iso(last))
        n, last = 1, first
        for t in after(first, tz):
            if t > limit or n >= MAX_COUNT:
                break
            n, last = n + 1, t
    except (ValueError, OverflowError) as e:     # croniter: no date within 9 years, ...
        return Catchup(None, f"{where}: not counted ({e})", unbounded=ev.catchup is not False)
    basis = f"catchup on, {where}" if ev.catchup else f"catchup unknown, {where}"
    return Catchup(n, basis, iso(first), iso(last), exact=n < MAX_COUNT)


def unpause_levels(unpaused: Iterable[str], edges: Iterable) -> tuple[tuple[str, ...], ...]:
    """Coordinated unpause: the unpaused DAGs in dependency order, upstream first. Level k holds
    the DAGs whose longest chain of unpaused upstreams (through `edges`) has length k. A cycle
    is cut where it closes (its remaining DAGs go in the last level)."""
    ids = set(unpaused)
    ups: dict[str, set[str]] = {d: set() for d in ids}
    for e in edges:
        if e.producer in ids and e.consumer in ids and e.producer != e.consumer:
            ups[e.consumer].add(e.producer)
    level: dict[str, int] = {}
    remaining = set(ids)
    k = 0
    while remaining:
        ready = {d for d in remaining if not (ups[d] & remaining)} or set(remaining)
        for d in ready:
            level[d] = k
        remaining -= ready
        k += 1
    return tuple(tuple(sorted(d for d in ids if level[d] == i)) for i in range(k))


def compute(changes: Iterable, evidence: Mapping[str, object], edges: Iterable,
            at: datetime, notes: Iterable[str] = ()) -> Impact:
    """The preview of `changes` (anything with dag_id and action). `evidence`: dag_id ->
    live.base.ImpactEvidence; `edges`: AssetEdge / DagEdge values (cascade.all_edges)."""
    changes = list(changes)
    edges = list(edges)
    out = []
    for c in changes:
        action = getattr(c.action, "value", c.action)
        ev = evidence.get(c.dag_id)
        base = dict(dag_id=c.dag_id, action=action,
                    running=(ev.running or 0) if ev else 0, queued=(ev.queued or 0) if ev else 0,
                    backfills=tuple(ev.backfills or ()) if ev else (),
                    notes=tuple(ev.notes) if ev else ())
        if action == "unpause":
            out.append(_not_read(c.dag_id) if ev is not None and ev.unread else
                       DagImpact(**base, catchup=catchup_runs(ev, at)))
            continue
        sensors, triggered, consumers, missed = [], [], [], set()
        for e in edges:
            kind = getattr(e, "kind", None)
            if e.producer == c.dag_id and e.consumer != c.dag_id:
                if kind == "sensor" or (kind is None and e.asset is None):
                    sensors.append({"dag_id": e.consumer, "task_id": getattr(e, "task_id", None),
                                    "timeout": getattr(e, "timeout", None)})
                elif kind == "trigger":
                    triggered.append({"dag_id": e.consumer, "task_id": e.task_id})
                elif kind is None:
                    consumers.append({"dag_id": e.consumer, "asset": e.asset})
            elif e.consumer == c.dag_id and kind is None and e.asset:
                missed.add(e.asset)
        key = (lambda x: (x["dag_id"], str(x.get("task_id") or x.get("asset") or "")))
        out.append(DagImpact(**base, drained=bool(getattr(c, "drain", None)),
                             sensors=tuple(_uniq(sorted(sensors, key=key))),
                             triggered=tuple(_uniq(sorted(triggered, key=key))),
                             consumers=tuple(_uniq(sorted(consumers, key=key))),
                             missed=tuple(sorted(missed))))
    ups = [getattr(c, "dag_id") for c in changes if getattr(c.action, "value", c.action) == "unpause"]
    unread = [d.dag_id for d in out if d.unread]
    if unread:
        notes = (*notes, not_previewed_note(unread))
    return Impact(tuple(out), unpause_levels(ups, edges), tuple(notes))


def not_previewed_note(ids: list[str]) -> str:
    return (f"not previewed: {len(ids)} DAG(s) ({names(ids)}): their catch-up runs were not "
            "counted; raise impact.max_detail_reads in pausectl.yaml to count them")


def names(ids: list[str], most: int = 5) -> str:
    more = f" and {len(ids) - most} more" if len(ids) > most else ""
    return ", ".join(ids[:most]) + more


def detail_order(dags: Iterable, at: datetime) -> list[str]:
    """The unpauses (LiveDags about to be unpaused) whose catch-up the listing cannot tell:
    paused, with a schedule that is not asset-triggered and a next run not in the future (no
    next run, an asset schedule: no catch-up whatever catchup says). Oldest next run first:
    they create the most runs, so a cap leaves the smallest uncounted."""
    out = []
    for d in dags:
        summary = (d.timetable_summary or "").lower()
        if not d.is_paused or not summary or "asset" in summary or "dataset" in summary \
                or d.next_dagrun_run_after is None:
            continue
        when = _when(d.next_dagrun_run_after)
        if when is None or when <= at:      # unreadable: read its details to be sure
            out.append((when or datetime.min.replace(tzinfo=timezone.utc), d.dag_id))
    return [dag_id for _, dag_id in sorted(out)]


def _uniq(items: list[dict]) -> list[dict]:
    seen, out = set(), []
    for x in items:
        k = tuple(sorted((a, str(b)) for a, b in x.items()))
        if k not in seen:
            seen.add(k)
            out.append(x)
    return out


def attach(plan, obs, at: datetime) -> tuple[tuple[str, ...], ...]:
    """Put the preview on `plan` (before it is frozen) from the observation: only where the
    backend read evidence (airflow-api, dagmodel; a snapshot has none, so offline plans stay
    as they were). Returns the coordinated unpause levels for Plan.freeze: by the dependency
    edges (a cascade's, or those read for the preview), when they order more than one level."""
    plan.warnings.extend(obs.edge_notes)
    edges = obs.impact_edges or obs.edges
    if not (edges or obs.evidence or obs.impact_notes):
        return ()       # offline: no preview, and without edges every unpause is one level
    ups = [c.dag_id for c in plan.changes if getattr(c.action, "value", c.action) == "unpause"]
    levels = unpause_levels(ups, edges)
    if not (obs.evidence or obs.impact_notes or len(levels) > 1):
        return ()       # no preview to show (offline): not computed either (50k flips: ~1 s)
    impact = compute(plan.changes, obs.evidence, edges, at, obs.impact_notes)
    impact = Impact(impact.dags, levels, impact.notes)
    if impact:
        plan.impact = impact
    return levels if len(levels) > 1 else ()
