"""DAG registration for `AirflowServer` (a mixin): generated files, `airflow dags reserialize`
or one parsing loop, and the metadata DB reads (`query`) and writes (`reset`) tests use."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import subprocess
import time
from typing import Iterable, Sequence

from testkit.dags import _BREAK, _GENERATOR, _IMPORTS, DagSpec
from testkit.procs import READY_TIMEOUT, HarnessError, _kill_tree, _tail

DAGS_PER_FILE = 250          # normal DAGs are generated in files of this many


class DagRegistry:
    """Needs from the server: major, venv, home, env, logs, dags_folder, db_path, specs,
    _lock, _file_seq, _procs, timings and airflow()."""

    def add_dags(self, specs: Iterable[DagSpec]) -> None:
        """Write DAG files for these specs and register them, as Airflow would.

        Only healthy DAGs: one `airflow dags reserialize`. With stale/import-error specs: their
        files are registered first (a small reserialize), then deleted/broken while the
        healthy files are written, and one full parsing loop registers the healthy DAGs and
        lets Airflow notice the stale and broken ones (reserialize alone does not, measured).
        """
        specs = list(specs)
        if not specs:
            return
        if self.home is None:          # before start(): written during prepare()
            self._pending.extend(specs)
            return
        with self._lock:
            seen = set(self.specs)
            for spec in specs:
                if spec.dag_id in seen:
                    raise ValueError(f"duplicate dag_id {spec.dag_id!r}")
                seen.add(spec.dag_id)
            special = [s for s in specs if s.stale or s.import_error]
            if special and self.major == 2 and "scheduler" in self._procs:
                raise HarnessError("AF2: adding stale/import-error DAGs while the scheduler "
                                   "runs is not supported (SQLite allows one scheduler)")
            normal = [s for s in specs if not (s.stale or s.import_error)]
            for spec in special:
                self._write_file(spec.dag_id, [spec])
            if special:
                self._reserialize(special)
                for spec in special:
                    path = self.dags_folder / f"{spec.dag_id}.py"
                    if spec.stale:
                        path.unlink()
                        (self.dags_folder / f"{spec.dag_id}.json").unlink()
                    else:
                        with open(path, "a") as fh:
                            fh.write(_BREAK)
            for start in range(0, len(normal), DAGS_PER_FILE):
                self._file_seq += 1
                self._write_file(f"pausectl_dags_{self._file_seq:04d}",
                                 normal[start:start + DAGS_PER_FILE])
            if special:
                t = time.monotonic()
                self._parse_once(specs)
                self.timings["parse_once"] = round(time.monotonic() - t, 2)
                bad = self._problems(specs)
                if bad:
                    raise HarnessError(
                        f"after one parsing loop: {', '.join(bad[:5])}"
                        f"{' ...' if len(bad) > 5 else ''}; {self.logs / 'parse-once.log'}:\n"
                        f"{_tail(self.logs / 'parse-once.log')}\n{self._parser_log_tail()}")
            elif normal:
                self._reserialize(normal)
            for spec in specs:
                self.specs[spec.dag_id] = spec

    def _reserialize(self, specs: Sequence[DagSpec]) -> None:
        t = time.monotonic()
        self.airflow("dags", "reserialize", log="reserialize",
                     env={"AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING"})  # ~25% faster
        self.timings["reserialize"] = round(time.monotonic() - t, 2)
        missing = [p for p in self._problems(specs) if p.endswith("not registered")]
        if missing:
            raise HarnessError(f"{len(missing)} DAG(s) not registered after reserialize "
                               f"(first: {missing[:3]}); {self.logs / 'reserialize.log'}:\n"
                               f"{_tail(self.logs / 'reserialize.log')}")

    def _write_file(self, stem: str, specs: Sequence[DagSpec]) -> None:
        (self.dags_folder / f"{stem}.json").write_text(
            json.dumps([s.to_json() for s in specs], indent=0))
        (self.dags_folder / f"{stem}.py").write_text(
            _GENERATOR.format(imports=_IMPORTS[self.major]))

    def _parse_once(self, specs: Sequence[DagSpec]) -> None:
        """One full parsing loop: registers new files, marks DAGs of deleted files stale and
        records import errors."""
        if self.major == 3:
            self.airflow("dag-processor", "--num-runs", "1", log="parse-once")
            return
        # AF2 on SQLite has no standalone dag-processor, and `scheduler --num-runs 1` may exit
        # before its parser has seen every file: run a scheduler (job scheduling off, so it
        # never creates runs) until the DB shows the result, then stop it. The wait is measured
        # from the last progress, not from the start: on a CI box busy installing venvs the
        # whole scheduler stalled 54 s once and a fixed 180 s ran out with nothing parsed.
        patience = max(READY_TIMEOUT, len(specs) * 0.5)
        hard_stop = time.monotonic() + 3 * patience
        proc = self._start_parsing_scheduler()
        try:
            left = len(self._problems(specs))
            since = time.monotonic()
            while left:
                now = time.monotonic()
                if now - since > patience or now > hard_stop:
                    break
                if proc.poll() is not None:        # it exited early: run it again
                    proc = self._start_parsing_scheduler()
                time.sleep(0.5)
                now_left = len(self._problems(specs))
                if now_left < left:
                    left, since = now_left, time.monotonic()
        finally:
            _kill_tree(proc)

    def _start_parsing_scheduler(self) -> subprocess.Popen:
        assert self.venv is not None
        log = open(self.logs / "parse-once.log", "ab")
        try:
            return subprocess.Popen(
                [str(self.venv / "bin" / "airflow"), "scheduler", "--skip-serve-logs"],
                env={**self.env, "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False"},
                cwd=self.home, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
        finally:
            log.close()

    def _parser_log_tail(self) -> str:
        """AF2's file parser logs apart from the scheduler: where a slow or failed parse shows."""
        if self.major == 3 or self.home is None:
            return ""
        path = self.home / "logs" / "dag_processor_manager" / "dag_processor_manager.log"
        return f"{path}:\n{_tail(path, 20)}"

    def query(self, sql: str, params: Sequence = ()) -> list[tuple]:
        """Read the metadata DB directly (SQLite), e.g. to check what the API reports."""
        with contextlib.closing(sqlite3.connect(self.db_path, timeout=30)) as db:
            return db.execute(sql, params).fetchall()

    def _problems(self, specs: Sequence[DagSpec]) -> list[str]:
        """What the DB does not (yet) show about these specs; empty when all is as meant."""
        active = "NOT is_stale" if self.major == 3 else "is_active"
        rows = {r[0]: r[1:] for r in self.query(
            f"SELECT dag_id, {active}, has_import_errors FROM dag")}
        bad = []
        for spec in specs:
            if spec.dag_id not in rows:
                bad.append(f"{spec.dag_id} not registered")
                continue
            is_active, has_errors = rows[spec.dag_id]
            if spec.stale and is_active:
                bad.append(f"{spec.dag_id} not stale")
            if spec.import_error and not has_errors:
                bad.append(f"{spec.dag_id} has no import error")
        return bad

    def reset(self, paused: bool | None = None, variables: bool = True,
              events: bool = False) -> None:
        """Put the pause state back to each DAG's creation default (or `paused` for all) and
        delete every Airflow Variable: for tests sharing one session-wide server. `events`:
        also empty the event log (each plan reads up to its newest 1,000 pause events, which
        on AF2 costs a request per 100; a long shared session would otherwise pay for every
        earlier test's events)."""
        with contextlib.closing(sqlite3.connect(self.db_path, timeout=30)) as db:
            with db:
                if paused is None:
                    db.execute("UPDATE dag SET is_paused = 1")
                    opened = [d for d, s in self.specs.items() if not s.initially_paused]
                    db.executemany("UPDATE dag SET is_paused = 0 WHERE dag_id = ?",
                                   [(d,) for d in opened])
                else:
                    db.execute("UPDATE dag SET is_paused = ?", (int(paused),))
                if variables:
                    db.execute("DELETE FROM variable")
                if events:
                    db.execute("DELETE FROM log")
