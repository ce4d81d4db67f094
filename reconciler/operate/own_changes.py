"""pausectl's own writes, recognised from its apply journals (drift: not a manual change).

Through the REST API pausectl's pauses are logged like anyone's (`patch_dag` by the configured
user), so drift would call them "UI/API by <user>" (issue 12). The journal knows better: it
names every DAG an apply flipped, its target, and when each batch ran (its `batch N applying`
.. `batch N <status>` events; a rollback from `rolling back` to the end). An audit event is
pausectl's own when it is for a DAG of a journal, sets the same direction, lies inside that
flip's time window (widened by SLACK for clock skew between runner and Airflow) and, where the
journal records the user it acted as, comes from that user; else it must come through a path
pausectl writes by (REST, bulk, its own dagmodel tag), never the CLI or the scheduler.

Journals are read from the journal directory (newest first, back to the oldest event asked
about), and, when asked (drift), the one mirrored in Airflow when the runner kept none (a fresh
CI machine; one Variable read). observe.py marks recognised events `via="pausectl"`, so plan
(drift.mode report/adopt, hold_manual_hours), drift, doctor and lint all see them as pausectl's.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from reconciler.core.errors import PausectlError
from reconciler.core.timeutil import parse_timestamp

SLACK = timedelta(seconds=30)
MAX_JOURNALS = 200          # a drift reads at most this many local journals
PAUSECTL_PATHS = ("api", "bulk", "pausectl", "operator")


@dataclass(frozen=True)
class Flip:
    dag_id: str
    paused: bool                 # the journal's target for the DAG
    start: datetime
    end: datetime
    user: str | None = None      # the user the apply acted as, when its journal records it

    def covers(self, event) -> bool:
        if not (self.start - SLACK <= event.when <= self.end + SLACK):
            return False
        if self.user is not None:
            return event.user == self.user
        return event.via in PAUSECTL_PATHS


def flips(data: dict) -> list[Flip]:
    """Every DAG flip one journal records, with its time window. A journal mirrored in an
    Airflow Variable is anyone's to write: entries of the wrong shape prove nothing."""
    dags = data.get("dags")
    events = data.get("events")
    if not isinstance(dags, dict) or not isinstance(events, list):
        return []
    dags = {d: v for d, v in dags.items() if isinstance(v, dict)}
    user = data.get("user") if isinstance(data.get("user"), str) else None
    times = []
    for e in events:
        try:
            times.append((parse_timestamp(str(e["at"])), str(e["event"])))
        except (KeyError, TypeError, ValueError, PausectlError):
            continue
    if not times:
        return []
    out: list[Flip] = []
    open_batch: dict[int, datetime] = {}
    started: set[int] = set()       # a rollback puts back only the batches that began
    rollback_from = None
    for when, text in times:
        words = text.split()
        # ASCII digits, bounded: int() of "²" or of a 5,000-digit word would raise
        if len(words) == 3 and words[0] == "batch" and words[1].isascii() \
                and words[1].isdigit() and len(words[1]) <= 6:
            i = int(words[1])
            if words[2] == "applying":
                open_batch[i] = when
                started.add(i)
            elif i in open_batch:
                start = open_batch.pop(i)
                out += [Flip(d, bool(v.get("after")), start, when, user)
                        for d, v in dags.items() if v.get("batch") == i]
        elif text == "rolling back":
            rollback_from = when
    end = times[-1][0]
    for i, start in open_batch.items():      # died while applying: up to its last word
        out += [Flip(d, bool(v.get("after")), start, end, user)
                for d, v in dags.items() if v.get("batch") == i]
    if rollback_from is not None:
        out += [Flip(d, bool(v.get("before")), rollback_from, end, user)
                for d, v in dags.items() if v.get("batch") in started]
    return out


class OwnChanges:
    """The flips of the journals of one environment, by DAG."""

    def __init__(self, all_flips: list[Flip]):
        self.by_dag: dict[str, list[Flip]] = {}
        for f in all_flips:
            self.by_dag.setdefault(f.dag_id, []).append(f)

    def is_own(self, event, live_paused: bool) -> bool:
        """`event` (the newest of its DAG) is one of pausectl's own writes."""
        if event is None or event.dag_id is None:
            return False
        # a direction the event does not say is the one it left the DAG in (it is the newest)
        paused = live_paused if event.is_paused is None else event.is_paused
        return any(f.paused == paused and f.covers(event)
                   for f in self.by_dag.get(event.dag_id, ()))

    @classmethod
    def read(cls, env: str, backend=None, since: datetime | None = None) -> "OwnChanges":
        """The journals of `env` back to `since` (the oldest event to recognise); `backend`:
        also its mirrored journal when there is no local one."""
        from reconciler.apply.journal import Journal, journal_dir
        files = sorted(journal_dir().glob(f"{env}-[0-9]*.json"), reverse=True)[:MAX_JOURNALS]
        out: list[Flip] = []
        for f in files:
            try:
                data = Journal.load(f).data
            except PausectlError:      # a journal that cannot be read proves nothing
                continue
            if data.get("environment") != env:
                continue
            got = flips(data)
            out += got
            if since is not None and got and max(x.end for x in got) + SLACK < since:
                break                  # older journals cannot cover the events asked about
        if not files and backend is not None:
            try:
                out += flips(Journal.latest(env, backend).data)
            except PausectlError:
                pass                   # no journal anywhere: nothing is recognised
        return cls(out)


def recognise(env: str, events: list, live, backend=None) -> list:
    """`events` (newest first) with pausectl's own writes marked `via="pausectl"`. `live`: the
    listed DAGs (the direction of a newest event that does not say is the DAG's state)."""
    if not events:
        return events
    own = OwnChanges.read(env, backend, min(e.when for e in events))
    if not own.by_dag:
        return events
    state = {d.dag_id: d.is_paused for d in live}
    seen: set[str] = set()
    out = []
    for e in events:
        newest = e.dag_id not in seen
        seen.add(e.dag_id)
        if e.via != "pausectl" and e.dag_id is not None and (
                e.is_paused is not None or newest) and own.is_own(e, state.get(e.dag_id)):
            e = replace(e, via="pausectl")
        out.append(e)
    return out
