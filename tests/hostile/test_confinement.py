"""Confinement (paths.confine): every path a state file names stays inside the state repo.

The matrix: five places a state file names a path (an include, an include inside an include,
an environment's `file:`, a snapshot backend's `path:`, an airflow-api `ca_bundle`) times
fourteen hostile paths (absolute, `..`, symlinks out, symlinked directories, NUL and control
characters, directories, FIFOs, loops, dangling links, `~`). Each runs `validate` and/or
`plan` through the real CLI and must give exit 1 and exactly one `file:line` naming where the
path was written, with nothing read from outside (the outside files hold a marker that must
never be printed) and no file changed. Then --ref (the git tree, never the working disk) and
positive controls (symlinks and `..` that stay inside work).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from hostile_cli import (OUTSIDE_MARKER, assert_clean, assert_one_location, base_repo, run,
                         tree_hash)
from helpers import BASE_FILES, COMMON_YAML, PAUSECTL_YAML, PROD_YAML, dag, snapshot_json

PROD, COMMON, CONFIG = "state/prod.yaml", "state/common.yaml", "state/pausectl.yaml"
SNAP_LINE = "    backend: {type: snapshot, path: snapshots/prod.json}\n"


def _q(value: str) -> str:
    """A YAML double-quoted scalar (escapes \\0, \\n, \\e stay escapes in the file)."""
    return '"' + value + '"'


# where a path is named: (files to write for value X, file at fault, line, commands)
def _include(x):
    return {"prod.yaml": PROD_YAML.replace("include: [common.yaml]",
                                           f"include: [common.yaml, {_q(x)}]")}


def _nested(x):
    return {"common.yaml": COMMON_YAML + f"include: [{_q(x)}]\n"}


def _env_file(x):
    return {"pausectl.yaml": PAUSECTL_YAML.replace(SNAP_LINE, SNAP_LINE + f"    file: {_q(x)}\n")}


def _snapshot(x):
    return {"pausectl.yaml": PAUSECTL_YAML.replace("path: snapshots/prod.json", f"path: {_q(x)}")}


def _ca_bundle(x):
    return {"pausectl.yaml": PAUSECTL_YAML.replace(
        "{type: snapshot, path: snapshots/prod.json}",
        '{type: airflow-api, url: "http://127.0.0.1:9", auth: none, ca_bundle: ' + _q(x) + "}")}


VALIDATE, PLAN = ["validate"], ["plan", "prod"]
PLACES = {
    "include": (_include, PROD, 2, [VALIDATE, PLAN]),
    "nested-include": (_nested, COMMON, 7, [VALIDATE, PLAN]),
    "env-file": (_env_file, CONFIG, 4, [VALIDATE, PLAN]),
    "snapshot-path": (_snapshot, CONFIG, 3, [VALIDATE, PLAN]),
    "ca-bundle": (_ca_bundle, CONFIG, 3, [PLAN]),
}


def _links(tmp: Path, spec: dict) -> None:
    """Create symlinks / FIFOs: {state-relative path: ("link", target) | ("fifo",)}."""
    for rel, what in spec.items():
        p = tmp / "state" / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if what[0] == "fifo":
            os.mkfifo(p)
        else:
            target = what[1].replace("{tmp}", str(tmp))
            os.symlink(target, p)


# hostile paths: (value as written in YAML (an escape stays an escape), links, message)
KINDS = {
    "absolute": ("{tmp}/outside/secret.yaml", {}, "relative path"),
    "dotdot": ("../outside/secret.yaml", {}, "outside the state repo"),
    "deep-dotdot": ("snapshots/../../outside/secret.yaml", {}, "outside the state repo"),
    "home": ("~/secret.yaml", {}, "relative path"),
    "symlink-absolute": ("leak.yaml", {"leak.yaml": ("link", "{tmp}/outside/secret.yaml")},
                         "symlink to outside"),
    "symlink-relative": ("teams2/leak.yaml",
                         {"teams2/leak.yaml": ("link", "../../outside/secret.yaml")},
                         "symlink to outside"),
    "symlinked-dir": ("ext/secret.yaml", {"ext": ("link", "{tmp}/outside")},
                      "symlink to outside"),
    "dangling-out": ("gone.yaml", {"gone.yaml": ("link", "/nonexistent/pausectl/x.yaml")},
                     "symlink to outside"),
    "dangling-in": ("gone.yaml", {"gone.yaml": ("link", "no-such-file.yaml")}, "not found"),
    "symlink-loop": ("loop-a", {"loop-a": ("link", "loop-b"), "loop-b": ("link", "loop-a")},
                     "cannot be resolved"),
    "nul-byte": ("common\\0.yaml", {}, "NUL byte"),
    "control-char": ("common\\e[2J\\n.yaml", {}, "control character"),
    "directory": ("snapshots", {}, "is a directory"),
    "fifo": ("pipe.yaml", {"pipe.yaml": ("fifo",)}, "not a regular file"),
    "missing": ("nope.yaml", {}, "not found"),
}

CASES = [(place, kind) for place in PLACES for kind in KINDS]


@pytest.mark.parametrize("place,kind", CASES, ids=[f"{p}-{k}" for p, k in CASES])
def test_hostile_path(place, kind, tmp_path):
    make_files, file, line, commands = PLACES[place]
    value, links, msg = KINDS[kind]
    value = value.replace("{tmp}", str(tmp_path))
    base_repo(tmp_path, make_files(value))
    _links(tmp_path, links)
    before = tree_hash(tmp_path)
    for argv in commands:
        r = run(argv, tmp_path, timeout=20)
        assert_clean(r, argv)
        assert_one_location(r, argv, file, line, msg)
    assert tree_hash(tmp_path) == before


def test_config_file_symlinked_out(tmp_path):
    """pausectl.yaml itself a symlink to a file outside: refused, named, nothing read."""
    base_repo(tmp_path)
    (tmp_path / "outside" / "pausectl.yaml").write_text(
        PAUSECTL_YAML + f"# {OUTSIDE_MARKER}\n")
    (tmp_path / "state" / "pausectl.yaml").unlink()
    os.symlink(tmp_path / "outside" / "pausectl.yaml", tmp_path / "state" / "pausectl.yaml")
    for argv in (VALIDATE, PLAN):
        r = run(argv, tmp_path)
        assert_clean(r, argv)
        lines = [ln for ln in r.both.splitlines() if "symlink" in ln]
        assert len(lines) == 1 and lines[0].startswith(("state/pausectl.yaml: ",
                                                        "error: state/pausectl.yaml: ")), r.both
        assert "is a symlink to outside the state repo" in lines[0], r.both


# ---- positive controls: confinement must not refuse what stays inside ---------------------

INSIDE = {
    "include-via-inside-symlink": (
        {"prod.yaml": PROD_YAML.replace("include: [common.yaml]", "include: [alias.yaml]")},
        {"alias.yaml": ("link", "common.yaml")}),
    "include-dotdot-staying-inside": (
        {"prod.yaml": PROD_YAML.replace("include: [common.yaml]",
                                        "include: [snapshots/../common.yaml]")}, {}),
    "snapshot-through-inside-dir-link": (
        {"pausectl.yaml": PAUSECTL_YAML.replace("path: snapshots/prod.json",
                                                "path: snaps/prod.json")},
        {"snaps": ("link", "snapshots")}),
    "env-file-in-subdir-with-relative-include": (
        {"pausectl.yaml": PAUSECTL_YAML.replace(SNAP_LINE, SNAP_LINE + "    file: envs/prod.yaml\n"),
         "envs/prod.yaml": PROD_YAML.replace("include: [common.yaml]", "include: [../common.yaml]"),
         "prod.yaml": None}, {}),
}


@pytest.mark.parametrize("name", list(INSIDE))
def test_inside_paths_work(name, tmp_path):
    files, links = INSIDE[name]
    base_repo(tmp_path, files)
    _links(tmp_path, links)
    for argv in (VALIDATE, PLAN + ["--format", "json"]):
        r = run(argv, tmp_path)
        assert_clean(r, argv, code=0)
    assert '"dag_id": "billing_daily"' in r.out      # the plan read the rules it names


# ---- --ref: the git tree of that commit, never the working disk ----------------------------

def _git(cwd: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@e.x",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@e.x"}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True,
                          text=True).stdout


def _repo(tmp: Path, files: dict | None = None, links: dict | None = None) -> Path:
    base_repo(tmp, files)
    _links(tmp, links or {})
    _git(tmp, "init", "-q", "-b", "main")
    _git(tmp, "add", "state")
    _git(tmp, "commit", "-q", "-m", "state")
    return tmp


REF_CASES = {
    # committed symlinks leaving the tree: refused like on disk
    "ref-symlink-absolute": (_include("leak.yaml"), {"leak.yaml": ("link", "{tmp}/outside/secret.yaml")},
                             PROD, 2, "symlink to outside"),
    "ref-symlink-relative": (_include("leak.yaml"), {"leak.yaml": ("link", "../outside/secret.yaml")},
                             PROD, 2, "symlink to outside"),
    "ref-symlink-to-repo-file-outside-state": (
        _include("leak.yaml"), {"leak.yaml": ("link", "../README.md")}, PROD, 2,
        "symlink to outside"),
    "ref-snapshot-symlink-out": (_snapshot("snapshots/leak.json"),
                                 {"snapshots/leak.json": ("link", "{tmp}/outside/secret.json")},
                                 CONFIG, 3, "symlink to outside"),
    "ref-env-file-symlink-out": (_env_file("leak.yaml"),
                                 {"leak.yaml": ("link", "{tmp}/outside/secret.yaml")},
                                 CONFIG, 4, "symlink to outside"),
    "ref-absolute-include": (_include("{tmp}/outside/secret.yaml"), {}, PROD, 2, "relative path"),
    "ref-dotdot-include": (_include("../outside/secret.yaml"), {}, PROD, 2,
                           "outside the state repo"),
    "ref-dotdot-next-to-temp-dir": (_include("../../../../../../../../tmp/x.yaml"), {}, PROD, 2,
                                    "outside the state repo"),
}


@pytest.mark.parametrize("name", list(REF_CASES))
def test_ref_reads_the_tree_only(name, tmp_path):
    files, links, file, line, msg = REF_CASES[name]
    files = {k: (v.replace("{tmp}", str(tmp_path)) if isinstance(v, str) else v)
             for k, v in files.items()}
    _repo(tmp_path, files, links)
    before = tree_hash(tmp_path)
    for argv in (["validate", "--ref", "HEAD"], ["plan", "prod", "--ref", "HEAD"]):
        r = run(argv, tmp_path)
        assert_clean(r, argv)
        assert_one_location(r, argv, file, line, msg)
    assert tree_hash(tmp_path) == before


def test_ref_never_reads_an_untracked_file_of_the_working_disk(tmp_path):
    """An include present only on the working disk is not found at the ref."""
    _repo(tmp_path, _include("extra.yaml") | {"extra.yaml": None})
    (tmp_path / "state" / "extra.yaml").write_text("dags: {}\n")   # untracked, on disk only
    r = run(["plan", "prod", "--ref", "HEAD"], tmp_path)
    assert_clean(r, "plan --ref")
    assert_one_location(r, "plan --ref", PROD, 2, "not found")


def test_ref_reads_committed_content_not_the_working_copy(tmp_path):
    """An in-tree symlink at the ref resolves inside the materialised tree: the committed
    common.yaml decides, not the edited working copy."""
    _repo(tmp_path, {"prod.yaml": PROD_YAML.replace("include: [common.yaml]",
                                                    "include: [alias.yaml]")},
          {"alias.yaml": ("link", "common.yaml")})
    (tmp_path / "state" / "common.yaml").write_text(
        COMMON_YAML.replace("paused: false", "paused: true"))  # uncommitted edit
    r = run(["plan", "prod", "--ref", "HEAD", "--format", "json"], tmp_path)
    assert_clean(r, "plan --ref", code=0)
    assert '"dag_id": "report_daily"' in r.out and '"action": "unpause"' in r.out, r.out


def test_ref_where_the_state_dir_is_a_symlink(tmp_path):
    _repo(tmp_path)
    _git(tmp_path, "mv", "state", "real-state")
    os.symlink("real-state", tmp_path / "state")
    _git(tmp_path, "add", "state")
    _git(tmp_path, "commit", "-q", "-m", "state is a link")
    r = run(["plan", "prod", "--state", "real-state", "--ref", "HEAD~0"], tmp_path)
    assert_clean(r, "plan", code=0)
    os.unlink(tmp_path / "state")
    (tmp_path / "state").mkdir()
    r = run(["validate", "--ref", "HEAD"], tmp_path)
    assert_clean(r, "validate --ref")
    assert "state is not a directory at HEAD" in r.err, r.err


# ---- output files: --out, --metrics-file, the journal directory ---------------------------
# Rules (docs/security.md): never under .git (not even with --force); not inside the state
# repo nor onto a file git tracks unless --force; never a directory; checked before any work.

def _out_repo(tmp: Path) -> Path:
    (tmp / "README.md").write_text("# tracked\n")
    _repo(tmp)
    _git(tmp, "add", "README.md")
    _git(tmp, "commit", "-q", "-m", "readme")
    (tmp / "adir").mkdir()
    (tmp / "afile").write_text("x\n")
    os.symlink("state/prod.yaml", tmp / "link-into-state.json")
    return tmp


OUTPUTS = {
    "out-onto-tracked-state-file": (["plan", "prod", "--out", "state/prod.yaml"], "--out",
                                    "inside the state repo"),
    "out-new-file-in-state": (["plan", "prod", "--out", "state/plan.json"], "--out",
                              "inside the state repo"),
    "out-into-git-hooks": (["plan", "prod", "--out", ".git/hooks/pre-commit"], "--out",
                           ".git directory"),
    "out-into-git-even-forced": (["plan", "prod", "--force", "--out", ".git/hooks/post-checkout"],
                                 "--out", ".git directory"),
    "out-onto-tracked-readme": (["plan", "prod", "--out", "README.md"], "--out", "tracked by git"),
    "out-a-directory": (["plan", "prod", "--out", "adir"], "--out", "is a directory"),
    "out-under-a-file": (["plan", "prod", "--out", "afile/plan.json"], "--out",
                         "not a directory"),
    "out-symlink-into-state": (["plan", "prod", "--out", "link-into-state.json"], "--out",
                               "inside the state repo"),
    "out-control-char": (["plan", "prod", "--out", "plan\n::error::x.json"], "--out",
                         "control character"),
    "export-onto-snapshot": (["export", "prod", "--out", "state/snapshots/prod.json"], "--out",
                             "inside the state repo"),
    "diff-out-into-state": (["diff", "HEAD", "HEAD", "--out", "state/diff.json"], "--out",
                            "inside the state repo"),
    "plan-metrics-into-state": (["plan", "prod", "--metrics-file", "state/m.prom"],
                                "--metrics-file", "inside the state repo"),
    "drift-metrics-into-git": (["drift", "prod", "--metrics-file", ".git/m.prom"],
                               "--metrics-file", ".git directory"),
    "apply-metrics-into-state": (["apply", "prod", "--yes", "--metrics-file", "state/a.prom"],
                                 "--metrics-file", "inside the state repo"),
    "apply-plan-is-a-directory": (["apply", "prod", "--yes", "--plan", "adir"], "--plan",
                                  "is a directory"),
    "apply-plan-missing": (["apply", "prod", "--yes", "--plan", "nope.json"], "--plan",
                           "not found"),
}


@pytest.mark.parametrize("name", list(OUTPUTS))
def test_output_rules(name, tmp_path):
    from hostile_cli import assert_option_error
    argv, option, msg = OUTPUTS[name]
    _out_repo(tmp_path)
    before = tree_hash(tmp_path)
    hooks = sorted(os.listdir(tmp_path / ".git" / "hooks"))
    r = run(argv, tmp_path)
    assert_clean(r, argv)
    assert_option_error(r, argv, option, msg)
    assert tree_hash(tmp_path) == before
    assert sorted(os.listdir(tmp_path / ".git" / "hooks")) == hooks


@pytest.mark.parametrize("argv", [["plan", "prod", "--force", "--out", "state/plan.json"],
                                  ["plan", "prod", "--force", "--out", "README.md"],
                                  ["export", "prod", "--force", "--out", "state/snapshots/x.json"]],
                         ids=["force-into-state", "force-onto-tracked", "export-force"])
def test_force_allows_the_state_repo(argv, tmp_path):
    _out_repo(tmp_path)
    r = run(argv, tmp_path)
    assert_clean(r, argv, code=0)
    assert json.loads((tmp_path / argv[-1]).read_text())


def test_out_outside_the_repo_is_written(tmp_path):
    _out_repo(tmp_path)
    target = tmp_path / "outside" / "plans" / "prod.json"
    r = run(["plan", "prod", "--out", str(target)], tmp_path)
    assert_clean(r, "plan --out", code=0)
    assert json.loads(target.read_text())["environment"] == "prod"


def test_default_journal_dir_in_a_state_repo_at_the_top(tmp_path):
    """`--state .` from inside the state repo: the default hidden .pausectl/journal works."""
    base_repo(tmp_path)
    r = run(["apply", "prod", "--yes", "--state", "."], tmp_path / "state",
            env={"PAUSECTL_JOURNAL_DIR": ""})
    assert_clean(r, "apply", code=0)
    assert list((tmp_path / "state" / ".pausectl" / "journal").glob("prod-*.json"))


@pytest.mark.parametrize("where,msg", [("state/journal", "inside the state repo"),
                                       ("state/.git/journal", ".git directory"),
                                       ("afile", "is not a directory"),
                                       (".git/journal", ".git directory")])
def test_journal_dir_rules(where, msg, tmp_path):
    """The apply journal obeys the output rules, checked before any DAG changes."""
    _out_repo(tmp_path)
    before = tree_hash(tmp_path)
    r = run(["apply", "prod", "--yes"], tmp_path, env={"PAUSECTL_JOURNAL_DIR": where})
    assert_clean(r, "apply")
    assert "PAUSECTL_JOURNAL_DIR" in r.err and msg in r.err, r.err
    assert tree_hash(tmp_path) == before, "a DAG changed although the journal was refused"


JSON_INPUTS = {
    "plan-deep": (["apply", "prod", "--yes", "--plan", "p.json"], "[" * 5000 + "]" * 5000,
                  "nested deeper"),
    "plan-nan": (["apply", "prod", "--yes", "--plan", "p.json"], '{"environment": NaN}', "NaN"),
    "journal-huge-number": (["apply", "prod", "--resume", "--journal", "p.json"],
                            '{"dags": {}, "batches": [], "x": 1e999}', "out of range"),
    "restore-nan": (["restore", "prod", "p.json", "--yes"],
                    '{"dags": [{"dag_id": "etl_orders", "is_paused": NaN}]}', "NaN"),
    "snapshot-option-deep": (["plan", "prod", "--snapshot", "p.json"],
                             '{"dags": ' + "[" * 100 + "]" * 100 + "}", "nested deeper"),
}


@pytest.mark.parametrize("name", list(JSON_INPUTS))
def test_json_given_on_the_command_line(name, tmp_path):
    argv, text, msg = JSON_INPUTS[name]
    _out_repo(tmp_path)
    (tmp_path / "p.json").write_text(text)
    before = tree_hash(tmp_path)
    r = run(argv, tmp_path)
    assert_clean(r, argv)
    assert_one_location(r, argv, "p.json", 1, msg)
    assert tree_hash(tmp_path) == before


@pytest.mark.parametrize("kind", ["directory", "fifo"])
def test_snapshot_option_not_a_file(kind, tmp_path):
    _out_repo(tmp_path)
    if kind == "fifo":
        os.mkfifo(tmp_path / "snap.pipe")
    target = "adir" if kind == "directory" else "snap.pipe"
    r = run(["plan", "prod", "--snapshot", target], tmp_path, timeout=10)
    assert_clean(r, "plan --snapshot")
    assert f"{target}: " in r.err and ("directory" in r.err or "regular file" in r.err), r.err


# ---- promote: the target file is rewritten at its real path, never through a symlink -------

PROMO_CFG = """\
environments:
  dev:
    backend: {type: snapshot, path: snapshots/dev.json}
    promote_to: prod
  prod:
    backend: {type: snapshot, path: snapshots/prod.json}
promotion: {soak_hours: 0, max_failed_runs: 0}
"""
PROMO_DEV = """\
environment: dev
dags:
  etl_orders: {paused: true, reason: "schema migration", owner: data-eng, promote: true}
"""
PROMO_PROD = "environment: prod\ndags: {}\n"


@pytest.mark.parametrize("link", ["absolute", "relative", "none"])
def test_promote_never_writes_through_a_symlink(link, tmp_path):
    """prod.yaml an absolute symlink to a file inside the repo: the target gate's scratch copy
    keeps symlinks, and writing through it would have rewritten the working tree's file."""
    files = {"pausectl.yaml": PROMO_CFG, "dev.yaml": PROMO_DEV, "prod.yaml": PROMO_PROD,
             "staging.yaml": None, "snapshots/staging.json": None, "common.yaml": None,
             "snapshots/dev.json": snapshot_json([dag("etl_orders", True)], "dev"),
             "snapshots/prod.json": BASE_FILES["snapshots/prod.json"]}
    if link != "none":
        files["prod.yaml"] = None
        files["envs/prod.yaml"] = PROMO_PROD
    base_repo(tmp_path, files)
    if link == "absolute":
        os.symlink(tmp_path / "state" / "envs" / "prod.yaml", tmp_path / "state" / "prod.yaml")
    elif link == "relative":
        os.symlink("envs/prod.yaml", tmp_path / "state" / "prod.yaml")
    _git(tmp_path, "init", "-q", "-b", "main")
    _git(tmp_path, "add", "state")
    _git(tmp_path, "commit", "-q", "-m", "state")
    before = tree_hash(tmp_path)
    r = run(["promote", "--from", "dev", "--dry-run"], tmp_path)
    assert tree_hash(tmp_path) == before, "the dry run changed the working tree"
    if link == "absolute":
        # absolute links break in every other clone; in the gate's scratch copy this one
        # points out of the copy: refused, and nothing is written through it
        assert_clean(r, "promote --dry-run", code=1)
        assert "BLOCKED: target gate" in r.out and "symlink to outside" in r.out, r.out
        return
    assert_clean(r, "promote --dry-run", code=0)
    assert "new" in r.out and "etl_orders" in r.out, r.out
    r = run(["promote", "--from", "dev", "--branch", "promo"], tmp_path)
    assert_clean(r, "promote", code=0)
    assert tree_hash(tmp_path) == before, "promotion changed the working tree"
    real = "state/prod.yaml" if link == "none" else "state/envs/prod.yaml"
    assert "etl_orders" in _git(tmp_path, "show", f"promo:{real}")
    if link == "relative":    # the link itself is untouched: the commit went to its target
        assert _git(tmp_path, "ls-tree", "promo", "state/prod.yaml").startswith("120000")
