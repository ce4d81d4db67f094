"""Safe apply against real Airflow 3.3.2 (REST v2) and 2.11.2 (REST v1), through the harness:
a canary whose runs fail is caught by the gate and rolled back, or halts the apply; SIGKILL at
20 points (AF2: 10, each kind once), then --resume or rollback, is exact; two applies at once
do not interleave; drift names who paused what (UI/API, CLI) through v2 and v1. Faults and the
emergency at scale: test_safe_apply_faults.py.

Every test checks EVERY DAG's is_paused in Airflow's own database afterwards.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from testkit.harness import AirflowServer, DagSpec

from compat.matrix_support import Cli as InProcess, cli_env, run_sub as run
from early import Early
from helpers import REPO, db_states, set_states, write_files
from safe_apply_support import (ENV, db_now, fast_settle, latest_journal, patch_events,
                                report, state_repo)


# ----------------------------------------------------------------------------- gate + rollback

SCHED_DAGS = [DagSpec("canary_bad", tags=("canary",), fail=True, schedule="* * * * *"),
              DagSpec("canary_halt", tags=("canary",), fail=True, schedule="* * * * *"),
              DagSpec("good_a", schedule="* * * * *"), DagSpec("good_b", schedule="@daily"),
              DagSpec("good_c"), DagSpec("running_now", paused_at_creation=False),
              # issue 15's drain with a real scheduler: one task that runs SLOW seconds
              DagSpec("drain_slow", sleep=20)]
DEDICATED = ("sched3", "sched2")


def _server(name: str) -> AirflowServer:
    """sched3/sched2: a small Airflow with a scheduler (AF3, AF2), so DAGs really run."""
    # AF2: no login rate limit (5 per 40 s), as on the session servers (tests/conftest.py)
    return AirflowServer(major=int(name[-1]), dags=SCHED_DAGS, root=REPO, scheduler=True,
                         extra_env={"AIRFLOW__FAB__AUTH_RATE_LIMITED": "False"})


EARLY = Early("safe-apply-af", _server)


def prestart() -> None:
    """conftest calls this once collection shows tests of this module will run."""
    EARLY.prestart(*DEDICATED)


def launch_ahead(items) -> None:
    """conftest calls this as the tests just before `items` start: if these use the AF3
    scheduler server, its processes start now (its start-up overlaps those tests)."""
    if any(getattr(i, "callspec", None) and i.callspec.params.get("af_sched") == 3
           for i in items):
        EARLY.launch_ahead("sched3")


@pytest.fixture(scope="module", autouse=True)
def _drop_unused_servers():
    yield
    EARLY.drop_unused()


@pytest.fixture(scope="module", params=[3, 2], ids=["af3", "af2"])
def af_sched(request):
    """A small Airflow with a scheduler, so DAGs really run (and fail): AF3 with
    LocalExecutor, AF2 with SequentialExecutor (the only one on SQLite)."""
    server = EARLY.get(f"sched{request.param}")
    if request.param == 3 and any(
            getattr(i, "callspec", None) and i.callspec.params.get("af_sched") == 2
            for i in request.session.items):
        # AF2's webserver and scheduler start (~50 s in CI) while AF3's gate tests wait on
        # their runs, instead of after them
        EARLY.launch_ahead("sched2")
    yield server
    server.stop()


@pytest.mark.airflow
def test_failing_canary_stops_at_the_gate_and_rolls_back(af_sched, tmp_path, monkeypatch, capsys):
    root = state_repo(tmp_path, af_sched.url, (
        f"environment: {ENV}\n"
        "defaults: {unmanaged: ignore}\n"
        "dags:\n"
        "  running_now: {paused: true, reason: 'quiet please', owner: ops}\n"
        "groups:\n"
        "  - {name: back, match: {dag_id: [canary_bad, good_a, good_b, good_c]}, paused: false,\n"
        "     reason: 'vendor is back', owner: data-eng}\n"),
        '{batches: [1, "100%"], canary: {tags: [canary]}, '
        'gate: {min_runs: 1, timeout_seconds: 240, max_failed_runs: 0}, on_gate_failure: rollback}')
    af_sched.reset()
    before = db_states(af_sched)
    assert before == {"canary_bad": True, "canary_halt": True, "good_a": True, "good_b": True,
                      "good_c": True, "running_now": False, "drain_slow": True}
    cli = InProcess(monkeypatch, capsys, root, tmp_path / "journal")
    code, out, err = cli("plan", ENV, "--format", "json")
    assert code == 0, err
    assert json.loads(out)["batches"][0]["dag_ids"] == ["running_now", "canary_bad"]
    t0 = time.monotonic()
    code, out, err = cli("apply", ENV, "--yes")
    took = time.monotonic() - t0
    assert code == 3, (out, err)
    assert "gate after batch 1: FAILED" in err and re.search(r"canary_bad: [1-9]", err), err
    assert "rolled back" in err
    # every DAG is exactly as before the apply; good_* were never unpaused
    assert db_states(af_sched) == before
    journal = json.loads(next((tmp_path / "journal").glob(f"{ENV}-*.json")).read_text())
    assert journal["status"] == "rolled_back"
    assert journal["batches"][0]["status"] == "gate_failed"
    assert journal["batches"][1]["status"] == "pending"
    assert list(journal["batches"][0]["gate"]["failed_runs"]) == ["canary_bad"]
    report(capsys, f"{af_sched.version}: gate failure caught and rolled back in {took:.1f}s")


@pytest.mark.airflow
def test_failing_canary_halts_when_told_then_gate_only_and_rollback(af_sched, tmp_path,
                                                                    monkeypatch, capsys):
    """on_gate_failure: halt (here from --on-gate-failure, over the file's rollback): the
    apply stops after the canary, keeps its journal, `--gate-only` re-checks, rollback undoes."""
    root = state_repo(tmp_path, af_sched.url, (
        f"environment: {ENV}\n"
        "defaults: {unmanaged: ignore}\n"
        "groups:\n"
        "  - {name: back, match: {dag_id: [canary_halt, good_a, good_b]}, paused: false,\n"
        "     reason: 'vendor is back', owner: data-eng}\n"),
        '{batches: [1, "100%"], canary: {tags: [canary]}, '
        'gate: {min_runs: 1, timeout_seconds: 240, max_failed_runs: 0}, on_gate_failure: rollback}')
    af_sched.reset()
    before = db_states(af_sched)
    cli = InProcess(monkeypatch, capsys, root, tmp_path / "journal")
    t0 = time.monotonic()
    code, out, err = cli("apply", ENV, "--yes", "--on-gate-failure", "halt")
    took = time.monotonic() - t0
    assert code == 3, (out, err)
    assert "gate after batch 1: FAILED" in err and re.search(r"canary_halt: [1-9]", err), err
    assert f"Apply halted in {ENV}" in err and "rolled back" not in err, err
    # the canary stays as the batch left it, the rest was never started
    assert db_states(af_sched) == {**before, "canary_halt": False}
    journal = latest_journal(tmp_path / "journal")
    assert journal["status"] == "halted" and journal["rollout"]["on_gate_failure"] == "halt"
    assert [b["status"] for b in journal["batches"]] == ["gate_failed", "pending"]
    code, out, err = cli("apply", ENV, "--gate-only")
    assert code == 3 and "gate: FAILED" in out, (out, err)
    code, out, err = cli("rollback", ENV, "--yes")
    assert code == 0, err
    assert db_states(af_sched) == before
    assert latest_journal(tmp_path / "journal")["status"] == "rolled_back"
    report(capsys, f"{af_sched.version}: gate failure halted the apply in {took:.1f}s")


@pytest.mark.airflow
def test_drain_with_a_real_scheduler_pauses_when_the_run_ends(af_sched, tmp_path, monkeypatch):
    """Issue 15's drain where Airflow's own scheduler runs the DAG: drain_slow's run is
    running (its task sleeps 20 s) when apply starts; apply flips nothing while the run is in
    flight, polls, and pauses drain_slow once the scheduler has finished the run."""
    import httpx
    from reconciler.apply.executor import ApplyOptions
    from reconciler.engine import load, open_backend
    from reconciler.operations import apply_env
    from reconciler.plan.records import ApplyStatus
    af_sched.reset()
    for k, v in {"AF_USER": af_sched.username, "AF_PASS": af_sched.password,
                 "PAUSECTL_JOURNAL_DIR": str(tmp_path / "journal")}.items():
        monkeypatch.setenv(k, v)
    root = state_repo(tmp_path, af_sched.url, (
        f"environment: {ENV}\n"
        "defaults: {unmanaged: ignore}\n"
        "dags:\n"
        "  drain_slow: {paused: drain, reason: 'warehouse move', owner: data-eng}\n"),
        '{batches: ["100%"]}')
    body = {"logical_date": None} if af_sched.major == 3 else {}
    with httpx.Client(base_url=af_sched.api_url, headers=af_sched.auth_headers(),
                      timeout=60) as c:
        assert c.patch("/dags/drain_slow", json={"is_paused": False}).status_code == 200
        r = c.post("/dags/drain_slow/dagRuns", json=body)
        assert r.status_code == 200, r.text
        run_id = r.json()["dag_run_id"]

        def run_state() -> str:
            return c.get(f"/dags/drain_slow/dagRuns/{run_id}").json()["state"]

        deadline = time.monotonic() + 300            # the scheduler picks it up
        while run_state() != "running":
            assert time.monotonic() < deadline, "the scheduler never started drain_slow's run"
            time.sleep(1)
        seen: list[tuple[str, bool]] = []

        def poll_sleep(seconds: float) -> None:
            # what Airflow says while apply waits: the run, and whether the DAG is paused
            seen.append((run_state(), db_states(af_sched)["drain_slow"]))
            time.sleep(min(seconds, 2.0))

        ctx = load(root, ENV)
        backend = open_backend(ctx.cfg, ENV)
        logs: list[str] = []
        try:
            done = apply_env(ctx, backend, ApplyOptions(sleep=poll_sleep, log=logs.append))
        finally:
            backend.close()
        final = run_state()
    assert done.result.status == ApplyStatus.DONE, (done.result.errors, logs)
    # never paused while its run was in flight; paused after the run ended by itself
    assert seen and seen[0] == ("running", False), seen
    assert all(paused is False for _, paused in seen), seen
    assert final == "success", final
    assert db_states(af_sched)["drain_slow"] is True
    assert any("drain" in line for line in logs), logs


# ----------------------------------------------------------------------------- kill tests

KILL_ROLLOUT = '{batches: [1, "50%", "100%"], canary: {tags: [canary]}, gate: {wait_seconds: 0}}'
UNPAUSE = [f"report_{i:03d}" for i in range(7)]       # report_000/001 are canaries
PAUSE = ["etl_020", "etl_021"]
KILL_YAML = (f"environment: {ENV}\n"
             "defaults: {unmanaged: ignore}\n"
             "dags:\n"
             + "".join(f"  {d}: {{paused: true, reason: 'load test', owner: ops}}\n" for d in PAUSE)
             + "groups:\n"
             f"  - {{name: reports, match: {{dag_id: [{', '.join(UNPAUSE)}]}}, paused: false,\n"
             "     reason: 'reports are back', owner: analytics}\n")

# (kill point, recovery): batches are [etl_020, etl_021, report_000] [report_001..003]
# [report_004..006]; dag_set:N is the N-th DAG set in the apply.
KILL_CASES = [
    ("after_lock:1", "apply"), ("journal_started:1", "resume"), ("batch_begin:1", "resume"),
    ("batch_marked:1", "rollback"), ("dag_set:1", "resume"), ("dag_set:2", "rollback"),
    ("batch_set:1", "resume"), ("batch_applied:1", "rollback"), ("gate_begin:1", "resume"),
    ("batch_begin:2", "rollback"), ("dag_set:4", "resume"), ("batch_set:2", "rollback"),
    ("batch_applied:2", "resume"), ("gate_begin:2", "rollback"), ("batch_marked:3", "resume"),
    ("dag_set:7", "rollback"), ("batch_set:3", "resume"), ("batch_applied:3", "rollback"),
    ("apply_done:1", "rollback"), ("rollback_dag:2", "rollback"),
]
# AF2 (each request ~3x slower here): every kind of kill point once, both recoveries
KILL_CASES_AF2 = [KILL_CASES[i] for i in (0, 1, 2, 3, 5, 6, 12, 13, 18, 19)]


@pytest.mark.airflow
def test_sigkill_at_20_points_then_resume_or_rollback_is_exact(airflow_server, tmp_path,
                                                               monkeypatch, capsys):
    airflow3 = airflow_server
    cases = KILL_CASES if airflow3.major == 3 else KILL_CASES_AF2
    root = state_repo(tmp_path, airflow3.url, KILL_YAML, KILL_ROLLOUT)
    fast_settle(monkeypatch)
    results = []
    t0 = time.monotonic()
    for n, (point, recovery) in enumerate(cases):
        # events too: each plan reads the newest pause events (up to 1,000, a request per
        # page), and 30 applies here would otherwise page through every earlier case's writes
        airflow3.reset(events=True)
        set_states(airflow3, {d: False for d in PAUSE})
        prior = db_states(airflow3)
        planned = {**prior, **{d: True for d in PAUSE}, **{d: False for d in UNPAUSE}}
        jdir = tmp_path / f"journal-{n}"
        cli = InProcess(monkeypatch, capsys, root, jdir)
        if point.startswith("rollback_dag"):
            # kill an apply after batch 2, then kill its rollback after 2 DAGs, then roll back
            p = run(["apply", ENV, "--yes"], root, jdir, PAUSECTL_TEST_KILLPOINT="batch_set:2")
            assert p.returncode == -9, (p.stdout, p.stderr)
            p = run(["rollback", ENV, "--yes"], root, jdir, PAUSECTL_TEST_KILLPOINT=point)
        else:
            p = run(["apply", ENV, "--yes"], root, jdir, PAUSECTL_TEST_KILLPOINT=point)
        assert p.returncode == -9, f"{point}: not killed: {p.stdout} {p.stderr}"
        if recovery == "apply":      # killed before its journal existed: nothing happened yet
            assert db_states(airflow3) == prior
            assert not list(jdir.glob("*.json"))
            code, out, err = cli("apply", ENV, "--yes")
            want = planned
        elif recovery == "resume":
            code, out, err = cli("apply", ENV, "--resume", "--yes")
            want = planned
        else:
            code, out, err = cli("rollback", ENV, "--yes")
            want = prior
        assert code == 0, f"{point} then {recovery}: exit {code}: {out} {err}"
        assert "taking over the lock" in err, err      # the dead apply's lock was reclaimed
        got = db_states(airflow3)
        wrong = {d: (got.get(d), want[d]) for d in want if got.get(d) != want[d]}
        assert not wrong, f"{point} then {recovery}: {wrong}"
        assert airflow3.query("SELECT key FROM variable WHERE key LIKE 'pausectl.lock.%'") == []
        # and a fresh plan agrees: nothing left to do after resume, all of it after rollback
        code, out, _ = cli("plan", ENV, "--format", "json")
        assert len(json.loads(out)["changes"]) == (0 if want is planned else len(PAUSE + UNPAUSE))
        results.append(f"{point} -> {recovery}: exact")
    report(capsys, f"{airflow3.version}: kill tests: {len(results)}/{len(cases)} exact in "
           f"{time.monotonic() - t0:.0f}s")
    assert len(results) == len(cases)


# ----------------------------------------------------------------------------- two at once

@pytest.mark.airflow
def test_two_applies_at_once_one_proceeds_the_other_names_the_holder(airflow_server, tmp_path):
    airflow3 = airflow_server
    airflow3.reset()
    prior = db_states(airflow3)
    root = state_repo(tmp_path, airflow3.url, KILL_YAML.replace("etl_020", "ml_020").replace(
        "etl_021", "ml_021"), '{batches: [1, "100%"], gate: {wait_seconds: 4}}')
    planned = {**prior, **{d: False for d in UNPAUSE}}     # ml_020/021 are paused already
    since = db_now(airflow3)
    jdir = tmp_path / "journal"
    cmd = [sys.executable, "-m", "reconciler", "apply", ENV, "--yes", "--state", str(root)]
    procs = [subprocess.Popen(cmd, env=cli_env(jdir), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 1], outs
    win = next(i for i, p in enumerate(procs) if p.returncode == 0)
    lose = 1 - win
    err = outs[lose][1]
    assert re.search(rf"{ENV} is locked by \S+@\S+ pid {procs[win].pid} since ", err), err
    # no interleaving: one journal, the loser changed nothing, the winner each DAG once
    assert len(list(jdir.glob("*.json"))) == 1
    assert db_states(airflow3) == planned
    events = patch_events(airflow3, since)
    assert sorted(d for d, _ in events) == sorted(UNPAUSE), events


# ----------------------------------------------------------------------------- drift

DRIFT_YAML = (f"environment: {ENV}\n"
              "defaults: {unmanaged: ignore}\n"
              "dags:\n"
              "  report_034: {paused: true, reason: 'vendor down', owner: analytics}\n"
              "groups:\n"
              "  - {name: reports, match: {dag_id: [report_030, report_031, report_032, "
              "report_033]},\n     paused: false, reason: 'reports run', owner: analytics}\n")
DRIFT_IDS = ("report_030", "report_031", "report_032", "report_033", "report_034")
DRIFT_ROLLOUT = '{batches: ["100%"], gate: {wait_seconds: 0}}'


def _ui_toggle(server, dag_id: str, paused: bool) -> None:
    """The UI toggle; on AF2 it logs in through the login form, which Airflow rate-limits
    (`[webserver] auth_rate_limit`, 5 per 40 s): on a 429, wait as told and try once more."""
    import urllib.error
    try:
        server.ui_toggle(dag_id, paused)
    except urllib.error.HTTPError as e:
        if e.code != 429:
            raise
        time.sleep(min(45.0, float(e.headers.get("Retry-After") or 40)))
        server.ui_toggle(dag_id, paused)


def _git_unpauses_report_034(root: Path) -> None:
    write_files(root, {f"{ENV}.yaml": DRIFT_YAML.replace("paused: true, reason: 'vendor down'",
                                                         "paused: false, reason: 'vendor back'")})


@pytest.mark.airflow
def test_drift_names_who_paused_what_then_apply_reverts_it(airflow_server, tmp_path,
                                                            monkeypatch, capsys):
    """Through the REST API (v2 on AF3, v1 on AF2): a UI toggle, an API PATCH and the CLI
    each pause a DAG git wants running; drift names each actor and tells apart a git change
    not applied yet (report_034, paused with no event behind it); apply puts all back."""
    import getpass
    server = airflow_server
    server.reset(events=True)     # the shared server's earlier writes: this test's actors only
    set_states(server, dict.fromkeys(DRIFT_IDS[:4], False))     # as git wants them
    root = state_repo(tmp_path, server.url, DRIFT_YAML, DRIFT_ROLLOUT)
    cli = InProcess(monkeypatch, capsys, root, tmp_path / "journal")
    fast_settle(monkeypatch)
    _ui_toggle(server, "report_030", True)         # AF2: POST /paused (event `paused`)
    server.api_patch("report_031", True)           # PATCH /api/v{1,2}/dags/report_031
    server.cli_pause("report_032")                 # airflow dags pause report_032 -y
    _git_unpauses_report_034(root)
    code, out, err = cli("drift", ENV, "--format", "json", "--detailed-exitcode")
    assert code == 2, (out, err)
    r = json.loads(out)["environments"][0]
    got = {d["dag_id"]: (d["how"], d["changed_by"], d["live_paused"]) for d in r["drifted"]}
    assert got == {"report_030": ("UI/API", server.username, True),
                   "report_031": ("UI/API", server.username, True),
                   "report_032": ("CLI", getpass.getuser(), True)}, r
    assert [d["dag_id"] for d in r["pending_git_changes"]] == ["report_034"], r
    code, out, err = cli("drift", ENV)
    assert "report_032" in out and "CLI" in out, out
    code, out, err = cli("apply", ENV, "--yes")
    assert code == 0 and "Apply complete: 4 DAG(s) changed" in out, (out, err)
    code, out, _ = cli("drift", ENV, "--format", "json", "--detailed-exitcode")
    assert code == 0 and json.loads(out)["environments"][0]["drifted"] == [], out
    states = db_states(server)
    assert {d: states[d] for d in DRIFT_IDS} == dict.fromkeys(DRIFT_IDS, False)


@pytest.mark.airflow
def test_drift_does_not_call_pausectls_own_pause_a_manual_change(airflow_server, tmp_path,
                                                                  monkeypatch, capsys):
    """pausectl's apply paused report_034 through the API (as its configured user); git then
    unpauses it: that is a git change not applied yet, not drift by a UI/API user."""
    server = airflow_server
    server.reset(events=True)     # the shared server's earlier writes: this test's actors only
    set_states(server, {"report_034": False})
    root = state_repo(tmp_path, server.url, DRIFT_YAML, DRIFT_ROLLOUT)
    cli = InProcess(monkeypatch, capsys, root, tmp_path / "journal")
    fast_settle(monkeypatch)
    code, _, err = cli("apply", ENV, "--yes")
    assert code == 0 and db_states(server)["report_034"] is True, err
    _git_unpauses_report_034(root)
    code, out, err = cli("drift", ENV, "--format", "json")
    r = json.loads(out)["environments"][0]
    assert r["drifted"] == [] and [d["dag_id"] for d in r["pending_git_changes"]] == \
        ["report_034"], r
