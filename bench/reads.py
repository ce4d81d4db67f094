"""Ratio 2: `plan` of 5,000 live DAGs vs a bare paged listing with the same page size.
Ratio 5: `pausectl drift` over 8 environments at once vs the slowest of them alone.

The plan runs in-process as the CLI does after parsing (load, open the backend, observe:
listing, marker, events for the DAGs that differ; resolve; plan). Its state holds groups
over the whole fleet, 1,000 of the DAGs differ from git (so their events are read).

The 8 environments are on the two benchmark servers (this box cannot run 8 Airflows besides
the rest): `big` on the 5,000-DAG server, 7 on the 1,000-DAG server, each with its own rules;
every environment lists all of its server's DAGs, as a real one would.
"""

from __future__ import annotations

import contextlib
import io
import time
from pathlib import Path

from common import bare_listing, counted, impact, measure, write_state

WITH_IMPACT = True           # bench/run.py --no-impact turns the impact-preview runs off
GROUPS = ("defaults: {unmanaged: report}\ngroups:\n"
          "  - {name: reports, match: {dag_id: \"report_*\"}, paused: true, reason: quiet, "
          "owner: analytics}\n"
          "  - {name: ml, match: {tags: [ml]}, paused: false, reason: go, owner: ml-team}\n"
          "  - {name: canaries, match: {tags: [canary]}, paused: false, reason: canary, "
          "owner: platform, priority: 5}\n")


def plan_vs_listing(server, tmp: Path, page: int = 100, trials: int = 3) -> dict:
    from reconciler.engine import load, open_backend, plan_env
    state = write_state(tmp / "plan", {"big": (server, GROUPS)}, page=page)
    ctx = load(state, "big")

    def plan_once() -> None:
        backend = open_backend(ctx.cfg, "big")
        try:
            plan, _, _ = plan_env(ctx, backend)
            assert plan.changes
        finally:
            backend.close()

    server.reset(paused=True, variables=True, events=True)
    listing = measure(lambda: bare_listing(server, page), trials)
    plan = measure(plan_once, trials) if WITH_IMPACT else None
    with impact(False):
        core = measure(plan_once, trials)
        with counted() as c:
            plan_once()
    return {"dags": len(server.specs), "page": page, "listing": listing, "plan_core": core,
            "plan_paths": c["paths"], **({"plan": plan} if plan else {})}


def _drift(state: Path, envs: list[str]) -> None:
    from reconciler.cli.main import main
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        try:
            main(["--state", str(state), "drift", *envs])
        except SystemExit as e:
            if e.code:
                raise RuntimeError(f"pausectl drift exited {e.code}: "
                                   f"{err.getvalue().strip()[-500:]}") from None


def fleet_drift(big, small, tmp: Path, trials: int = 3) -> dict:
    """8 environments: `big` alone on the big server, env1..env7 on the small one."""
    envs = {"big": (big, GROUPS)}
    for i in range(1, 8):
        envs[f"env{i}"] = (small, "defaults: {unmanaged: report}\ngroups:\n"
                           f"  - {{name: g{i}, match: {{dag_id: \"*{i}\"}}, paused: true, "
                           "reason: r, owner: o}\n")
    state = write_state(tmp / "fleet", envs)
    names = list(envs)
    alone = {}
    for name in names:
        alone[name] = measure(lambda: _drift(state, [name]), trials)
    slowest = max(alone, key=lambda n: alone[n][0])
    t = measure(lambda: _drift(state, names), trials)
    seq = time.perf_counter()
    for name in names:
        _drift(state, [name])
    seq = time.perf_counter() - seq
    return {"envs": len(names), "alone": alone, "slowest": slowest, "fleet": t,
            "sequential": seq}
