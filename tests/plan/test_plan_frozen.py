"""The plan is a frozen value that apply executes (issue 13): the batches a command shows
are the batches that run (emergency recover --batches, apply of a saved plan), and a frozen
plan refuses changes while its JSON stays the documented one."""

from __future__ import annotations

import json
import re

import pytest

from reconciler.apply import emergency as em
from reconciler.core.errors import PausectlError
from reconciler.plan.model import Plan
from reconciler.plan.records import Action, Hold

from helpers import dag, make_state, run_cli, snapshot_json

from fakes import fleet, journal_dir, plan_for  # noqa: F401


REPORTS = [dag("billing_daily", False), dag("report_a", True), dag("report_b", True),
           dag("report_c", True)]


def shown_batches(stdout: str) -> list[list[str]]:
    """The batches a command printed (render.batch_lines), as lists of dag_ids."""
    return [m.group(1).split(", ") for m in
            re.finditer(r"^batch \d+/\d+: \d+ DAG\(s\) \(\d+ pause, \d+ unpause\): (.*)$",
                        stdout, re.M)]


def journaled_batches(tmp_path) -> list[list[str]]:
    journal = json.loads(sorted((tmp_path / "journal").glob("prod-*.json"))[-1].read_text())
    assert journal["status"] == "done", journal["status"]
    return [b["dag_ids"] for b in journal["batches"]]


def test_emergency_recover_with_batches_runs_the_batches_it_shows(tmp_path):
    """`emergency recover --batches` used to show pausectl.yaml's batches and run the flag's."""
    env = {"PAUSECTL_JOURNAL_DIR": str(tmp_path / "journal")}
    marker = {"version": 1, "environment": "prod", "reason": "db down", "owner": "oncall",
              "started": "2026-11-25T08:00:00Z", "except": [], "revision": 1,
              "prior": {"report_a": False, "report_b": False, "report_c": False}}
    root = make_state(tmp_path, {"snapshots/prod.json": snapshot_json(REPORTS, "prod"),
                                 "snapshots/prod.json.vars.json": json.dumps(
                                     {em.marker_key("prod"): json.dumps(marker)}),
                                 "staging.yaml": None})
    p = run_cli(["emergency", "recover", "prod", "--yes", "--no-gates", "--batches", "1,100%"],
                cwd=tmp_path, env=env)
    assert p.returncode == 0, p.stdout + p.stderr
    assert shown_batches(p.stdout) == [["report_a"], ["report_b", "report_c"]], p.stdout
    assert journaled_batches(tmp_path) == shown_batches(p.stdout)
    assert em.marker_key("prod") not in json.loads(
        (root / "snapshots" / "prod.json.vars.json").read_text())


def test_apply_of_a_saved_plan_runs_exactly_its_batches(tmp_path):
    """plan --out, then the rollout in pausectl.yaml changes: apply --plan still runs the
    batches the saved plan showed, and refuses flags that would re-cut them."""
    env = {"PAUSECTL_JOURNAL_DIR": str(tmp_path / "journal")}
    from helpers import PAUSECTL_YAML
    root = make_state(tmp_path, {"snapshots/prod.json": snapshot_json(REPORTS, "prod"),
                                 "pausectl.yaml": PAUSECTL_YAML + "rollout: {batches: [1, 100%]}\n",
                                 "staging.yaml": None})
    p = run_cli(["plan", "prod", "--out", "saved.json"], cwd=tmp_path, env=env)
    assert p.returncode == 0, p.stderr
    saved = [b["dag_ids"] for b in json.loads((tmp_path / "saved.json").read_text())["batches"]]
    assert saved == [["billing_daily", "report_a"], ["report_b", "report_c"]]
    assert shown_batches(p.stdout) == saved
    (root / "pausectl.yaml").write_text(PAUSECTL_YAML + "rollout: {batches: [100%]}\n")
    p = run_cli(["apply", "prod", "--plan", "saved.json", "--yes", "--batches", "100%"],
                cwd=tmp_path, env=env)
    assert p.returncode == 1 and "cannot re-cut a saved plan" in p.stderr, p.stderr
    assert not (tmp_path / "journal").exists()
    p = run_cli(["apply", "prod", "--plan", "saved.json", "--yes", "--no-gates"],
                cwd=tmp_path, env=env)
    assert p.returncode == 0, p.stdout + p.stderr
    assert shown_batches(p.stdout) == saved
    assert journaled_batches(tmp_path) == saved
    live = {d["dag_id"]: d["is_paused"]
            for d in json.loads((root / "snapshots" / "prod.json").read_text())["dags"]}
    assert live == {"billing_daily": True, "report_a": False, "report_b": False,
                    "report_c": False}


def test_a_frozen_plan_refuses_changes_and_keeps_its_json(tmp_path):
    b = fleet()
    plan = plan_for(b, {"d0": False, "d1": False, "run_a": True})
    plan.held.append(Hold("d2", "manual change kept", True, False, "f:2"))
    plan.freeze({"batches": [1, "100%"]}, b.list_dags())
    assert [x.dag_ids for x in plan.batches] == [["run_a", "d0"], ["d1"]]
    for change in (lambda: plan.changes.append(plan.changes[0]),
                   lambda: setattr(plan, "batches", []), lambda: plan.warnings.insert(0, "x")):
        with pytest.raises(TypeError, match="frozen plan"):
            change()
    data = json.loads(json.dumps(plan.to_json()))
    assert data["held"] == [{"dag_id": "d2", "why": "manual change kept", "live_paused": True,
                             "desired_paused": False, "rule": "f:2"}]
    assert [c["action"] for c in data["changes"]] == ["unpause", "unpause", "pause"]
    again = Plan.from_json(data)
    assert again.frozen and again.batches == plan.batches and again.held[0].why == \
        "manual change kept"
    assert isinstance(again.changes[0].action, Action) and f"{Action.PAUSE:8}|" == "pause   |"
    data["batches"][1]["dag_ids"] = []          # a plan file whose batches lose a change
    with pytest.raises(ValueError, match="exactly once"):
        Plan.from_json(data)
    # a saved plan whose batches lost a change is a bad plan file, named, nothing applied
    from reconciler.operations import load_saved
    (path := tmp_path / "bad-plan.json").write_text(json.dumps(data))
    with pytest.raises(PausectlError, match=r"bad-plan.json: not a pausectl plan \(the "):
        load_saved(str(path))
