"""Drain: `paused: drain` (or `drain: {deadline: 2h}`) lets what runs finish, then pauses.

Pausing a DAG in Airflow does not stop its runs in flight cleanly: running task instances
finish, but the ones not yet queued are never queued while the DAG is paused, so its running
runs stall until it is unpaused. A drain pauses the DAG only once it has no running or queued
run, and at the latest at its deadline (counted from when apply began draining it, kept in the
journal so a resumed apply keeps the first deadline).

Apply drains in batch order: the batch's other DAGs are flipped first, then its drained DAGs
are polled together, one batched read per poll (RunsInFlight: REST `POST
/dags/~/dagRuns/list` with `states`; other backends one dag_runs call per DAG), each paused as
soon as it is idle; the next batch starts when every DAG of this one is paused. While it waits
apply renews its lock. Airflow itself has no draining state on any supported version (2.9.3
through 3.3.2: read in their sources; the release after 3.3 adds one, apache/airflow #72407),
so this is pausectl's.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Callable, Iterable

from reconciler.core.timeutil import iso, parse_timestamp, utcnow
from reconciler.live.base import RunsInFlight

POLL_SECONDS = 15.0
IN_FLIGHT = ("queued", "running")


def in_flight(backend, dag_ids: Iterable[str]) -> dict[str, int]:
    """Runs running or queued per DAG (DAGs with none are absent)."""
    ids = sorted(set(dag_ids))
    if not ids:
        return {}
    if isinstance(backend, RunsInFlight):
        runs = backend.runs_in_flight(ids)
    else:
        runs = [r for d in ids for r in backend.dag_runs(d, limit=25)]
    return dict(Counter(r.dag_id for r in runs if r.state in IN_FLIGHT and r.dag_id in ids))


@dataclass
class Drained:
    """How a batch's drain ended: DAGs paused idle, paused at their deadline, errors."""

    idle: list[str] = field(default_factory=list)
    at_deadline: dict[str, int] = field(default_factory=dict)   # dag_id -> runs still in flight
    errors: dict[str, str] = field(default_factory=dict)
    polls: int = 0


def drain(backend, deadlines: dict[str, datetime], *, sleep: Callable[[float], None],
          log: Callable[[str], None] = lambda s: None,
          heartbeat: Callable[[], None] = lambda: None,
          progress: Callable[[int], None] | None = None,
          poll: float = POLL_SECONDS) -> Drained:
    """Pause each DAG of `deadlines` once it has no run in flight, or at its deadline."""
    out = Drained()
    pending = dict(deadlines)
    announced = False
    while pending:
        busy = in_flight(backend, pending)
        out.polls += 1
        now = utcnow()
        ready = [d for d in sorted(pending) if not busy.get(d) or now >= pending[d]]
        if ready:
            res = backend.set_paused(ready, True, progress=progress)
            out.errors.update(res.errors)
            for d in ready:
                del pending[d]
                if d in res.errors:
                    continue
                if busy.get(d):
                    out.at_deadline[d] = busy[d]
                    log(f"drain: {d} paused at its deadline with {busy[d]} run(s) in flight "
                        "(they stall until it is unpaused)")
                else:
                    out.idle.append(d)
                    log(f"drain: {d} paused (no run in flight)")
        if not pending:
            break
        if not announced:
            log(f"drain: waiting for {len(pending)} DAG(s) with runs in flight: "
                + ", ".join(f"{d} ({busy.get(d, 0)})" for d in sorted(pending)[:10])
                + f"; at the latest until {iso(max(pending.values()))}")
            announced = True
        heartbeat()
        left = (min(pending.values()) - now).total_seconds()
        sleep(max(0.0, min(poll, left)))
    return out


def drain_batch(backend, journal, ids: list[str], opts, lock, progress=None) -> dict[str, str]:
    """The drained DAGs of one batch (journal entries with a `drain` deadline): deadlines from
    the journal's first start of their drain, outcomes kept in the journal. Returns errors."""
    dags = journal.data["dags"]
    now = utcnow().replace(microsecond=0)
    deadlines = {}
    for d in ids:
        entry = dags[d]
        started = entry.setdefault("drain_started", iso(now))
        deadlines[d] = parse_timestamp(started) + timedelta(
            seconds=int(entry["drain"]["deadline_seconds"]))
    journal.save()
    result = drain(backend, deadlines, sleep=opts.sleep, log=opts.log, heartbeat=lock.heartbeat,
                   progress=progress)
    for d in result.idle:
        dags[d]["drained"] = "idle"
    for d, n in result.at_deadline.items():
        dags[d]["drained"] = f"deadline ({n} run(s) in flight)"
    journal.event(f"drained {len(result.idle)} idle, {len(result.at_deadline)} at the deadline "
                  f"({result.polls} poll(s))")
    journal.save()
    return result.errors


def drain_ids(journal, ids: list[str]) -> list[str]:
    """The DAGs of `ids` this apply pauses by draining."""
    dags = journal.data["dags"]
    return [d for d in ids if dags[d].get("drain") and dags[d]["after"] is True]


def journal_drains(journal, plan) -> None:
    """Keep each drained change's deadline in the journal (resume drains the same way)."""
    drains = {c.dag_id: c.drain for c in plan.changes if getattr(c, "drain", None)}
    if drains:
        for d, spec in drains.items():
            journal.data["dags"][d]["drain"] = {"deadline_seconds": spec["deadline_seconds"]}
        journal.save()
