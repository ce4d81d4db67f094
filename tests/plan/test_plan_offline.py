"""`pausectl validate|plan|explain` on the example state repo (a copy in a temp dir), offline:
the live state comes from the snapshot backend, no Airflow is started.
"""

from __future__ import annotations

import fnmatch
import json
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml

from reconciler.state.schema import validate_json

try:
    from helpers import EXAMPLE_STATE, dag, run_cli, run_timed, snapshot_json, tree_hash
except ImportError:  # pragma: no cover
    from tests.helpers import EXAMPLE_STATE, dag, run_cli, run_timed, snapshot_json, tree_hash

# A Wednesday noon: outside the Sunday-night maintenance window, before every `until` in the
# example. Plans below pass --at so they do not depend on the clock.
AT = "2026-11-25T12:00:00Z"
AT_DT = datetime(2026, 11, 25, 12, tzinfo=timezone.utc)


@pytest.fixture
def example(tmp_path):
    """A copy of the example state repo at tmp_path/state; returns tmp_path (run the CLI there)."""
    shutil.copytree(EXAMPLE_STATE, tmp_path / "state")
    return tmp_path


def plan_json(cwd: Path, env: str = "prod", *extra: str) -> tuple[int, dict]:
    r = run_cli(["plan", env, "--at", AT, "--format", "json", *extra], cwd)
    assert "Traceback" not in r.stderr, r.stderr
    assert r.returncode in (0, 2), r.stdout + r.stderr
    return r.returncode, json.loads(r.stdout)


def actions(plan: dict) -> dict[str, str]:
    return {c["dag_id"]: c["action"] for c in plan["changes"]}


# ---- an independent, deliberately simple reading of the example ---------------------------

def _rules(state: Path, file: str, depth: int = 0):
    """(dag rules, groups) of file and its includes, each tagged with its depth."""
    data = yaml.safe_load((state / file).read_text()) or {}
    dags = [(dag_id, spec, depth) for dag_id, spec in (data.get("dags") or {}).items()]
    groups = [(g, depth) for g in data.get("groups") or []]
    for inc in data.get("include") or []:
        d, g = _rules(state, inc, depth + 1)
        dags += d
        groups += g
    return dags, groups


def _in_force(spec: dict, at: datetime) -> bool:
    until = spec.get("until")
    if until is not None and at >= until:
        return False
    start = spec.get("from")
    if start is not None and at < start:
        return False
    # the example's only window is Sunday 02:00-04:00 Europe/Berlin; AT is a Wednesday
    return not spec.get("windows")


def _matches(match: dict, d: dict) -> bool:
    ids = match.get("dag_id")
    ids = [ids] if isinstance(ids, str) else ids
    if ids and not any(fnmatch.fnmatchcase(d["dag_id"], g) for g in ids):
        return False
    if match.get("tags") and not set(match["tags"]) & set(d.get("tags", [])):
        return False
    if match.get("owners") and not set(match["owners"]) & set(d.get("owners", [])):
        return False
    return True


def expected_changes(state: Path, env: str, at: datetime) -> dict[str, str]:
    """dag_id -> pause|unpause, by layers dag > group, nearer file first, higher priority first."""
    dags, groups = _rules(state, f"{env}.yaml")
    live = json.loads((state / "snapshots" / f"{env}.json").read_text())["dags"]
    out = {}
    for d in live:
        entries = sorted((depth, spec) for dag_id, spec, depth in dags
                         if dag_id == d["dag_id"] and _in_force(spec, at))
        if entries:
            desired = entries[0][1]["paused"]
        else:
            hits = sorted(((-g.get("priority", 0), depth), g) for g, depth in groups
                          if _matches(g["match"], d) and _in_force(g, at))
            known = any(dag_id == d["dag_id"] for dag_id, _, _ in dags) or any(
                _matches(g["match"], d) for g, _ in groups)
            if hits:
                desired = hits[0][1]["paused"]
            elif known:
                desired = False                 # every rule ended: runs again
            else:
                continue                        # unmanaged (defaults.unmanaged: report)
        if desired != d["is_paused"]:
            out[d["dag_id"]] = "pause" if desired else "unpause"
    return out


# ---- validate and plan on the example -----------------------------------------------------

def test_validate_example_exits_0(example):
    r = run_cli(["validate"], example)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Traceback" not in r.stdout + r.stderr


def test_plan_example_exits_0(example):
    before = tree_hash(example)
    r = run_cli(["plan", "prod", "--at", AT], example)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Plan for prod:" in r.stdout
    assert tree_hash(example) == before, "plan changed files"


def test_plan_json_is_schema_valid_and_has_the_expected_changes(example):
    code, plan = plan_json(example)
    assert code == 0
    assert validate_json(plan, "plan.schema.json") == []
    want = expected_changes(example / "state", "prod", AT_DT)
    assert actions(plan) == want
    # spelled out, so a change in the example shows up here too
    assert want == {"billing_daily": "unpause", "etl_inventory": "pause",
                    "ml_train_churn": "pause", "report_weekly_kpis": "unpause",
                    "vendor_feed_acme": "pause"}
    by_id = {c["dag_id"]: c for c in plan["changes"]}
    assert by_id["vendor_feed_acme"]["rule"] == "state/prod.yaml:6"
    assert by_id["vendor_feed_acme"]["reason"] == "ACME vendor API outage"
    assert by_id["vendor_feed_acme"]["owner"] == "data-eng"
    assert by_id["etl_inventory"]["rule"] == "state/teams/data-eng.yaml:4"
    assert by_id["ml_train_churn"]["rule"] == "state/prod.yaml:18"
    assert by_id["report_weekly_kpis"]["rule"] == "state/common.yaml:17"
    for c in plan["changes"]:
        assert c["desired_paused"] == (c["action"] == "pause") != c["live_paused"]
    s = plan["summary"]
    assert (s["pause"], s["unpause"]) == (3, 2)
    assert sorted(plan["unmanaged"]) == ["adhoc_backfill_tool", "canary_heartbeat",
                                         "critical_payments_sync"]
    assert plan["conflicts"] == [] and plan["missing"] == []
    assert plan["environment"] == "prod" and plan["at"] == AT


@pytest.mark.parametrize("env", ["dev", "staging"])
def test_other_example_envs_match_the_simple_reading(example, env):
    _, plan = plan_json(example, env)
    assert validate_json(plan, "plan.schema.json") == []
    assert actions(plan) == expected_changes(example / "state", env, AT_DT)


def test_detailed_exitcode(example):
    r = run_cli(["plan", "prod", "--at", AT, "--detailed-exitcode"], example)
    assert r.returncode == 2, r.stdout + r.stderr
    r = run_cli(["plan", "prod", "--at", AT], example)
    assert r.returncode == 0
    # a snapshot that already matches git: nothing to do
    snap = example / "state" / "snapshots" / "prod.json"
    data = json.loads(snap.read_text())
    want = expected_changes(example / "state", "prod", AT_DT)
    for d in data["dags"]:
        if d["dag_id"] in want:
            d["is_paused"] = want[d["dag_id"]] == "pause"
    snap.write_text(json.dumps(data, indent=1))
    r = run_cli(["plan", "prod", "--at", AT, "--detailed-exitcode"], example)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "No changes" in r.stdout


def test_out_writes_the_plan(example):
    out = example / "prod.plan.json"
    r = run_cli(["plan", "prod", "--at", AT, "--out", str(out), "--format", "json"], example)
    assert r.returncode == 0, r.stderr
    saved = json.loads(out.read_text())
    assert validate_json(saved, "plan.schema.json") == []
    assert saved["changes"] == json.loads(r.stdout)["changes"]
    from reconciler.plan.model import Plan
    assert Plan.from_json(saved).change_key() == sorted(actions(saved).items())


def test_markdown_renders_a_table(example):
    r = run_cli(["plan", "prod", "--at", AT, "--format", "markdown"], example)
    assert r.returncode == 0, r.stderr
    md = r.stdout
    assert md.startswith("### pausectl plan: `prod`")
    assert "| pause | unpause | unchanged |" in md
    assert "| action | dag_id | rule | reason | owner | last changed by |" in md
    rows = [ln.split("|") for ln in md.splitlines() if ln.startswith("| ")]
    rows = [r for r in rows if r[2].strip().startswith("`")]       # the changes table
    assert {r[2].strip().strip("`"): r[1].strip() for r in rows} == (
        expected_changes(example / "state", "prod", AT_DT))
    assert all(r[3].strip().startswith("state/") for r in rows)    # rule file:line
    assert {r[2].strip().strip("`") for r in rows} == set(
        expected_changes(example / "state", "prod", AT_DT))


def test_validate_github_format_annotates_a_broken_file(example):
    prod = example / "state" / "prod.yaml"
    text = prod.read_text()
    prod.write_text(text.replace("    reason: \"ACME vendor API outage\"\n", ""))
    r = run_cli(["validate", "--format", "github"], example)
    assert r.returncode == 1
    lines = r.stdout.strip().splitlines()
    assert lines and all(ln.startswith("::") for ln in lines), lines
    err = [ln for ln in lines if ln.startswith("::error ")]
    assert len(err) == 1, lines
    assert err[0].startswith("::error file=state/prod.yaml,line=6,")   # vendor_feed_acme:
    assert "reason" in err[0].split("::", 2)[2]


def test_validate_json_format(example):
    (example / "state" / "common.yaml").write_text("groups: {}\n")
    r = run_cli(["validate", "--format", "json"], example)
    assert r.returncode == 1
    data = json.loads(r.stdout)
    assert data["errors"] >= 1
    assert data["problems"][0]["file"] == "state/common.yaml"
    assert data["problems"][0]["line"] == 1


# ---- explain ------------------------------------------------------------------------------

def test_explain_names_the_winner(example):
    r = run_cli(["explain", "prod", "ml_train_churn", "--at", AT], example)
    assert r.returncode == 0, r.stderr
    winner = [ln for ln in r.stdout.splitlines() if ln.strip().startswith("* ")]
    assert len(winner) == 1 and "group ml (state/prod.yaml:18)" in winner[0]
    assert "desired: paused" in r.stdout
    r = run_cli(["explain", "prod", "billing_daily", "--at", AT, "--format", "json"], example)
    x = json.loads(r.stdout)
    assert x["decided_by"] == "state/prod.yaml:12" and x["desired_paused"] is False
    assert [w["where"] for w in x["rules"] if w["winner"]] == ["state/prod.yaml:12"]


def test_explain_dag_entry_beats_group(example):
    """etl_inventory: the data-eng dag entry beats the (windowed) nightly-maintenance group."""
    r = run_cli(["explain", "prod", "etl_inventory", "--at", "2026-11-29T01:30:00Z",
                 "--format", "json"], example)
    x = json.loads(r.stdout)
    assert x["decided_by"] == "state/teams/data-eng.yaml:4"
    groups = [w for w in x["rules"] if w["layer"] == "group"]
    assert groups and groups[0]["in_force"] and not groups[0]["winner"]


def test_explain_unknown_dag_is_an_error(example):
    r = run_cli(["explain", "prod", "no_such_dag"], example)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "no_such_dag" in r.stderr and len(r.stderr.strip().splitlines()) == 1


# ---- skipped and missing ------------------------------------------------------------------

def _append_group(example: Path, text: str) -> None:
    prod = example / "state" / "prod.yaml"
    prod.write_text(prod.read_text() + text)


def _edit_snapshot(example: Path, **flags) -> None:
    """flags: dag_id={field: value}."""
    snap = example / "state" / "snapshots" / "prod.json"
    data = json.loads(snap.read_text())
    for d in data["dags"]:
        d.update(flags.get(d["dag_id"], {}))
    snap.write_text(json.dumps(data, indent=1))


def test_protect_skips_group_driven_change_of_critical_dag(example):
    _append_group(example, "  - name: freeze-critical\n    match: {tags: [critical]}\n"
                           "    paused: true\n    reason: \"freeze\"\n    owner: platform\n")
    _, plan = plan_json(example)
    assert "critical_payments_sync" not in actions(plan)
    skipped = {s["dag_id"]: s["why"] for s in plan["skipped"]}
    assert "protected" in skipped["critical_payments_sync"]
    assert "state/prod.yaml:24" in skipped["critical_payments_sync"]
    assert plan["summary"]["skipped"] == 1


def test_protect_lets_a_dag_entry_change_a_critical_dag(example):
    prod = example / "state" / "prod.yaml"
    prod.write_text(prod.read_text().replace(
        "dags:\n", "dags:\n  critical_payments_sync:\n    paused: true\n"
                   "    reason: \"bank maintenance\"\n    owner: team-billing\n", 1))
    _, plan = plan_json(example)
    assert actions(plan)["critical_payments_sync"] == "pause"
    assert plan["skipped"] == []


@pytest.mark.parametrize("flag,word", [("is_stale", "stale"), ("has_import_errors", "import errors")])
def test_stale_and_import_error_dags_are_skipped(example, flag, word):
    _edit_snapshot(example, etl_inventory={flag: True}, report_weekly_kpis={flag: True})
    _, plan = plan_json(example)
    skipped = {s["dag_id"]: s["why"] for s in plan["skipped"]}
    assert set(skipped) == {"etl_inventory", "report_weekly_kpis"}
    assert all(word in why for why in skipped.values())
    assert "etl_inventory" not in actions(plan) and "report_weekly_kpis" not in actions(plan)
    assert set(actions(plan)) == {"billing_daily", "ml_train_churn", "vendor_feed_acme"}


def test_dag_entry_without_live_dag_is_missing(example):
    prod = example / "state" / "prod.yaml"
    prod.write_text(prod.read_text().replace(
        "dags:\n", "dags:\n  ghost_dag:\n    paused: true\n    reason: \"gone?\"\n"
                   "    owner: data-eng\n", 1))
    code, plan = plan_json(example, "prod", "--detailed-exitcode")
    assert [m["dag_id"] for m in plan["missing"]] == ["ghost_dag"]
    assert plan["missing"][0]["rule"] == "state/prod.yaml:6"
    assert plan["summary"]["missing"] == 1
    assert "ghost_dag" not in actions(plan)
    assert code == 2          # the other changes are still pending


def test_snapshot_dags_without_tags_or_owners(example):
    snap = example / "state" / "snapshots" / "prod.json"
    snap.write_text(snapshot_json([{"dag_id": "billing_daily", "is_paused": True},
                                   {"dag_id": "legacy_export", "is_paused": False}]))
    _, plan = plan_json(example)
    assert actions(plan) == {"billing_daily": "unpause", "legacy_export": "pause"}


# ---- startup ------------------------------------------------------------------------------

def test_help_is_fast():
    """Smoke check that commands load lazily: `pausectl --help` uses < 0.5 s of CPU (best of 3).

    CPU time, not wall time: the suite starts Airflow servers in the background, and on a
    2-core runner their load would make a wall-clock bound flaky without saying anything
    about pausectl's start-up. Heavy modules imported eagerly would show up here as CPU.
    """
    best = float("inf")
    for _ in range(3):
        r, cpu = run_timed([sys.executable, "-m", "reconciler", "--help"], timeout=30)
        best = min(best, cpu)
        assert r.returncode == 0 and "Usage:" in r.stdout
    assert best < 0.5, f"pausectl --help used {best:.2f}s of CPU"
    heavy = subprocess.run([sys.executable, "-c", "import sys, reconciler.cli.main; "
                            "print(sorted(m for m in ('httpx', 'jsonschema', 'rich', 'git', "
                            "'deepdiff', 'croniter', 'yaml') if m in sys.modules))"],
                           capture_output=True, text=True, timeout=30)
    assert heavy.stdout.strip() == "[]", f"imported at start-up: {heavy.stdout}"
