"""The terminal face (issue 18), in a real terminal: the real CLI inside tmux at 80x24 and
120x40, on the example state and on a 500-DAG snapshot. No dag_id or file:line is ever drawn
across two rows, the confirm prompt appears and `n` changes nothing, and piped output of the
same commands has no escape code (and `--no-color` / NO_COLOR on a terminal has none either)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import pytest

from helpers import run_inprocess, tree_hash
from tmuxkit import ESC, REPO, Tmux, env_for_pipe, split_identifiers

AT = "2026-06-03T10:00:00Z"
SIZES = [(80, 24), (120, 40)]
RULE = re.compile(r"state/[\w./-]+\.yaml:\d+")
GIT = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@e", "GIT_COMMITTER_NAME": "t",
       "GIT_COMMITTER_EMAIL": "t@e", "GIT_AUTHOR_DATE": "2026-01-01T00:00:00Z",
       "GIT_COMMITTER_DATE": "2026-01-01T00:00:00Z"}


def _big_snapshot() -> str:
    """500 DAGs with ids as long as real ones; half of them etl DAGs, running."""
    kinds = [("etl_customer_orders_hourly", "etl", "data-eng"),
             ("report_finance_quarterly_close", "reporting", "analytics"),
             ("ml_feature_store_backfill", "ml", "ml-team"),
             ("etl_inventory_snapshot_daily", "etl", "data-eng")]
    dags = []
    for i in range(500):
        name, tag, owner = kinds[i % 4]
        dags.append({"dag_id": f"{name}_{i:04d}", "is_paused": i % 3 == 0, "tags": [tag],
                     "owners": [owner], "is_stale": False, "has_import_errors": False})
    return json.dumps({"environment": "big", "dags": dags}, indent=1) + "\n"


BIG_YAML = """environment: big
defaults: {unmanaged: report}
dags:
  report_finance_quarterly_close_0001:
    paused: true
    reason: "the quarterly close moved to the new ledger; this copy writes to the old one"
    owner: analytics
groups:
  - name: etl-migration
    match: {tags: [etl]}
    paused: true
    reason: "warehouse migration: every etl DAG waits until the new cluster has caught up with the old one"
    owner: data-eng
  - name: ml-on
    match: {tags: [ml]}
    paused: false
    reason: "features are back"
    owner: ml-team
"""


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """The example state in a git repo (HEAD~1: as shipped; HEAD: one more pause in prod)
    plus the environment `big` on a 500-DAG snapshot."""
    root = tmp_path_factory.mktemp("term")
    shutil.copytree(REPO / "state", root / "state",
                    ignore=shutil.ignore_patterns("tests", "*.vars.json"))
    shutil.copytree(REPO / "schemas", root / "schemas")
    cfg = root / "state" / "pausectl.yaml"
    cfg.write_text(cfg.read_text().replace(
        "environments:\n", "environments:\n  big:\n"
        "    backend: {type: snapshot, path: snapshots/big.json}\n", 1))
    (root / "state" / "big.yaml").write_text(BIG_YAML)
    (root / "state" / "snapshots" / "big.json").write_text(_big_snapshot())

    def git(*a):
        subprocess.run(["git", *a], cwd=root, env={**env_for_pipe(), **GIT}, check=True,
                       capture_output=True)
    git("init", "-q", "-b", "main")
    git("add", "-A")
    git("commit", "-q", "-m", "example state")
    prod = root / "state" / "prod.yaml"
    prod.write_text(prod.read_text().replace("  billing_daily:\n    paused: false",
                                             "  billing_daily:\n    paused: true", 1))
    git("commit", "-q", "-am", "pause billing_daily")
    held = run_inprocess(["hold", "big", "ml_feature_store_backfill_0002", "--for", "4h",
                          "--reason", "retraining on the shared GPU pool until the INC-4242 fix "
                          "lands in every region", "--yes"], root)
    assert held.returncode == 0, held.stderr
    return root


@pytest.fixture(scope="module")
def tmux(repo):
    t = Tmux(repo, {"PAUSECTL_JOURNAL_DIR": str(repo / "journals")})
    yield t
    t.close()


def _dag_ids(repo) -> set[str]:
    ids = set()
    for snap in (repo / "state" / "snapshots").glob("*.json"):
        if snap.name.endswith(".vars.json"):      # the snapshot backend's Variables
            continue
        ids |= {d["dag_id"] for d in json.loads(snap.read_text())["dags"]}
    return ids


def _piped(repo, argv) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "reconciler", *argv], cwd=repo,
                          env={**env_for_pipe(), "TERM": "xterm-256color"},
                          capture_output=True, text=True, timeout=120)


COMMANDS = [
    ["plan", "prod", "--at", AT],
    ["plan", "big", "--at", AT],
    ["lint", "prod", "--at", AT],
    ["lint", "big", "--at", AT],
    ["schedule", "prod", "--at", AT, "--next", "14d"],
    ["explain", "prod", "etl_orders", "--at", AT],
    ["explain", "big", "etl_customer_orders_hourly_0004", "--at", AT],
    ["diff", "HEAD~1", "HEAD", "--at", AT],
    ["history", "prod", "billing_daily", "--offline"],
    ["doctor", "prod", "billing_daily", "--snapshot", "state/snapshots/prod.json"],
    ["drift", "prod", "staging"],
    ["promote", "--from", "staging", "--to", "prod", "--dry-run"],
    ["validate"],
    ["hold", "big", "--list"],
]


def test_no_identifier_is_split_and_pipes_stay_plain(repo, tmux):
    """Every command at 80x24 and 120x40: no dag_id or file:line across two rows; the same
    command piped has no escape code and says the same identifiers."""
    dag_ids = _dag_ids(repo)
    jobs = [(cols, rows, argv) for argv in COMMANDS for cols, rows in SIZES]
    screens = tmux.run_all(jobs)
    problems = []
    for argv, (code_80, screen_80), (code_120, screen_120) in zip(
            COMMANDS, screens[0::2], screens[1::2]):
        piped = run_inprocess(argv, repo)       # not a terminal, as a pipe (no interpreter start)
        assert not ESC.search(piped.stdout + piped.stderr), (argv, piped.stdout[:500])
        said = set(RULE.findall(piped.stdout)) | {d for d in dag_ids if d in piped.stdout}
        assert said or argv[0] in ("validate", "drift", "promote", "history"), argv
        for (cols, _), code, screen in ((SIZES[0], code_80, screen_80),
                                        (SIZES[1], code_120, screen_120)):
            assert code == piped.returncode, (argv, code, screen[-5:])
            assert all(len(r) <= cols for r in screen)
            problems += [f"{cols} {' '.join(argv)}: {p}" for p in split_identifiers(screen, said)]
            # every identifier the pipe names is on the screen too, whole on one row
            drawn = "\n".join(screen)
            missing = [x for x in said if x not in drawn]
            assert not missing, (argv, cols, missing[:5])
    assert not problems, "\n".join(problems)


def test_big_plan_table_or_lines(repo, tmux):
    """250 changes of 500 DAGs: a table at 120 columns (reasons cut, full with --wide), one
    line per change at 80 with the reason on the next row; no escape code with --no-color."""
    (code, wide), (_, narrow), (_, full) = tmux.run_all([
        (120, 40, ["plan", "big", "--at", AT]), (80, 24, ["plan", "big", "--at", AT]),
        (120, 40, ["plan", "big", "--at", AT, "--wide"])])
    assert code == 0
    header = next(r for r in wide if "dag_id" in r)
    assert "last changed by" not in header            # an empty column is dropped
    assert "rule" in header and "reason" in header
    assert any("state/big.yaml:" in r and "etl_customer_orders_hourly_0004" in r for r in wide)
    at = next(i for i, r in enumerate(narrow) if r.startswith("~ etl_customer_orders_hourly_0004"))
    assert narrow[at].endswith("state/big.yaml:9") and "running -> paused" in narrow[at]
    assert narrow[at + 1].startswith("    warehouse migration")
    assert any("caught up with" in r for r in full) and not any("caught up with" in r
                                                                 for r in wide)
    target = tmux.start(80, 24, ["--no-color", "plan", "prod", "--at", AT])
    tmux.finish(target)
    raw = tmux._tmux("capture-pane", "-p", "-e", "-t", target)
    assert not ESC.search(raw), raw[:300]


def _confirm(tmux, argv, prompt: str):
    target = tmux.start(80, 24, argv)
    rows = tmux.wait_for(target, re.escape(prompt))
    assert rows[-1].rstrip().endswith("[y/N]:"), rows[-3:]
    tmux.keys(target, "n", "Enter")
    return tmux.finish(target)


def test_confirm_prompt_and_n_changes_nothing(repo, tmux):
    before = tree_hash(repo / "state")
    code, rows = _confirm(tmux, ["emergency", "pause", "prod", "--reason", "drill",
                                 "--except", "tag:canary"],
                          "pause 7 DAGs in prod except 2?")   # canary + protected critical_*
    assert code == 1 and rows[-1] == "aborted", rows[-4:]
    code, rows = _confirm(tmux, ["apply", "prod"], "apply 4 change(s) in prod (pause 3, "
                                                   "unpause 1)?")
    assert code == 1 and rows[-1] == "aborted", rows[-4:]
    # the lock apply took (a Variable) is gone again: the snapshot's Variables file is empty
    after = tree_hash(repo / "state")
    for extra in set(after) - set(before):
        assert extra.endswith(".vars.json") and json.loads((repo / "state" / extra).read_text()) == {}
        del after[extra]
    assert after == before
    assert not (repo / "journals").exists() or not any((repo / "journals").iterdir())
    # piped, emergency pause does not wait for a --yes (a runbook script); apply refuses
    piped = _piped(repo, ["apply", "prod"])
    assert piped.returncode == 1 and "pass --yes" in piped.stderr


def test_global_flags_before_or_after_the_command(repo, tmux):
    after = _piped(repo, ["plan", "prod", "--at", AT, "--format", "json", "--state", "state"])
    before = _piped(repo, ["--state", "state", "--format", "json", "plan", "prod", "--at", AT])
    strip = re.compile(r'"generated_at": "[^"]*"')
    assert after.returncode == before.returncode == 0
    assert strip.sub("", after.stdout) == strip.sub("", before.stdout)
    bad = _piped(repo, ["--format", "github", "plan", "prod"])
    assert bad.returncode == 1 and "'github' is not one of" in bad.stderr


def test_help_ends_with_examples():
    from click.testing import CliRunner

    from reconciler.cli.main import COMMANDS, cli
    runner = CliRunner()
    for name in list(COMMANDS) + ["emergency pause", "emergency recover"]:
        res = runner.invoke(cli, [*name.split(), "--help"], terminal_width=80)
        out = res.output.rstrip().splitlines()
        at = max(i for i, r in enumerate(out) if r.strip() == "Examples:")
        examples = [r.strip() for r in out[at + 1:]]
        # ours: one or two; a command's own docstring block (hold, test, ...) moves here whole
        assert 1 <= len(examples) <= 5, (name, examples)
        assert all(e.startswith(("pausectl ", 'eval "$(pausectl')) for e in examples), name


def test_completion_of_envs_and_dag_ids(repo):
    script = _piped(repo, ["completion", "bash"])
    assert script.returncode == 0 and "_PAUSECTL_COMPLETE=bash_complete" in script.stdout

    def complete(words: str) -> list[str]:
        env = {**env_for_pipe(), "_PAUSECTL_COMPLETE": "bash_complete", "COMP_WORDS": words,
               "COMP_CWORD": str(len(words.split()) - (0 if words.endswith(" ") else 1))}
        p = subprocess.run([sys.executable, "-m", "reconciler"], cwd=repo, env=env,
                           capture_output=True, text=True, timeout=60)
        return [line.split(",", 1)[1] for line in p.stdout.splitlines() if "," in line]
    assert complete("pausectl plan ") == ["big", "dev", "prod", "staging"]
    assert complete("pausectl plan pr") == ["prod"]
    assert complete("pausectl explain prod bil") == ["billing_daily"]
    assert "etl_inventory" in complete("pausectl explain prod etl_")     # from an include


README_EXAMPLE = re.compile(r"<!-- 80 columns: (.+?) -->\n```text\n(.*?)\n```", re.S)


def test_readme_examples_are_the_real_output_at_80_columns(tmp_path):
    """Each README block marked `<!-- 80 columns: ARGS -->` is what `pausectl ARGS` draws in
    an 80x24 terminal on the example state, row for row."""
    examples = README_EXAMPLE.findall((REPO / "README.md").read_text())
    assert len(examples) >= 3
    shutil.copytree(REPO / "state", tmp_path / "state",
                    ignore=shutil.ignore_patterns("tests", "*.vars.json"))
    tmux = Tmux(tmp_path)
    try:
        screens = tmux.run_all([(80, 24, args.split()) for args, _ in examples])
    finally:
        tmux.close()
    for (args, text), (code, rows) in zip(examples, screens):
        assert code == 0, (args, rows[-3:])
        assert rows == text.split("\n"), args
