"""`drift.auto_paused: keep | enforce` offline: Airflow's own pause after failed runs, as the
backends report it (AuditEvent via "airflow", user "scheduler"), in a snapshot with events and
runs, in a real git repo (the release "a git change to the rule after the auto-pause" is read
from git blame). The CLI runs as a subprocess, as a user or a pipeline runs it.

The base state (tests/helpers.py): report_daily is matched by the group `reporting` of
common.yaml (paused: false, line 2), so git wants it running; live it is paused by the scheduler
on 2026-06-01 after 3 failed runs. The commits are dated 2026-01 (before the auto-pause) unless
a test commits a later one.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from helpers import BASE_FILES, dag, run_cli, write_files
from reconciler.state.schema import validate_json

AT = "2026-11-25T12:00:00Z"
PAUSED_AT = "2026-06-01T10:00:00Z"
AUTO_EVENT = {"dag_id": "report_daily", "event": "paused", "when": PAUSED_AT,
              "user": "scheduler", "via": "airflow", "is_paused": True,
              "detail": "auto-paused by Airflow"}
RUNS = ([{"dag_id": "report_daily", "run_id": f"scheduled__2026-06-01T0{i}:00:00+00:00",
          "state": "failed", "run_after": f"2026-06-01T0{i}:00:00Z",
          "end_date": f"2026-06-01T0{i}:05:00Z"} for i in (1, 2, 3)]
        + [{"dag_id": "report_daily", "run_id": "scheduled__2026-05-31T00:00:00+00:00",
            "state": "success", "run_after": "2026-05-31T00:00:00Z"},
           # triggered after the pause: not part of the evidence
           {"dag_id": "report_daily", "run_id": "manual__2026-06-02", "state": "failed",
            "run_after": "2026-06-02T00:00:00Z"}])
RELEASED_REASON = "auto-paused by Airflow after 3 failed runs"


def snapshot(events=(AUTO_EVENT,), report_paused=True, runs=RUNS) -> str:
    doc = {"environment": "prod", "dags": [
        dag("billing_daily", False, ["billing"], ["team-billing"]),
        dag("etl_orders", False, ["etl"], ["data-eng"]),
        dag("report_daily", report_paused, ["reporting"], ["analytics"])],
        "events": list(events), "runs": list(runs)}
    return json.dumps(doc, indent=1) + "\n"


class Repo:
    """A git repo at base holding ./state, commits dated on purpose (committer date)."""

    def __init__(self, base: Path, files: dict | None = None):
        self.path = base
        self.state = base / "state"
        self.git("init", "-q", "-b", "main")
        for k, v in (("user.name", "Test"), ("user.email", "t@example.com"),
                     ("commit.gpgsign", "false")):
            self.git("config", k, v)
        write_files(self.state, {**BASE_FILES, "snapshots/prod.json": snapshot(), **(files or {})})
        self.commit("initial", "2026-01-01T10:00:00+00:00")

    def git(self, *args: str, date: str | None = None) -> str:
        env = dict(os.environ)
        if date:
            env.update(GIT_AUTHOR_DATE=date, GIT_COMMITTER_DATE=date)
        return subprocess.run(["git", *args], cwd=self.path, check=True, capture_output=True,
                              text=True, env=env).stdout

    def commit(self, message: str, date: str, files: dict | None = None) -> str:
        if files:
            write_files(self.state, files)
        self.git("add", "-A")
        self.git("commit", "-q", "-m", message, date=date)
        return self.git("rev-parse", "HEAD").strip()

    def cli(self, *args: str, cwd: Path | None = None, **kw):
        env = {"PAUSECTL_JOURNAL_DIR": str(self.path / "journal"), **kw.pop("env", {})}
        r = run_cli(list(args), cwd or self.path, env=env, **kw)
        assert "Traceback" not in r.stderr, r.stderr
        return r

    def plan(self, *extra: str, cwd: Path | None = None) -> dict:
        r = self.cli("plan", "prod", "--at", AT, "--format", "json", *extra, cwd=cwd)
        assert r.returncode == 0, r.stdout + r.stderr
        plan = json.loads(r.stdout)
        assert validate_json(plan, "plan.schema.json") == []
        return plan

    def live(self) -> dict[str, bool]:
        doc = json.loads((self.state / "snapshots/prod.json").read_text())
        return {d["dag_id"]: d["is_paused"] for d in doc["dags"]}


def enforce_config() -> str:
    return BASE_FILES["pausectl.yaml"] + "drift: {mode: enforce, auto_paused: enforce}\n"


def changed_reporting_group() -> str:
    return BASE_FILES["common.yaml"].replace('reason: "reports run everywhere"',
                                             'reason: "reports run everywhere; the fix is in"')


@pytest.fixture
def repo(tmp_path) -> Repo:
    return Repo(tmp_path)


def held(plan: dict) -> dict[str, dict]:
    return {h["dag_id"]: h for h in plan["held"]}


def actions(plan: dict) -> dict[str, str]:
    return {c["dag_id"]: c["action"] for c in plan["changes"]}


# ---- keep (the default) -----------------------------------------------------------------------

def test_keep_holds_it_paused_with_the_reason_and_the_failed_runs(repo):
    plan = repo.plan()
    assert actions(plan) == {"billing_daily": "pause"}
    h = held(plan)["report_daily"]
    assert h["why"].startswith(f"{RELEASED_REASON} at {PAUSED_AT} "
                               "(scheduled__2026-06-01T03:00:00+00:00, ")
    assert "held paused (drift.auto_paused: keep)" in h["why"]
    assert "commit a change to group reporting (state/common.yaml:2)" in h["why"]
    assert "before the auto-pause" in h["why"]
    a = h["auto_paused"]
    assert (a["policy"], a["outcome"], a["failed_runs"], a["by"]) == ("keep", "held", 3,
                                                                      "scheduler")
    assert [r["run_id"] for r in a["runs"]] == [f"scheduled__2026-06-01T0{i}:00:00+00:00"
                                                for i in (3, 2, 1)]
    assert {r["state"] for r in a["runs"]} == {"failed"}
    assert [r["run_after"] for r in a["runs"]] == ["2026-06-01T03:00:00Z",
                                                   "2026-06-01T02:00:00Z",
                                                   "2026-06-01T01:00:00Z"]
    assert a["rule_changed_at"] == "2026-01-01T10:00:00Z" and len(a["rule_commit"]) == 40
    assert plan["summary"]["held"] == 1 and plan["summary"]["unpause"] == 0

    text = repo.cli("plan", "prod", "--at", AT).stdout
    line = next(ln for ln in text.splitlines() if ln.startswith("held"))
    assert "report_daily" in line and RELEASED_REASON in line
    assert "scheduled__2026-06-01T01:00:00+00:00" in line
    md = repo.cli("plan", "prod", "--at", AT, "--format", "markdown").stdout
    assert "<summary>Held (1)</summary>" in md and RELEASED_REASON in md


def test_apply_does_not_unpause_it(repo):
    r = repo.cli("apply", "prod", "--yes", "--batches", "100%", "--wait-seconds", "0")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "held     report_daily  auto-paused by Airflow after 3 failed runs" in r.stdout
    assert repo.live() == {"billing_daily": True, "etl_orders": False, "report_daily": True}
    # and the next plan still holds it (nothing pausectl did counts as a human act)
    assert "report_daily" in held(repo.plan())


def test_an_uncommitted_edit_does_not_release_it(repo):
    write_files(repo.state, {"common.yaml": changed_reporting_group()})
    h = held(repo.plan())["report_daily"]
    assert "its uncommitted edits do not count until they are committed" in h["why"]


def test_a_commit_to_another_rule_does_not_release_it(repo):
    repo.commit("billing: new reason", "2026-07-01T09:00:00+00:00", {
        "prod.yaml": BASE_FILES["prod.yaml"].replace("vendor outage", "vendor outage, again")})
    assert "report_daily" in held(repo.plan())


def test_a_shallow_clone_cannot_tell_and_keeps_holding(repo, tmp_path):
    repo.commit("reporting: the fix is in", "2026-07-01T09:00:00+00:00",
                {"common.yaml": changed_reporting_group()})
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", "--depth", "1", f"file://{repo.path}", str(clone)],
                   check=True, capture_output=True)
    h = held(repo.plan(cwd=clone))["report_daily"]
    assert "the git clone is shallow" in h["why"] and "fetch-depth: 0" in h["why"]
    assert h["auto_paused"]["rule_changed_at"] is None


# ---- released: a git change after the auto-pause, or enforce ----------------------------------

def test_a_git_change_to_its_rule_after_the_auto_pause_releases_it(repo):
    before = repo.git("rev-parse", "HEAD").strip()
    sha = repo.commit("reporting: the fix is in", "2026-07-01T09:00:00+00:00",
                      {"common.yaml": changed_reporting_group()})
    plan = repo.plan()
    assert actions(plan) == {"billing_daily": "pause", "report_daily": "unpause"}
    c = next(c for c in plan["changes"] if c["dag_id"] == "report_daily")
    assert c["auto_paused"]["outcome"] == "released"
    assert c["auto_paused"]["rule_commit"] == sha
    assert c["auto_paused"]["rule_changed_at"] == "2026-07-01T09:00:00Z"
    assert c["last_changed_by"].startswith(RELEASED_REASON)
    assert f"released by a git change to its rule at 2026-07-01T09:00:00Z ({sha[:10]})" \
        in c["last_changed_by"]
    # --ref reads the rule's history at that commit: before the change it is still held
    old = repo.plan("--ref", before[:12])
    assert "report_daily" in held(old) and old["desired_ref"].startswith(before[:12])
    assert "report_daily" in actions(repo.plan("--ref", "main"))

    r = repo.cli("apply", "prod", "--yes", "--batches", "100%", "--wait-seconds", "0")
    assert r.returncode == 0, r.stdout + r.stderr
    assert repo.live()["report_daily"] is False


def test_a_git_change_in_report_mode_still_releases_it(repo):
    repo.commit("report mode; reporting fixed", "2026-07-01T09:00:00+00:00", {
        "pausectl.yaml": BASE_FILES["pausectl.yaml"] + "drift: {mode: report}\n",
        "common.yaml": changed_reporting_group()})
    assert actions(repo.plan())["report_daily"] == "unpause"


def test_enforce_unpauses_it_like_any_drift_and_still_says_why(repo):
    repo.commit("auto_paused: enforce", "2026-01-02T10:00:00+00:00",
                {"pausectl.yaml": enforce_config()})
    plan = repo.plan()
    assert actions(plan)["report_daily"] == "unpause" and not plan["held"]
    c = next(c for c in plan["changes"] if c["dag_id"] == "report_daily")
    assert (c["auto_paused"]["policy"], c["auto_paused"]["outcome"]) == ("enforce", "enforced")
    assert c["last_changed_by"] == (f"{RELEASED_REASON} at {PAUSED_AT} "
                                    "(scheduled__2026-06-01T03:00:00+00:00, "
                                    "scheduled__2026-06-01T02:00:00+00:00, "
                                    "scheduled__2026-06-01T01:00:00+00:00); "
                                    "unpaused because drift.auto_paused is enforce")
    drift = json.loads(repo.cli("drift", "prod", "--format", "json").stdout)["environments"][0]
    assert [x["dag_id"] for x in drift["auto_paused"]] == ["report_daily"]
    assert drift["auto_paused"][0]["auto_paused"]["outcome"] == "enforced"
    assert drift["drifted"] == []
    r = repo.cli("apply", "prod", "--yes", "--batches", "100%", "--wait-seconds", "0")
    assert r.returncode == 0, r.stdout + r.stderr
    assert repo.live()["report_daily"] is False


def test_enforce_with_drift_mode_report_keeps_it_as_any_drift(repo):
    repo.commit("report + enforce", "2026-01-02T10:00:00+00:00", {
        "pausectl.yaml": BASE_FILES["pausectl.yaml"]
        + "drift: {mode: report, auto_paused: enforce}\n"})
    h = held(repo.plan())["report_daily"]
    assert h["why"].startswith(f"manual change kept (drift.mode report): {RELEASED_REASON}")
    assert h["auto_paused"]["outcome"] == "held"


# ---- humans acting in Airflow --------------------------------------------------------------------

def test_a_human_unpause_after_it_simply_runs(repo):
    unpause = {"dag_id": "report_daily", "event": "patch_dag", "when": "2026-06-02T08:00:00Z",
               "user": "alice", "via": "api", "is_paused": False}
    repo.commit("alice unpaused it", "2026-06-02T09:00:00+00:00",
                {"snapshots/prod.json": snapshot([unpause, AUTO_EVENT], report_paused=False)})
    plan = repo.plan()
    assert "report_daily" not in held(plan) and "report_daily" not in actions(plan)
    drift = json.loads(repo.cli("drift", "prod", "--format", "json").stdout)["environments"][0]
    assert drift["auto_paused"] == []


def test_a_human_pause_after_it_is_manual_drift_again(repo):
    pause = {"dag_id": "report_daily", "event": "patch_dag", "when": "2026-06-02T08:00:00Z",
             "user": "bob", "via": "api", "is_paused": True}
    repo.commit("bob paused it", "2026-06-02T09:00:00+00:00",
                {"snapshots/prod.json": snapshot([AUTO_EVENT, pause])})
    plan = repo.plan()
    assert actions(plan)["report_daily"] == "unpause"
    c = next(c for c in plan["changes"] if c["dag_id"] == "report_daily")
    assert c["auto_paused"] is None and "bob" in c["last_changed_by"]
    drift = json.loads(repo.cli("drift", "prod", "--format", "json").stdout)["environments"][0]
    assert [x["changed_by"] for x in drift["drifted"]] == ["bob"] and drift["auto_paused"] == []


# ---- drift, doctor, lint, notify, metrics ---------------------------------------------------------

def test_drift_lists_it_apart_from_manual_drift(repo):
    r = repo.cli("drift", "prod")
    assert r.returncode == 0, r.stderr
    assert "prod: no drift (3 DAGs checked)" in r.stdout
    assert (f"prod: report_daily {RELEASED_REASON} at {PAUSED_AT}; git says running "
            "(state/common.yaml:2); held paused; runs: scheduled__2026-06-01T03:00:00+00:00 "
            "failed") in r.stdout
    rep = json.loads(repo.cli("drift", "prod", "--format", "json").stdout)["environments"][0]
    (x,) = rep["auto_paused"]
    assert (x["cause"], x["changed_by"], x["how"]) == ("airflow", "scheduler",
                                                       "Airflow (auto-pause)")
    assert x["auto_paused"]["failed_runs"] == 3 and rep["auto_paused_policy"] == "keep"
    assert [p["dag_id"] for p in rep["pending_git_changes"]] == ["billing_daily"]
    md = repo.cli("drift", "prod", "--format", "markdown").stdout
    assert "Auto-paused by Airflow (1):" in md
    assert f"| `report_daily` | {RELEASED_REASON} at {PAUSED_AT} |" in md


def test_doctor_says_airflow_paused_it_and_what_releases_it(repo):
    r = repo.cli("doctor", "prod", "report_daily", "--format", "json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["verdict"].startswith(f"{RELEASED_REASON} at {PAUSED_AT}")
    assert d["verdict"].endswith("pausectl keeps it paused (drift.auto_paused: keep)")
    f = d["findings"][0]
    assert (f["code"], f["severity"]) == ("auto_paused", "blocking")
    for e, i in zip(f["evidence"][:3], (3, 2, 1)):   # "..., ended 177d ago (<iso>)"
        assert e.startswith(f"scheduled__2026-06-01T0{i}:00:00+00:00: failed, ended ")
        assert e.endswith(f"(2026-06-01T0{i}:05:00Z)")
    assert f["evidence"][3] == (f"event log: paused by scheduler at {PAUSED_AT} "
                                "(max_consecutive_failed_dag_runs)")
    assert any(e.startswith("held paused (drift.auto_paused: keep)") for e in f["evidence"])
    text = repo.cli("doctor", "prod", "report_daily").stdout
    assert text.startswith(f"report_daily in prod: {RELEASED_REASON}")

    repo.commit("enforce", "2026-01-02T10:00:00+00:00", {"pausectl.yaml": enforce_config()})
    d = json.loads(repo.cli("doctor", "prod", "report_daily", "--format", "json").stdout)
    assert d["verdict"].endswith("the next `pausectl apply prod` unpauses it")


def test_lint_auto_paused_rule(repo):
    r = repo.cli("lint", "prod", "--at", AT, "--format", "json")
    assert r.returncode == 0, r.stderr
    found = [f for f in json.loads(r.stdout)["findings"] if f["id"] == "auto-paused"]
    assert len(found) == 1
    f = found[0]
    assert (f["file"], f["line"], f["severity"], f["dag_ids"]) == ("state/common.yaml", 2,
                                                                    "warning", ["report_daily"])
    assert f["message"].startswith(f"report_daily was {RELEASED_REASON} at {PAUSED_AT}")
    assert f["message"].endswith("git wants it running (group reporting); pausectl holds it "
                                 "paused (drift.auto_paused: keep) until a human acts")
    repo.commit("lint: off", "2026-01-02T10:00:00+00:00", {
        "pausectl.yaml": BASE_FILES["pausectl.yaml"] + "lint: {disable: [auto-paused]}\n"})
    r = repo.cli("lint", "prod", "--at", AT, "--format", "json")
    assert not [f for f in json.loads(r.stdout)["findings"] if f["id"] == "auto-paused"]


def test_notify_auto_pause_event_and_metric(repo):
    from webhooks import Hooks
    hooks = Hooks()
    try:
        repo.commit("notify", "2026-01-02T10:00:00+00:00", {
            "pausectl.yaml": BASE_FILES["pausectl.yaml"] + (
                "notify:\n  webhooks:\n    - {url_env: HOOK_AUTO, events: [auto_pause]}\n"
                "    - {url_env: HOOK_DRIFT, events: [drift]}\n")})
        metrics = repo.path / "drift.prom"
        r = repo.cli("drift", "prod", "--metrics-file", str(metrics),
                     env={"HOOK_AUTO": hooks.url + "/auto", "HOOK_DRIFT": hooks.url + "/drift"})
        assert r.returncode == 0 and "warning" not in r.stderr, r.stderr
        (req,) = hooks.at("/auto")
        assert hooks.at("/drift") == []      # no human drift: no drift message
        body = req["body"]
        assert (body["event"], body["severity"]) == ("auto_pause", "warning")
        assert body["title"] == "pausectl: 1 DAG(s) auto-paused by Airflow in prod"
        assert body["text"] == (f"• report_daily: {RELEASED_REASON} at {PAUSED_AT} "
                                "(scheduled__2026-06-01T03:00:00+00:00, "
                                "scheduled__2026-06-01T02:00:00+00:00, "
                                "scheduled__2026-06-01T01:00:00+00:00); held paused "
                                "(drift.auto_paused: keep) until a human acts")
        (item,) = body["details"]["auto_paused"]
        assert (item["dag_id"], item["outcome"], item["failed_runs"]) == ("report_daily",
                                                                          "held", 3)
        assert body["details"]["policy"] == "keep"
        prom = metrics.read_text()
        assert 'pausectl_auto_paused_dags{env="prod",outcome="held"} 1.0' in prom
        assert 'pausectl_auto_paused_dags{env="prod",outcome="enforced"} 0.0' in prom
        assert 'pausectl_manual_drift_dags{env="prod"} 0.0' in prom
    finally:
        hooks.close()


def test_apply_metrics_count_only_what_stays_held(repo):
    prom = repo.path / "apply.prom"
    r = repo.cli("apply", "prod", "--yes", "--batches", "100%", "--wait-seconds", "0",
                 "--metrics-file", str(prom))
    assert r.returncode == 0, r.stdout + r.stderr
    assert 'pausectl_auto_paused_dags{env="prod",outcome="held"} 1.0' in prom.read_text()


# ---- input and unit checks -----------------------------------------------------------------------

def test_a_bad_event_in_a_snapshot_is_one_line_with_file_and_line(repo):
    bad = snapshot([AUTO_EVENT, {**AUTO_EVENT, "when": "yesterday"}])
    write_files(repo.state, {"snapshots/prod.json": bad})
    r = repo.cli("plan", "prod", "--at", AT)
    assert r.returncode == 1
    line = bad.splitlines().index(next(ln for ln in bad.splitlines() if "yesterday" in ln))
    # the error names the event's object (its opening line), a few lines above "when"
    err = r.stderr.strip()
    assert err.count("\n") == 0, err
    assert "state/snapshots/prod.json:" in err and "events[1]: when: expected an ISO 8601 " \
        "timestamp" in err
    num = int(err.split("prod.json:")[1].split(":")[0])
    assert 0 < num <= line + 1


def test_rule_blocks_and_failed_streaks():
    from datetime import datetime, timezone
    from reconciler.live.autopause import _Line, _block, failed_before
    from reconciler.live.base import DagRun
    text = ["dags:", "  a:", "    paused: false", "    reason: |", "      long", "",
            "    # a comment", "  b: {paused: true}", "groups:", "  - name: g", "    paused: x",
            "  -", "    name: h", "    paused: y", "  - name: i"]
    lines = [_Line("c", None, t) for t in text]
    assert [ln.text.strip() for ln in _block(lines, 2)] == ["a:", "paused: false",
                                                            "reason: |", "long"]
    assert [ln.text.strip() for ln in _block(lines, 8)] == ["b: {paused: true}"]
    assert [ln.text.strip() for ln in _block(lines, 10)] == ["- name: g", "paused: x"]
    assert [ln.text.strip() for ln in _block(lines, 13)] == ["name: h", "paused: y"]
    t = lambda h: datetime(2026, 6, 1, h, tzinfo=timezone.utc)  # noqa: E731
    runs = [DagRun("d", "late", "failed", t(9)), DagRun("d", "r3", "failed", t(3)),
            DagRun("d", "r2", "failed", t(2)), DagRun("d", "ok", "success", t(1)),
            DagRun("d", "r0", "failed", t(0))]
    assert [r.run_id for r in failed_before(runs, t(5))] == ["r3", "r2"]
    assert failed_before(runs, t(1)) == []
