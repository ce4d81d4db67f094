"""Git-aware commands on real git repos made in temp dirs: --ref, diff, history, promote.

Every repo here has several commits by different authors; the CLI runs as a subprocess,
exactly as a user or a pipeline runs it. Live state comes from snapshots (offline); the
Airflow-backed promotion and rollout is in test_promote_live.py.
"""

from __future__ import annotations

import difflib
import json
import os
import subprocess
from pathlib import Path

import pytest

from helpers import BASE_FILES, Repo, run_inprocess, dag, run_cli, snapshot_json, write_files
from reconciler.core.errors import PausectlError
from reconciler.state.gitref import check_branch, check_ref


def _json(proc) -> dict:
    assert proc.stdout, proc.stderr
    return json.loads(proc.stdout)


# ---------------------------------------------------------------- refs

GOOD_REFS = ["main", "HEAD", "HEAD~1", "HEAD^", "v1.2.3", "feature/x-y", "3f2c1ab",
             "release_2026.01", "a" * 40]
BAD_REFS = ["-x", "--output=/tmp/pwn", "--upload-pack=touch /tmp/x", "HEAD:state/prod.yaml",
            "/etc/passwd", "../../etc", "main..dev", "main...dev", "HEAD@{1}", "@", "a b",
            "a\nb", "x;rm -rf /", "$(id)", "`id`", "refs/heads/x.lock", "main/", "a//b",
            "feature/.hidden", "", "*", "a?b", "a[1]", "x" * 300, "main\x00"]


@pytest.mark.parametrize("ref", GOOD_REFS)
def test_check_ref_accepts(ref):
    assert check_ref(ref) == ref


@pytest.mark.parametrize("ref", BAD_REFS)
def test_check_ref_rejects(ref):
    with pytest.raises(PausectlError):
        check_ref(ref)


def test_check_branch():
    assert check_branch("pausectl/promote-dev-to-prod") == "pausectl/promote-dev-to-prod"
    for bad in ("HEAD", "HEAD~1", "x^", "refs/heads/x", "-b"):
        with pytest.raises(PausectlError):
            check_branch(bad)


@pytest.fixture
def repo(tmp_path) -> Repo:
    return Repo(tmp_path)


def test_refs_are_validated_before_git_sees_them(repo):
    for args in (["plan", "prod", "--ref", "--output=x"], ["validate", "--ref=-h"],
                 ["validate", "--ref", "HEAD:state/prod.yaml"], ["plan", "prod", "--ref", "/etc"],
                 ["diff", "--", "HEAD", "--upload-pack=x"], ["history", "prod", "--ref", "a..b"]):
        p = repo.cli(*args)
        assert p.returncode == 1, (args, p.stdout, p.stderr)
        assert "invalid git ref" in p.stderr and "Traceback" not in p.stderr
    assert not (repo.path / "x").exists()
    # the same through the real console entry point, in a child process
    p = repo.cli("validate", "--ref", "--upload-pack=touch x", subprocess=True)
    assert p.returncode == 1 and "invalid git ref" in p.stderr and not (repo.path / "x").exists()
    p = repo.cli("plan", "prod", "--ref", "no-such-branch")
    assert p.returncode == 1 and "unknown git ref 'no-such-branch'" in p.stderr


def test_validate_and_plan_at_ref_without_checkout(repo):
    good = repo.git("rev-parse", "HEAD").strip()
    broken = BASE_FILES["prod.yaml"].replace('reason: "vendor outage"', 'reason: ""')
    repo.commit("break prod", {"prod.yaml": broken})
    before = repo.read("prod.yaml")
    p = repo.cli("validate")
    assert p.returncode == 1 and "state/prod.yaml:7:" in p.stdout
    p = repo.cli("validate", "--ref", good)
    assert p.returncode == 0, p.stdout + p.stderr
    # annotations name the file as in the repo, not the temp dir the ref was read into
    p = repo.cli("validate", "--ref", "HEAD", "--format", "github")
    assert p.returncode == 1
    assert p.stdout.startswith("::error file=state/prod.yaml,line=7,") and "/tmp" not in p.stdout
    # only some paths (as pre-commit passes them), at a ref
    p = repo.cli("validate", "--ref", "HEAD~1", "state/prod.yaml")
    assert p.returncode == 0
    p = repo.cli("validate", "--ref", "HEAD", "state/staging.yaml")
    assert p.returncode == 0
    p = repo.cli("validate", "--ref", "HEAD", "../outside.yaml")
    assert p.returncode == 1 and "not a file of the state repo" in p.stderr
    assert repo.read("prod.yaml") == before and repo.git("status", "--porcelain") == ""
    # plan at the old ref: its rules, its line numbers, the commit in desired_ref
    repo.commit("fix prod, pause reports", {"prod.yaml": BASE_FILES["prod.yaml"] + """\
  - name: reports-freeze
    match: {dag_id: "report_*"}
    paused: true
    reason: "quarter close"
    owner: analytics
"""})
    old = _json(repo.cli("plan", "prod", "--ref", good, "--format", "json"))
    new = _json(repo.cli("plan", "prod", "--ref", "HEAD", "--format", "json"))
    assert old["desired_ref"].startswith(f"{good}@{good[:12]}")
    assert {(c["dag_id"], c["action"], c["rule"]) for c in old["changes"]} == {
        ("billing_daily", "pause", "state/prod.yaml:5"),
        ("report_daily", "unpause", "state/common.yaml:2")}
    assert {(c["dag_id"], c["action"]) for c in new["changes"]} == {("billing_daily", "pause")}
    assert new["summary"]["unchanged"] == old["summary"]["unchanged"] + 1    # report_daily: paused by the new group


# ---------------------------------------------------------------- diff

def test_diff_per_environment_and_dag(repo):
    base = repo.git("rev-parse", "HEAD").strip()
    repo.commit("pause reports in prod; billing reason", {"prod.yaml": BASE_FILES["prod.yaml"]
                .replace('reason: "vendor outage"', 'reason: "vendor outage, INC-9"') + """\
  - name: reports-freeze
    match: {dag_id: "report_*"}
    paused: true
    reason: "quarter close"
    owner: analytics
"""}, author="Carol <carol@example.com>")
    head = repo.commit("unrelated: a new file nobody includes", {"notes.yaml": "dags: {}\n"})
    p = repo.cli("diff", base, head, "--format", "json")
    assert p.returncode == 0, p.stderr
    d = json.loads(p.stdout)
    # only prod's files changed: staging is not affected
    assert [e["environment"] for e in d["environments"]] == ["prod"]
    prod = d["environments"][0]
    assert prod["live_source"] == "backend" and prod["live_dags"] == 3
    by = {c["dag_id"]: c for c in prod["changes"]}
    assert set(by) == {"billing_daily", "report_daily"}
    r = by["report_daily"]
    assert r["change"] == "pause"
    assert r["old"] == {"status": "managed", "paused": False, "rule": "state/common.yaml:2",
                        "rule_name": "group reporting", "reason": "reports run everywhere",
                        "owner": "analytics", "ticket": None}
    assert r["new"]["rule"] == "state/prod.yaml:18" and r["new"]["reason"] == "quarter close"
    # the live plan at head: report_daily is paused live already, billing_daily will pause
    assert r["live_paused"] is True and r["apply"] == "none"
    b = by["billing_daily"]
    assert b["change"] == "rule" and b["old"]["reason"] == "vendor outage"
    assert b["new"]["reason"] == "vendor outage, INC-9" and b["apply"] == "pause"
    assert prod["plan_summary"]["pause"] == 1
    # text and markdown
    t = repo.cli("diff", base, head)
    assert "pause     report_daily  running -> paused" in t.stdout
    assert "'vendor outage' -> 'vendor outage, INC-9'" in t.stdout
    md = repo.cli("diff", base, head, "--format", "markdown").stdout
    assert md.startswith("### pausectl diff") and "| `prod` | 1 | 0 | 1 |" in md
    assert "| pause | `report_daily` | running; group reporting (state/common.yaml:2); reports " \
           "run everywhere | paused; group reports-freeze (state/prod.yaml:18) | quarter close | " \
           "analytics |" in md
    assert "| `billing_daily` | rule | state/prod.yaml:5 | vendor outage, INC-9 | team-billing " \
           "| will pause |" in md
    assert "<details><summary>prod: all 2 DAG change(s)</summary>" in md
    # --detailed-exitcode: 2 when the desired state changes, 0 when not
    assert repo.cli("diff", base, head, "--detailed-exitcode").returncode == 2
    assert repo.cli("diff", head, head, "--detailed-exitcode").returncode == 0
    # shared include changed: every environment including it is affected
    repo.commit("reports paused everywhere", {"common.yaml": BASE_FILES["common.yaml"]
                .replace("paused: false", "paused: true")})
    d = _json(repo.cli("diff", "HEAD~1", "HEAD", "--format", "json"))
    assert [e["environment"] for e in d["environments"]] == ["prod", "staging"]
    st = d["environments"][1]
    assert [(c["dag_id"], c["change"]) for c in st["changes"]] == [("report_daily", "pause")]
    # explicit environments
    d = _json(repo.cli("diff", base, "HEAD", "staging", "--format", "json"))
    assert [e["environment"] for e in d["environments"]] == ["staging"]


def test_diff_sees_cascades_like_plan(repo):
    # a paused DAG cascading to its sensor's waiter: diff shows the waiter's change, as plan
    # pauses it (diff and plan read one Observation; before, diff resolved without edges)
    base = repo.git("rev-parse", "HEAD").strip()
    head = repo.commit("pause etl_orders and what waits for it", {
        "prod.yaml": BASE_FILES["prod.yaml"].replace("groups:", """\
  etl_orders:
    paused: true
    reason: "bad upstream data"
    owner: data-eng
    cascade: downstream
sensors: {etl_orders: [report_daily]}
groups:""")})
    prod = _json(repo.cli("diff", base, head, "--format", "json"))["environments"][0]
    by = {c["dag_id"]: c for c in prod["changes"]}
    assert set(by) == {"etl_orders", "report_daily"}
    r = by["report_daily"]
    assert r["change"] == "pause" and r["new"]["rule_name"] == "cascade of dag entry etl_orders"
    assert r["old"]["rule_name"] == "group reporting" and r["apply"] == "none"  # paused live
    plan = _json(repo.cli("plan", "prod", "--format", "json"))
    assert {c["dag_id"] for c in plan["changes"]} == {"billing_daily", "etl_orders"}
    # the cascade removed again: the base side resolves with its own edges
    repo.commit("etl_orders back", {"prod.yaml": BASE_FILES["prod.yaml"]})
    prod = _json(repo.cli("diff", head, "HEAD", "--format", "json"))["environments"][0]
    r = {c["dag_id"]: c for c in prod["changes"]}["report_daily"]
    assert r["change"] == "unpause" and r["old"]["rule_name"] == "cascade of dag entry etl_orders"
    assert r["new"]["rule_name"] == "group reporting" and r["apply"] == "unpause"


def test_history_sees_cascades_like_plan(repo):
    # history resolves each commit against the Observation: a DAG paused through a sensor
    # cascade is "git wants it paused" there too, as plan pauses it
    repo.commit("pause etl_orders and what waits for it", {
        "prod.yaml": BASE_FILES["prod.yaml"].replace("groups:", """\
  etl_orders:
    paused: true
    reason: "bad upstream data"
    owner: data-eng
    cascade: downstream
sensors: {etl_orders: [report_daily]}
groups:""")})
    h = _json(repo.cli("history", "prod", "report_daily", "--format", "json"))
    assert h["answer"]["desired"]["desired"] == "paused"
    assert h["answer"]["desired"]["rule"] == "cascade of dag entry etl_orders"
    last = [e for e in h["timeline"] if e["source"] == "git"][-1]
    assert last["desired_before"]["desired"] == "running"
    assert last["desired_after"]["desired"] == "paused"


def test_diff_falls_back_to_named_dags_when_backend_unreachable(repo):
    cfg = BASE_FILES["pausectl.yaml"].replace(
        "backend: {type: snapshot, path: snapshots/prod.json}",
        "backend: {type: airflow-api, url: 'http://127.0.0.1:9', username_env: PX_USER, "
        "password_env: PX_PASS, retries: 0, timeout: 2}")
    repo.commit("prod on Airflow", {"pausectl.yaml": cfg})
    repo.commit("pause two more DAGs", {"prod.yaml": BASE_FILES["prod.yaml"].replace(
        "groups:", """\
  vendor_sync:
    paused: true
    reason: "vendor API down"
    owner: data-eng
groups:""")})
    env = {"PX_USER": "u", "PX_PASS": "p"}
    p = repo.cli("diff", "HEAD~1", "HEAD", "--format", "json", env=env)
    assert p.returncode == 0, p.stderr
    prod = json.loads(p.stdout)["environments"][0]
    assert prod["live_source"] == "rules-only" and prod["plan_summary"] is None
    assert "backend unreachable" in prod["notes"][0] and "named by rules" in prod["notes"][0]
    assert [(c["dag_id"], c["change"], c["in_airflow"]) for c in prod["changes"]] == [
        ("vendor_sync", "managed", None)]
    md = repo.cli("diff", "HEAD~1", "HEAD", "--format", "markdown", env=env).stdout
    assert ":warning: rules only" in md and "backend unreachable" in md
    p = repo.cli("diff", "HEAD~1", "HEAD", "--offline")
    assert "live state not read (--offline)" in p.stdout


def test_diff_markdown_500_changes_fits_a_pr_comment(repo):
    n = 500
    dags = [dag(f"etl_job_{i:04d}", False, ["etl"], ["data-eng"]) for i in range(n)]
    repo.commit("500 DAGs", {"snapshots/prod.json": snapshot_json(dags + [
        dag("billing_daily"), dag("report_daily", True)], "prod")})
    entries = "".join(
        f"  etl_job_{i:04d}:\n    paused: true\n    reason: \"warehouse migration wave "
        f"{i % 7}, DATA-{1000 + i}\"\n    owner: data-eng-team-{i % 5}\n" for i in range(n))
    repo.commit("pause 500 DAGs", {"prod.yaml": BASE_FILES["prod.yaml"].replace(
        "groups:", entries + "groups:")})
    p = repo.cli("diff", "HEAD~1", "HEAD", "prod", "--format", "markdown")
    assert p.returncode == 0, p.stderr
    md = p.stdout
    print(f"markdown for {n} changes: {len(md)} characters")
    assert len(md) < 65_536
    assert md.isascii()          # characters == bytes: no surprise with GitHub's limit
    # the summary table first, then the largest groups, then every DAG collapsed
    assert "| `prod` | 500 | 0 | 0 | 0 | 0 | 0 | 501 pause / 1 unpause | Airflow (502 DAGs) |" in md
    assert "<details><summary>prod: all 500 DAG change(s)</summary>" in md
    assert md.count("<details>") == md.count("</details>") == 1
    details = md[md.index("<details>"):]
    assert all(f"| `etl_job_{i:04d}` | pause | state/prod.yaml:{10 + 4 * i} | warehouse "
               f"migration wave {i % 7}, DATA-{1000 + i} | data-eng-team-{i % 5} | will pause |"
               in details for i in range(n))
    assert "... and" not in details
    # the same result through the API stays under any smaller limit too
    from reconciler.operate.diff import compute_diff
    from reconciler.operate.diff_render import diff_markdown
    cwd = os.getcwd()
    os.chdir(repo.path)
    try:
        res = compute_diff(None, "HEAD~1", "HEAD", ["prod"])
    finally:
        os.chdir(cwd)
    assert res.total == n
    assert diff_markdown(res) == md
    for limit in (5_000, 20_000, 40_000):
        small = diff_markdown(res, limit=limit)
        assert len(small) <= limit
        small_details = small[small.index("<details>"):]
        shown = sum(1 for i in range(n) if f"| `etl_job_{i:04d}` |" in small_details)
        assert f"... and {n - shown} more DAG(s) (see the job's diff artifact)" in small


# ---------------------------------------------------------------- history

def test_history_joins_commits_reasons_and_authors(repo):
    repo.commit("billing: resume after the fix", {"prod.yaml": BASE_FILES["prod.yaml"].replace(
        """    paused: true
    reason: "vendor outage"
""", """    paused: false
    reason: "vendor fixed it"
""")}, author="Dana Ops <dana@example.com>")
    repo.commit("staging only", {"staging.yaml": BASE_FILES["staging.yaml"].replace(
        "testing the vendor fix", "testing the vendor fix, again")})
    repo.commit("billing: pause again, INC-77", {"prod.yaml": BASE_FILES["prod.yaml"].replace(
        'reason: "vendor outage"', 'reason: "vendor outage again"').replace(
        "owner: team-billing", "owner: team-billing\n    ticket: INC-77")},
        author="Erin SRE <erin@example.com>")
    h = _json(repo.cli("history", "prod", "billing_daily", "--format", "json"))
    git = [e for e in h["timeline"] if e["source"] == "git"]
    # the staging-only commit does not touch prod's files; every prod commit changed billing
    assert [e["who"] for e in git] == ["Alice Admin", "Dana Ops", "Erin SRE"]
    assert [e["message"] for e in git] == ["initial state", "billing: resume after the fix",
                                          "billing: pause again, INC-77"]
    assert git[1]["desired_before"]["desired"] == "paused"
    assert git[1]["desired_after"] == {"desired": "running", "rule": "dag entry billing_daily",
                                       "where": "state/prod.yaml:5", "reason": "vendor fixed it",
                                       "owner": "team-billing", "ticket": None}
    assert git[2]["rules"][0]["was"] == {"paused": False, "reason": "vendor fixed it",
                                         "ticket": None}
    ans = h["answer"]
    assert ans["desired"]["reason"] == "vendor outage again"
    assert ans["set_by"]["author"] == "Erin SRE"
    assert "git wants it paused: dag entry billing_daily (state/prod.yaml:5), reason " \
           "'vendor outage again', owner team-billing, ticket INC-77; last changed in" in ans["text"]
    assert "Erin SRE on 2026-01-04: 'billing: pause again, INC-77'" in ans["text"]
    assert ans["live_paused"] is False and "live differs from git" in ans["text"]
    assert "has no audit log" in h["notes"][0]
    # a DAG decided by a group in an include: the include's history counts
    r = _json(repo.cli("history", "prod", "report_daily", "--format", "json"))
    assert [e["message"] for e in r["timeline"]] == ["initial state"]
    assert r["answer"]["desired"]["rule"] == "group reporting"
    # the whole environment, as text
    t = repo.cli("history", "prod")
    assert t.returncode == 0, t.stderr
    assert "Erin SRE  changed dag entry billing_daily (paused)" in t.stdout
    assert "staging only" not in t.stdout
    # --ref: history as of an older commit
    old = _json(repo.cli("history", "prod", "billing_daily", "--ref", "HEAD~2",
                         "--format", "json"))
    assert [e["who"] for e in old["timeline"]] == ["Alice Admin", "Dana Ops"]


# ---------------------------------------------------------------- promote

TARGET = """\
# yaml-language-server: $schema=../schemas/state.schema.json
# prod: reviewed by the platform team. Keep entries sorted by team.
environment: prod
include: [common.yaml]
defaults: {unmanaged: report}   # report unmanaged DAGs

dags:
  # --- billing ---
  billing_daily:
    paused: true
    reason: 'vendor outage'      # single quotes on purpose
    owner: team-billing
    until: 2030-01-01T00:00:00Z

  # --- ml ---
  ml_train_churn: {paused: true, reason: "old model", owner: ml-team}
  ml_scoring:
    paused: false   # keep running
    reason: "serving"
    owner: ml-team

groups:
  # nightly etl maintenance
  - name: etl-maintenance
    match: {tags: [etl], dag_id: "etl_*"}
    paused: true
    reason: "warehouse maintenance"
    owner: data-eng
    priority: 10
    windows: [{cron: "0 2 * * SUN", duration: 2h, timezone: Europe/Berlin}]

  # ml models under review
  - name: ml-review
    match: {tags: [ml]}
    paused: true
    reason: "under review"
    owner: ml-team
# end of file
"""

SOURCE = """\
environment: dev
include: [common.yaml]
dags:
  ml_train_churn:
    paused: false
    promote: true
    reason: "new churn model ready"
    owner: ml-team
    ticket: ML-7
  feature_store_sync:
    paused: false
    promote: true
    reason: "new feature store"
    owner: ml-team
  dev_only_toy:
    paused: true
    reason: "dev toy"
    owner: me
groups:
  - name: ml-review
    match: {tags: [ml]}
    paused: false
    promote: true
    reason: "review done"
    owner: ml-team
"""

PROMO_CFG = """\
environments:
  dev:
    backend: {type: snapshot, path: snapshots/dev.json}
    promote_to: prod
  prod:
    backend: {type: snapshot, path: snapshots/prod.json}
promotion: {soak_hours: 0, max_failed_runs: 0}
safety:
  max_changes: 50
  protect: ["critical_*"]
"""

PROMO_DAGS = [dag("ml_train_churn", False, ["ml"], ["ml-team"]),
              dag("feature_store_sync", False, ["ml"], ["ml-team"]),
              dag("ml_scoring", False, ["ml"], ["ml-team"]),
              dag("billing_daily", True, ["billing"], ["team-billing"]),
              dag("dev_only_toy", True)]


@pytest.fixture
def promo(tmp_path) -> Repo:
    files = {"pausectl.yaml": PROMO_CFG, "dev.yaml": SOURCE, "prod.yaml": TARGET,
             "staging.yaml": None, "snapshots/staging.json": None,
             "snapshots/dev.json": snapshot_json(PROMO_DAGS, "dev"),
             "snapshots/prod.json": snapshot_json(
                 [dict(d, is_paused=True) for d in PROMO_DAGS], "prod")}
    r = Repo(tmp_path, files)
    assert r.cli("validate").returncode == 0, r.cli("validate").stdout
    return r


def test_promote_keeps_every_other_byte_of_the_target(promo):
    p = promo.cli("promote", "--from", "dev", "--to", "prod", "--branch", "promo/one")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "created branch promo/one" in p.stdout
    # the working tree and the current branch are untouched
    assert promo.read("prod.yaml") == TARGET and promo.git("status", "--porcelain") == ""
    assert promo.git("rev-parse", "--abbrev-ref", "HEAD").strip() == "main"
    new = promo.git("show", "promo/one:state/prod.yaml")
    # exactly: ml_train_churn's one line replaced by the promoted entry, feature_store_sync
    # appended after the last dag entry, ml-review's changed lines replaced; nothing else
    expected = TARGET.replace(
        '  ml_train_churn: {paused: true, reason: "old model", owner: ml-team}\n',
        '  ml_train_churn:\n    paused: false\n    reason: "new churn model ready"\n'
        "    owner: ml-team\n    ticket: ML-7\n").replace(
        '    reason: "serving"\n    owner: ml-team\n',
        '    reason: "serving"\n    owner: ml-team\n  feature_store_sync:\n    paused: false\n'
        '    reason: "new feature store"\n    owner: ml-team\n').replace(
        '    paused: true\n    reason: "under review"\n',
        '    paused: false\n    reason: "review done"\n')
    assert new == expected
    old_lines, new_lines = TARGET.splitlines(keepends=True), new.splitlines(keepends=True)
    sm = difflib.SequenceMatcher(a=old_lines, b=new_lines, autojunk=False)
    kept = sum(i2 - i1 for op, i1, i2, _, _ in sm.get_opcodes() if op == "equal")
    assert kept == len(old_lines) - 3      # 3 of 37 lines changed, every other one kept
    # outside the changed lines: byte for byte (prefix, the ml_scoring block, the tail)
    i = TARGET.index("  ml_train_churn:")
    assert new[:i] == TARGET[:i]
    assert new.endswith("    owner: ml-team\n# end of file\n")
    assert "'vendor outage'      # single quotes on purpose" in new
    assert "dev_only_toy" not in new and "promote:" not in new   # prod promotes no further
    # the commit: one file, a message listing every promoted rule, the trailer
    msg = promo.git("log", "-1", "--format=%B", "promo/one")
    assert msg.startswith("pausectl: promote dev -> prod: 3 change(s)\n")
    assert "- dag entry ml_train_churn: running, reason 'new churn model ready', owner ml-team, " \
           "ticket ML-7 [update, from state/dev.yaml:4]" in msg
    assert "- dag entry feature_store_sync: running" in msg and "- group ml-review: running" in msg
    assert "Pausectl-Promotion: dev -> prod" in msg
    assert promo.git("diff", "--name-only", "main", "promo/one").split() == ["state/prod.yaml"]
    # the promoted target validates and plans
    promo.git("checkout", "-q", "promo/one")
    assert promo.cli("validate").returncode == 0
    plan = _json(promo.cli("plan", "prod", "--format", "json"))
    assert {c["dag_id"] for c in plan["changes"] if c["action"] == "unpause"} == {
        "ml_train_churn", "feature_store_sync", "ml_scoring"}
    # promoting again finds nothing new; a dry run writes nothing
    promo.git("checkout", "-q", "main")
    promo.git("merge", "-q", "--ff-only", "promo/one")
    p = promo.cli("promote", "--from", "dev", "--dry-run")
    assert p.returncode == 0 and "nothing to promote" in p.stdout
    assert promo.git("branch", "--list").split().count("*") == 1


def test_promote_only_some_and_dry_run(promo):
    p = promo.cli("promote", "--from", "dev", "--dags", "feature_store_sync", "--dry-run",
                  "--format", "json")
    assert p.returncode == 0, p.stderr
    d = json.loads(p.stdout)
    assert [(c["name"], c["status"]) for c in d["candidates"]] == [("feature_store_sync", "new")]
    assert d["branch"] is None and d["commit"] is None and "dag entry feature_store_sync" in d["message"]
    assert promo.git("branch", "--list").strip() == "* main"
    p = promo.cli("promote", "--from", "dev", "--dags", "dev_only_toy")
    assert p.returncode == 1 and "no promotable rule (promote: true) named dev_only_toy" in p.stderr


def test_promote_conflict_shows_both_sides(promo):
    # dev's change lands first, then prod changes the same DAG by hand
    promo.commit("prod: churn model paused for the audit", {"prod.yaml": TARGET.replace(
        '"old model"', '"audit freeze"')}, author="Pat Prod <pat@example.com>")
    p = promo.cli("promote", "--from", "dev", "--to", "prod")
    assert p.returncode == 1
    out = p.stdout
    assert "BLOCKED: conflict, dag entry ml_train_churn: prod changed it since the source " \
           "rule's last change" in out
    assert 'dev (state/dev.yaml:4) has {"owner": "ml-team", "paused": false' in out
    assert 'prod (state/prod.yaml:16) has {"owner": "ml-team", "paused": true, ' \
           '"reason": "audit freeze"}' in out
    assert "by Pat Prod" in out
    assert promo.git("branch", "--list").strip() == "* main"     # nothing written
    # the non-conflicting rules can still go
    p = promo.cli("promote", "--from", "dev", "--dags", "feature_store_sync,ml-review",
                  "--branch", "promo/two")
    assert p.returncode == 0, p.stdout
    promo.git("merge", "-q", "promo/two")
    # after a promotion, dev changing the rule again is no conflict ...
    promo.commit("dev: better reason", {"dev.yaml": SOURCE.replace('"new feature store"',
                                                                   '"feature store v2"')})
    p = promo.cli("promote", "--from", "dev", "--dags", "feature_store_sync", "--dry-run")
    assert p.returncode == 0 and "update   dag entry feature_store_sync" in p.stdout
    # ... but prod changing it since that promotion is
    promo.commit("prod: tweak", {"prod.yaml": promo.read("prod.yaml").replace(
        '"new feature store"', '"prod says no"')})
    p = promo.cli("promote", "--from", "dev", "--dags", "feature_store_sync", "--dry-run")
    assert p.returncode == 1 and "changed it since the last promotion" in p.stdout


def test_promote_gates_soak_and_target_guards(promo):
    # soak: the source must have run the change long enough
    promo.commit("long soak", {"pausectl.yaml": PROMO_CFG.replace("soak_hours: 0",
                                                                  "soak_hours: 100000")})
    p = promo.cli("promote", "--from", "dev", "--dags", "feature_store_sync")
    assert p.returncode == 1
    assert "soak gate, dag entry feature_store_sync: ran" in p.stdout
    assert "less than promotion.soak_hours 100000" in p.stdout
    # the source has not applied it yet (live still paused in dev)
    promo.commit("soak 0", {"pausectl.yaml": PROMO_CFG, "snapshots/dev.json": snapshot_json(
        [dict(d, is_paused=True) for d in PROMO_DAGS], "dev")})
    p = promo.cli("promote", "--from", "dev", "--dags", "feature_store_sync")
    assert p.returncode == 1 and "not applied in dev yet: feature_store_sync still paused" in p.stdout
    # target guards: max_changes
    promo.commit("dev applied; prod max_changes 1", {
        "pausectl.yaml": PROMO_CFG.replace("max_changes: 50", "max_changes: 1"),
        "snapshots/dev.json": snapshot_json(PROMO_DAGS, "dev")})
    p = promo.cli("promote", "--from", "dev")
    assert p.returncode == 1
    assert "target gate: prod's plan changes 3 DAGs, more than safety.max_changes (1)" in p.stdout
    # target guards: a promoted group would flip a protected DAG
    promo.commit("protect ml", {"pausectl.yaml": PROMO_CFG.replace('"critical_*"', '"feature_*"')})
    p = promo.cli("promote", "--from", "dev", "--dags", "ml-review")
    assert p.returncode == 1 and "promoted rules decide protected DAG(s) feature_store_sync" in p.stdout
    assert promo.git("branch", "--list").strip() == "* main"


def test_promote_refuses_dirty_files_and_bad_names(promo):
    promo.write({"prod.yaml": TARGET + "# local edit\n"})
    p = promo.cli("promote", "--from", "dev")
    assert p.returncode == 1 and "uncommitted changes in state/prod.yaml" in p.stderr
    promo.git("checkout", "--", "state/prod.yaml")
    for args, msg in ((["--branch", "-D"], "invalid git ref"),
                      (["--branch", "x..y"], "invalid git ref"),
                      (["--to", "dev"], "same environment"),
                      (["--to", "nope"], "unknown environment 'nope'")):
        p = promo.cli("promote", "--from", "dev", *args)
        assert p.returncode == 1 and msg in p.stderr, (args, p.stderr)
    promo.git("branch", "taken")
    p = promo.cli("promote", "--from", "dev", "--branch", "taken")
    assert p.returncode == 1 and "branch 'taken' already exists" in p.stderr


# ---------------------------------------------------------------- pre-commit

def test_pre_commit_hook_definition_and_run(repo):
    import yaml
    hooks = yaml.safe_load((Path(__file__).parents[2] / ".pre-commit-hooks.yaml").read_text())
    hook = next(h for h in hooks if h["id"] == "pausectl-validate")
    assert hook["entry"] == "pausectl validate" and hook["pass_filenames"] is True
    assert hook["files"] == r"^state/.*\.ya?ml$" and hook["language"] == "python"
    import re
    rx = re.compile(hook["files"])
    assert rx.search("state/prod.yaml") and rx.search("state/teams/a.yml")
    assert not rx.search("state/snapshots/prod.json") and not rx.search("docs/x.yaml")
    # pre-commit runs the entry from the repo root with the staged files as arguments
    args = hook["entry"].split()[1:] + ["state/prod.yaml", "state/common.yaml"]
    assert repo.cli(*args, subprocess=True).returncode == 0
    repo.write({"prod.yaml": BASE_FILES["prod.yaml"].replace("    owner: team-billing\n", "")})
    p = repo.cli(*args, subprocess=True)
    assert p.returncode == 1 and "state/prod.yaml:5:" in p.stdout


def test_diff_when_the_state_repo_is_new(repo):
    repo.git("rm", "-rq", "state")
    repo.commit("no state yet")
    repo.git("checkout", "-q", "HEAD~1", "--", "state")
    repo.commit("state repo added")
    d = _json(repo.cli("diff", "HEAD~1", "HEAD", "--format", "json"))
    assert [e["environment"] for e in d["environments"]] == ["prod", "staging"]
    prod = d["environments"][0]
    assert "new environment: it does not exist at the base ref" in prod["notes"]
    assert {c["change"] for c in prod["changes"]} == {"managed"}


# ---------------------------------------------------------------- the splice, directly

def _entry_rt(text: str):
    from ruamel.yaml import YAML
    return YAML(typ="rt").load(text)


@pytest.mark.parametrize("target,expected", [
    # no dags section: one is appended at the end
    ("environment: prod\ngroups: []   # none yet\n",
     "environment: prod\ngroups: []   # none yet\ndags:\n  new_dag:\n    paused: false\n"
     "    reason: r\n"),
    # an empty flow mapping is turned into a block section in place
    ("environment: prod\ndags: {}\n# tail\n",
     "environment: prod\ndags:\n  new_dag:\n    paused: false\n    reason: r\n# tail\n"),
    # no trailing newline at the end of the file
    ("environment: prod\ndags:\n  a: {paused: true, reason: x, owner: y}",
     "environment: prod\ndags:\n  a: {paused: true, reason: x, owner: y}\n  new_dag:\n"
     "    paused: false\n    reason: r\n"),
    # 4-space indentation of the section is followed
    ("environment: prod\ndags:\n    a:\n        paused: true\n        reason: x\n"
     "        owner: y\n\n# groups next\ngroups: []\n",
     "environment: prod\ndags:\n    a:\n        paused: true\n        reason: x\n"
     "        owner: y\n    new_dag:\n        paused: false\n        reason: r\n\n# groups next\n"
     "groups: []\n"),
])
def test_splice_cases(target, expected):
    from reconciler.promote.edit import apply_updates
    new, warnings = apply_updates(target, [("dag", "new_dag",
                                            _entry_rt("paused: false\nreason: r\n"))])
    assert new == expected and warnings == []


def test_splice_flow_style_section_falls_back_to_round_trip():
    from reconciler.promote.edit import apply_updates
    target = "environment: prod  # keep me\ndags: {a: {paused: true, reason: x, owner: y}}\n"
    new, warnings = apply_updates(target, [("dag", "a", _entry_rt("paused: false\n"))])
    assert "flow style" in warnings[0]
    assert new.startswith("environment: prod  # keep me\n")
    import yaml
    assert yaml.safe_load(new)["dags"] == {"a": {"paused": False}}


def test_splice_groups_with_comments_between_items():
    from reconciler.promote.edit import apply_updates
    target = ("groups:\n  # first\n  - name: a\n    match: {tags: [x]}\n    paused: true\n"
              "    reason: r\n    owner: o\n\n  # second, keep this comment\n  - name: b\n"
              "    match: {tags: [y]}\n    paused: false\n")
    entry = _entry_rt("name: a\nmatch: {tags: [x]}\npaused: false\n")
    new, warnings = apply_updates(target, [("group", "a", entry)])
    assert warnings == []
    assert new == ("groups:\n  # first\n  - name: a\n    match: {tags: [x]}\n    paused: false\n"
                   "\n  # second, keep this comment\n  - name: b\n    match: {tags: [y]}\n"
                   "    paused: false\n")
