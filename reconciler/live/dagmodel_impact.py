"""The dagmodel backend's impact evidence and discovered dependencies (issue 15): the
capabilities `ImpactReads` and `DependencyGraph` of live/base.py through Airflow's ORM, in the
same values as the airflow-api backend's (rest/impact_reads.py). Mixed into DagModelBackend
(which provides _session, _models, _mine, major)."""

from __future__ import annotations

from typing import Any, Iterable

from reconciler.live.base import DagEdge, ImpactEvidence
from reconciler.live.dagmodel_doctor import _iso, _schedule_text
from reconciler.live.deps import from_serialized

_NO_BACKFILLS = "Airflow 2 has no backfill model (backfills run as CLI jobs)"


def _tz_name(dag: Any) -> str | None:
    tz = getattr(dag, "timezone", None)
    name = getattr(tz, "name", None) or (str(tz) if tz is not None else None)
    return name if isinstance(name, str) else None


def _latest_dependencies(s) -> dict | None:
    """Airflow 3's SerializedDagModel.get_dag_dependencies, with the latest version of each
    DAG picked here instead of by its join on a `max(created_at) GROUP BY dag_id` subquery:
    serialized_dag has no index on dag_id, so on SQLite that join is quadratic (3.3.2, 5,000
    DAGs: 27 s in sqlite3 itself; this: 0.07 s). The rows go to Airflow's own resolver (asset
    references); None where that resolver is not there (then Airflow's method is used)."""
    import json
    from sqlalchemy import func, select
    from airflow.models import serialized_dag as sd
    resolver = getattr(sd, "_DagDependenciesResolver", None)
    if resolver is None:
        return None
    from airflow.models.dag import DagModel
    cls = sd.SerializedDagModel
    compressed = getattr(sd, "_COMPRESS_SERIALIZED_DAGS", False) is not False
    dialect = s.get_bind().dialect.name
    if compressed or dialect not in ("sqlite", "mysql"):
        return None                   # postgres joins by hash: Airflow's query is fine there
    col = func.json_extract(cls._data, "$.dag.dag_dependencies")
    latest: dict[str, tuple] = {}
    for dag_id, created, data in s.execute(
            select(cls.dag_id, cls.created_at, col).join(DagModel, DagModel.dag_id == cls.dag_id)
            .where(~DagModel.is_stale)):
        if dag_id not in latest or created > latest[dag_id][0]:
            latest[dag_id] = (created, data)
    # a DAG without dependencies adds no edge (deps.from_serialized): most of a server's DAGs
    # (json_extract gives them "[]"), left out of the decoding and of the resolver's loops
    rows = [(str(d), json.loads(data)) for d, (_, data) in latest.items()
            if data and data != "[]"]
    return resolver(dag_id_dependencies=rows, session=s).resolve()


def _serialized_dags(s, ids: list[str]) -> dict[str, Any]:
    """The latest serialized DAG of each of `ids`, deserialized (None: unreadable), in two
    queries per 500 ids instead of SerializedDagModel.get_dag per DAG: serialized_dag has no
    index on dag_id, so each get_dag scans the table (3.3.2, SQLite, 5,000 DAGs: 6 ms a DAG,
    0.3 s for the default 50); here the ids go through dag_version's (dag_id, version_number)
    index and serialized_dag's on dag_version_id. "Latest" is the highest (version_number,
    created_at): 3.3's get orders by version_number, 3.0-3.2's by created_at, which agree for
    every real row. A DAG not found here is left out (the caller falls back to get_dag)."""
    from sqlalchemy import select
    from airflow.models.serialized_dag import SerializedDagModel as SD
    versioned = getattr(SD, "dag_version_id", None) is not None     # Airflow 3
    out: dict[str, Any] = {}
    for i in range(0, len(ids), 500):
        chunk = ids[i:i + 500]
        if versioned:
            from airflow.models.dag_version import DagVersion
            latest: dict[str, tuple] = {}
            for sid, dag_id, number, created in s.execute(
                    select(SD.id, SD.dag_id, DagVersion.version_number, SD.created_at)
                    .join(DagVersion, SD.dag_version_id == DagVersion.id)
                    .where(DagVersion.dag_id.in_(chunk), SD.dag_id == DagVersion.dag_id)):
                if dag_id not in latest or (number, created) > latest[dag_id][0]:
                    latest[dag_id] = ((number, created), sid)
            picked = [sid for _, sid in latest.values()]
            rows = s.scalars(select(SD).where(SD.id.in_(picked))).all() if picked else []
        else:                       # Airflow 2: one row per DAG, keyed by dag_id
            rows = s.scalars(select(SD).where(SD.dag_id.in_(chunk))).all()
        for row in rows:
            out[row.dag_id] = _deserialized(row)
    return out


def _deserialized(row) -> Any:
    """The row's DAG (None: unreadable, its catch-up then stays unknown)."""
    try:
        dag = _without_timetable(row)
    except Exception:       # row.dag decides
        dag = None
    if dag is not None:
        return dag
    try:
        return row.dag
    except Exception:
        return None


_NULL_TIMETABLE = {"__type": "airflow.timetables.simple.NullTimetable", "__var": {}}


def _without_timetable(row) -> Any:
    """row.dag with a NullTimetable in place of the serialized one (None where this Airflow
    has no DagSerialization, 3.3+): the preview reads catchup, timezone and end_date, each
    its own key, and decoding a cron timetable (cron_descriptor builds its description) is
    two thirds of a DAG's deserialization (3.3.2: 50 DAGs, 50 ms -> 17 ms of CPU)."""
    from airflow.serialization import serialized_objects as so
    ser = getattr(so, "DagSerialization", None)
    data = row.data
    dag = data.get("dag") if isinstance(data, dict) else None
    if ser is None or not isinstance(dag, dict) or "timetable" not in dag:
        return None
    ser._load_operator_extra_links = row.load_op_links      # what row.dag sets, too
    return ser.from_dict({**data, "dag": {**dag, "timetable": _NULL_TIMETABLE}})


class OrmImpact:
    """ImpactReads and DependencyGraph through the ORM (see the module doc)."""

    def dag_dependencies(self) -> list[DagEdge]:
        """The serialized DAGs' `dag_dependencies` (sensor and trigger edges; deps.py)."""
        from airflow.models.serialized_dag import SerializedDagModel
        with self._session() as s:
            found = _latest_dependencies(s) if self.major >= 3 else None
            if found is None:
                found = SerializedDagModel.get_dag_dependencies(session=s)
            deps = {d: v for d, v in found.items() if self._mine(d)}
        return from_serialized(deps)

    def impact_evidence(self, dag_ids: Iterable[str], schedules_of: Iterable[str] = (),
                        max_details: int | None = None) -> dict[str, ImpactEvidence]:
        from sqlalchemy import func, select
        from airflow.models.dagrun import DagRun as DR
        from airflow.models.serialized_dag import SerializedDagModel
        DagModel, _ = self._models()
        ids = sorted(d for d in set(dag_ids) if self._mine(d))
        order = list(dict.fromkeys(schedules_of))
        # the same cap as REST: deserialising a DAG is this backend's per-DAG cost
        sched = set(order if max_details is None else order[:max(0, max_details)])
        unread = set(order) - sched
        out: dict[str, ImpactEvidence] = {}
        if not ids:
            return out
        with self._session() as s:
            counts = {(d, st): n for d, st, n in s.execute(
                select(DR.dag_id, DR.state, func.count()).where(DR.dag_id.in_(ids))
                .where(DR.state.in_(("running", "queued"))).group_by(DR.dag_id, DR.state))}
            backfills = self._orm_backfills(s, ids)
            # the four columns used, not DagModel objects (1,000 of them: 60 ms), nor 1 per DAG
            sched_col = DagModel.timetable_summary if self.major >= 3 else \
                DagModel.schedule_interval
            models = {r[0]: r for i in range(0, len(ids), 500) for r in s.execute(
                select(DagModel.dag_id, sched_col, DagModel.next_dagrun_create_after,
                       DagModel.max_active_runs).where(DagModel.dag_id.in_(ids[i:i + 500])))}
            dags = _serialized_dags(s, sorted(d for d in sched if d in models))
            for d in ids:
                if d not in models:
                    continue
                _, summary, next_after, max_active = models[d]
                dag = dags.get(d)
                if d in sched and d not in dags:
                    try:
                        dag = SerializedDagModel.get_dag(d, session=s)
                    except Exception:   # unreadable: catch-up then stays unknown
                        dag = None
                catchup = getattr(dag, "catchup", None)
                out[d] = ImpactEvidence(
                    dag_id=d, running=int(counts.get((d, "running"), 0)),
                    queued=int(counts.get((d, "queued"), 0)),
                    backfills=None if backfills is None else tuple(backfills.get(d, ())),
                    catchup=catchup if isinstance(catchup, bool) else None,
                    schedule=_schedule_text(summary) if d in sched else None,
                    timezone=_tz_name(dag), next_run_after=(
                        _iso(next_after) if d in sched else None),
                    end_date=_iso(getattr(dag, "end_date", None)),
                    max_active_runs=max_active,
                    notes=() if backfills is not None else (_NO_BACKFILLS,),
                    unread=d in unread)
        return out

    def _orm_backfills(self, s, ids: list[str]) -> dict[str, list[dict]] | None:
        if self.major < 3:
            return None
        from sqlalchemy import select
        from airflow.models.backfill import Backfill
        out: dict[str, list[dict]] = {}
        for b in s.scalars(select(Backfill).where(Backfill.dag_id.in_(ids))
                           .where(Backfill.completed_at.is_(None)).order_by(Backfill.id)):
            out.setdefault(b.dag_id, []).append({
                "id": b.id, "from_date": _iso(b.from_date), "to_date": _iso(b.to_date),
                "is_paused": bool(b.is_paused)})
        return out
