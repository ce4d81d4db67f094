"""The dagmodel backend's diagnostics (base.Diagnostics, for `pausectl doctor`): DAG
details, import errors of a DAG's file, task instances waiting to start, read through
Airflow's ORM in the same shapes as the airflow-api backend's (api_extras.py). Also the
value helpers dagmodel.py shares."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Iterable


def _utc(value: Any) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def _iso(value: Any) -> str | None:
    v = _utc(value)
    return v.astimezone(timezone.utc).isoformat().replace("+00:00", "Z") if v else None


def _schedule_text(value: Any) -> str | None:
    """AF3 timetable_summary / AF2 schedule_interval -> what the REST API would show."""
    if value is None:
        return None
    text = str(value)
    return None if text in ("None", "") else text


class OrmDiagnostics:
    """Mixed into DagModelBackend (which provides _session, _models, _mine, major)."""

    def dag_details(self, dag_id: str) -> dict | None:
        """start_date, end_date, catchup, max_active_runs, ... from the serialized DAG."""
        from sqlalchemy import func, select
        from airflow.models.dagrun import DagRun as DR
        from airflow.models.serialized_dag import SerializedDagModel
        DagModel, _ = self._models()
        with self._session() as s:
            model = s.get(DagModel, dag_id)
            if model is None or not self._mine(dag_id):
                return None
            try:
                dag = SerializedDagModel.get_dag(dag_id, session=s)
            except Exception:   # an unreadable serialization: report what the model has
                dag = None
            counts = dict(s.execute(select(DR.state, func.count()).where(DR.dag_id == dag_id)
                                    .where(DR.state.in_(("running", "queued")))
                                    .group_by(DR.state)).all())
            sched = model.timetable_summary if self.major >= 3 else model.schedule_interval
            out = {
                "dag_id": dag_id, "is_paused": bool(model.is_paused),
                "start_date": _iso(getattr(dag, "start_date", None)),
                "end_date": _iso(getattr(dag, "end_date", None)),
                "catchup": getattr(dag, "catchup", None),
                "max_active_runs": model.max_active_runs,
                "max_active_tasks": getattr(model, "max_active_tasks", None),
                "max_consecutive_failed_dag_runs":
                    getattr(model, "max_consecutive_failed_dag_runs", None),
                "timetable_summary": _schedule_text(sched),
                "timetable_description": getattr(model, "timetable_description", None),
                "next_dagrun_run_after": _iso(model.next_dagrun_create_after),
                "fileloc": model.fileloc,
                "relative_fileloc": (str(model.relative_fileloc)
                                     if getattr(model, "relative_fileloc", None) else None),
                "bundle_name": getattr(model, "bundle_name", None),
                "running_runs": int(counts.get("running", 0)),
                "queued_runs": int(counts.get("queued", 0)),
            }
        return out

    def import_errors(self, dag_id: str) -> list[dict]:
        """The import errors recorded for the file of this DAG."""
        from sqlalchemy import or_, select
        try:
            from airflow.models.errors import ParseImportError as IE
        except ImportError:  # pragma: no cover (AF < 2.10)
            from airflow.models.errors import ImportError as IE
        DagModel, _ = self._models()
        with self._session() as s:
            model = s.get(DagModel, dag_id)
            if model is None:
                return []
            names = [str(n) for n in (model.fileloc, getattr(model, "relative_fileloc", None)) if n]
            if not names:
                return []
            q = select(IE.filename, IE.timestamp, IE.stacktrace).where(
                or_(*[IE.filename == n for n in names]))
            if self.major >= 3 and getattr(model, "bundle_name", None):
                q = q.where(or_(IE.bundle_name == model.bundle_name, IE.bundle_name.is_(None)))
            rows = s.execute(q.order_by(IE.timestamp.desc())).all()
        return [{"filename": r[0], "timestamp": _iso(r[1]), "stacktrace": r[2] or ""}
                for r in rows]

    def task_instances(self, dag_id: str, states: Iterable[str]) -> list[dict]:
        """Task instances of this DAG in these states (e.g. queued, scheduled), oldest first."""
        from sqlalchemy import select
        from airflow.models.pool import Pool
        from airflow.models.taskinstance import TaskInstance as TI
        states = list(states)
        with self._session() as s:
            rows = s.execute(select(TI.run_id, TI.task_id, TI.map_index, TI.state, TI.pool,
                                    TI.queued_dttm).where(TI.dag_id == dag_id)
                             .where(TI.state.in_(states))).all()
            pools = {r[0]: r[1] for r in s.execute(select(Pool.pool, Pool.slots)).all()}
        out = [{"run_id": r[0], "task_id": r[1], "map_index": r[2], "state": str(r[3]),
                "pool": r[4], "pool_slots": pools.get(r[4]), "queued_when": _iso(r[5])}
               for r in rows]
        out.sort(key=lambda t: (t["queued_when"] or "", t["run_id"], t["task_id"]))
        return out
