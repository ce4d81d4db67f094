"""The `dagmodel` backend: Airflow's own ORM, for pausectl running inside an Airflow installation.

Config (the environment's `backend:` mapping in pausectl.yaml)::

    type: dagmodel
    dag_id_prefix: team_a_          # optional: only DAGs whose id starts with this exist for us
    sql_alchemy_conn_env: PAUSECTL_AIRFLOW_DB   # optional: a DB URL in this env var (see below)

It reads and writes `DagModel.is_paused` through `airflow.utils.session.create_session`
(Airflow 3 and Airflow 2), audit events from the `log` table, runs from `dag_run`, Variables
through `airflow.models.Variable` (Fernet-encrypted like Airflow's own). Nothing from Airflow is
imported before the backend is opened, so pausectl itself never needs Airflow installed.

* Every pause/unpause it makes is written to Airflow's audit log (`log` table) as
  `pausectl.pause` / `pausectl.unpause` with `extra` = `{"is_paused", "source": "pausectl",
  "environment", "reason"?}` and the owner `PAUSECTL_USER` (default: the OS user), so the
  Airflow UI's audit log shows who paused a DAG and why, and `drift` never mistakes pausectl's
  own changes for manual ones. A pause by `PauseDagsOperator` has another `source` (and the
  task as owner): it is a live change, which `drift` attributes (via "operator"); so is a row
  written by hand with the runbook's SQL (`"source": "manual-sql"`, via "manual-sql").
* `create_variable` is atomic: one INSERT on the unique `variable.key`; an IntegrityError means
  somebody else holds the key.
* Airflow 3 blocks the metadata DB inside task processes run by an executor ("Direct database
  access via the ORM is not allowed"). There, either use the `airflow-api` backend against this
  Airflow's API server, or set `sql_alchemy_conn_env` to the name of an environment variable
  holding the DB URL, which this backend then uses with its own engine. `airflow dags test`
  (in-process) and scheduler/CLI processes have the ORM and need neither.
"""

from __future__ import annotations

import getpass
import json
import os
from contextlib import contextmanager
from datetime import datetime
from typing import Any, Iterable, Iterator, Mapping

from reconciler.core.errors import BackendError, PausectlError
from reconciler.live.base import AuditEvent, DagRun, LiveDag, Progress, SetPausedResult
from reconciler.live.capabilities import for_orm
from reconciler.live.dagmodel_doctor import OrmDiagnostics, _iso, _schedule_text, _utc
from reconciler.live.dagmodel_impact import OrmImpact
from reconciler.live.events import ALL_EVENTS, PAUSECTL_EVENTS, attribute, normalise_rows

# every event name Airflow (AF3, AF2 with its api./ui. prefixes, the scheduler's `paused`)
# or pausectl writes for a pause change; events.py turns the rows into AuditEvents
EVENTS = ALL_EVENTS
PAUSE_EVENT, UNPAUSE_EVENT = PAUSECTL_EVENTS
CLI_EVENTS = ("cli_dag_pause", "cli_dag_unpause")
_CHUNK = 500          # ids per IN (...) clause
_SCOPE_TERMS = 20     # LIKE terms per scoped listing (policy/scope.py compacts to these)


def _chunks(items: list, n: int = _CHUNK) -> Iterator[list]:
    for i in range(0, len(items), n):
        yield items[i:i + n]


class DagModelBackend(OrmDiagnostics, OrmImpact):
    """Reads/writes pause state through Airflow's ORM. See the module docstring."""

    def __init__(self, name: str, config: Mapping[str, Any] | None = None, *,
                 user: str | None = None, env: Mapping[str, str] | None = None):
        self.name = name
        config = dict(config or {})
        env = os.environ if env is None else env
        self.prefix: str = config.get("dag_id_prefix") or ""
        self.user = user or env.get("PAUSECTL_USER") or _os_user()
        self.reason: str | None = None      # recorded with every change, when set
        try:
            import airflow
        except ImportError:
            raise PausectlError(f"{name}: backend 'dagmodel' needs Airflow: run pausectl inside "
                                "the Airflow installation (or use backend 'airflow-api')") from None
        self.version: str = getattr(airflow, "__version__", "0")
        try:
            self.major = int(self.version.split(".")[0])
        except ValueError:  # pragma: no cover
            self.major = 3
        self.capabilities = for_orm(self.version)   # how this Airflow writes its event log
        self._engine = None
        self._own_session = None
        conn_env = config.get("sql_alchemy_conn_env")
        if conn_env:
            url = env.get(conn_env)
            if not url:
                raise PausectlError(f"{name}: environment variable {conn_env} (sql_alchemy_conn_env)"
                                    " is not set")
            from sqlalchemy import create_engine
            from sqlalchemy.orm import sessionmaker
            self._engine = create_engine(url, pool_pre_ping=True)
            self._own_session = sessionmaker(bind=self._engine, expire_on_commit=False)

    # ---------------------------------------------------------------- sessions

    def _orm_blocked(self) -> bool:
        from airflow import settings
        sess = getattr(settings, "Session", None)
        return sess is None or getattr(sess, "__name__", "") == "BlockedDBSession" or \
            str(getattr(settings, "SQL_ALCHEMY_CONN", "")).startswith("airflow-db-not-allowed")

    def orm_available(self) -> bool:
        """Whether this backend can reach the metadata DB here (its own engine, or Airflow's
        session where Airflow does not block it)."""
        return self._own_session is not None or not self._orm_blocked()

    @contextmanager
    def _session(self):
        if self._own_session is not None:
            session = self._own_session()
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise
            finally:
                session.close()
            return
        if self._orm_blocked():
            raise BackendError(
                f"{self.name}: Airflow {self.version} blocks metadata DB access here (task "
                "processes in Airflow 3); use backend 'airflow-api' for this environment, or set "
                "sql_alchemy_conn_env to a variable holding the DB URL")
        from airflow.utils.session import create_session
        with create_session() as session:
            yield session

    def _models(self):
        from airflow.models.dag import DagModel, DagTag
        return DagModel, DagTag

    def _mine(self, dag_id: str) -> bool:
        return dag_id.startswith(self.prefix)

    # ---------------------------------------------------------------- DAGs

    def list_dags(self) -> list[LiveDag]:
        with self._session() as s:
            out = self._read(s)
        out.sort(key=lambda d: d.dag_id)
        return out

    def scope_terms_limit(self) -> int:
        """ScopedListing: how many terms one listing query ORs (a LIKE each per row)."""
        return _SCOPE_TERMS

    def list_dags_matching(self, terms: list[str]) -> list[LiveDag]:
        """ScopedListing: the DAGs whose dag_id contains a term, ignoring case (a superset of
        what the rules match, as the REST API's dag_id_pattern; policy/scope.py), with the
        same fields as list_dags: a plan of 1,000 of 5,000 DAGs reads only those rows."""
        from sqlalchemy import or_

        def match(col):
            return or_(*(col.ilike(f"%{_like_escape(t)}%", escape="/") for t in terms))
        with self._session() as s:
            out = self._read(s, match=match)
        out.sort(key=lambda d: d.dag_id)
        return out

    def _read(self, s, ids: list[str] | None = None, match=None) -> list[LiveDag]:
        """Every DAG of this backend (or those of `ids`, at most one IN list's worth, or those
        whose dag_id column satisfies `match(column)`) as LiveDags, from two column queries
        (no ORM objects)."""
        from sqlalchemy import select
        DagModel, DagTag = self._models()
        if self.major >= 3:
            stale = DagModel.is_stale
            sched = DagModel.timetable_summary
        else:
            stale = DagModel.is_active
            sched = DagModel.schedule_interval
        cols = (DagModel.dag_id, DagModel.is_paused, stale, DagModel.has_import_errors,
                DagModel.fileloc, DagModel.last_parsed_time, sched,
                DagModel.next_dagrun_create_after, DagModel.max_active_runs, DagModel.owners)
        q, tq = select(*cols), select(DagTag.dag_id, DagTag.name)
        if ids is not None:
            q, tq = q.where(DagModel.dag_id.in_(ids)), tq.where(DagTag.dag_id.in_(ids))
        if match is not None:
            q, tq = q.where(match(DagModel.dag_id)), tq.where(match(DagTag.dag_id))
        rows = s.execute(q).all()
        tags: dict[str, list[str]] = {}
        for dag_id, tag in s.execute(tq).all():
            tags.setdefault(dag_id, []).append(tag)
        out = []
        for (dag_id, paused, stale_v, errors, fileloc, parsed, schedule, next_run, mar,
             owners) in rows:
            if not self._mine(dag_id):
                continue
            out.append(LiveDag(
                dag_id=dag_id, is_paused=bool(paused),
                tags=tuple(sorted(tags.get(dag_id, ()))),
                owners=tuple(o.strip() for o in (owners or "").split(",") if o.strip()),
                is_stale=bool(stale_v) if self.major >= 3 else not bool(stale_v),
                has_import_errors=bool(errors), fileloc=fileloc, last_parsed_time=_iso(parsed),
                timetable_summary=_schedule_text(schedule), next_dagrun_run_after=_iso(next_run),
                max_active_runs=mar if isinstance(mar, int) else None))
        return out

    def set_paused(self, dag_ids: Iterable[str], paused: bool, progress: Progress | None = None,
                   reason: str | None = None, source: str = "pausectl",
                   extra: Mapping[str, Any] | None = None) -> SetPausedResult:
        """Set is_paused for exactly these DAGs, in one transaction, with an audit-log row per
        DAG that actually changed. `source` "pausectl" marks a change made from git (not
        drift); anything else (e.g. "PauseDagsOperator") is a live change `drift` attributes."""
        from sqlalchemy import insert, select, update
        from airflow.models.log import Log
        from airflow.utils.timezone import utcnow
        DagModel, _ = self._models()
        ids = list(dict.fromkeys(str(d) for d in dag_ids))
        result = SetPausedResult()
        outside = [d for d in ids if not self._mine(d)]
        for d in outside:
            result.errors[d] = f"DAG {d} is outside dag_id_prefix {self.prefix!r} of {self.name}"
        ids = [d for d in ids if self._mine(d)]
        note = reason if reason is not None else self.reason
        with self._session() as s:
            for chunk in _chunks(ids):
                before = dict(s.execute(select(DagModel.dag_id, DagModel.is_paused)
                                        .where(DagModel.dag_id.in_(chunk))).all())
                flip = [d for d in chunk if d in before and bool(before[d]) != paused]
                if flip:
                    s.execute(update(DagModel).where(DagModel.dag_id.in_(flip))
                              .values(is_paused=paused)
                              .execution_options(synchronize_session=False))
                    data = {"is_paused": paused, "source": source, "environment": self.name,
                            **(extra or {})}
                    if note:
                        data["reason"] = note
                    text = json.dumps(data)
                    # one executemany of the columns Log.__init__ sets for such a row (dttm,
                    # event, owner, extra, dag_id), not an ORM object per DAG
                    now = utcnow()
                    event = PAUSE_EVENT if paused else UNPAUSE_EVENT
                    s.execute(insert(Log.__table__), [
                        {"dttm": now, "event": event, "owner": self.user, "extra": text,
                         "dag_id": d} for d in flip])
                for d in chunk:
                    if d in before:
                        result.changed.append(d)
                    else:
                        result.errors[d] = f"DAG {d} not found in {self.name}"
                # the rows as the transaction now holds them: the batch's gate reads these
                # instead of listing every DAG again
                result.read_back.update((d.dag_id, d) for d in self._read(s, chunk))
        if progress:
            progress(len(ids) + len(outside))
        return result

    # ---------------------------------------------------------------- audit events

    def audit_events(self, dag_ids: Iterable[str] | None = None,
                     since: datetime | None = None, limit: int = 1000) -> list[AuditEvent]:
        from sqlalchemy import or_, select
        from airflow.models.log import Log
        ids = None if dag_ids is None else sorted(set(dag_ids))
        if ids is not None and not ids:
            return []
        cols = (Log.id, Log.dttm, Log.dag_id, Log.event, Log.owner, Log.extra)
        base = select(*cols).where(Log.event.in_(EVENTS))
        if since is not None:
            base = base.where(Log.dttm >= _utc(since))
        rows = []
        with self._session() as s:
            if ids is None:
                rows += s.execute(base.order_by(Log.dttm.desc()).limit(limit)).all()
            else:
                for chunk in _chunks(ids):
                    rows += s.execute(base.where(Log.dag_id.in_(chunk))
                                      .order_by(Log.dttm.desc()).limit(limit)).all()
                # rows whose dag_id column does not name the DAG: bulk patterns (empty) and
                # CLI --treat-dag-id-as-regex (the regex); events.attribute matches them
                rows += s.execute(base.where(or_(Log.dag_id.is_(None), Log.dag_id == "",
                                                 Log.event.in_(CLI_EVENTS)))
                                  .order_by(Log.dttm.desc()).limit(limit)).all()
        out = normalise_rows(((r[0], r[3], r[2], r[4], _utc(r[1]), r[5]) for r in rows),
                             self.capabilities)
        return attribute(out, ids, self.capabilities)[:limit]

    # ---------------------------------------------------------------- runs

    def dag_runs(self, dag_id: str, limit: int = 25) -> list[DagRun]:
        from sqlalchemy import select
        from airflow.models.dagrun import DagRun as DR
        order = DR.run_after if self.major >= 3 else DR.execution_date
        with self._session() as s:
            rows = s.execute(select(DR.dag_id, DR.run_id, DR.state, order, DR.start_date,
                                    DR.end_date).where(DR.dag_id == dag_id)
                             .order_by(order.desc()).limit(max(1, int(limit)))).all()
        return [self._run(r) for r in rows]

    def dag_runs_since(self, dag_ids: Iterable[str], since: datetime) -> list[DagRun]:
        """Runs of many DAGs that finished at or after `since` (BatchedRuns; see the REST
        backend's): one query per chunk of ids, as the gates of a batch need."""
        from sqlalchemy import select
        from airflow.models.dagrun import DagRun as DR
        order = DR.run_after if self.major >= 3 else DR.execution_date
        rows: list = []
        with self._session() as s:
            for chunk in _chunks(sorted(set(dag_ids))):
                rows += s.execute(select(DR.dag_id, DR.run_id, DR.state, order, DR.start_date,
                                         DR.end_date).where(DR.dag_id.in_(chunk))
                                  .where(DR.end_date >= since)).all()
        return [self._run(r) for r in rows]

    @staticmethod
    def _run(r) -> DagRun:
        return DagRun(dag_id=r[0], run_id=r[1], state=str(r[2] or ""), run_after=_utc(r[3]),
                      start_date=_utc(r[4]), end_date=_utc(r[5]))

    # ---------------------------------------------------------------- variables

    def _variable_model(self):
        from airflow.models.variable import Variable
        return Variable

    def get_variable(self, key: str) -> str | None:
        from sqlalchemy import select
        Variable = self._variable_model()
        with self._session() as s:
            var = s.execute(select(Variable).where(Variable.key == key)).scalar_one_or_none()
            return None if var is None else var.val

    def set_variable(self, key: str, value: str) -> None:
        from sqlalchemy import select
        Variable = self._variable_model()
        with self._session() as s:
            var = s.execute(select(Variable).where(Variable.key == key)).scalar_one_or_none()
            if var is None:
                s.add(Variable(key=key, val=value))
            else:
                var.val = value

    def create_variable(self, key: str, value: str) -> bool:
        """One INSERT on the unique key: True if this call created it, False if it existed."""
        from sqlalchemy.exc import IntegrityError
        Variable = self._variable_model()
        try:
            with self._session() as s:
                s.add(Variable(key=key, val=value))
                s.flush()
        except IntegrityError:
            return False
        return True

    def delete_variable(self, key: str) -> None:
        from sqlalchemy import delete
        Variable = self._variable_model()
        with self._session() as s:
            s.execute(delete(Variable).where(Variable.key == key)
                      .execution_options(synchronize_session=False))

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()

    def __enter__(self) -> "DagModelBackend":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _like_escape(term: str) -> str:
    """A literal for LIKE ... ESCAPE '/' (not a backslash, which MySQL strings also escape):
    `_` and `%` in a dag_id match only themselves."""
    return term.replace("/", "//").replace("%", "/%").replace("_", "/_")


def _os_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry (containers)
        return f"uid-{os.getuid()}"
