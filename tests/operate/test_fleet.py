"""Fleet: `pausectl drift ENV...` runs its environments at once (bounded), keeps their order,
raises the first failure in that order, and ends with one summary table."""

from __future__ import annotations

import threading

import pytest

from helpers import EXAMPLE_STATE, REPO, run_inprocess
from reconciler.core.errors import PausectlError
from reconciler.operate import fleet

ENVS = ["dev", "staging", "prod"]


def test_environments_run_at_once_and_come_back_in_order():
    # every op waits for all three: only a concurrent run gets past the barrier
    barrier = threading.Barrier(len(ENVS), timeout=30)

    def op(ctx, backend):
        barrier.wait()
        return ctx.env, len(backend.list_dags())

    runs = fleet.run_envs(EXAMPLE_STATE, ENVS, op, jobs=8)
    assert [r.env for r in runs] == ENVS
    assert [v[0] for v in fleet.values(runs)] == ENVS
    assert all(v[1] > 0 for v in fleet.values(runs))


def test_the_bound_holds_and_one_job_is_sequential():
    active, most = [0], [0]
    lock = threading.Lock()

    def op(ctx, backend):
        with lock:
            active[0] += 1
            most[0] = max(most[0], active[0])
        with lock:
            active[0] -= 1
        return ctx.env

    assert fleet.values(fleet.run_envs(EXAMPLE_STATE, ENVS * 2, op, jobs=1)) == ENVS
    assert most[0] == 1


def test_the_first_failure_in_env_order_is_raised_after_all_ran():
    seen = []

    def op(ctx, backend):
        seen.append(ctx.env)
        if ctx.env != "dev":
            raise PausectlError(f"{ctx.env} broke")
        return ctx.env

    runs = fleet.run_envs(EXAMPLE_STATE, ENVS, op, jobs=3)
    assert sorted(seen) == sorted(ENVS)
    with pytest.raises(PausectlError, match="staging broke"):
        fleet.values(runs)


def test_cli_drift_over_several_envs_ends_with_one_table():
    r = run_inprocess(["drift", "dev", "staging", "prod"], REPO)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    head = next(i for i, ln in enumerate(lines) if ln.startswith("environment "))
    assert lines[head].split() == ["environment", "dags", "drifted", "pending",
                                   "auto_paused", "missing"]
    rows = [ln.split() for ln in lines[head + 1:]]
    assert [r[0] for r in rows] == [*ENVS, "total"]
    assert int(rows[-1][1]) == sum(int(r[1]) for r in rows[:-1])
    assert all(len(ln) <= 80 for ln in lines[head:])
    # one environment: no table
    r = run_inprocess(["drift", "dev"], REPO)
    assert r.returncode == 0 and "environment " not in r.stdout
