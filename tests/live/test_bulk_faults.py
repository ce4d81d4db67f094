"""Faults on the bulk path, against real Airflow 3 (REST v2) and 2 (REST v1) with 400 DAGs.

An apply flipping 320 DAGs and an emergency pause (with exceptions) of 272, then its recover,
run through tests/faultproxy.py: the first bulk PATCHes scripted (the answer lost after the
server acted: 504, reset, timeout; failures before it), then 20% random faults on writes and
pattern GETs; and, between pausectl's GET and its bulk PATCH, a concurrent change made in
Airflow's database (a DAG outside the plan flipped by "a human", a new DAG appearing). Checked:
- after EVERY write the proxy forwarded, Airflow's DB shows no DAG outside the plan changed;
- Airflow's own event log (GET /api/v{1,2}/eventLogs) names no DAG outside the plan: single
  PATCHes by dag_id, each bulk PATCH by what its pattern and filters selected in the DB state
  just before it (emulated from Airflow's source, independently of pausectl's emulation);
- the end state is exact, and the concurrent changes are kept.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from bulkwatch import Watch, check_events, drop_new, last_event_id
from early import Early
from faultproxy import FaultProxy
from helpers import REPO, db_states, set_states, write_files

from testkit import harness
from testkit.harness import AirflowServer, DagSpec

ENV = "live"
N = 400            # make_dags: 120 etl, 120 report, 80 ml, 80 critical
# twins extend a plan DAG's id (any bulk term covering the plan DAG also covers its twin) but
# are outside every rule: the report twin runs (the unpause target), the etl twin is paused
TWINS = [DagSpec("report_b00001_twin", tags=("twin",)),
         DagSpec("etl_b00000_twin", tags=("twin",))]
STATE_YAML = (f"environment: {ENV}\ndefaults: {{unmanaged: ignore}}\ngroups:\n"
              "  - {name: stop-etl, match: {tags: [etl]}, paused: true, reason: 'warehouse "
              "move', owner: data-eng}\n"
              "  - {name: run-reports, match: {tags: [reporting]}, paused: false, reason: "
              "'reports back', owner: analytics}\n")
# 5xx, 5xx_after, reset, reset_after, timeout, timeout_after: mostly answers lost after the
# server acted; few timeouts (each costs the client its whole timeout)
WEIGHTS = (15, 35, 10, 30, 2, 8)

# ----------------------------------------------------------------------------- servers

def _prepare(key: str) -> AirflowServer:
    return AirflowServer(major=int(key), dags=[*harness.make_dags(N), *TWINS], root=REPO)


EARLY = Early("bulk-faults", _prepare)


def prestart() -> None:
    """conftest calls this once collection shows tests of this module will run."""
    EARLY.prestart("3", "2")


@pytest.fixture(scope="module", autouse=True)
def _drop_unused_servers():
    yield
    EARLY.drop_unused()


@pytest.fixture(scope="module", params=[3, 2], ids=["af3", "af2"])
def big(request):
    server = EARLY.get(str(request.param))
    yield server
    server.stop()


# ----------------------------------------------------------------------------- running pausectl

def state_repo(tmp_path: Path, url: str) -> Path:
    root = tmp_path / "state"
    write_files(root, {
        "pausectl.yaml": (
            f"environments:\n  {ENV}:\n"
            f"    backend: {{type: airflow-api, url: '{url}', auth: password-token,\n"
            "              username_env: AF_USER, password_env: AF_PASS, timeout: 1.5,\n"
            "              retries: 3}\n"
            "rollout: {batches: ['100%'], gate: {wait_seconds: 0}}\n"
            "safety: {max_changes: 2000}\n"),
        f"{ENV}.yaml": STATE_YAML})
    return root


@pytest.fixture
def cli(tmp_path, monkeypatch, capsys):
    from reconciler import engine
    for k, v in {"AF_USER": "admin", "AF_PASS": "admin",
                 "PAUSECTL_JOURNAL_DIR": str(tmp_path / "journal")}.items():
        monkeypatch.setenv(k, v)
    real_open = engine.open_backend

    def open_backend(cfg, env):          # the same retries, with a shorter backoff
        b = real_open(cfg, env)
        b.create_settle, b.backoff_base, b.backoff_max = 0.05, 0.01, 0.05
        return b
    monkeypatch.setattr(engine, "open_backend", open_backend)

    def run(*args: str) -> tuple[int, str, str]:
        from reconciler.cli.main import main
        capsys.readouterr()
        code = 0
        try:
            main([*args, "--state", str(tmp_path / "state")])
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
        out, err = capsys.readouterr()
        return code, out, err
    return run


def converge(cli, first: list[str], done: str, tmp_path: Path, rounds: int = 15
             ) -> tuple[int, str]:
    """Run `first`; while it dies half-way, resume its journal (or run it again). Returns
    (re-runs, everything the runs printed)."""
    code, out, err = cli(*first)
    said = out + err
    for n in range(rounds):
        if code == 0 and done in out + err:
            return n, said
        files = sorted((tmp_path / "journal").glob(f"{ENV}-*.json"))
        journal = json.loads(files[-1].read_text()) if files else None
        if first[0] == "apply" and journal and journal["status"] in ("running", "failed"):
            code, out, err = cli("apply", ENV, "--resume", "--yes")
        else:
            code, out, err = cli(*first)
        said += out + err
    pytest.fail(f"{first} did not converge: {code} {out[-2000:]} {err[-2000:]}")


def on_bulk_path(method: str, path: str) -> bool:
    """The requests faults are injected into: every write, and the pattern GETs that check a
    bulk PATCH before and after (full listings are faulted in test_safe_apply.py)."""
    return method != "GET" or "pattern=" in path


# what the first bulk PATCHes get, in turn (then random faults like any other request): the
# server acts and the answer is lost, three ways; never-forwarded failures in between
SCRIPT = ("5xx_after", "reset_after", "", "timeout_after", "", "5xx", "reset_after", "",
          "timeout", "5xx_after", "")


def proxied(server, watch: Watch, seed: int) -> FaultProxy:
    proxy = FaultProxy(server.url, rate=0.2, seed=seed, hold=2.0, weights=WEIGHTS,
                       eligible=on_bulk_path)
    script = list(SCRIPT)

    def forced(method: str, path: str) -> str | None:
        if method == "PATCH" and urlsplit(path).path.rstrip("/").endswith("/dags") and script:
            return script.pop(0)
        return None
    proxy.forced = forced
    proxy.before_forward, proxy.after_forward = watch.before, watch.after
    return proxy


def assert_end_state(got: dict, want: dict, inherent: set[str], said: str) -> None:
    """Exact, except that a race no request could exclude may be left changed if pausectl
    said so, naming the DAG (it cannot always know the new DAG's state before)."""
    wrong = {d: (got.get(d), want.get(d)) for d in set(got) | set(want)
             if got.get(d) != want.get(d)}
    unreported = {d for d in wrong if d not in inherent or d not in said}
    assert not unreported, {d: wrong[d] for d in unreported}


def variable(server, key: str) -> str:
    import httpx
    r = httpx.get(f"{server.api_url}/variables/{key}", headers=server.auth_headers(), timeout=30)
    r.raise_for_status()
    return r.json()["value"]


def report(capsys, text: str) -> None:
    with capsys.disabled():
        print(f"\n[bulk-faults] {text}", flush=True)


# ----------------------------------------------------------------------------- the tests

@pytest.mark.airflow
def test_apply_of_320_flips_through_faults_and_races(big, tmp_path, cli, capsys):
    big.reset()
    drop_new(big)
    tags = {d: set(s.tags) for d, s in big.specs.items()}
    stop = {d for d in tags if "etl" in tags[d]}              # etl + critical: 200 to pause
    run = {d for d in tags if "reporting" in tags[d]}         # 120 to unpause
    initial = {d: (i % 2 == 0) for i, d in enumerate(sorted(tags))}      # ml_*: half running
    initial.update({d: False for d in stop} | {d: True for d in run})
    initial.update({d: not d.startswith("report") for d in tags if d.endswith("_twin")})
    set_states(big, initial)
    plan = stop | run
    assert len(plan) >= 300
    races = [("flip", False), ("flip", True), ("appear", False), ("appear", True)]
    watch = Watch(big, plan, races)
    since = last_event_id(big)
    with proxied(big, watch, seed=3) as proxy:
        state_repo(tmp_path, proxy.url)
        rounds, said = converge(cli, ["apply", ENV, "--yes"], "Apply complete", tmp_path)
        proxy.enabled = False
        code, out, _ = cli("plan", ENV, "--format", "json")
        stats = dict(proxy.stats)
    assert proxy.hook_errors == []
    assert code == 0 and json.loads(out)["changes"] == []
    inherent = watch.inherent()
    want = {**initial, **{d: True for d in stop}, **{d: False for d in run},
            **{d: watch.expected[d] for d in watch.raced}}
    assert_end_state(db_states(big), want, inherent, said)
    assert watch.outside_violations(inherent) == []
    seen = check_events(watch, since, inherent)
    assert seen["bulk"] >= 2, seen                   # the bulk path ran in both directions
    report(capsys, f"{big.version}: apply of {len(plan)} flips converged after {rounds} "
           f"re-run(s); races {watch.raced} (left: {watch.races}); events {seen}; proxy {stats}")


@pytest.mark.airflow
def test_emergency_pause_and_recover_of_270_dags_through_faults(big, tmp_path, cli, capsys):
    big.reset()
    drop_new(big)
    ids = sorted(big.specs)
    tags = {d: set(s.tags) for d, s in big.specs.items()}
    # running: etl, report, the twins, half the ml and 3/4 of the critical DAGs (scattered
    # states are test_safe_apply.py's 1,000-DAG emergency; Airflow 2 recovers those one by one)
    prior = {d: (d.startswith("ml") and i % 2 == 0) or (d.startswith("critical") and i % 4 == 0)
             for i, d in enumerate(ids)}
    set_states(big, prior)
    excepted = {d for d in ids if "critical" in tags[d] or d.startswith("ml_b001")}
    targets = {d for d in ids if not prior[d] and d not in excepted}
    assert len(targets) >= 250
    # a DAG appears running during the bulk pause; `*_new` is excepted, so it must run on
    watch = Watch(big, targets, [("appear_running", True)])
    since = last_event_id(big)
    with proxied(big, watch, seed=5) as proxy:
        state_repo(tmp_path, proxy.url)
        rounds, said = converge(cli, ["emergency", "pause", ENV, "--reason", "warehouse down",
                                "--except", "tag:critical", "--except", "dag_id:ml_b001*",
                                "--except", "dag_id:*_new"],
                          "EMERGENCY in live: paused", tmp_path)
        proxy.enabled = False
        stats = dict(proxy.stats)
    marker = json.loads(variable(big, f"pausectl.emergency.{ENV}"))
    assert marker["prior"] == \
        {d: False for d in targets}
    inherent = watch.inherent()
    new = {d: watch.expected[d] for d in watch.raced}
    got = db_states(big)
    assert_end_state(got, {**prior, **{d: True for d in targets}, **new}, inherent, said)
    new = {d: got[d] for d in new}       # as the pause left them (reported if not as meant)
    assert watch.outside_violations(inherent) == []
    assert proxy.hook_errors == []
    paused_seen = check_events(watch, since, inherent)

    watch = Watch(big, targets, [])
    since = last_event_id(big)
    with proxied(big, watch, seed=7) as proxy:
        state_repo(tmp_path, proxy.url)
        more, _ = converge(cli, ["emergency", "recover", ENV, "--yes", "--no-gates"],
                           f"Emergency in {ENV} is over", tmp_path)
        rounds += more
        proxy.enabled = False
    assert db_states(big) == {**prior, **new}
    assert big.query("SELECT key FROM variable WHERE key LIKE 'pausectl.%'") == []
    assert watch.outside_violations(set()) == [] and proxy.hook_errors == []
    recover_seen = check_events(watch, since, set())
    report(capsys, f"{big.version}: emergency pause of {len(targets)} DAGs and recover "
           f"converged ({rounds} re-runs); races {watch.raced or new}; pause events "
           f"{paused_seen}; recover events {recover_seen}; proxy {stats}")
