"""Holds in lint (renewed-hold) and notifications (event `hold`: placed, released, expired),
offline on a snapshot backend with a real local webhook server (tests/webhooks.py)."""

from __future__ import annotations

import json

import pytest

from helpers import make_state, run_inprocess
from webhooks import Hooks

VARS = "snapshots/prod.json.vars.json"


@pytest.fixture
def hooks():
    h = Hooks()
    yield h
    h.close()


def _holds(renewals: int, until="2030-01-01T00:00:00Z") -> str:
    return json.dumps({"pausectl.holds.prod": json.dumps({"format": 1, "holds": [
        {"dag_id": "etl_orders", "paused": True, "by": "alice", "reason": "db move",
         "since": "2025-11-01T00:00:00Z", "until": until, "renewals": renewals}]})})


def test_lint_flags_a_hold_renewed_too_often(tmp_path):
    make_state(tmp_path, {VARS: _holds(3)})
    r = run_inprocess(["lint", "prod"], tmp_path)
    line = next(x for x in r.stdout.splitlines() if "[renewed-hold]" in x)
    assert line == ("warning [renewed-hold] etl_orders is held paused since "
                    "2025-11-01T00:00:00Z, renewed 3 times (by alice: 'db move'); more than 2")
    assert "put it in git with a reason, an owner and a ticket" in r.stdout


@pytest.mark.parametrize("files", [
    {VARS: _holds(2)},                                              # at the limit
    {VARS: _holds(9, until="2026-01-01T00:00:00Z")},                # ended: apply removes it
    {VARS: _holds(9), "pausectl.yaml.extra": None},
])
def test_lint_is_quiet_within_the_limit_or_when_disabled(tmp_path, files):
    root = make_state(tmp_path, {k: v for k, v in files.items() if not k.endswith(".extra")})
    if "pausectl.yaml.extra" in files:
        cfg = root / "pausectl.yaml"
        cfg.write_text(cfg.read_text() + "lint: {disable: [renewed-hold]}\n")
    r = run_inprocess(["lint", "prod"], tmp_path)
    assert "renewed-hold" not in r.stdout, r.stdout


def test_hold_release_and_expiry_are_notified(hooks, tmp_path):
    root = make_state(tmp_path)
    cfg = root / "pausectl.yaml"
    cfg.write_text(cfg.read_text() + "notify:\n  webhooks:\n"
                   "    - {url_env: HOOK_HOLD, events: [hold]}\n"
                   "    - {url_env: HOOK_APPLY, events: [apply]}\n")
    env = {"HOOK_HOLD": hooks.url + "/hold", "HOOK_APPLY": hooks.url + "/apply",
           "PAUSECTL_JOURNAL_DIR": str(tmp_path / "journals")}
    r = run_inprocess(["hold", "prod", "etl_orders", "--for", "1h", "--reason",
                       "INC-1 <b>x</b>", "--yes"], tmp_path, env)
    assert r.returncode == 0, r.stderr
    body = hooks.at("/hold")[-1]["body"]
    assert body["event"] == "hold" and body["severity"] == "warning"
    assert body["title"] == "pausectl: 1 DAG(s) held in prod"
    assert body["details"] == {"action": "hold", "dag_ids": ["etl_orders"]}
    assert "etl_orders: held paused (by " in body["text"] and "INC-1" in body["text"]
    assert hooks.at("/apply") == []                  # only subscribers of `hold`

    r = run_inprocess(["hold", "prod", "--release", "etl_orders", "--yes"], tmp_path, env)
    assert r.returncode == 0, r.stderr
    assert hooks.at("/hold")[-1]["body"]["details"]["action"] == "release"

    (root / VARS).write_text(_holds(0, until="2026-01-01T00:00:00Z"))
    r = run_inprocess(["apply", "prod", "--yes"], tmp_path, env)
    assert r.returncode == 0, r.stderr
    body = hooks.at("/hold")[-1]["body"]
    assert body["details"] == {"action": "expire", "dag_ids": ["etl_orders"]}
    assert body["title"] == "pausectl: 1 hold(s) ended in prod; git applies again"
    assert "expired at 2026-01-01T00:00:00Z" in body["text"]
