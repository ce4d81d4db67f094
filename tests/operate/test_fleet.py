"""Fleet: `pausectl drift ENV...` runs its environments at once (bounded), keeps their order,
raises the first failure in that order, and ends with one summary table."""

from __future__ import annotations

import contextvars
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


def _transport(handler, password="pw", verify=True):
    """A Transport over httpx.MockTransport with basic credentials (the fault test below)."""
    import httpx

    from reconciler.live.rest.auth import BasicAuth, Credentials
    from reconciler.live.rest.transport import Transport
    t = Transport("mock", "http://af.test", timeout=10, retries=0, concurrency=1, verify=verify,
                  max_retry_after=1, scrub=lambda s: s, transport=httpx.MockTransport(handler))
    creds = Credentials("mock", "basic", {"U": "admin", "P": password}, "U", "P", "T")
    return t, BasicAuth(t, creds, ambiguous_403=False, probe_url="http://af.test/dags",
                        fail=lambda: PausectlError("auth failed"))


def test_shared_reads_first_asker_fails_others_ask_themselves():
    # a fault a real server does not give on cue: the first answer to one URL is a 500
    import httpx

    from reconciler.live.rest.shared import shared_reads
    calls, hold = [], threading.Event()

    def handler(request):
        calls.append(request.url.path)
        if len(calls) == 1:
            hold.wait(5)                 # the first asker is in flight while the second asks
            return httpx.Response(500, json={"detail": "boom"})
        return httpx.Response(200, json={"dags": [], "total_entries": 0})

    (a, auth_a), (b, auth_b) = _transport(handler), _transport(handler)
    out: dict = {}
    with shared_reads() as reads:
        def ask(name, t, auth):
            try:
                out[name] = t.send("GET", "http://af.test/api/v2/dags", auth=auth)[1]
            except PausectlError as e:
                out[name] = e
        # threads start with an empty context: each runs in a copy of this one (as fleet's)
        first = threading.Thread(target=contextvars.copy_context().run,
                                 args=(ask, "a", a, auth_a))
        first.start()
        second = threading.Thread(target=contextvars.copy_context().run,
                                  args=(ask, "b", b, auth_b))
        second.start()
        hold.set()
        first.join(10)
        second.join(10)
        assert isinstance(out["a"], PausectlError) and "HTTP 500" in str(out["a"])
        assert out["b"] == {"dags": [], "total_entries": 0} and len(calls) == 2
        # now kept: the same read as the same user is answered, another password is not
        assert b.send("GET", "http://af.test/api/v2/dags", auth=auth_b)[1] == out["b"]
        assert len(calls) == 2 and reads.shared == 1
        c, auth_c = _transport(handler, password="other")
        c.send("GET", "http://af.test/api/v2/dags", auth=auth_c)
        assert len(calls) == 3
        # nor is a backend that does not verify TLS answered for one that does, or back
        d, auth_d = _transport(handler, verify=False)
        d.send("GET", "http://af.test/api/v2/dags", auth=auth_d)
        assert len(calls) == 4
