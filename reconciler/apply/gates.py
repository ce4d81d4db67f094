"""Health gates between rollout batches.

After a batch, wait `wait_seconds`; with `min_runs`, also wait (up to `timeout_seconds` in all)
until every scheduled DAG the batch unpaused has that many finished runs that started after
the batch. Then fail the gate when more than `max_failed_runs` of those runs failed, a DAG of
the batch has import errors, or is stale. Decided here (the contract is silent):
- the wait stops early as soon as the failed runs exceed `max_failed_runs` (fail fast);
- `min_runs` not reached by the timeout fails the gate (no evidence is not health);
- DAGs without a schedule (timetable_summary null) run only when triggered, so `min_runs`
  does not wait for them (their failed runs, import errors and staleness still count);
- a gate that cannot read Airflow (API down after retries) fails.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Callable

from reconciler.core import progress
from reconciler.core.errors import PausectlError
from reconciler.core.timeutil import iso, utcnow
from reconciler.live.base import BatchedRuns

FINISHED = {"success", "failed"}


def gate_settings(rollout: dict) -> dict:
    g = dict(rollout.get("gate") or {})
    return {"wait_seconds": float(g.get("wait_seconds", 0)), "min_runs": int(g.get("min_runs", 0)),
            "timeout_seconds": float(g.get("timeout_seconds", 3600)),
            "max_failed_runs": int(g.get("max_failed_runs", 0)),
            "import_errors": g.get("import_errors", "fail"), "stale": g.get("stale", "fail")}


def evaluate(backend, dag_ids: list[str], since: datetime, settings: dict,
             sleep: Callable[[float], None] = time.sleep,
             clock: Callable[[], float] = time.monotonic, log: Callable[[str], None] = print,
             wait: bool = True, read_back: dict | None = None) -> dict:
    """Wait as configured, then check the DAGs of one batch. Returns the gate result.
    `read_back`: the batch's DAGs (LiveDag by id) as the write's verifying read saw them just
    now (SetPausedResult.read_back); when it holds every DAG and the gate does not wait, it
    stands in for the listing (import errors, staleness, schedules)."""
    t0 = clock()
    try:
        return _evaluate(backend, dag_ids, since, settings, sleep, clock, log, wait, t0,
                         read_back)
    except PausectlError as e:
        return {"passed": False, "checked_at": iso(utcnow()), "dags": len(dag_ids),
                "failed_runs": {}, "import_errors": [], "stale": [], "missing_runs": [],
                "waited_seconds": round(clock() - t0, 3),
                "message": f"gate check failed: {e}"}


def _evaluate(backend, dag_ids, since, settings, sleep, clock, log, wait, t0,
              read_back) -> dict:
    max_failed = settings["max_failed_runs"]
    need = settings["min_runs"] if wait else 0
    waiting: list[str] = []
    if wait and dag_ids and settings["wait_seconds"]:
        log(f"gate: waiting {settings['wait_seconds']:g}s before checking {len(dag_ids)} DAG(s)")
        # in slices (a lock heartbeat wrapped into `sleep` keeps running); on a terminal a
        # countdown naming what it waits for (core/progress.py)
        progress.wait(sleep, settings["wait_seconds"], "gate: health of " + ", ".join(
            dag_ids[:2]) + (f" +{len(dag_ids) - 2} more" if len(dag_ids) > 2 else ""))
    # one listing serves the schedules, import errors and staleness (no per-DAG read); it is
    # read again only if waiting for runs let time pass (a deploy meanwhile may break a file).
    # Without a wait, the write's own read-back of the batch (just taken) is that listing
    waited = bool(wait and dag_ids and settings["wait_seconds"])
    if not waited and read_back and all(d in read_back for d in dag_ids):
        live = read_back
    else:
        live = {d.dag_id: d for d in backend.list_dags()} if dag_ids else {}
    slept = False
    if need and dag_ids:
        waiting = [d for d in dag_ids if d in live and live[d].timetable_summary is not None]
        if waiting:
            log(f"gate: waiting for {need} finished run(s) of {len(waiting)} scheduled DAG(s) "
                f"(timeout {settings['timeout_seconds']:g}s)")
        step = min(10.0, max(1.0, settings["timeout_seconds"] / 100))
        while waiting:
            runs = runs_since(backend, dag_ids, since)
            if sum(r.state == "failed" for rs in runs.values() for r in rs) > max_failed:
                break                                           # fail fast
            waiting = [d for d in waiting
                       if sum(r.state in FINISHED for r in runs[d]) < need]
            if not waiting or clock() - t0 >= settings["timeout_seconds"]:
                break
            sleep(step)
            slept = True
    runs = runs_since(backend, dag_ids, since)
    failed = {d: sum(r.state == "failed" for r in rs) for d, rs in runs.items()}
    failed = {d: n for d, n in failed.items() if n}
    missing_runs = sorted(d for d in waiting
                          if sum(r.state in FINISHED for r in runs[d]) < need)
    if slept:
        live = {d.dag_id: d for d in backend.list_dags()}
    import_errors = sorted(d for d in dag_ids if d in live and live[d].has_import_errors)
    stale = sorted(d for d in dag_ids if d in live and live[d].is_stale)
    reasons = []
    total_failed = sum(failed.values())
    if total_failed > max_failed:
        reasons.append(f"{total_failed} failed run(s) > max_failed_runs {max_failed}"
                       f" ({', '.join(f'{d}: {n}' for d, n in sorted(failed.items()))})")
    if import_errors and settings["import_errors"] == "fail":
        reasons.append(f"import errors in {', '.join(import_errors)}")
    if stale and settings["stale"] == "fail":
        reasons.append(f"stale DAGs {', '.join(stale)}")
    if missing_runs and not reasons:
        reasons.append(f"no {need} finished run(s) within {settings['timeout_seconds']:g}s for "
                       f"{', '.join(missing_runs[:10])}{' ...' if len(missing_runs) > 10 else ''}")
    return {"passed": not reasons, "checked_at": iso(utcnow()), "dags": len(dag_ids),
            "failed_runs": failed, "import_errors": import_errors, "stale": stale,
            "missing_runs": missing_runs, "waited_seconds": round(clock() - t0, 3),
            "message": "; ".join(reasons) if reasons else "healthy"}


def runs_since(backend, dag_ids: list[str], since: datetime) -> dict[str, list]:
    """Runs of each DAG that started (or, not started yet, are due) since `since`. A backend
    with `dag_runs_since(dag_ids, since)` answers for the whole batch at once (REST: the batch
    endpoint `POST /dags/~/dagRuns/list`, a constant number of requests; dagmodel: one query);
    otherwise one `dag_runs` call per DAG. The batch read asks the server for runs that ENDED
    since `since` (all a gate or soak counts are finished runs), then keeps those that started
    since (or never started: a run marked failed before it ran has a start_date of null, and
    a start_date filter on the server would drop exactly that failure)."""
    out: dict[str, list] = {d: [] for d in dag_ids}
    if isinstance(backend, BatchedRuns) and len(dag_ids) > 1:
        for r in backend.dag_runs_since(dag_ids, since):
            if r.dag_id in out and (r.start_date or r.run_after or since) >= since:
                out[r.dag_id].append(r)
        return out
    for d in dag_ids:
        runs = backend.dag_runs(d, limit=50)
        out[d] = [r for r in runs if (r.start_date or r.run_after or since) >= since]
    return out
