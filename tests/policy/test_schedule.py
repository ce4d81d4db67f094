"""`pausectl schedule` and budgets: upcoming transitions from windows, budgets, from/until and
cascades, checked against exact instants and against plan --at just before and at each one."""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timedelta, timezone

import pytest

from helpers import main_captured

try:
    from helpers import EXAMPLE_STATE, PAUSECTL_YAML, dag, load, make_state, snapshot_json
except ImportError:  # pragma: no cover
    from tests.helpers import EXAMPLE_STATE, PAUSECTL_YAML, dag, load, make_state, snapshot_json

UTC = timezone.utc

BUDGETS = """\
budgets:
  off-hours:
    description: "evenings and weekends, Berlin time"
    windows:
      - {cron: "0 19 * * MON-THU", duration: 13h, timezone: Europe/Berlin}
      - {cron: "0 19 * * FRI", duration: 2d13h, timezone: Europe/Berlin}
"""

PROD = """\
environment: prod
dags:
  vendor_feed:
    paused: true
    reason: "vendor maintenance"
    owner: data-eng
    from: 2026-11-26T06:00:00Z
    until: 2026-11-27T18:30:00Z
groups:
  - name: expensive
    match: {tags: [gpu]}
    paused: true
    reason: "GPU cost: only in business hours"
    owner: ml-team
    budget: off-hours
"""

LIVE = [dag("train_big", False, ["gpu"], ["ml-team"]),
        dag("vendor_feed", False, ["vendor"], ["data-eng"]),
        dag("other", False, [], ["ops"])]


def t(s: str) -> datetime:
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


@pytest.fixture
def repo(tmp_path):
    make_state(tmp_path, {"pausectl.yaml": PAUSECTL_YAML + BUDGETS, "prod.yaml": PROD,
                          "snapshots/prod.json": snapshot_json(LIVE, "prod")})
    return tmp_path


def _cli(cwd, args, capsys, monkeypatch):
    code, out, err = main_captured(cwd, args, capsys, monkeypatch)
    assert code == 0, out + err
    return out


def test_budget_and_from_until_transitions(repo, capsys, monkeypatch):
    out = _cli(repo, ["schedule", "prod", "--at", "2026-11-25T12:00:00Z", "--next", "7d",
                      "--format", "json"], capsys, monkeypatch)
    s = json.loads(out)
    got = [(x["at"], x["dag_id"], x["action"], [c["event"] for c in x["causes"]])
           for x in s["transitions"]]
    budget = []
    # Berlin is UTC+1 in winter: 19:00 -> 18:00Z, 08:00 -> 07:00Z; Fri 19:00 to Mon 08:00
    for start, end in [("2026-11-25T18:00:00Z", "2026-11-26T07:00:00Z"),
                       ("2026-11-26T18:00:00Z", "2026-11-27T07:00:00Z"),
                       ("2026-11-27T18:00:00Z", "2026-11-30T07:00:00Z"),
                       ("2026-11-30T18:00:00Z", "2026-12-01T07:00:00Z"),
                       ("2026-12-01T18:00:00Z", "2026-12-02T07:00:00Z")]:
        budget += [(start, "train_big", "pause", ["budget start"]),
                   (end, "train_big", "unpause", ["budget end"])]
    vendor = [("2026-11-26T06:00:00Z", "vendor_feed", "pause", ["from"]),
              ("2026-11-27T18:30:00Z", "vendor_feed", "unpause", ["until"])]
    assert got == sorted(budget + vendor)
    assert s["from"] == "2026-11-25T12:00:00Z" and s["to"] == "2026-12-02T12:00:00Z"
    paused = next(x for x in s["transitions"] if x["action"] == "pause")
    assert paused["rule"] == "state/prod.yaml:10" and paused["owner"] == "ml-team"
    unpaused = next(x for x in s["transitions"] if x["action"] == "unpause")
    assert unpaused["rule"] is None          # no rule in force: the DAG runs again


def test_every_transition_agrees_with_plan_at(repo):
    from reconciler.live.snapshot import SnapshotBackend
    from reconciler.policy.resolve import resolve
    from reconciler.policy.schedule import compute
    cfg, state = load(repo / "state", "prod")
    live = SnapshotBackend("prod", repo / "state" / "snapshots" / "prod.json").list_dags()
    start = t("2026-11-25T12:00:00Z")
    s = compute(cfg, state, live, start, timedelta(days=14))
    assert len(s.transitions) == 22
    for tr in s.transitions:
        before = resolve(cfg, state, live, tr.at - timedelta(seconds=1)).decisions[tr.dag_id]
        after = resolve(cfg, state, live, tr.at).decisions[tr.dag_id]
        assert before.paused is (tr.action == "unpause"), tr
        assert after.paused is (tr.action == "pause"), tr


def test_budget_across_dst_keeps_the_wall_clock(repo, capsys, monkeypatch):
    # Berlin springs forward Sun 29 Mar 2026: the weekend budget still ends Monday 08:00 local
    out = _cli(repo, ["schedule", "prod", "--at", "2026-03-27T12:00:00Z", "--next", "4d",
                      "--format", "json"], capsys, monkeypatch)
    got = [(x["at"], x["action"]) for x in json.loads(out)["transitions"]
           if x["dag_id"] == "train_big"]
    assert got == [("2026-03-27T18:00:00Z", "pause"),      # Fri 19:00 CET
                   ("2026-03-30T06:00:00Z", "unpause"),    # Mon 08:00 CEST
                   ("2026-03-30T17:00:00Z", "pause"),      # Mon 19:00 CEST
                   ("2026-03-31T06:00:00Z", "unpause")]    # Tue 08:00 CEST


def test_explain_names_the_budget(repo, capsys, monkeypatch):
    out = _cli(repo, ["explain", "prod", "train_big", "--at", "2026-11-25T12:00:00Z"],
               capsys, monkeypatch)
    assert "outside budget 'off-hours'" in out
    out = _cli(repo, ["explain", "prod", "train_big", "--at", "2026-11-25T18:00:00Z"],
               capsys, monkeypatch)
    assert "desired: paused" in out


def test_unknown_budget_is_an_error_with_its_line(repo, capsys, monkeypatch):
    from reconciler.cli.main import main
    (repo / "state" / "prod.yaml").write_text(PROD.replace("budget: off-hours", "budget: night"))
    monkeypatch.chdir(repo)
    with pytest.raises(SystemExit) as e:
        main(["validate"])
    out = capsys.readouterr()
    assert e.value.code == 1
    assert "state/prod.yaml:15:5: error: unknown budget 'night' (pausectl.yaml budgets: " \
           "off-hours)" in out.out


def test_budget_windows_are_schema_checked(repo, capsys, monkeypatch):
    from reconciler.cli.main import main
    (repo / "state" / "pausectl.yaml").write_text(
        PAUSECTL_YAML + BUDGETS.replace("duration: 13h", "duration: 13 hours"))
    monkeypatch.chdir(repo)
    with pytest.raises(SystemExit) as e:
        main(["validate"])
    out = capsys.readouterr()
    assert e.value.code == 1 and "state/pausectl.yaml:17" in out.out + out.err


def test_example_schedule_is_the_sunday_window(tmp_path, capsys, monkeypatch):
    shutil.copytree(EXAMPLE_STATE, tmp_path / "state")
    out = _cli(tmp_path, ["schedule", "prod", "--at", "2026-11-25T12:00:00Z"], capsys, monkeypatch)
    lines = out.splitlines()
    assert lines[0] == "Schedule for prod: 2026-11-25T12:00:00Z .. 2026-12-02T12:00:00Z"
    # Sunday 02:00-04:00 Europe/Berlin = 01:00-03:00Z; etl_inventory stays paused (dag entry)
    assert lines[1:5] == [
        "2026-11-29T01:00:00Z  pause    etl_customers  group nightly-maintenance window start "
        "(state/common.yaml:10)  rule=state/common.yaml:10",
        "2026-11-29T01:00:00Z  pause    etl_orders  group nightly-maintenance window start "
        "(state/common.yaml:10)  rule=state/common.yaml:10",
        "2026-11-29T03:00:00Z  unpause  etl_customers  group nightly-maintenance window end "
        "(state/common.yaml:10)  (no rule in force)",
        "2026-11-29T03:00:00Z  unpause  etl_orders  group nightly-maintenance window end "
        "(state/common.yaml:10)  (no rule in force)"]
    assert lines[-1] == "4 transition(s) for 2 DAG(s), 2 rule event(s)"


def test_schedule_follows_a_cascade(tmp_path, capsys, monkeypatch):
    prod = ("environment: prod\ngroups:\n  - name: nightly\n    match: {tags: [etl]}\n"
            "    paused: true\n    reason: maintenance\n    owner: data-eng\n"
            "    cascade: downstream\n"
            "    windows: [{cron: \"0 2 * * SUN\", duration: 2h, timezone: UTC}]\n")
    snap = json.loads(snapshot_json([dag("etl_a", False, ["etl"], ["data-eng"]),
                                     dag("report_b", False, [], ["analytics"])], "prod"))
    snap["assets"] = [{"name": "a", "producers": ["etl_a"], "consumers": ["report_b"]}]
    make_state(tmp_path, {"prod.yaml": prod, "snapshots/prod.json": json.dumps(snap)})
    out = _cli(tmp_path, ["schedule", "prod", "--at", "2026-11-25T12:00:00Z", "--format", "json"],
               capsys, monkeypatch)
    got = [(x["at"], x["dag_id"], x["action"], [c["rule"] for c in x["causes"]])
           for x in json.loads(out)["transitions"]]
    assert got == [("2026-11-29T02:00:00Z", "etl_a", "pause", ["group nightly"]),
                   ("2026-11-29T02:00:00Z", "report_b", "pause", ["group nightly"]),
                   ("2026-11-29T04:00:00Z", "etl_a", "unpause", ["group nightly"]),
                   ("2026-11-29T04:00:00Z", "report_b", "unpause", ["group nightly"])]


def test_bad_next_is_an_error(repo, capsys, monkeypatch):
    from reconciler.cli.main import main
    monkeypatch.chdir(repo)
    with pytest.raises(SystemExit) as e:
        main(["schedule", "prod", "--next", "a week"])
    assert e.value.code == 1 and "--next: bad duration" in capsys.readouterr().err
