"""Output safety per sink: text from YAML, snapshots and the event log is untrusted, and no
output format lets it become a workflow command, a terminal escape sequence, HTML, an
@mention, a link or an image; JSON keeps it exactly (the raw truth, safely escaped).

Every case runs the real CLI (reconciler.cli.main.main, a few as a subprocess) on a state repo whose
reasons, owners, tickets, live DAG ids, tags, owners and event-log users all carry the payload.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from servers import assert_clean, assert_markdown_inert, run

try:
    from helpers import dag, snapshot_json, tree_hash
except ImportError:  # pragma: no cover
    from tests.helpers import dag, snapshot_json, tree_hash

PAYLOADS = {
    "newline-error": "ok\n::error file=prod.yaml,line=1::owned",
    "add-mask": "x\n::add-mask::hunter2",
    "stop-commands": "x\n  ::stop-commands::pwn\n::error::after",
    "indented-warning": "x\n\t ::warning::tabbed",
    "legacy-command": "x ##[set-env name=PATH;]/evil",
    "crlf": "x\r\n::error::cr",
    "percent-encoded": "%0A::error::encoded %25 %3A",
    "osc52-clipboard": "x\x1b]52;c;ZXZpbA==\x07y",
    "osc8-hyperlink": "\x1b]8;;https://evil.example\x1b\\click\x1b]8;;\x1b\\",
    "csi-clear": "\x1b[2J\x1b[31mred\x1b[0m",
    "c1-controls": "x\x9b31m\x9d0;t\x9c\x85y",
    "bidi-override": "abc\u202eexe.txt\u2066",
    "line-separator": "x\u2028::error::ls",
    "html": "<img src=x onerror=alert(1)><script>x</script><a href=//e>",
    "mention": "ping @org/team and @admin",
    "md-link-image": "[click](https://evil.example) ![i](https://evil.example/p.png)",
    "backticks": "`` ` code ``` `x`",
    "rich-markup": "[red]x[/] [link=https://evil.example]y[/link]",
}
COMBINED = " | ".join(PAYLOADS.values())
REPO = Path(__file__).resolve().parents[2]


def state_files(payload: str) -> dict[str, str]:
    q = json.dumps(payload)
    s = json.dumps(payload[:200])     # owners, tickets and DAG ids are shorter by schema
    payload_id = payload[:200]
    prod = (f"environment: prod\ndefaults: {{unmanaged: report}}\ndags:\n"
            f"  billing_daily: {{paused: true, reason: {q}, owner: {s}, ticket: {s}}}\n"
            f"  ghost_dag: {{paused: true, reason: {q}, owner: ops}}\n"
            f"groups:\n  - name: etl\n    match: {{dag_id: \"etl_*\"}}\n    paused: true\n"
            f"    reason: {q}\n    owner: data-eng\n")
    dags = [dag("billing_daily", False, ["billing"], ["team-billing"]),
            dag("etl_orders", False, ["etl"], ["data-eng"]),
            dag("report_daily", True, ["reporting"], ["analytics"]),
            dag(payload_id, False, [payload_id], [payload_id])]
    snap = json.loads(snapshot_json(dags, "prod"))
    snap["events"] = [{"dag_id": "billing_daily", "when": "2026-01-01T00:00:00Z", "via": "api",
                       "user": payload, "is_paused": False, "detail": payload}]
    return {"pausectl.yaml": "environments:\n  prod:\n    backend: {type: snapshot, path: "
                             "snapshots/prod.json}\n",
            "prod.yaml": prod, "snapshots/prod.json": json.dumps(snap)}


def make_repo(base, payload: str):
    root = base / "state"
    for rel, text in state_files(payload).items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
    return root


def check(r, fmt: str, payload: str | None = None) -> None:
    assert r.code in (0, 2), r.text
    assert_clean(r, fmt)
    if fmt == "markdown":
        assert_markdown_inert(r.out)
    if fmt == "json":
        doc = json.loads(r.out)                  # still valid JSON after the output guard
        if payload is not None:                  # ... and the payload in it, unchanged
            assert any(payload in s for s in _strings(doc)), "payload lost in JSON"


def _strings(doc):
    stack = [doc]
    while stack:
        x = stack.pop()
        if isinstance(x, str):
            yield x
        elif isinstance(x, dict):
            stack.extend(x.values())
        elif isinstance(x, list):
            stack.extend(x)


# ---- every payload through the renderers that show data the most -----------------------------

RENDERERS = {
    "plan-text": (["plan", "prod"], "text"),
    "plan-markdown": (["plan", "prod", "--format", "markdown"], "markdown"),
    "plan-json": (["plan", "prod", "--format", "json"], "json"),
    "drift-markdown": (["drift", "prod", "--format", "markdown"], "markdown"),
    "explain-text": (["explain", "prod", "billing_daily"], "text"),
}


@pytest.mark.parametrize("renderer", sorted(RENDERERS))
@pytest.mark.parametrize("payload", sorted(PAYLOADS))
def test_payload_in_every_field(tmp_path, payload, renderer):
    root = make_repo(tmp_path, PAYLOADS[payload])
    before = tree_hash(root)
    args, fmt = RENDERERS[renderer]
    r = run(args, tmp_path)
    check(r, fmt, PAYLOADS[payload])
    assert tree_hash(root) == before


def test_json_is_the_raw_truth(tmp_path):
    """The guard changes nothing in JSON: every payload comes back byte for byte."""
    make_repo(tmp_path, COMBINED)
    doc = json.loads(run(["plan", "prod", "--format", "json"], tmp_path).out)
    change = next(c for c in doc["changes"] if c["dag_id"] == "billing_daily")
    assert change["reason"] == COMBINED and change["owner"] == COMBINED[:200]
    assert COMBINED[:200] in doc["unmanaged"]


# ---- every command and format, with all payloads at once -------------------------------------

COMMANDS = {
    "plan-text": (["plan", "prod"], "text"),
    "plan-markdown": (["plan", "prod", "--format", "markdown"], "markdown"),
    "validate-text": (["validate"], "text"),
    "validate-github": (["validate", "--format", "github"], "github"),
    "validate-json": (["validate", "--format", "json"], "json"),
    "lint-text": (["lint", "prod"], "text"),
    "lint-github": (["lint", "prod", "--format", "github"], "github"),
    "lint-json": (["lint", "prod", "--format", "json"], "json"),
    "explain-text": (["explain", "prod", "billing_daily"], "text"),
    "explain-json": (["explain", "prod", "billing_daily", "--format", "json"], "json"),
    "explain-payload-dag": (["explain", "prod", COMBINED[:200]], "text"),
    "drift-text": (["drift", "prod"], "text"),
    "drift-json": (["drift", "prod", "--format", "json"], "json"),
    "doctor-text": (["doctor", "prod", "billing_daily"], "text"),
    "doctor-payload-dag": (["doctor", "prod", COMBINED[:200]], "text"),
    "doctor-json": (["doctor", "prod", "billing_daily", "--format", "json"], "json"),
    "schedule-text": (["schedule", "prod"], "text"),
    "export-json": (["export", "prod"], "json"),
    "export-yaml": (["export", "prod", "--format", "yaml"], "yaml"),
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_with_every_payload(tmp_path, command):
    make_repo(tmp_path, COMBINED)
    args, fmt = COMMANDS[command]
    r = run(args, tmp_path)
    check(r, fmt)


@pytest.mark.parametrize("command", ["plan-text", "validate-github", "lint-github",
                                     "plan-markdown"])
def test_subprocess_cli(tmp_path, command):
    """The console entry point in a real process: the same guarantees on real file
    descriptors (no in-process stream replacement)."""
    make_repo(tmp_path, COMBINED)
    args, fmt = COMMANDS[command]
    r = run(args, tmp_path, subprocess_=True)
    check(r, fmt)


def test_github_annotations_escape_properties_and_messages(tmp_path):
    """A finding's message and file name carry `%`, `:` and `,`: each annotation stays one
    command with exactly the properties pausectl set."""
    root = make_repo(tmp_path, "50% done, see a:b\n::error::x")
    (root / "prod.yaml").write_text((root / "prod.yaml").read_text() + "bogus_key: 1\n")
    r = run(["validate", "--format", "github"], tmp_path)
    assert r.code == 1
    assert_clean(r, "github")
    lines = [ln for ln in r.out.splitlines() if ln]
    assert lines and all(ln.startswith(("::error ", "::warning ")) for ln in lines), r.out
    for ln in lines:
        props = ln.split(" ", 1)[1].split("::", 1)[0]
        assert {p.split("=", 1)[0] for p in props.split(",")} <= {"file", "line", "col", "title"}


# ---- emergency, restore, diff, history -------------------------------------------------------

def test_emergency_reason_payload(tmp_path):
    make_repo(tmp_path, "plain")
    for args, fmt in ((["emergency", "pause", "prod", "--reason", COMBINED], "text"),
                      (["plan", "prod"], "text"), (["plan", "prod", "--format", "markdown"],
                                                   "markdown"),
                      (["explain", "prod", "etl_orders"], "text")):
        r = run(args, tmp_path)
        check(r, fmt)


def test_emergency_json_keeps_the_reason(tmp_path):
    make_repo(tmp_path, "plain")
    r = run(["emergency", "pause", "prod", "--reason", COMBINED, "--format", "json"], tmp_path)
    check(r, "json")
    assert json.loads(r.out)["reason"] == COMBINED.strip()


def test_restore_file_with_hostile_dag_ids(tmp_path):
    root = make_repo(tmp_path, "plain")
    saved = tmp_path / "saved.json"
    saved.write_text(snapshot_json([dag("billing_daily", True), dag(COMBINED[:200], True)],
                                   "prod"))
    before = tree_hash(root)
    r = run(["restore", "prod", str(saved), "--yes"], tmp_path)
    assert r.code == 1, r.text              # a DAG the environment lacks: refused, one line
    assert_clean(r)
    assert tree_hash(root) == before


def _git(cwd, *args, env=None):
    e = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@e", "GIT_COMMITTER_NAME": "t",
         "GIT_COMMITTER_EMAIL": "t@e", "HOME": str(cwd), "PATH": "/usr/bin:/bin"}
    e.update(env or {})
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, env=e)


@pytest.fixture
def git_repo(tmp_path):
    root = make_repo(tmp_path, "before")
    _git(tmp_path, "init", "-q", "-b", "main")
    _git(tmp_path, "add", "-A")
    _git(tmp_path, "commit", "-q", "-m", "base")
    for rel, text in state_files(COMBINED).items():
        (root / rel).write_text(text, encoding="utf-8")
    _git(tmp_path, "add", "-A")
    _git(tmp_path, "commit", "-q", "-m", "change\n::error::commit message " + COMBINED[:300],
         env={"GIT_AUTHOR_NAME": "evil\x1b]0;x\x07 @org/team"})
    return tmp_path


@pytest.mark.parametrize("fmt", ["text", "markdown", "json"])
def test_diff_of_a_hostile_change(git_repo, fmt):
    r = run(["diff", "HEAD~1", "HEAD", "prod", "--format", fmt], git_repo)
    check(r, fmt)


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_history_with_hostile_commit_message_and_author(git_repo, fmt):
    r = run(["history", "prod", "billing_daily", "--format", fmt, "--offline"], git_repo)
    check(r, fmt)


def test_markdown_stays_under_the_comment_limit(tmp_path):
    """Thousands of long hostile rows: one comment under 65,536 characters, a truncation note,
    every <details> closed."""
    root = make_repo(tmp_path, "x")
    many = [dag(f"etl_{i:05d}_" + "`<b>@x/y" * 20, False) for i in range(3000)]
    (root / "snapshots/prod.json").write_text(snapshot_json(many, "prod"))
    r = run(["plan", "prod", "--format", "markdown"], tmp_path)
    check(r, "markdown")
    assert len(r.out) <= 65_536 and "more" in r.out
    assert r.out.count("<details>") == r.out.count("</details>")


# ---- CODEOWNERS ------------------------------------------------------------------------------

TENANTS = "tenants:\n  data:\n    match: {{owners: [data-eng]}}\n    files: {files}\n    team: {team}\n"
BAD_OWNERS = {
    "newline-adds-a-rule": ("[prod.yaml]", json.dumps("@org/data\n* @evil")),
    "space-adds-an-owner": ("[prod.yaml]", json.dumps("@org/data @evil")),
    "tab": ("[prod.yaml]", json.dumps("@org/data\t@evil")),
    "comment": ("[prod.yaml]", json.dumps("@org/data #")),
    "file-with-newline": (json.dumps(["prod.yaml\n* @evil"]), "\"@org/data\""),
    "file-with-space": (json.dumps(["prod.yaml @evil"]), "\"@org/data\""),
    "file-with-brackets": (json.dumps(["prod[1].yaml"]), "\"@org/data\""),
}


@pytest.mark.parametrize("case", sorted(BAD_OWNERS))
def test_codeowners_refuses_injection(tmp_path, case):
    files, team = BAD_OWNERS[case]
    root = make_repo(tmp_path, "x")
    cfg = root / "pausectl.yaml"
    cfg.write_text(cfg.read_text() + TENANTS.format(files=files, team=team))
    r = run(["codeowners"], tmp_path)
    assert r.code == 1, r.text
    assert_clean(r)
    assert r.err.startswith("error: state/pausectl.yaml:") and r.err.count("\n") == 1, r.err
    assert r.out == ""


def test_codeowners_team_prefix_injection(tmp_path):
    root = make_repo(tmp_path, "x")
    cfg = root / "pausectl.yaml"
    cfg.write_text(cfg.read_text() + "tenants:\n  data:\n    match: {owners: [data-eng]}\n"
                   "    files: [prod.yaml]\n")
    r = run(["codeowners", "--team-prefix", "@acme/\n* @evil/"], tmp_path)
    assert r.code == 1 and "--team-prefix" in r.err, r.text
    assert_clean(r)


def test_codeowners_good_lines(tmp_path):
    root = make_repo(tmp_path, "x")
    cfg = root / "pausectl.yaml"
    cfg.write_text(cfg.read_text() + TENANTS.format(files="[prod.yaml, 'teams/*.yaml']",
                                                   team="\"@org/data-eng\""))
    r = run(["codeowners"], tmp_path)
    assert r.code == 0, r.text
    rules = [ln for ln in r.out.splitlines() if not ln.startswith("#")]
    assert rules and all(len(ln.split()) == 2 and ln.split()[1] == "@org/data-eng"
                         for ln in rules), r.out


# ---- the terminal itself: rich on a pty, and the guard's line logic -------------------------

def test_rich_table_on_a_terminal(tmp_path):
    """On a tty, plan renders a rich table (rich's own colour codes pass the guard); the data in
    it carries no escape sequence, no BEL, no markup of its own."""
    import os
    import pty
    import sys
    make_repo(tmp_path, COMBINED)
    master, slave = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k != "PAUSECTL_DEBUG"}
    env.update(PYTHONPATH=str(REPO), COLUMNS="250", TERM="xterm-256color")
    p = subprocess.Popen([sys.executable, "-m", "reconciler", "plan", "prod"], cwd=tmp_path,
                         stdin=slave, stdout=slave, stderr=slave, env=env)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    assert p.wait(timeout=60) == 0
    out = b"".join(chunks).decode("utf-8", "replace")
    assert "pausectl plan: prod" in out and "billing_daily" in out
    # rich's SGR colour codes only: no OSC/DCS, no cursor movement, no BEL from the data
    leftover = re.sub(r"\x1b\[[0-9;]*m", "", out)
    assert "\x1b" not in leftover and "\x07" not in leftover, repr(leftover[:500])
    assert "[red]x[/]" in leftover             # rich markup in data is shown, not applied


def test_guard_defuses_a_command_split_across_writes():
    """Unit check of the guard: `  ` then `::error::x` in a second write is still one line
    starting with `::` after whitespace, so it is defused; emit_command is the bypass."""
    import io
    from reconciler.core.sanitize import GuardedStream, emit_command, gh_command
    raw = io.StringIO()
    g = GuardedStream(raw)
    g.write("ok\n  ")
    g.flush()
    g.write("::error::x\n##[group]y\n")
    emit_command(g, gh_command("error", "m\n::add-mask::z", file="a,b:c", line=3))
    g.write("\x1b]0;t\x07done\n")
    g.flush()
    lines = raw.getvalue().splitlines()
    assert lines[1] == "  :\\:error::x" and lines[2] == "#\\u0023[group]y"
    assert lines[3] == "::error file=a%2Cb%3Ac,line=3::m\\n:\\:add-mask:\\:z"
    assert lines[4] == "\\x1bdone"
