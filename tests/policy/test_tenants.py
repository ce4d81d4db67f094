"""Tenants: a rule that touches another tenant's DAGs is an error (validate and plan) unless
allowed; CODEOWNERS lines for tenant files."""

from __future__ import annotations

import json
import subprocess

import pytest

from helpers import main_captured

try:
    from helpers import PAUSECTL_YAML, dag, load, make_state, snapshot_json
except ImportError:  # pragma: no cover
    from tests.helpers import PAUSECTL_YAML, dag, load, make_state, snapshot_json

TENANTS = """\
tenants:
  data-eng: {match: {owners: [data-eng]}, files: [teams/data-eng.yaml], team: "@acme/data-eng"}
  analytics: {match: {owners: [analytics]}, files: [teams/analytics.yaml]}
  billing: {match: {owners: [team-billing]}}
  platform: {match: {tags: [canary]}, allow: [data-eng]}
"""

PROD = """\
environment: prod
include: [teams/data-eng.yaml, teams/analytics.yaml]
dags:
  billing_daily: {paused: true, reason: "vendor outage", owner: team-billing}
"""

DATA_ENG = """\
groups:
  - name: etl-maintenance
    match: {tags: [etl]}
    paused: true
    reason: "warehouse maintenance"
    owner: data-eng
"""

ANALYTICS_OK = """\
groups:
  - name: reports
    match: {dag_id: "report_*"}
    paused: false
    reason: "reports run"
    owner: analytics
"""

# line 2: a rule in analytics' file that pauses data-eng's DAGs (owner says data-eng: the
# file decides)
ANALYTICS_CROSSING = ANALYTICS_OK + """\
  - name: stop-etl
    match: {dag_id: "etl_*"}
    paused: true
    reason: "reports are wrong while etl reloads"
    owner: data-eng
"""

LIVE = [
    dag("etl_orders", False, ["etl"], ["data-eng"]),
    dag("etl_customers", False, ["etl"], ["data-eng"]),
    dag("etl_canary", False, ["etl", "canary"], ["data-eng"]),
    dag("report_daily", True, ["reporting"], ["analytics"]),
    dag("billing_daily", False, ["billing"], ["team-billing"]),
]


@pytest.fixture
def repo(tmp_path):
    make_state(tmp_path, {
        "pausectl.yaml": PAUSECTL_YAML + TENANTS, "prod.yaml": PROD,
        "teams/data-eng.yaml": DATA_ENG, "teams/analytics.yaml": ANALYTICS_OK,
        "common.yaml": None, "staging.yaml": None,
        "snapshots/prod.json": snapshot_json(LIVE, "prod")})
    # staging is in PAUSECTL_YAML: give it a minimal file
    (tmp_path / "state" / "staging.yaml").write_text("environment: staging\n")
    (tmp_path / "state" / "snapshots" / "staging.json").write_text(snapshot_json([], "staging"))
    return tmp_path


def _cli(cwd, args, capsys, monkeypatch):
    return main_captured(cwd, args, capsys, monkeypatch)


def _violations(root):
    """Violations in prod, with files named relative to the repo's parent (as the CLI run
    from there names them)."""
    import os
    from pathlib import Path
    from reconciler.live.snapshot import SnapshotBackend
    from reconciler.policy.tenants import violations
    old = os.getcwd()
    os.chdir(root.parent)
    try:
        cfg, state = load(Path("state"), "prod")
    finally:
        os.chdir(old)
    live = SnapshotBackend("prod", root / "snapshots" / "prod.json").list_dags()
    return violations(cfg, state, live)


def test_rules_inside_their_tenant_are_fine(repo):
    assert _violations(repo / "state") == []


def test_a_rule_crossing_tenants_is_an_error_in_validate_and_plan(repo, capsys, monkeypatch):
    (repo / "state" / "teams" / "analytics.yaml").write_text(ANALYTICS_CROSSING)
    vs = _violations(repo / "state")
    assert [(v.where, v.tenant, v.other, v.dag_ids) for v in vs] == [
        ("state/teams/analytics.yaml:7", "analytics", "data-eng",
         ["etl_canary", "etl_customers", "etl_orders"]),
        ("state/teams/analytics.yaml:7", "analytics", "platform", ["etl_canary"])]
    code, out, err = _cli(repo, ["validate", "--format", "json"], capsys, monkeypatch)
    assert code == 1
    probs = [p for p in json.loads(out)["problems"] if p.get("id") == "tenant-crossing"]
    assert {(p["file"], p["line"], p["severity"]) for p in probs} == {
        ("state/teams/analytics.yaml", 7, "error")}
    assert "tenant 'analytics': group stop-etl touches 3 DAG(s) of tenant 'data-eng'" in \
        probs[0]["message"]
    code, out, err = _cli(repo, ["plan", "prod"], capsys, monkeypatch)
    assert code == 1 and out == ""
    assert err.startswith("error: state/teams/analytics.yaml:7: tenant 'analytics': group "
                          "stop-etl touches 3 DAG(s) of tenant 'data-eng'")
    assert "tenants.data-eng.allow" in err and "(and 1 more: state/teams/analytics.yaml:7)" in err


def test_allow_lets_a_tenant_touch_anothers_dags(repo):
    (repo / "state" / "teams" / "analytics.yaml").write_text(ANALYTICS_CROSSING)
    cfg = (repo / "state" / "pausectl.yaml").read_text()
    cfg = cfg.replace("data-eng: {match: {owners: [data-eng]}, files: [teams/data-eng.yaml], ",
                      "data-eng: {match: {owners: [data-eng]}, files: [teams/data-eng.yaml], "
                      "allow: [analytics], ")
    (repo / "state" / "pausectl.yaml").write_text(cfg)
    # platform still does not allow analytics (etl_canary is platform's too)
    vs = _violations(repo / "state")
    assert [(v.other, v.dag_ids) for v in vs] == [("platform", ["etl_canary"])]
    (repo / "state" / "pausectl.yaml").write_text(cfg.replace("allow: [data-eng]}",
                                                              "allow: [data-eng, analytics]}"))
    assert _violations(repo / "state") == []


def test_owner_decides_outside_tenant_files(repo):
    # in the environment file (no tenant's file): owner analytics -> tenant analytics
    (repo / "state" / "prod.yaml").write_text(PROD + "  etl_orders: {paused: true, reason: \"x y z\","
                                                     " owner: analytics}\n")
    vs = _violations(repo / "state")
    assert [(v.where, v.tenant, v.other) for v in vs] == [("state/prod.yaml:5", "analytics",
                                                           "data-eng")]
    # an owner that maps to no tenant: a shared rule, not checked
    (repo / "state" / "prod.yaml").write_text(PROD + "  etl_orders: {paused: true, reason: \"x y z\","
                                                     " owner: oncall}\n")
    assert _violations(repo / "state") == []
    # owner listed in a tenant's match.owners (team-billing -> billing)
    (repo / "state" / "prod.yaml").write_text(PROD + "  etl_orders: {paused: true, reason: \"x y z\","
                                                     " owner: team-billing}\n")
    assert [(v.tenant, v.other) for v in _violations(repo / "state")] == [("billing", "data-eng")]


def test_data_eng_may_touch_platform_dags_it_also_owns(repo):
    # etl_canary belongs to data-eng and platform; data-eng's group touches it: fine
    assert not [v for v in _violations(repo / "state") if "etl_canary" in v.dag_ids]


def test_file_claimed_twice_and_missing_file(repo, capsys, monkeypatch):
    cfg = (repo / "state" / "pausectl.yaml").read_text()
    cfg = cfg.replace("billing: {match: {owners: [team-billing]}}",
                      "billing: {match: {owners: [team-billing]}, files: [teams/data-eng.yaml, "
                      "teams/billing.yaml]}")
    (repo / "state" / "pausectl.yaml").write_text(cfg)
    code, out, _ = _cli(repo, ["validate", "--format", "json"], capsys, monkeypatch)
    probs = json.loads(out)["problems"]
    assert code == 1
    msgs = {(p["severity"], p["message"]) for p in probs}
    assert ("error", "file 'teams/data-eng.yaml' is claimed by tenants 'data-eng' and "
                     "'billing'") in msgs
    assert ("warning", "tenant 'billing': file 'teams/billing.yaml' not found in the state "
                       "repo") in msgs


def test_codeowners_lines(repo, capsys, monkeypatch):
    code, out, _ = _cli(repo, ["codeowners", "--team-prefix", "@acme/"], capsys, monkeypatch)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("# Generated by `pausectl codeowners`")
    assert lines[1:] == ["/state/teams/data-eng.yaml @acme/data-eng",      # team: wins
                         "/state/teams/analytics.yaml @acme/analytics",
                         "# billing: no files", "# platform: no files"]
    # inside a git repository the paths start at its root
    subprocess.run(["git", "init", "-q", str(repo.parent)], check=True)
    code, out, _ = _cli(repo, ["codeowners"], capsys, monkeypatch)
    assert f"/{repo.name}/state/teams/analytics.yaml @analytics" in out.splitlines()


def test_codeowners_without_tenants_is_an_error(tmp_path, capsys, monkeypatch):
    make_state(tmp_path)
    code, _, err = _cli(tmp_path, ["codeowners"], capsys, monkeypatch)
    assert code == 1 and "no tenants" in err


def test_example_state_codeowners_and_no_violations(capsys, monkeypatch):
    from helpers import REPO
    code, out, _ = _cli(REPO, ["codeowners", "--team-prefix", "@org/"], capsys, monkeypatch)
    assert code == 0 and "/state/teams/data-eng.yaml @org/data-eng" in out.splitlines()
    code, out, _ = _cli(REPO, ["validate", "--format", "json"], capsys, monkeypatch)
    assert code == 0, out
