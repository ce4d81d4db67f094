"""Ratio 2: `plan` of 5,000 live DAGs vs a bare paged listing with the same page size.
Ratio 5: `pausectl drift` over 8 environments at once vs the slowest of them alone.

The plan runs in-process as the CLI does after parsing (load, open the backend, observe:
listing, marker, events for the DAGs that differ; resolve; plan). Its state holds groups
over the whole fleet, 1,000 of the DAGs differ from git (so their events are read).

The 8 environments are on the two benchmark servers (this box cannot run 8 Airflows besides
the rest): `big` on the 5,000-DAG server, 7 on the 1,000-DAG server, each with its own rules;
every environment lists all of its server's DAGs, as a real one would. At once, the 7 on one
server as the same user share its answers (live/rest/shared.py): that server is read once,
each environment judged against its own state; the table says how many servers they share.
"""

from __future__ import annotations

import contextlib
import io
import statistics
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
    """8 environments: `big` alone on the big server, env1..env7 on the small one. Each is
    timed alone; then the slowest alone and all 8 at once take turns, `trials` times each,
    so the two sides of the ratio see the same load of the box."""
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
    times: dict[str, list[float]] = {"slowest": [], "fleet": []}
    reqs: dict[str, dict] = {}
    for _ in range(trials):
        for key, run in (("slowest", [slowest]), ("fleet", names)):
            with counted() as c:
                t0 = time.perf_counter()
                _drift(state, run)
                times[key].append(time.perf_counter() - t0)
            reqs[key] = c
    seq = time.perf_counter()
    for name in names:
        _drift(state, [name])
    seq = time.perf_counter() - seq
    return {"envs": len(names), "servers": len({s.url for s, _ in envs.values()}),
            "alone": alone, "slowest": slowest,
            "slowest_interleaved": (statistics.median(times["slowest"]),
                                    reqs["slowest"]["requests"]),
            "fleet": (statistics.median(times["fleet"]), reqs["fleet"]["requests"]),
            "fleet_paths": reqs["fleet"]["paths"],
            "alone_requests": sum(a[1] for a in alone.values()), "sequential": seq}
