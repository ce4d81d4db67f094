"""The small interface every backend implements, and the live-state values it returns.

Backends: `snapshot` (a JSON file), `airflow-api` (REST v2 for Airflow 3, v1 for Airflow 2),
`dagmodel` (Airflow's own ORM, when pausectl runs inside Airflow).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable, Iterable, NamedTuple, Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class LiveDag:
    """One DAG as Airflow sees it now."""

    dag_id: str
    is_paused: bool
    tags: tuple[str, ...] = ()
    owners: tuple[str, ...] = ()
    is_stale: bool = False            # AF3 is_stale; AF2: not is_active
    has_import_errors: bool = False
    fileloc: str | None = None
    last_parsed_time: str | None = None
    timetable_summary: str | None = None   # None: no schedule
    next_dagrun_run_after: str | None = None
    max_active_runs: int | None = None

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
    """A live pause/unpause event from Airflow's event log, normalised across AF2/AF3."""

    dag_id: str | None          # None for a bulk patch (the pattern is in `detail`)
    event: str                  # patch_dag | patch_dags | cli_dag_pause | cli_dag_unpause
    when: datetime
    user: str | None            # API/UI user, or OS user for the CLI
    is_paused: bool | None      # the value set, when the event says
    via: str                    # "api" (UI or REST), "bulk", "cli", "pausectl"
    detail: str | None = None   # bulk pattern, CLI command line

    def describe(self) -> str:
        who = self.user or "unknown"
        what = {True: "paused", False: "unpaused", None: "changed"}[self.is_paused]
        how = {"api": "UI/API", "bulk": "bulk API", "cli": "CLI", "pausectl": "pausectl"}.get(
            self.via, self.via)
        text = f"{what} by {who} via {how} at {self.when.isoformat()}"
        if self.detail and self.via in ("bulk", "cli"):
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

    Backends may implement the optional `asset_edges() -> list[AssetEdge]` (see cascade.py);
    an AssetEdge is a tuple, so `(producer, consumer)` pairs unpack from its first two items.
    """

    producer: str
    consumer: str
    asset: str | None = None


@dataclass(slots=True)
class SetPausedResult:
    """What a set_paused call did: DAGs changed, and per-DAG errors (one line each)."""

    changed: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)


Progress = Callable[[int], None]   # called with the number of DAGs just finished


@runtime_checkable
class Backend(Protocol):
    """Everything the reconciler needs from an Airflow."""

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

    def get_variable(self, key: str) -> str | None:
        """An Airflow Variable (for locks, journals, emergency markers); None if absent."""

    def set_variable(self, key: str, value: str) -> None: ...

    def create_variable(self, key: str, value: str) -> bool:
        """Create a Variable only if absent (atomic on the server); False if it exists."""

    def delete_variable(self, key: str) -> None: ...

    def close(self) -> None: ...
