"""Promotion end to end on real Airflow: dev is the harness's Airflow 2.11.2, prod its Airflow
3.3.2 (both serve the same standard DAG ids, like two real environments).

dev's file unpauses a wave of report DAGs (`promote: true`); `pausectl apply dev` rolls it out in
canary batches with health gates; a failed run in dev blocks `pausectl promote` (soak gate, read
from dev's Airflow); once healthy, promote writes prod's file on a branch; merged, `pausectl
apply prod` rolls it out canary first with a gate after every batch; `pausectl history` joins the
promotion commit with prod's audit log. Finally a failed run during a prod gate rolls back.
"""

from __future__ import annotations

import json
import os
import re
import time

import httpx
import pytest

from helpers import Repo

WAVE = [f"report_{i:03d}" for i in range(10)]           # report_000/001 carry the canary tag
FAILING = "report_004"                                    # schedule None: its run is "now"

DEV = """\
environment: dev
defaults: {unmanaged: ignore}
groups:
  - name: reporting-wave-1
    match: {tags: [reporting], dag_id: "report_00*"}
    paused: false
    promote: true
    reason: "reports back after the warehouse move"
    owner: analytics
    ticket: DATA-501
"""

PROD = """\
# prod: every change here is reviewed by the platform team.
environment: prod
defaults: {unmanaged: ignore}   # only what this file names is managed

groups:
  # ML stays paused until the model review is done
  - name: ml-review
    match: {tags: [ml]}
    paused: true
    reason: "model review"
    owner: ml-team
"""


def _config(dev, prod) -> str:
    return f"""\
environments:
  dev:
    backend: {{type: airflow-api, url: "{dev.url}", username_env: DEV_AF_USER,
              password_env: DEV_AF_PASS, timeout: 60, retries: 2}}
    promote_to: prod
  prod:
    backend: {{type: airflow-api, url: "{prod.url}", username_env: PROD_AF_USER,
              password_env: PROD_AF_PASS, timeout: 60, retries: 2}}
promotion: {{soak_hours: 0, max_failed_runs: 0}}
rollout:
  batches: ["20%", "50%", "100%"]   # cumulative: 2, 5, 10 of the 10 DAGs
  canary: {{tags: [canary]}}
  gate: {{wait_seconds: 1, max_failed_runs: 0, import_errors: fail}}
  on_gate_failure: rollback
safety:
  max_changes: 20
  protect: ["critical_*"]
"""


def _paused(server) -> dict[str, bool]:
    return {d: bool(p) for d, p in server.query("SELECT dag_id, is_paused FROM dag")}


def _client(server) -> httpx.Client:
    return httpx.Client(base_url=server.api_url, headers=server.auth_headers(), timeout=60)


def _failed_run(server, dag_id: str, run_id: str) -> None:
    """A DAG run that failed, made through the REST API (no scheduler needed)."""
    body = {"dag_run_id": run_id}
    if server.api_version == "v2":
        body["logical_date"] = None
    with _client(server) as c:
        r = c.post(f"/dags/{dag_id}/dagRuns", json=body)
        assert r.status_code in (200, 201), r.text
        r = c.patch(f"/dags/{dag_id}/dagRuns/{run_id}", json={"state": "failed"})
        assert r.status_code == 200 and r.json()["state"] == "failed", r.text


def _delete_run(server, dag_id: str, run_id: str) -> None:
    with _client(server) as c:
        assert c.delete(f"/dags/{dag_id}/dagRuns/{run_id}").status_code == 204


def test_promote_dev_to_prod_with_staged_rollout_and_gates(airflow2, airflow3, tmp_path,
                                                           monkeypatch):
    dev, prod = airflow2, airflow3
    dev.reset()
    prod.reset()
    creds = {"DEV_AF_USER": dev.username, "DEV_AF_PASS": dev.password,
             "PROD_AF_USER": prod.username, "PROD_AF_PASS": prod.password,
             "PAUSECTL_JOURNAL_DIR": str(tmp_path / "journal")}
    repo = Repo(tmp_path / "repo", {"pausectl.yaml": _config(dev, prod), "dev.yaml": DEV,
                                    "prod.yaml": PROD, "staging.yaml": None,
                                    "snapshots/prod.json": None, "snapshots/staging.json": None})
    assert repo.cli("validate", env=creds, subprocess=True).returncode == 0

    # 1. dev: staged rollout, canary batch first, a gate after each batch
    dev_before, prod_before = _paused(dev), _paused(prod)
    p = repo.cli("apply", "dev", "--yes", env=creds, subprocess=True)
    assert p.returncode == 0, p.stdout + p.stderr
    assert re.search(r"batch 1/3: 2 DAG\(s\)[^:]*: report_000, report_001\n", p.stdout), p.stdout
    assert p.stderr.count("gate after batch") == 3 and "FAILED" not in p.stderr
    after = _paused(dev)
    assert {d for d in after if after[d] != dev_before[d]} == set(WAVE)
    assert not any(after[d] for d in WAVE)

    # 2. a failed run in dev blocks the promotion (soak gate, read from dev's Airflow)
    _failed_run(dev, FAILING, "pausectl_soak_check")
    p = repo.cli("promote", "--from", "dev", "--to", "prod", "--branch", "promote/wave-1",
                 env=creds, subprocess=True)
    assert p.returncode == 1, p.stdout + p.stderr
    assert (f"BLOCKED: soak gate, group reporting-wave-1: 1 failed run(s) in dev since the "
            f"change ({FAILING}: 1) > promotion.max_failed_runs 0") in p.stdout
    assert "promote/wave-1" not in repo.git("branch", "--list")

    # 3. healthy again: promoted on a branch; prod's file keeps its comments and layout
    _delete_run(dev, FAILING, "pausectl_soak_check")
    p = repo.cli("promote", "--from", "dev", "--to", "prod", "--branch", "promote/wave-1",
                 env=creds, subprocess=True)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "soak gate: passed" in p.stdout
    assert "target plan (prod, with the promoted rules): 0 to pause, 10 to unpause" in p.stdout
    new_prod = repo.git("show", "promote/wave-1:state/prod.yaml")
    assert new_prod.startswith(PROD)               # appended: every existing byte kept
    assert new_prod[len(PROD):] == (
        "  - name: reporting-wave-1\n"
        '    match: {tags: [reporting], dag_id: "report_00*"}\n'
        "    paused: false\n"
        '    reason: "reports back after the warehouse move"\n'
        "    owner: analytics\n"
        "    ticket: DATA-501\n")
    assert _paused(prod) == prod_before                     # promotion itself changes no DAG
    repo.git("merge", "-q", "--ff-only", "promote/wave-1")

    # 4. prod: the same staged rollout, canary first, a gate after every batch
    plan = json.loads(repo.cli("plan", "prod", "--format", "json", env=creds,
                               subprocess=True).stdout)
    assert sorted(c["dag_id"] for c in plan["changes"]) == WAVE
    assert {c["rule_name"] for c in plan["changes"]} == {"group reporting-wave-1"}
    t0 = time.monotonic()
    p = repo.cli("apply", "prod", "--yes", env=creds, subprocess=True)
    assert p.returncode == 0, p.stdout + p.stderr
    batches = re.findall(r"batch (\d)/3: (\d+) DAG\(s\)[^:]*: ([^\n]*)", p.stdout)
    assert batches == [("1", "2", "report_000, report_001"),
                       ("2", "3", "report_002, report_003, report_004"),
                       ("3", "5", "report_005, report_006, report_007, report_008, report_009")]
    assert re.findall(r"gate after batch (\d): passed", p.stderr) == ["1", "2", "3"]
    assert time.monotonic() - t0 >= 3                       # three real 1 s gate waits
    after = _paused(prod)
    assert {d for d in after if after[d] != prod_before[d]} == set(WAVE)   # nothing else

    # 5. one answer to "who unpaused this and why": the promotion commit + prod's audit log
    h = json.loads(repo.cli("history", "prod", "report_000", "--format", "json", env=creds,
                            subprocess=True).stdout)
    git = [e for e in h["timeline"] if e["source"] == "git"]
    live = [e for e in h["timeline"] if e["source"] == "airflow"]
    assert git[-1]["message"] == "pausectl: promote dev -> prod: 1 change(s)"
    assert git[-1]["desired_after"]["reason"] == "reports back after the warehouse move"
    assert live and live[-1]["is_paused"] is False and live[-1]["who"] == prod.username
    assert h["answer"]["live_paused"] is False
    assert "git wants it running: group reporting-wave-1" in h["answer"]["text"]
    assert "ticket DATA-501" in h["answer"]["text"]

    # 6. the gate failing for real: a canary's run fails during batch 1's gate -> rollback
    prod.reset()
    for k, v in creds.items():
        monkeypatch.setenv(k, v)
    monkeypatch.chdir(repo.path)
    from reconciler.apply.executor import ApplyOptions, apply_plan
    from reconciler.engine import load, open_backend, plan_env
    ctx = load(None, "prod")
    backend = open_backend(ctx.cfg, "prod")
    logs: list[str] = []

    def gate_wait(seconds: float) -> None:   # while the gate waits, the canary fails
        if not any("pausectl_gate_check" in x for x in logs):
            _failed_run(prod, "report_000", "pausectl_gate_check")
            logs.append("pausectl_gate_check")
        time.sleep(min(seconds, 0.5))

    try:
        plan_, _, live = plan_env(ctx, backend)
        before = _paused(prod)
        res = apply_plan(ctx, backend, plan_, ApplyOptions(sleep=gate_wait, log=logs.append),
                         {d.dag_id: d.tags for d in live}, {d.dag_id: d.owners for d in live})
    finally:
        backend.close()
        _delete_run(prod, "report_000", "pausectl_gate_check")
    assert res.status == "rolled_back" and res.exit_code == 3
    assert "1 failed run(s) > max_failed_runs 0 (report_000: 1)" in res.gates[0]["message"]
    assert res.gates[0]["batch"] == 0 and len(res.gates) == 1   # stopped at the canary batch
    assert _paused(prod) == before                              # rolled back exactly
    assert any(x.startswith("rolling back 2 DAG(s)") for x in logs), logs
    dev.reset()
    prod.reset()
