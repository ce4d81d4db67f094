"""The small interface every backend implements, and the live-state values it returns.

Backends: `snapshot` (a JSON file), `airflow-api` (REST v2 for Airflow 3, v1 for Airflow 2),
`dagmodel` (Airflow's own ORM, when pausectl runs inside Airflow).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Annotated, Callable, Iterable, NamedTuple, Protocol, runtime_checkable

import msgspec


class LiveDag(msgspec.Struct, frozen=True, gc=False, forbid_unknown_fields=True):
    """One DAG as Airflow sees it now. A frozen msgspec Struct (made in C, by the constructor
    or decoded from a snapshot in one pass: live/snapshot_fast.decoded), not a dataclass:
    change one with `msgspec.structs.replace`. The constraints (and forbid_unknown_fields: an
    entry with other keys takes the checked path) hold only for decoding; the constructor
    takes what the backends give it. gc=False: it holds strings and tuples only."""

    dag_id: Annotated[str, msgspec.Meta(min_length=1)]
    is_paused: bool
    tags: tuple[str, ...] = ()
    owners: tuple[str, ...] = ()
    is_stale: bool = False            # AF3 is_stale; AF2: not is_active
    has_import_errors: bool = False
    fileloc: str | None = None
    last_parsed_time: str | None = None
    timetable_summary: str | None = None   # None: no schedule
    next_dagrun_run_after: str | None = None
    max_active_runs: Annotated[int, msgspec.Meta(ge=0, le=1_000_000)] | None = None

    def to_json(self) -> dict:
        return {
            "dag_id": self.dag_id, "is_paused": self.is_paused, "tags": list(self.tags),
            "owners": list(self.owners), "is_stale": self.is_stale,
            "has_import_errors": self.has_import_errors, "fileloc": self.fileloc,
            "last_parsed_time": self.last_parsed_time,
            "timetable_summary": self.timetable_summary,
            "next_dagrun_run_after": self.next_dagrun_run_after,
            "max_active_runs": self.max_active_runs,
        }


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """A live pause/unpause event from Airflow's event log, normalised across AF2/AF3 and the
    dagmodel backend (live/events.py is the one normalisation)."""

    dag_id: str | None          # None: a bulk pattern or CLI regex not attributed to a DAG
    event: str                  # patch_dag | patch_dags | paused | cli_dag_pause | ...
    when: datetime
    user: str | None            # API/UI user, OS user for the CLI, "scheduler" for Airflow
    is_paused: bool | None      # the value set, when the event says (and can be trusted)
    via: str                    # "api" (UI or REST), "bulk", "cli", "airflow" (the
    #                             scheduler's auto-pause), "pausectl", "operator", ...
    detail: str | None = None   # bulk pattern, CLI command line, recorded reason
    pattern: str | None = None  # the bulk pattern / CLI regex that selected the DAGs
    pattern_kind: str | None = None   # "ilike" | "prefix" | "regex"

    def for_dag(self, dag_id: str) -> "AuditEvent":
        """This pattern event attributed to one DAG it matches."""
        return replace(self, dag_id=dag_id)

    def describe(self) -> str:
        when = self.when.isoformat()
        if self.via == "airflow":
            what = self.detail or "auto-paused by Airflow"
            return f"{what} ({self.user or 'scheduler'}) at {when}"
        who = self.user or "unknown"
        what = {True: "paused", False: "unpaused", None: "changed"}[self.is_paused]
        how = {"api": "UI/API", "bulk": "bulk API", "cli": "CLI", "pausectl": "pausectl"}.get(
            self.via, self.via)
        text = f"{what} by {who} via {how} at {when}"
        if self.via == "cli" and self.pattern_kind == "regex":
            text += f" (regex {self.pattern!r}: {self.detail})" if self.detail else \
                f" (regex {self.pattern!r})"
        elif self.detail and self.via in ("bulk", "cli", "api"):
            text += f" ({self.detail})"
        return text


@dataclass(frozen=True, slots=True)
class DagRun:
    dag_id: str
    run_id: str
    state: str                  # queued | running | success | failed
    run_after: datetime | None = None
    start_date: datetime | None = None
    end_date: datetime | None = None


class AssetEdge(NamedTuple):
    """`consumer` depends on `producer`: through an asset (its name), or a declared sensor (None).

    Backends may implement the optional AssetGraph capability (see cascade.py);
    an AssetEdge is a tuple, so `(producer, consumer)` pairs unpack from its first two items.
    """

    producer: str
    consumer: str
    asset: str | None = None


class DagEdge(NamedTuple):
    """A cross-DAG edge Airflow serialises itself (issue 15, live/deps.py): `kind` "sensor" (an
    ExternalTaskSensor `task_id` in `consumer` waits on `producer`; `timeout` seconds when known:
    no Airflow version serialises it, see deps.py) or "trigger" (a TriggerDagRunOperator `task_id` in `producer` triggers
    `consumer`). Cascades follow it like an AssetEdge; `sensors:` stays for what Airflow
    cannot see."""

    producer: str
    consumer: str
    kind: str
    task_id: str | None = None
    timeout: float | None = None


@dataclass(frozen=True, slots=True)
class ImpactEvidence:
    """What a flip of one DAG will touch, read from Airflow (plan/impact.py computes the preview
    from it). None: not known on this server (`notes` says why)."""

    dag_id: str
    running: int | None = None
    queued: int | None = None
    backfills: tuple[dict, ...] | None = None   # active: {id, from_date, to_date, is_paused}
    catchup: bool | None = None
    schedule: str | None = None                 # timetable summary / schedule_interval
    timezone: str | None = None
    next_run_after: str | None = None           # when the next scheduled run is created
    end_date: str | None = None
    max_active_runs: int | None = None
    notes: tuple[str, ...] = ()
    unread: bool = False        # a schedule's details not read (impact.max_detail_reads)


@dataclass(slots=True)
class SetPausedResult:
    """What a set_paused call did: DAGs changed, and per-DAG errors (one line each).
    `warnings`: things noticed on the way that are not one DAG's failure (a DAG that appeared
    during a bulk request, ...)."""

    changed: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    #: requested DAGs as the verifying read saw them just after the change (airflow-api's
    #: bulk path); a gate right after the batch reads import errors and staleness here
    #: instead of listing every DAG again. Empty: no such read (the gate lists).
    read_back: dict[str, LiveDag] = field(default_factory=dict)


Progress = Callable[[int], None]   # called with the number of DAGs just finished


@runtime_checkable
class VariableStore(Protocol):
    """Airflow Variables (locks, journals, emergency markers). Every Backend has them; a
    component that needs only these (the lock, the emergency marker) can ask for just this."""

    def get_variable(self, key: str) -> str | None:
        """An Airflow Variable; None if absent."""

    def set_variable(self, key: str, value: str) -> None: ...

    def create_variable(self, key: str, value: str) -> bool:
        """Create a Variable only if absent (atomic on the server); False if it exists."""

    def delete_variable(self, key: str) -> None: ...


@runtime_checkable
class Backend(VariableStore, Protocol):
    """Everything the reconciler needs from an Airflow. The optional capabilities below are
    declared protocols too: callers ask `isinstance(backend, BulkPauser)`, never a backend's
    type, name, private attributes or API version."""

    name: str   # the environment name, for messages

    def list_dags(self) -> list[LiveDag]:
        """Every DAG Airflow knows, stale ones included."""

    def set_paused(self, dag_ids: Iterable[str], paused: bool,
                   progress: Progress | None = None) -> SetPausedResult:
        """Set is_paused for exactly these DAGs; never touch any other."""

    def audit_events(self, dag_ids: Iterable[str] | None = None,
                     since: datetime | None = None) -> list[AuditEvent]:
        """Pause/unpause events, newest first."""

    def dag_runs(self, dag_id: str, limit: int = 25) -> list[DagRun]:
        """Latest runs of one DAG, newest first."""

    def close(self) -> None: ...


@runtime_checkable
class ScopedListing(Protocol):
    """Optional capability (airflow-api): list only the DAGs whose dag_id contains one of a
    few terms (a superset), for a plan whose rules can match nothing else (policy/scope.py)."""

    def scope_terms_limit(self) -> int: ...

    def list_dags_matching(self, terms: list[str]) -> list[LiveDag]: ...


@runtime_checkable
class Diagnostics(Protocol):
    """Optional capability (airflow-api, dagmodel): what `pausectl doctor` reads beyond the
    Backend protocol, as plain dicts in the REST API's shapes."""

    def dag_details(self, dag_id: str) -> dict | None:
        """start_date, catchup, max_active_runs, running/queued run counts, ...; None if the
        DAG does not exist."""

    def import_errors(self, dag_id: str) -> list[dict]:
        """Import errors of the DAG's file, newest first: filename, timestamp, stacktrace."""

    def task_instances(self, dag_id: str, states: Iterable[str]) -> list[dict]:
        """Task instances of the DAG in these states, oldest first (with their pool)."""


@runtime_checkable
class BatchedRuns(Protocol):
    """Optional capability: the runs of many DAGs since a time in few requests (the gates);
    without it, one dag_runs call per DAG."""

    def dag_runs_since(self, dag_ids: Iterable[str], since: datetime) -> list[DagRun]: ...


@runtime_checkable
class RunsInFlight(Protocol):
    """Optional capability (airflow-api): the running and queued runs of many DAGs in few
    requests (a drain polls them); without it, one dag_runs call per DAG."""

    def runs_in_flight(self, dag_ids: Iterable[str]) -> list[DagRun]: ...


@runtime_checkable
class AssetGraph(Protocol):
    """Optional capability (airflow-api, snapshot): asset dependency edges for cascades."""

    def asset_edges(self) -> list[AssetEdge]: ...


@runtime_checkable
class DependencyGraph(Protocol):
    """Optional capability (airflow-api, dagmodel): the ExternalTaskSensor and
    TriggerDagRunOperator edges Airflow serialises (live/deps.py documents the sources)."""

    def dag_dependencies(self) -> list[DagEdge]: ...


@runtime_checkable
class ImpactReads(Protocol):
    """Optional capability (airflow-api, dagmodel): the evidence of what pausing or unpausing
    these DAGs will touch (runs in flight, backfills, schedule and catch-up)."""

    def impact_evidence(self, dag_ids: Iterable[str], schedules_of: Iterable[str] = (),
                        max_details: int | None = None) -> dict[str, ImpactEvidence]:
        """Runs in flight and backfills of `dag_ids`; also schedule, catchup and next run of
        the first `max_details` of `schedules_of` (the unpauses: one more read each on REST),
        the others marked `unread`."""


@runtime_checkable
class BulkPauser(Protocol):
    """Optional capability: pause many DAGs in few requests while keeping some running (the
    emergency path). Backends without it get `set_paused` (emergency.py falls back)."""

    def pause_except(self, live: list[LiveDag], targets: Iterable[str],
                     keep: Callable[[LiveDag], bool],
                     progress: Progress | None = None) -> SetPausedResult:
        """Pause exactly `targets` (running DAGs of the listing `live`, just taken). No bulk
        request is shaped to match a DAG for which `keep` is true; one that matched anyway
        (it appeared meanwhile) and that a response proves was flipped is put back at once,
        one that cannot be proven is named in `warnings`. DAGs of `live` that are neither
        (already paused) may be matched by a bulk filter but are not changed. Every change
        is verified by listing; `changed` + `errors` cover the targets."""


@runtime_checkable
class UnconfirmedCreate(Protocol):
    """Optional capability of a backend whose create_variable must settle and re-read to be
    sure (airflow-api: Airflow's create is not atomic): create without that wait, for a
    caller that re-reads the value itself later (the emergency marker, emergency.py)."""

    def create_variable_unconfirmed(self, key: str, value: str) -> bool:
        """Create if absent; True if the server created it just now (a concurrent creator
        may still overwrite it: re-read before relying on it)."""
