"""Malformed input never produces a traceback: one line naming file:line, exit 1, nothing changed.

Each case copies the small base state repo (tests/helpers.py) into a temp dir, mutates one file
(or adds the few a case needs), then runs the real CLI in a subprocess:
`pausectl validate` (problem lines on stdout) and, where cheap, `pausectl plan ENV` (one error
line on stderr). Line numbers refer to the base texts in tests/helpers.py.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field

import pytest

try:
    from helpers import (COMMON_YAML, PAUSECTL_YAML, PROD_YAML, STAGING_YAML, make_state,
                         parse_located, run_cli, run_cli_timed, tree_hash)
except ImportError:  # pragma: no cover (tests run as a package)
    from tests.helpers import (COMMON_YAML, PAUSECTL_YAML, PROD_YAML, STAGING_YAML, make_state,
                               parse_located, run_cli, run_cli_timed, tree_hash)

PROD = "state/prod.yaml"
COMMON = "state/common.yaml"
STAGING = "state/staging.yaml"
CONFIG = "state/pausectl.yaml"
SNAP = "state/snapshots/prod.json"

VALIDATE = ["validate"]
PLAN_PROD = ["plan", "prod"]
PLAN_STAGING = ["plan", "staging"]


def sub(text: str, old: str, new: str) -> str:
    """Replace exactly one occurrence (a typo in a case must not silently mutate nothing)."""
    assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times"
    return text.replace(old, new)


def prod(old: str, new: str) -> dict:
    return {"prod.yaml": sub(PROD_YAML, old, new)}


def common(old: str, new: str) -> dict:
    return {"common.yaml": sub(COMMON_YAML, old, new)}


def config(old: str, new: str) -> dict:
    return {"pausectl.yaml": sub(PAUSECTL_YAML, old, new)}


@dataclass
class Case:
    id: str
    files: dict                     # state-relative path -> new content (None deletes)
    file: str                       # the file the error must name (as shown, cwd-relative)
    line: int                       # ... and its line
    msg: str                        # a fragment the message must contain (case-insensitive)
    commands: list = field(default_factory=lambda: [VALIDATE, PLAN_PROD])


# A compact snapshot: one DAG per line, so lines are easy to name.
SNAPSHOT_OK = """\
{"environment": "prod", "dags": [
 {"dag_id": "billing_daily", "is_paused": false, "tags": ["billing"], "owners": ["team-billing"]},
 {"dag_id": "etl_orders", "is_paused": false, "tags": ["etl"], "owners": ["data-eng"]},
 {"dag_id": "report_daily", "is_paused": true, "tags": ["reporting"], "owners": ["analytics"]}
]}
"""

BILLION_LAUGHS = """\
environment: prod
lol1: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
lol2: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
lol3: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
lol4: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
lol5: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
lol6: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
lol7: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
lol8: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
lol9: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]
"""

# a PNG header followed by seeded random bytes: a binary file committed by mistake
_rng = random.Random(1234)
BINARY = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(_rng.randrange(256) for _ in range(512))

BLOCK_WINDOW = """\
    windows:
      - cron: "0 2 * * SUN"
        duration: 2h
        timezone: Europe/Berlin
"""
FLOW_WINDOW = ('    windows: [{cron: "0 2 * * SUN", duration: 2h, timezone: Europe/Berlin}]\n')


def prod_block_window(old: str, new: str) -> dict:
    """prod.yaml with the window written as a block (lines 17-20), then one edit."""
    return {"prod.yaml": sub(sub(PROD_YAML, FLOW_WINDOW, BLOCK_WINDOW), old, new)}


CASES = [
    # ---- YAML syntax --------------------------------------------------------------------
    Case("yaml-bad-indentation", prod('    reason: "vendor outage"', '   reason: "vendor outage"'),
         PROD, 7, "invalid YAML"),
    Case("yaml-bad-indentation-in-list", prod("    paused: true\n    reason: \"warehouse",
                                              "    paused: true\n   reason: \"warehouse"),
         PROD, 14, "invalid YAML"),
    Case("yaml-unclosed-double-quote", prod('"vendor outage"', '"vendor outage'),
         PROD, 7, "quote"),
    Case("yaml-unclosed-single-quote-at-eof", common("owner: analytics", "owner: 'analytics"),
         COMMON, 6, "invalid YAML"),
    Case("yaml-tab-indentation", prod('    reason: "vendor', '\treason: "vendor'),
         PROD, 7, "tab"),
    Case("yaml-unclosed-flow-mapping", prod('dag_id: "etl_*"}', 'dag_id: "etl_*"'),
         PROD, 12, "flow mapping"),
    Case("yaml-unclosed-flow-sequence", prod("include: [common.yaml]", "include: [common.yaml"),
         PROD, 2, "flow sequence"),
    Case("yaml-colon-in-plain-scalar", prod('reason: "vendor outage"', "reason: vendor: outage"),
         PROD, 7, "mapping values are not allowed"),
    Case("yaml-second-document", {"prod.yaml": PROD_YAML + "---\nenvironment: prod\n"},
         PROD, 18, "single document"),
    Case("yaml-nesting-too-deep", prod('reason: "vendor outage"',
                                       "reason: " + "[" * 3000 + "]" * 3000),
         PROD, 7, "nesting"),
    # ---- wrong types --------------------------------------------------------------------
    Case("type-paused-string", prod("    paused: true\n    reason: \"vendor",
                                    "    paused: \"yes please\"\n    reason: \"vendor"),
         PROD, 6, "expected boolean"),
    Case("type-paused-null", prod("    paused: true\n    reason: \"vendor",
                                  "    paused:\n    reason: \"vendor"),
         PROD, 6, "expected boolean"),
    Case("type-priority-string", prod("priority: 10", 'priority: "high"'),
         PROD, 16, "expected integer"),
    Case("type-priority-out-of-range", prod("priority: 10", "priority: 5000"),
         PROD, 16, "maximum"),
    Case("type-tags-not-a-list", prod("match: {tags: [etl],", "match: {tags: etl,"),
         PROD, 12, "expected array"),
    Case("type-include-not-a-list", prod("include: [common.yaml]", "include: common.yaml"),
         PROD, 2, "expected array"),
    Case("type-max-changes-negative", config("max_changes: 50", "max_changes: -1"),
         CONFIG, 11, "minimum"),
    # ---- unknown keys -------------------------------------------------------------------
    Case("unknown-key-top-level", prod("defaults: {unmanaged: report}",
                                       "default: {unmanaged: report}"),
         PROD, 3, "unknown key 'default'"),
    Case("unknown-key-in-dag-rule", prod("    owner: team-billing\n",
                                         "    owner: team-billing\n    comment: why not\n"),
         PROD, 9, "unknown key 'comment'"),
    Case("unknown-key-in-group", prod("priority: 10", "prio: 10"),
         PROD, 16, "unknown key 'prio'"),
    Case("unknown-key-in-match", prod('dag_id: "etl_*"}', 'dag_ids: "etl_*"}'),
         PROD, 12, "unknown key 'dag_ids'"),
    Case("unknown-key-in-window", prod_block_window("        timezone: Europe/Berlin",
                                                    "        tz: Europe/Berlin"),
         PROD, 20, "unknown key 'tz'"),
    Case("unknown-key-in-pausectl", config("safety:", "safty:"),
         CONFIG, 10, "unknown key 'safty'"),
    Case("unknown-key-in-precedence", config("  tie: pause\n", "  tie: pause\n  order: strict\n"),
         CONFIG, 10, "unknown key 'order'"),
    Case("unknown-key-in-backend", config(
        "    backend: {type: snapshot, path: snapshots/prod.json}\n",
        "    backend:\n      type: snapshot\n      path: snapshots/prod.json\n"
        "      url: https://airflow.example.com\n"),
         CONFIG, 6, "unknown key 'url'"),
    # ---- duplicate keys -----------------------------------------------------------------
    Case("duplicate-key-top-level", {"prod.yaml": PROD_YAML + "dags: {}\n"},
         PROD, 18, "duplicate key 'dags'"),
    Case("duplicate-key-in-dags", prod("groups:\n", "  billing_daily:\n    paused: false\ngroups:\n"),
         PROD, 10, "duplicate key 'billing_daily'"),
    Case("duplicate-key-nested", prod("    paused: true\n    reason: \"vendor",
                                      "    paused: true\n    paused: false\n    reason: \"vendor"),
         PROD, 7, "duplicate key 'paused'"),
    Case("duplicate-key-environments", config("precedence:\n",
                                              "  prod:\n    backend: {type: dagmodel}\nprecedence:\n"),
         CONFIG, 7, "duplicate key 'prod'"),
    # ---- missing required keys ----------------------------------------------------------
    Case("missing-reason", prod('    reason: "vendor outage"\n', ""),
         PROD, 5, "'reason'"),
    Case("missing-owner", prod("    owner: team-billing\n", ""),
         PROD, 5, "'owner'"),
    Case("missing-paused", prod("    paused: true\n    reason: \"vendor", "    reason: \"vendor"),
         PROD, 5, "'paused'"),
    Case("missing-reason-in-group", prod('    reason: "warehouse maintenance"\n', ""),
         PROD, 11, "'reason'"),
    Case("missing-match-in-group", prod('    match: {tags: [etl], dag_id: "etl_*"}\n', ""),
         PROD, 11, "'match'"),
    Case("missing-environment-field", prod("environment: prod\n", ""),
         PROD, 1, "environment"),
    # ---- globs --------------------------------------------------------------------------
    Case("glob-unclosed-bracket", prod('dag_id: "etl_*"', 'dag_id: "etl_[ab"'),
         PROD, 12, "unclosed '['"),
    Case("glob-empty-class", prod('dag_id: "etl_*"', 'dag_id: "etl_[]"'),
         PROD, 12, "empty character class"),
    Case("glob-with-space", prod('dag_id: "etl_*"', 'dag_id: "etl orders*"'),
         PROD, 12, "' '"),
    Case("glob-bad-in-block-list", prod(
        '    match: {tags: [etl], dag_id: "etl_*"}\n',
        '    match:\n      dag_id:\n        - "etl_*"\n        - "etl_[x"\n'),
         PROD, 15, "unclosed '['"),
    Case("glob-bad-in-protect", config('protect: ["critical_*"]', 'protect: ["critical_[*"]'),
         CONFIG, 12, "unclosed '['"),
    # ---- timestamps ---------------------------------------------------------------------
    Case("timestamp-month-13", prod("until: 2030-01-01T00:00:00Z", "until: 2026-13-45"),
         PROD, 9, "bad timestamp"),
    Case("timestamp-feb-30", prod("until: 2030-01-01T00:00:00Z", "until: 2027-02-30T00:00:00Z"),
         PROD, 9, "bad timestamp"),
    Case("timestamp-words", prod("until: 2030-01-01T00:00:00Z", 'until: "tomorrow"'),
         PROD, 9, "expected format"),
    Case("timestamp-from-after-until", prod("    until: 2030-01-01T00:00:00Z\n",
                                            "    until: 2030-01-01T00:00:00Z\n"
                                            "    from: 2031-01-01T00:00:00Z\n"),
         PROD, 10, "'from' must be before 'until'"),
    # ---- includes -----------------------------------------------------------------------
    Case("include-parent-dir", {**prod("include: [common.yaml]", "include: [../x.yaml]"),
                                "../x.yaml": "dags: {}\n"},
         PROD, 2, "outside the state repo"),
    Case("include-absolute-path", prod("include: [common.yaml]", "include: [/etc/passwd]"),
         PROD, 2, "relative path"),
    Case("include-missing-file", prod("include: [common.yaml]", "include: [common.yaml, nope.yaml]"),
         PROD, 2, "not found"),
    Case("include-directory", prod("include: [common.yaml]", "include: [snapshots]"),
         PROD, 2, "is a directory"),
    Case("include-cycle-a-b-a", {**prod("include: [common.yaml]", "include: [a.yaml]"),
                                 "a.yaml": "# a\ninclude: [b.yaml]\n",
                                 "b.yaml": "# b\n# includes a again\ninclude: [a.yaml]\n"},
         "state/b.yaml", 3, "include cycle"),
    Case("include-self", {"common.yaml": COMMON_YAML + "include: [common.yaml]\n"},
         COMMON, 7, "include cycle"),
    Case("include-defaults-in-include", {"common.yaml": COMMON_YAML + "defaults: {unmanaged: ignore}\n"},
         COMMON, 7, "defaults belong in the environment file"),
    Case("include-for-other-environment", {"common.yaml": "environment: staging\n" + COMMON_YAML},
         COMMON, 1, "included file is for environment 'staging'"),
    # ---- environments -------------------------------------------------------------------
    Case("unknown-env-plan", {}, CONFIG, 1, "unknown environment 'nope'", [["plan", "nope"]]),
    Case("unknown-env-explain", {}, CONFIG, 1, "unknown environment 'nope'",
         [["explain", "nope", "etl_orders"]]),
    Case("environment-field-mismatch", prod("environment: prod", "environment: staging"),
         PROD, 1, "maps it to 'prod'"),
    Case("environment-file-missing", {"prod.yaml": None}, CONFIG, 2, "not found"),
    Case("bad-env-name", config("  staging:\n", "  Staging Env:\n"),
         CONFIG, 4, "invalid name 'Staging Env'", [VALIDATE, PLAN_PROD]),
    Case("promote-to-unknown-env", config("promote_to: prod", "promote_to: production"),
         CONFIG, 6, "unknown environment 'production'", [VALIDATE, PLAN_STAGING]),
    # ---- garbage bytes ------------------------------------------------------------------
    Case("binary-file", {"prod.yaml": BINARY}, PROD, 1, "UTF-8"),
    Case("binary-pausectl-yaml", {"pausectl.yaml": BINARY}, CONFIG, 1, "UTF-8"),
    Case("invalid-utf8-in-string", {"prod.yaml": sub(PROD_YAML, '"vendor outage"', '"vendor \udcff'
                                                     'outage"').encode("utf-8", "surrogateescape")},
         PROD, 7, "UTF-8"),
    Case("nul-byte", prod('"vendor outage"', '"vendor\x00outage"'), PROD, 7, "NUL"),
    # ---- YAML features refused ----------------------------------------------------------
    Case("alias-bomb", {"prod.yaml": BILLION_LAUGHS}, PROD, 6, "alias"),
    Case("python-tag-apply", prod('reason: "vendor outage"',
                                  'reason: !!python/object/apply:os.system ["touch pwned"]'),
         PROD, 7, "python/object/apply"),
    Case("python-tag-name", prod("owner: team-billing", "owner: !!python/name:os.system"),
         PROD, 8, "not allowed"),
    Case("custom-tag-ref", prod("owner: team-billing", "owner: !Ref team-billing"),
         PROD, 8, "'!Ref'"),
    Case("set-tag", prod("include: [common.yaml]", "include: !!set {common.yaml}"),
         PROD, 2, "not allowed"),
    Case("merge-key", prod("    paused: true\n    reason: \"vendor",
                           "    <<: {paused: true}\n    reason: \"vendor"),
         PROD, 6, "merge keys"),
    # ---- document shape -----------------------------------------------------------------
    Case("empty-pausectl-yaml", {"pausectl.yaml": ""}, CONFIG, 1, "must be a mapping"),
    Case("comments-only-pausectl-yaml", {"pausectl.yaml": "# nothing here\n"},
         CONFIG, 1, "must be a mapping"),
    Case("top-level-list", {"prod.yaml": "- environment: prod\n- dags: {}\n"},
         PROD, 1, "must be a mapping"),
    Case("top-level-scalar", {"prod.yaml": "prod\n"}, PROD, 1, "must be a mapping"),
    # ---- windows ------------------------------------------------------------------------
    Case("window-bad-cron", prod('cron: "0 2 * * SUN"', 'cron: "0 25 * * SUN"'),
         PROD, 17, "bad cron"),
    Case("window-cron-words", prod_block_window('cron: "0 2 * * SUN"', 'cron: "every sunday"'),
         PROD, 18, "bad cron"),
    Case("window-bad-duration", prod_block_window("duration: 2h", "duration: 2x"),
         PROD, 19, "expected format"),
    Case("window-zero-duration", prod("duration: 2h", "duration: 0h"),
         PROD, 17, "positive"),
    Case("window-unknown-timezone", prod_block_window("timezone: Europe/Berlin",
                                                      "timezone: Mars/Olympus_Mons"),
         PROD, 20, "unknown time zone"),
    Case("window-empty-list", prod(FLOW_WINDOW, "    windows: []\n"), PROD, 17, "windows"),
    # ---- groups -------------------------------------------------------------------------
    Case("duplicate-group-name", {"prod.yaml": PROD_YAML + (
        "  - name: etl-maintenance\n    match: {tags: [x]}\n    paused: false\n")},
         PROD, 18, "duplicate group name"),
    Case("duplicate-group-name-across-files", common("name: reporting", "name: etl-maintenance"),
         COMMON, 2, "duplicate group name"),
    Case("group-name-invalid", prod("name: etl-maintenance", 'name: "etl maintenance"'),
         PROD, 11, "expected format"),
    Case("dag-id-key-invalid", prod("  billing_daily:\n", '  "billing daily!":\n'),
         PROD, 5, "invalid name"),
    Case("defaults-pause-without-reason", prod("defaults: {unmanaged: report}",
                                               "defaults: {unmanaged: pause, owner: ops}"),
         PROD, 3, "'reason'"),
    # ---- pausectl.yaml policy -----------------------------------------------------------
    Case("backend-url-not-http", config(
        "    backend: {type: snapshot, path: snapshots/prod.json}\n",
        "    backend:\n      type: airflow-api\n      url: ftp://airflow.example.com\n"),
         CONFIG, 5, "url"),
    Case("backend-type-unknown", config("{type: snapshot, path: snapshots/prod.json}",
                                        "{type: kubernetes, path: snapshots/prod.json}"),
         CONFIG, 3, "kubernetes"),
    Case("backend-snapshot-without-path", config("{type: snapshot, path: snapshots/prod.json}",
                                                 "{type: snapshot}"),
         CONFIG, 3, "'path'"),
    Case("tie-invalid", config("tie: pause", "tie: sometimes"), CONFIG, 9, "sometimes"),
    Case("layers-duplicate", config("[emergency, dag, group, defaults]",
                                    "[emergency, dag, dag, defaults]"),
         CONFIG, 8, "layers"),
    Case("layers-missing-one", config("[emergency, dag, group, defaults]", "[emergency, dag, group]"),
         CONFIG, 8, "layers"),
    Case("layers-unknown-name", config("[emergency, dag, group, defaults]",
                                       "[emergency, dag, group, everything]"),
         CONFIG, 8, "everything"),
    Case("drift-mode-invalid", {"pausectl.yaml": PAUSECTL_YAML + "drift: {mode: yolo}\n"},
         CONFIG, 13, "yolo"),
    # ---- snapshots ----------------------------------------------------------------------
    Case("snapshot-invalid-json", {"snapshots/prod.json": sub(
        SNAPSHOT_OK, '"owners": ["data-eng"]},', '"owners": ["data-eng"]},,')}, SNAP, 3, "invalid JSON"),
    Case("snapshot-truncated", {"snapshots/prod.json": SNAPSHOT_OK[:-4]}, SNAP, 4, "invalid JSON"),
    Case("snapshot-missing-is-paused", {"snapshots/prod.json": sub(
        SNAPSHOT_OK, '"etl_orders", "is_paused": false,', '"etl_orders",')}, SNAP, 3, "is_paused"),
    Case("snapshot-is-paused-string", {"snapshots/prod.json": sub(
        SNAPSHOT_OK, '"etl_orders", "is_paused": false,', '"etl_orders", "is_paused": "no",')},
         SNAP, 3, "is_paused"),
    Case("snapshot-duplicate-dag-id", {"snapshots/prod.json": sub(
        SNAPSHOT_OK, '"report_daily"', '"billing_daily"')}, SNAP, 4, "duplicate dag_id"),
    pytest.param(Case("snapshot-not-utf8", {"snapshots/prod.json": SNAPSHOT_OK.encode().replace(
        b"etl_orders", b"etl_\xffrders")}, SNAP, 3, "UTF-8")),
    Case("snapshot-path-outside-repo", {
        **config("path: snapshots/prod.json", "path: ../outside.json"),
        "../outside.json": SNAPSHOT_OK}, CONFIG, 3, "outside the state repo"),
    Case("snapshot-path-absolute", config("path: snapshots/prod.json", "path: /etc/passwd"),
         CONFIG, 3, "outside the state repo"),
]

AT_CASES = [
    ("at-words", ["plan", "prod", "--at", "yesterday"]),
    ("at-month-13", ["plan", "prod", "--at", "2026-13-01T00:00:00Z"]),
    ("at-explain", ["explain", "prod", "etl_orders", "--at", "noon"]),
]


def _check_no_crash(r, argv):
    both = r.stdout + r.stderr
    assert "Traceback" not in both, f"{argv}: traceback\n{both}"
    assert "internal error" not in both, f"{argv}: internal error\n{both}"
    assert r.returncode == 1, f"{argv}: exit {r.returncode}\nstdout: {r.stdout}\nstderr: {r.stderr}"


def _one_located_line(text: str, case: Case, argv, where: str) -> None:
    lines = [ln for ln in text.splitlines() if ln.strip()]
    assert len(lines) == 1, f"{argv}: expected one {where} line, got {lines!r}"
    m = parse_located(lines[0])
    assert m, f"{argv}: {where} line is not file:line[:col]: message: {lines[0]!r}"
    assert m["file"] == case.file, f"{argv}: names {m['file']!r}, want {case.file!r}: {lines[0]!r}"
    assert int(m["line"]) == case.line, f"{argv}: names line {m['line']}, want {case.line}: {lines[0]!r}"
    assert case.msg.lower() in m["message"].lower(), f"{argv}: message lacks {case.msg!r}: {lines[0]!r}"


def _id(c) -> str:
    return (c.values[0] if hasattr(c, "values") else c).id


@pytest.mark.parametrize("case", CASES, ids=[_id(c) for c in CASES])
def test_bad_input(case: Case, tmp_path):
    make_state(tmp_path, case.files)
    before = tree_hash(tmp_path)
    for argv in case.commands:
        r, cpu = run_cli_timed(argv, tmp_path)
        _check_no_crash(r, argv)
        if argv[0] == "validate":
            # problem lines on stdout, the count on stderr
            _one_located_line(r.stdout, case, argv, "problem")
            assert "1 error(s)" in r.stderr, r.stderr
        else:
            assert r.stdout.strip() == "", f"{argv}: unexpected stdout {r.stdout!r}"
            _one_located_line(r.stderr, case, argv, "error")
        if case.id == "alias-bomb":
            # CPU time, not wall time: parallel test workers must not make this flaky
            assert cpu < 2.0, f"alias bomb took {cpu:.2f}s of CPU"
    assert tree_hash(tmp_path) == before, "a failed command changed files"


@pytest.mark.parametrize("argv", [a for _, a in AT_CASES], ids=[i for i, _ in AT_CASES])
def test_bad_at_value(argv, tmp_path):
    """A bad --at is a command-line error: there is no file to name, only the option."""
    make_state(tmp_path)
    before = tree_hash(tmp_path)
    r = run_cli(argv, tmp_path)
    _check_no_crash(r, argv)
    assert r.stdout.strip() == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: --at: bad timestamp"), lines[0]
    assert tree_hash(tmp_path) == before


def test_case_count():
    assert len(CASES) + len(AT_CASES) >= 45
    assert len({_id(c) for c in CASES}) == len(CASES)


def test_alias_bomb_fails_fast_in_process():
    from reconciler.core.errors import PausectlError
    from reconciler.state.yamlload import load_yaml_bytes
    t0 = time.monotonic()
    with pytest.raises(PausectlError) as ei:
        load_yaml_bytes(BILLION_LAUGHS.encode(), "bomb.yaml")
    assert time.monotonic() - t0 < 2.0
    assert ei.value.line == 6 and "alias" in ei.value.message


def test_base_repo_is_clean(tmp_path):
    """The base every case mutates is valid and warning-free (so one mutation = one problem)."""
    make_state(tmp_path)
    r = run_cli(["validate"], tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip() == "state repo is valid", r.stdout + r.stderr
    for env in ("prod", "staging"):
        r = run_cli(["plan", env], tmp_path)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "warning" not in r.stdout


def test_python_tag_has_no_side_effect(tmp_path):
    make_state(tmp_path, prod('reason: "vendor outage"',
                              'reason: !!python/object/apply:os.system ["touch pwned"]'))
    run_cli(["validate"], tmp_path)
    run_cli(["plan", "prod"], tmp_path)
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "state" / "pwned").exists()
