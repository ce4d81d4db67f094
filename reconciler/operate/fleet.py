"""Many environments at once: `pausectl drift ENV...` (and any per-environment operation) runs
each environment in its own thread, at most `jobs` at a time, and sums them up in one table.

Why threads: an environment's time is almost all waiting on its Airflow (HTTP), so N
environments on N servers take about as long as the slowest one; the bound keeps a fleet of
hundreds from opening hundreds of connections at once. Each environment has its own context
and backend (opened and closed in its thread). A read-only run (`read_only=True`: drift)
also shares what its environments read from the same Airflow as the same user
(live/rest/shared.py: each listing page and the event log read once, each environment
judging them against its own state), so 7 environments on one server cost that server one
environment's reads. Results come back in the order the environments were given; if any
environment fails, the first failure in that order is raised after all have finished (so no
thread is left running), the same error a sequential loop would have raised first.
"""

from __future__ import annotations

import contextlib
import contextvars
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from reconciler.core import progress

DEFAULT_JOBS = 8


@dataclass
class EnvRun:
    """One environment's result (or error) and how long it took."""

    env: str
    value: Any = None
    error: BaseException | None = None
    seconds: float = 0.0
    cfg: Any = None                     # the loaded pausectl.yaml (the same for every env)


def run_envs(state_dir, envs: Sequence[str], op: Callable[[Any, Any], Any], *,
             jobs: int = DEFAULT_JOBS, read_only: bool = False) -> list[EnvRun]:
    """`op(ctx, backend)` for every environment, `jobs` at a time; errors are kept per env.
    `read_only`: `op` never writes, so environments on one server share its answers."""
    from reconciler.engine import load, open_backend
    from reconciler.live.rest.shared import shared_reads

    def one(env: str) -> EnvRun:
        t0 = time.monotonic()
        run = EnvRun(env)
        try:
            ctx = load(state_dir, env)
            run.cfg = ctx.cfg
            backend = open_backend(ctx.cfg, env)
            try:
                run.value = op(ctx, backend)
            finally:
                backend.close()
        except Exception as e:          # kept, raised in env order by values()
            run.error = e
        run.seconds = time.monotonic() - t0
        bar.advance(1)
        return run

    envs = list(dict.fromkeys(envs))    # an environment named twice is checked once
    # one progress line for the fleet on a terminal (core/progress.py), nothing otherwise
    with progress.task(f"{len(envs)} environment(s)", total=len(envs)) as bar:
        if len(envs) <= 1 or jobs <= 1:
            return [one(e) for e in envs]
        with contextlib.ExitStack() as scope, \
                ThreadPoolExecutor(max_workers=min(jobs, len(envs)),
                                   thread_name_prefix="pausectl-fleet") as pool:
            if read_only:
                scope.enter_context(shared_reads())
            # each thread runs in a copy of this context: the shared reads reach it
            futures = [pool.submit(contextvars.copy_context().run, one, e) for e in envs]
            return [f.result() for f in futures]


def values(runs: list[EnvRun]) -> list:
    """The results in environment order; the first error (in that order) is raised."""
    for r in runs:
        if r.error is not None:
            raise r.error
    return [r.value for r in runs]


def drift_summary(reports: list[dict]) -> list[dict]:
    """One row per environment for the fleet table (no timings: the output stays diffable)."""
    return [{"environment": r["environment"], "dags": r["checked_dags"],
             "drifted": len(r["drifted"]), "pending": len(r["pending_git_changes"]),
             "auto_paused": len(r.get("auto_paused") or []),
             "missing": len(r["missing"])} for r in reports]


def summary_text(rows: list[dict], stream) -> None:
    """The fleet table in plain text, fixed columns (80 columns for environment names up to 20 characters)."""
    from reconciler.core.sanitize import line_writer
    w = line_writer(stream)
    cols = ("dags", "drifted", "pending", "auto_paused", "missing")
    width = max([len("environment")] + [len(str(r["environment"])) for r in rows])
    size = {c: max(len(c), 6) for c in cols}

    def line(name: str, cells: dict) -> None:
        w(f"{name:<{width}}  " + "  ".join(f"{cells.get(c, ''):>{size[c]}}" for c in cols)
          + "\n")

    line("environment", {c: c for c in cols})
    for r in rows:
        line(str(r["environment"]), r)
    line("total", {c: sum(r[c] for r in rows) for c in cols})
