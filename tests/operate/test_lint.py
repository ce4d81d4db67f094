"""`pausectl lint`: every rule has a positive and a negative test; configuration, per-file
disable, formats, exit codes; the example state is clean."""

from __future__ import annotations

import json
import os
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from helpers import main_captured

from reconciler.live.base import AuditEvent, DagRun, LiveDag

try:
    from helpers import REPO, dag, make_state, snapshot_json
except ImportError:  # pragma: no cover
    from tests.helpers import REPO, dag, make_state, snapshot_json

AT = datetime(2026, 11, 25, 12, tzinfo=timezone.utc)

CONFIG = """\
environments:
  prod:
    backend: {type: snapshot, path: snapshots/prod.json}
"""

# clean at AT: billing_daily has an until, etl is a window
PROD = """\
environment: prod
dags:
  billing_daily:
    paused: true
    reason: "vendor outage"
    owner: team-billing
    ticket: INC-1
    until: 2027-01-01T00:00:00Z
groups:
  - name: etl
    match: {tags: [etl]}
    paused: true
    reason: "warehouse maintenance"
    owner: data-eng
    windows: [{cron: "0 2 * * SUN", duration: 2h, timezone: UTC}]
"""

# a permanent pause, line 9 (`paused: true` on line 10)
LEGACY = """\
  legacy_export:
    paused: true
    reason: "replaced by etl_orders"
    owner: data-eng
    ticket: DATA-88
"""

LIVE = [dag("billing_daily", True, ["billing"], ["team-billing"]),
        dag("etl_orders", False, ["etl"], ["data-eng"]),
        dag("legacy_export", False, ["legacy"], ["data-eng"]),
        dag("report_x", False, ["reporting"], ["analytics"])]
# legacy_export paused in Airflow (the audit log has the pause)
LIVE_PAUSED = [d if d["dag_id"] != "legacy_export" else dict(d, is_paused=True) for d in LIVE]


def with_legacy(text: str = PROD) -> str:
    return text.replace("groups:\n", LEGACY + "groups:\n")


class Fake:
    """A backend with run history and an audit log (the snapshot backend has neither)."""

    def __init__(self, live, runs=None, events=None):
        self.live = [LiveDag(d["dag_id"], d["is_paused"], tuple(d["tags"]), tuple(d["owners"]),
                             d["is_stale"]) for d in live]
        self.runs = runs or {}
        self.events = sorted(events or [], key=lambda e: e.when, reverse=True)
        self.name = "prod"

    def list_dags(self):
        return list(self.live)

    def dag_runs(self, dag_id, limit=25):
        if dag_id in self.runs:
            return self.runs[dag_id][:limit]
        # every DAG ran an hour ago unless told otherwise
        return [DagRun(dag_id, "r", "success", AT - timedelta(hours=1), AT - timedelta(hours=1),
                       AT - timedelta(minutes=50))]

    def audit_events(self, dag_ids=None, since=None):
        return [e for e in self.events if dag_ids is None or e.dag_id in set(dag_ids)]

    def get_variable(self, key):
        return None

    def close(self):
        pass


def run(d: Path, prod: str = PROD, live=LIVE, runs=None, events=None, config: str = CONFIG,
        at: datetime = AT, files=None, backend=None):
    """Lint prod in a fresh state repo under d; (finding tuples, result)."""
    from reconciler.operate.lint import GitAges, lint_env
    from reconciler.policy.resolve import resolve
    from reconciler.state.loader import load_config, load_env
    root = make_state(d, {"pausectl.yaml": config, "prod.yaml": prod,
                          "snapshots/prod.json": snapshot_json(live, "prod"), **(files or {})},
                      with_base=False)
    old = os.getcwd()
    os.chdir(d)
    try:
        cfg = load_config(Path("state"))
        state = load_env(cfg, "prod", now=at)
        b = backend or Fake(live, runs, events)
        live_dags = b.list_dags()
        res = resolve(cfg, state, live_dags, at)
        result = lint_env(cfg, state, live_dags, res, b, at, GitAges())
    finally:
        os.chdir(old)
    return [(f.id, f"{f.file}:{f.line}" if f.file else None) for f in result.findings], result


def ids(found) -> set[str]:
    return {i for i, _ in found}


def test_base_is_clean(tmp_path):
    found, result = run(tmp_path)
    assert found == [] and result.skipped == []


# ---- forgotten-pause ------------------------------------------------------------------------

def _git(d: Path, *args, date: str | None = None):
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@e", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@e"}
    if date:
        env.update(GIT_AUTHOR_DATE=date, GIT_COMMITTER_DATE=date)
    subprocess.run(["git", "-C", str(d), *args], check=True, env=env, capture_output=True)


def test_forgotten_pause_from_git_blame(tmp_path):
    found, _ = run(tmp_path, with_legacy())
    assert "forgotten-pause" not in ids(found)           # not in git, no audit log: not judged
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", "-A")
    _git(tmp_path, "commit", "-qm", "old", date="2026-09-01T00:00:00Z")
    found, result = run(tmp_path, with_legacy())
    assert ("forgotten-pause", "state/prod.yaml:9") in found
    f = next(f for f in result.findings if f.id == "forgotten-pause")
    assert "for 85 days in git" in f.message and f.dag_ids == ["legacy_export"]
    # the same rule re-decided recently (its paused line changed): not forgotten
    text = with_legacy().replace("  legacy_export:\n    paused: true",
                                 "  legacy_export:\n    paused:  true")
    (tmp_path / "state" / "prod.yaml").write_text(text)
    _git(tmp_path, "commit", "-qam", "re-reviewed", date="2026-11-20T00:00:00Z")
    found, _ = run(tmp_path, text)
    assert "forgotten-pause" not in ids(found)


def test_forgotten_pause_needs_no_until_and_uncommitted_lines_are_new(tmp_path):
    _git(tmp_path, "init", "-q")
    run(tmp_path, with_legacy())
    _git(tmp_path, "add", "-A")
    _git(tmp_path, "commit", "-qm", "old", date="2026-09-01T00:00:00Z")
    with_until = with_legacy().replace("ticket: DATA-88\n",
                                       "ticket: DATA-88\n    until: 2027-03-01T00:00:00Z\n")
    found, _ = run(tmp_path, with_until)          # an uncommitted `until` line: not permanent
    assert "forgotten-pause" not in ids(found)


def test_forgotten_pause_from_the_audit_log_outside_git(tmp_path):
    ev = AuditEvent("legacy_export", "patch_dag", AT - timedelta(days=45), "alice", True, "api")
    found, _ = run(tmp_path, with_legacy(), live=LIVE_PAUSED, events=[ev])
    assert ("forgotten-pause", "state/prod.yaml:9") in found
    ev = AuditEvent("legacy_export", "patch_dag", AT - timedelta(days=5), "alice", True, "api")
    found, _ = run(tmp_path, with_legacy(), live=LIVE_PAUSED, events=[ev])
    assert "forgotten-pause" not in ids(found)


def test_forgotten_pause_days_is_configurable(tmp_path):
    ev = AuditEvent("legacy_export", "patch_dag", AT - timedelta(days=45), "alice", True, "api")
    found, _ = run(tmp_path, with_legacy(), live=LIVE_PAUSED, events=[ev],
                   config=CONFIG + "lint: {forgotten_pause_days: 60}\n")
    assert "forgotten-pause" not in ids(found)
    found, _ = run(tmp_path, with_legacy(), live=LIVE_PAUSED, events=[ev],
                   config=CONFIG + "lint: {forgotten_pause_days: 40}\n")
    assert "forgotten-pause" in ids(found)


# ---- missing-reason / missing-ticket ----------------------------------------------------------

def test_missing_reason_placeholder(tmp_path):
    found, _ = run(tmp_path, with_legacy().replace('"replaced by etl_orders"', "TODO"))
    assert ("missing-reason", "state/prod.yaml:9") in found
    found, _ = run(tmp_path, with_legacy().replace("owner: data-eng\n    ticket", "owner: tbd\n"
                                                                                  "    ticket"))
    assert ("missing-reason", "state/prod.yaml:9") in found


def test_missing_reason_negative(tmp_path):
    found, _ = run(tmp_path, with_legacy())
    assert "missing-reason" not in ids(found)
    # unpausing needs no reason
    found, _ = run(tmp_path, PROD + "  - name: reports\n    match: {tags: [reporting]}\n"
                                    "    paused: false\n")
    assert "missing-reason" not in ids(found)


def test_missing_ticket(tmp_path):
    found, result = run(tmp_path, with_legacy().replace("    ticket: DATA-88\n", ""))
    assert ("missing-ticket", "state/prod.yaml:9") in found
    assert next(f for f in result.findings if f.id == "missing-ticket").severity == "info"


def test_missing_ticket_negative_with_ticket_window_or_until(tmp_path):
    found, _ = run(tmp_path, with_legacy())                      # has a ticket
    assert "missing-ticket" not in ids(found)
    found, _ = run(tmp_path, PROD)          # etl group has no ticket but is a window;
    assert found == []                      # billing_daily has an until


# ---- delete-candidate -----------------------------------------------------------------------

def test_delete_candidate_when_a_permanently_paused_dag_has_not_run(tmp_path):
    old = [DagRun("legacy_export", "r", "success", AT - timedelta(days=200),
                  AT - timedelta(days=200), AT - timedelta(days=200))]
    found, result = run(tmp_path, with_legacy(), runs={"legacy_export": old})
    assert ("delete-candidate", "state/prod.yaml:9") in found
    assert "has not run since 2026-05-09" in next(
        f.message for f in result.findings if f.id == "delete-candidate")
    found, _ = run(tmp_path, with_legacy(), runs={"legacy_export": []})
    assert ("delete-candidate", "state/prod.yaml:9") in found


def test_delete_candidate_negative(tmp_path):
    recent = [DagRun("legacy_export", "r", "success", AT - timedelta(days=10),
                     AT - timedelta(days=10), AT - timedelta(days=10))]
    found, _ = run(tmp_path, with_legacy(), runs={"legacy_export": recent})
    assert "delete-candidate" not in ids(found)
    # a pause with an until is not permanent, whatever the runs
    found, _ = run(tmp_path, PROD, runs={"billing_daily": []})
    assert "delete-candidate" not in ids(found)


def test_snapshot_backend_skips_what_needs_history(tmp_path):
    from reconciler.live.snapshot import SnapshotBackend
    make_state(tmp_path, {"pausectl.yaml": CONFIG}, with_base=False)
    b = SnapshotBackend("prod", tmp_path / "state" / "snapshots" / "prod.json")
    make_state(tmp_path, {"snapshots/prod.json": snapshot_json(LIVE, "prod")}, with_base=False)
    found, result = run(tmp_path, with_legacy(), backend=b)
    assert found == []
    assert [s.split(":")[0] for s in result.skipped] == ["delete-candidate", "pause-after-failure"]


# ---- unknown-live-pause ---------------------------------------------------------------------

def test_unknown_live_pause(tmp_path):
    live = LIVE + [dag("adhoc_tool", True, [], ["ops"])]
    found, result = run(tmp_path, live=live)
    assert ("unknown-live-pause", None) in found
    assert next(f for f in result.findings if f.id == "unknown-live-pause").dag_ids == ["adhoc_tool"]


def test_unknown_live_pause_negative(tmp_path):
    found, _ = run(tmp_path, live=LIVE + [dag("adhoc_tool", False, [], ["ops"])])   # running
    assert "unknown-live-pause" not in ids(found)
    found, _ = run(tmp_path, PROD.replace("environment: prod\n",
                                          "environment: prod\ndefaults: {unmanaged: ignore}\n"),
                   live=LIVE + [dag("adhoc_tool", True, [], ["ops"])])     # ignored on purpose
    assert "unknown-live-pause" not in ids(found)
    found, _ = run(tmp_path, live=LIVE + [dag("adhoc_tool", True, [], ["ops"], is_stale=True)])
    assert "unknown-live-pause" not in ids(found)                        # stale: file gone


# ---- pause-after-failure ---------------------------------------------------------------------

def _failed(dag_id, hours_ago):
    t = AT - timedelta(hours=hours_ago)
    return DagRun(dag_id, "r", "failed", t - timedelta(minutes=10), t - timedelta(minutes=10), t)


def test_pause_after_failure(tmp_path):
    live = LIVE + [dag("etl_flaky", True, ["flaky"], ["data-eng"])]
    ev = AuditEvent("etl_flaky", "patch_dag", AT - timedelta(hours=2), "bob", True, "api")
    found, result = run(tmp_path, live=live, events=[ev], runs={"etl_flaky": [_failed("etl_flaky", 3)]})
    assert "pause-after-failure" in ids(found)
    f = next(f for f in result.findings if f.id == "pause-after-failure")
    assert f.message == ("etl_flaky was paused by bob at 2026-11-25T10:00:00Z, 1h00m after a "
                         "failed run")


def test_pause_after_failure_negative(tmp_path):
    live = LIVE + [dag("etl_flaky", True, ["flaky"], ["data-eng"])]
    ev = AuditEvent("etl_flaky", "patch_dag", AT - timedelta(hours=2), "bob", True, "api")
    ok = DagRun("etl_flaky", "r", "success", AT - timedelta(hours=4), AT - timedelta(hours=4),
                AT - timedelta(hours=3))
    found, _ = run(tmp_path, live=live, events=[ev], runs={"etl_flaky": [ok, _failed("etl_flaky", 30)]})
    assert "pause-after-failure" not in ids(found)          # last run before the pause succeeded
    found, _ = run(tmp_path, live=live, events=[ev], runs={"etl_flaky": [_failed("etl_flaky", 40)]})
    assert "pause-after-failure" not in ids(found)          # failure too long before the pause
    ev2 = AuditEvent("etl_flaky", "patch_dag", AT - timedelta(hours=2), "svc", True, "pausectl")
    found, _ = run(tmp_path, live=live, events=[ev2], runs={"etl_flaky": [_failed("etl_flaky", 3)]})
    assert "pause-after-failure" not in ids(found)          # pausectl applied a git rule


# ---- expired-until / matches-nothing -----------------------------------------------------------

def test_expired_until(tmp_path):
    found, _ = run(tmp_path, at=datetime(2027, 1, 2, tzinfo=timezone.utc))
    assert ("expired-until", "state/prod.yaml:3") in found


def test_expired_until_negative(tmp_path):
    found, _ = run(tmp_path, at=datetime(2026, 12, 31, 23, 59, tzinfo=timezone.utc))
    assert "expired-until" not in ids(found)


def test_matches_nothing(tmp_path):
    found, _ = run(tmp_path, PROD + "  - name: ghosts\n    match: {dag_id: \"ghost_*\"}\n"
                                    "    paused: false\n")
    assert ("matches-nothing", "state/prod.yaml:16") in found
    found, _ = run(tmp_path, with_legacy().replace("legacy_export:", "legacy_exports:"))
    assert ("matches-nothing", "state/prod.yaml:9") in found


def test_matches_nothing_negative(tmp_path):
    found, _ = run(tmp_path, with_legacy())
    assert "matches-nothing" not in ids(found)


# ---- configuration ---------------------------------------------------------------------------

def test_disable_per_file_only_silences_that_file(tmp_path):
    inc = "groups:\n  - name: ghosts\n    match: {dag_id: \"ghost_*\"}\n    paused: false\n"
    prod = PROD.replace("environment: prod\n", "environment: prod\ninclude: [shared.yaml]\n") + \
        "  - name: spooks\n    match: {dag_id: \"spook_*\"}\n    paused: false\n"
    found, _ = run(tmp_path, prod, files={"shared.yaml": inc})
    assert ("matches-nothing", "state/shared.yaml:2") in found
    assert ("matches-nothing", "state/prod.yaml:17") in found
    found, _ = run(tmp_path, prod, files={"shared.yaml": inc + "lint: {disable: [matches-nothing]}\n"})
    assert ("matches-nothing", "state/shared.yaml:2") not in found
    assert ("matches-nothing", "state/prod.yaml:17") in found


def test_disable_and_severity_in_pausectl_yaml(tmp_path):
    live = LIVE + [dag("adhoc_tool", True, [], ["ops"])]
    found, result = run(tmp_path, live=live,
                        config=CONFIG + "lint: {severity: {unknown-live-pause: error}}\n")
    assert result.findings[0].severity == "error"
    found, _ = run(tmp_path, live=live, config=CONFIG + "lint: {disable: [unknown-live-pause]}\n")
    assert found == []


def test_unknown_ids_are_errors_with_a_location(tmp_path):
    from reconciler.core.errors import PausectlError
    with pytest.raises(PausectlError) as e:
        run(tmp_path, config=CONFIG + "lint: {disable: [no-such-rule]}\n")
    assert e.value.file.endswith("pausectl.yaml") and e.value.line == 4
    assert "unknown lint rule 'no-such-rule'" in e.value.message
    with pytest.raises(PausectlError) as e:
        run(tmp_path, PROD + "lint: {forgotten_pause_days: 3}\n")
    assert "belongs in pausectl.yaml" in e.value.message and e.value.line == 16


# ---- the command ------------------------------------------------------------------------------

def _cli(cwd, args, capsys, monkeypatch):
    return main_captured(cwd, args, capsys, monkeypatch)


def test_cli_formats_and_exit_codes(tmp_path, capsys, monkeypatch):
    run(tmp_path, PROD + "  - name: ghosts\n    match: {dag_id: \"ghost_*\"}\n    paused: false\n")
    at = ["--at", "2026-11-25T12:00:00Z"]
    code, out, _ = _cli(tmp_path, ["lint", "prod", *at], capsys, monkeypatch)
    assert code == 0        # warnings do not fail...
    assert out.splitlines()[0] == ("state/prod.yaml:16: warning [matches-nothing] group ghosts "
                                   "matches no DAG (dag_id ghost_*) in prod")
    assert out.splitlines()[1].strip().startswith("fix: remove the rule")
    code, out, _ = _cli(tmp_path, ["lint", "prod", "--strict", *at], capsys, monkeypatch)
    assert code == 1        # ...unless --strict
    code, out, _ = _cli(tmp_path, ["lint", "prod", "--format", "json", *at], capsys, monkeypatch)
    data = json.loads(out)
    assert data["summary"] == {"error": 0, "warning": 1, "info": 0}
    assert data["findings"][0]["id"] == "matches-nothing" and data["findings"][0]["line"] == 16
    code, out, _ = _cli(tmp_path, ["lint", "prod", "--format", "github", *at], capsys, monkeypatch)
    assert out.startswith("::warning file=state/prod.yaml,line=16,title=pausectl lint "
                          "matches-nothing::group ghosts matches no DAG")
    (tmp_path / "state" / "pausectl.yaml").write_text(
        CONFIG + "lint: {severity: {matches-nothing: error}}\n")
    code, out, _ = _cli(tmp_path, ["lint", "prod", *at], capsys, monkeypatch)
    assert code == 1        # errors fail


@pytest.mark.parametrize("env", ["prod", "dev", "staging"])
def test_example_state_is_clean(env, capsys, monkeypatch):
    # in the repository (git history available), at the time the example describes
    code, out, _ = _cli(REPO, ["lint", env, "--at", "2026-11-25T12:00:00Z", "--strict"], capsys,
                        monkeypatch)
    assert code == 0, out
    assert f"lint {env}: clean" in out


# ---- real Airflow ---------------------------------------------------------------------------

def test_lint_against_real_airflow3(airflow3, tmp_path, capsys, monkeypatch):
    """Run history and the audit log come from Airflow's REST API: a DAG paused by hand is an
    unknown live pause (with who did it in the audit log), a permanently paused DAG that never
    ran is a delete candidate."""
    import httpx
    airflow3.reset(paused=False)
    try:
        r = httpx.patch(f"{airflow3.api_url}/dags/misc_orphan", json={"is_paused": True},
                        headers=airflow3.auth_headers(), timeout=30)
        assert r.status_code == 200
        make_state(tmp_path, {
            "pausectl.yaml": "environments:\n  prod:\n    backend: {type: airflow-api, url: "
                             f"\"{airflow3.url}\", username_env: AF_USER, password_env: AF_PASS}}\n",
            "prod.yaml": "environment: prod\ndags:\n  etl_000:\n    paused: true\n"
                         "    reason: \"replaced by etl_001\"\n    owner: data-eng\n"
                         "    ticket: DATA-1\n"}, with_base=False)
        monkeypatch.setenv("AF_USER", airflow3.username)
        monkeypatch.setenv("AF_PASS", airflow3.password)
        code, out, err = _cli(tmp_path, ["lint", "prod", "--format", "json"], capsys, monkeypatch)
        assert code == 0, err
        data = json.loads(out)
        got = {(f["id"], tuple(f["dag_ids"])) for f in data["findings"]}
        assert got == {("unknown-live-pause", ("misc_orphan",)),
                       ("delete-candidate", ("etl_000",))}
        assert data["skipped"] == []
    finally:
        airflow3.reset()
