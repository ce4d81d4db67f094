"""Health gates between rollout batches.

After a batch, wait `wait_seconds` (or, with `min_runs`, until every DAG the batch unpaused has
that many finished runs, up to `timeout_seconds`), then fail the gate when more than
`max_failed_runs` runs failed, a DAG of the batch has import errors, or is stale.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Callable

from .timeutil import iso, utcnow

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
             wait: bool = True) -> dict:
    """Wait as configured, then check the DAGs of one batch. Returns the gate result."""
    t0 = clock()
    if wait and dag_ids:
        if settings["wait_seconds"]:
            log(f"gate: waiting {settings['wait_seconds']:g}s before checking {len(dag_ids)} DAG(s)")
            sleep(settings["wait_seconds"])
        if settings["min_runs"]:
            log(f"gate: waiting for {settings['min_runs']} finished run(s) per DAG "
                f"(timeout {settings['timeout_seconds']:g}s)")
            while clock() - t0 < settings["timeout_seconds"]:
                runs = _runs_since(backend, dag_ids, since)
                if all(sum(r.state in FINISHED for r in runs[d]) >= settings["min_runs"]
                       for d in dag_ids):
                    break
                sleep(min(10.0, max(1.0, settings["timeout_seconds"] / 100)))
    runs = _runs_since(backend, dag_ids, since)
    failed = {d: sum(r.state == "failed" for r in rs) for d, rs in runs.items()}
    failed = {d: n for d, n in failed.items() if n}
    live = {d.dag_id: d for d in backend.list_dags()} if dag_ids else {}
    import_errors = sorted(d for d in dag_ids if d in live and live[d].has_import_errors)
    stale = sorted(d for d in dag_ids if d in live and live[d].is_stale)
    reasons = []
    total_failed = sum(failed.values())
    if total_failed > settings["max_failed_runs"]:
        reasons.append(f"{total_failed} failed run(s) > max_failed_runs {settings['max_failed_runs']}"
                       f" ({', '.join(f'{d}: {n}' for d, n in sorted(failed.items()))})")
    if import_errors and settings["import_errors"] == "fail":
        reasons.append(f"import errors in {', '.join(import_errors)}")
    if stale and settings["stale"] == "fail":
        reasons.append(f"stale DAGs {', '.join(stale)}")
    return {"passed": not reasons, "checked_at": iso(utcnow()), "dags": len(dag_ids),
            "failed_runs": failed, "import_errors": import_errors, "stale": stale,
            "waited_seconds": round(clock() - t0, 3),
            "message": "; ".join(reasons) if reasons else "healthy"}


def _runs_since(backend, dag_ids: list[str], since: datetime) -> dict[str, list]:
    out = {}
    for d in dag_ids:
        runs = backend.dag_runs(d, limit=50)
        out[d] = [r for r in runs if (r.start_date or r.run_after or since) >= since]
    return out
