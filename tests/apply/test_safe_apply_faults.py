"""Safe apply under faults and at scale, against real Airflow: 100 applies through a proxy
failing 20% of requests converge and never touch a DAG outside the plan (AF3); emergency pause
with exceptions and its exact recovery (AF3: 1,000 DAGs, AF2: the 154 standard ones).

Every test checks EVERY DAG's is_paused in Airflow's own database afterwards.
"""

from __future__ import annotations

import json
import random
import time

import pytest

from testkit import harness
from testkit.harness import AirflowServer

from compat.matrix_support import Cli as InProcess
from early import Early
from faultproxy import FaultProxy

# the two longest scenarios (~9 min) run in `make test`'s second process, after the matrix,
# to balance the two processes (conftest: lane2)
pytestmark = pytest.mark.lane2
from helpers import REPO, db_states, set_states, write_files
from safe_apply_support import (ENV, fast_settle, latest_journal, report, state_repo,
                                variable, warm_up)


def _server(name: str) -> AirflowServer:
    """AF3 with 1,000 DAGs: registering them is most of its start-up, hence prepared early."""
    return AirflowServer(major=3, dags=harness.make_dags(1000), root=REPO)


EARLY = Early("safe-apply-faults-af", _server)


def prestart() -> None:
    """conftest calls this once collection shows tests of this module will run."""
    EARLY.prestart("1000")


@pytest.fixture(scope="module", autouse=True)
def _drop_unused_servers():
    yield
    EARLY.drop_unused()


# ----------------------------------------------------------------------------- faults

POOL = [f"report_{i:03d}" for i in range(10, 30)] + [f"ml_{i:03d}" for i in range(1, 11)]


@pytest.mark.airflow
def test_100_applies_through_a_faulty_proxy_converge(airflow3, tmp_path, monkeypatch, capsys):
    """20% of requests fail (5xx, resets, timeouts, before or after the server acted)."""
    airflow3.reset()
    initial = db_states(airflow3)
    # the same retries with a shorter backoff, and the plan's audit read capped at the last
    # 100 pause events instead of 1,000 (no schema key for these): faster, same code paths
    fast_settle(monkeypatch, backoff_base=0.01, backoff_max=0.05, audit_limit=100)
    rng = random.Random(5)
    desired = {d: True for d in POOL}
    applies = resumes = reapplies = 0
    # a timeout costs the client its whole timeout: 15% of the faults, not a third
    weights = (30, 15, 25, 15, 10, 5)       # 5xx, 5xx_after, reset, reset_after, timeout(_after)
    with FaultProxy(airflow3.url, rate=0.2, seed=11, hold=0.5, weights=weights) as proxy:
        root = state_repo(tmp_path, proxy.url, "", '{batches: ["100%"], gate: {wait_seconds: 0}}',
                          backend_extra=", api: v2, timeout: 0.3, retries: 2")
        cli = InProcess(monkeypatch, capsys, root, tmp_path / "journal")
        for i in range(100):
            for d in rng.sample(POOL, 3):
                desired[d] = not desired[d]
            write_files(root, {f"{ENV}.yaml": (
                f"environment: {ENV}\ndefaults: {{unmanaged: ignore}}\ndags:\n" + "".join(
                    f"  {d}: {{paused: {str(p).lower()}, reason: 'run {i}', owner: ops}}\n"
                    for d, p in sorted(desired.items())))})
            before = db_states(airflow3)
            code, out, err = cli("apply", ENV, "--yes")
            applies += 1
            for attempt in range(20):
                if code == 0 and ("Apply complete" in out or "No changes" in out):
                    break
                # died half-way: finish it from its journal if it can be, else plan again
                journal = latest_journal(tmp_path / "journal")
                if code == 1 and journal and journal["status"] in ("running", "failed"):
                    code, out, err = cli("apply", ENV, "--resume", "--yes")
                    resumes += 1
                else:
                    code, out, err = cli("apply", ENV, "--yes")
                    reapplies += 1
            else:
                pytest.fail(f"apply {i} did not converge: {code} {out} {err}")
            got = db_states(airflow3)
            outside = {d for d in got if d not in POOL and got[d] != initial[d]}
            assert not outside, f"apply {i} changed DAGs outside the plan: {outside}"
            changed = {d for d in POOL if got[d] != before[d]}
            assert changed <= {d for d in POOL if desired[d] != before[d]}
            wrong = {d for d in POOL if got[d] != desired[d]}
            assert not wrong, f"apply {i}: not converged: {wrong}"
        proxy.enabled = False
        stats = dict(proxy.stats)
    assert db_states(airflow3) == {**initial, **desired}
    assert stats["requests"] > 1000 and stats["requests"] * 0.15 < sum(
        v for k, v in stats.items() if k != "requests") < stats["requests"] * 0.25
    assert resumes + reapplies > 0           # some applies did die half-way and recovered
    report(capsys, f"fault injection: {applies} applies converged ({resumes} resumes, {reapplies} "
           f"re-applies); proxy {stats}; busiest: "
           f"{sorted(proxy.paths.items(), key=lambda x: -x[1])[:6]}")


# ----------------------------------------------------------------------------- emergency

@pytest.fixture(scope="module")
def af_1000():
    """Airflow 3 with 1,000 generated DAGs (etl/report/ml/critical; every 50th a canary)."""
    server = EARLY.get("1000")
    warm_up(server)
    yield server
    server.stop()


@pytest.fixture(params=[3, 2], ids=["af3", "af2"])
def emergency_server(request):
    """AF3: 1,000 generated DAGs (a dedicated server); AF2: the shared one (154 DAGs, with
    import errors and a stale DAG)."""
    return request.getfixturevalue("af_1000" if request.param == 3 else "airflow2")


@pytest.mark.airflow
def test_emergency_pause_1000_dags_and_recover_exactly(emergency_server, tmp_path, monkeypatch,
                                                       capsys):
    af_1000 = emergency_server
    ids = sorted(db_states(af_1000))
    assert len(ids) == (1000 if af_1000.major == 3 else len(harness.STANDARD_DAGS))
    af_1000.reset()
    set_states(af_1000, {d: (i % 10 >= 8) for i, d in enumerate(ids)})   # 80% running
    prior = db_states(af_1000)
    tags = {d: set(s.tags) for d, s in af_1000.specs.items()}
    mine = "ml_b001" if af_1000.major == 3 else "ml_01"      # a protected id prefix
    protect = f"{mine}*"
    excepted = {d for d in ids if "critical" in tags[d] or d.startswith(mine)}
    root = state_repo(tmp_path, af_1000.url, (
        f"environment: {ENV}\ndefaults: {{unmanaged: ignore}}\n"
        "groups:\n  - {name: reports, match: {dag_id: 'report_*'}, paused: false,\n"
        "     reason: 'reports run', owner: analytics}\n"
        "  - {name: crit, match: {dag_id: 'critical_*'}, paused: false,\n"
        "     reason: 'critical runs', owner: ops}\n"),
        '{batches: [1, "10%", "100%"], canary: {tags: [canary]}, gate: {wait_seconds: 0}}',
        protect=f"['{protect}']")
    cli = InProcess(monkeypatch, capsys, root, tmp_path / "journal")
    fast_settle(monkeypatch)

    code, out, err = cli("emergency", "pause", ENV, "--reason", "warehouse down",
                         "--owner", "oncall", "--except", "tag:critical", "--format", "json")
    assert code == 0, err
    summary = json.loads(out)
    after = db_states(af_1000)
    want = {d: (prior[d] if d in excepted else True) for d in ids}
    assert after == want
    running = [d for d in ids if not prior[d]]
    assert summary["paused"] == len([d for d in running if d not in excepted])
    assert set(summary["kept_running"]) == {d for d in running if d in excepted}
    report(capsys, f"{af_1000.version}: emergency pause of {len(ids)} DAGs ({summary['paused']} "
           f"paused, {len(summary['kept_running'])} kept running): {summary['seconds']}")
    assert summary["seconds"]["total"] < 120  # hang guard only: bench/emergency.py measures speed
    marker = json.loads(variable(af_1000, f"pausectl.emergency.{ENV}"))
    assert marker["prior"] == {d: False for d in running if d not in excepted}

    # while it lasts: git wants report_* running, but plan/apply/drift keep them paused
    code, out, _ = cli("plan", ENV, "--format", "json")
    plan = json.loads(out)
    assert plan["emergency"] == marker["started"] and plan["warnings"][0].startswith("EMERGENCY")
    assert all(c["dag_id"] not in marker["prior"] or c["action"] == "pause"
               for c in plan["changes"])
    unpause = {c["dag_id"] for c in plan["changes"] if c["action"] == "unpause"}
    assert unpause and unpause <= excepted        # excepted DAGs still follow git
    t0 = time.monotonic()
    code, out, err = cli("apply", ENV, "--yes", "--allow-mass-change")
    report(capsys, f"apply during the emergency ({len(unpause)} excepted DAGs): "
          f"{time.monotonic() - t0:.1f}s")
    assert code == 0, err
    now = db_states(af_1000)
    assert all(now[d] for d in marker["prior"])             # the emergency holds
    code, out, _ = cli("drift", ENV, "--format", "json")
    assert json.loads(out)["environments"][0]["warnings"][0].startswith("EMERGENCY")
    # declaring it again completes it and keeps the first prior state
    code, out, err = cli("emergency", "pause", ENV, "--reason", "again", "--format", "json")
    assert code == 0 and json.loads(out)["paused"] == 0, err

    # recover: exactly the prior state of what the emergency paused, in canary batches
    set_states(af_1000, {d: prior[d] for d in excepted})    # undo the git apply of excepted
    # (gates off here: the gate re-reads runs per DAG, 600 requests; test_failing_canary_...
    # proves the gate; bench/emergency.py times recover with it)
    t0 = time.monotonic()
    code, out, err = cli("emergency", "recover", ENV, "--yes", "--no-gates")
    report(capsys, f"recover: {time.monotonic() - t0:.1f}s")
    assert code == 0, (out, err)
    assert "batch 1/3: 1 DAG(s) (0 pause, 1 unpause)" in out, out
    assert db_states(af_1000) == prior
    assert af_1000.query("SELECT key FROM variable WHERE key LIKE 'pausectl.emergency.%'") == []
    journal = json.loads(sorted((tmp_path / "journal").glob(f"{ENV}-*.json"))[-1].read_text())
    assert journal["kind"] == "emergency-recover" and journal["status"] == "done"
    assert [len(b["dag_ids"]) for b in journal["batches"]][0] == 1
