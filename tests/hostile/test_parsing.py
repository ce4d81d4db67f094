"""Bounded parsing through the real CLI: YAML 1.1 keys and values, alias bombs, numbers,
dates, durations, cron, time zones, snapshot types and JSON bounds, pathological globs, and
the numbers given on the command line.

State-file cases run `validate` and `plan prod`: exit 1, exactly one `file:line` naming the
line at fault, no traceback / internal error / secret, no file changed. Line numbers refer to
the base texts in tests/helpers.py (PROD_YAML: the dag entry's reason is line 7, the group's
match line 12, priority 16, windows 17; PAUSECTL_YAML: 13 is the first appended line).
"""

from __future__ import annotations

import json

import pytest

from hostile_cli import (assert_clean, assert_one_location, assert_option_error, base_repo, run,
                         tree_hash)
from helpers import PAUSECTL_YAML, PROD_YAML, dag, snapshot_json

PROD, CONFIG, SNAP = "state/prod.yaml", "state/pausectl.yaml", "state/snapshots/prod.json"
VALIDATE, PLAN = ["validate"], ["plan", "prod"]
BOTH = [VALIDATE, PLAN]


def prod(old: str, new: str) -> dict:
    assert PROD_YAML.count(old) == 1, old
    return {"prod.yaml": PROD_YAML.replace(old, new)}


def config_append(text: str) -> dict:
    return {"pausectl.yaml": PAUSECTL_YAML + text}


def window(cron: str = "0 2 * * SUN", duration: str = "2h", tz: str = "Europe/Berlin") -> dict:
    return prod('[{cron: "0 2 * * SUN", duration: 2h, timezone: Europe/Berlin}]',
                f'[{{cron: "{cron}", duration: "{duration}", timezone: "{tz}"}}]')


def _check(tmp_path, files, commands, file, line, msg, cpu_limit=None):
    base_repo(tmp_path, files)
    before = tree_hash(tmp_path)
    for argv in commands:
        r = run(argv, tmp_path)
        assert_clean(r, argv)
        assert_one_location(r, argv, file, line, msg)
        if cpu_limit is not None:
            assert r.cpu < cpu_limit, f"{argv}: {r.cpu:.2f}s of CPU"
    assert tree_hash(tmp_path) == before


# ---- YAML 1.1 keys: a key is a name, read as written ---------------------------------------

YAML11_KEYS = ["007", "1000", "yes", "no", "on", "off", "null", "True", "1e3", "0x1F",
               "2026-01-01", ".5", "0o17"]


@pytest.mark.parametrize("key", YAML11_KEYS)
def test_yaml11_key_is_its_source_text(key, tmp_path):
    """`dags: {007: ...}` decides the DAG "007" (not 7), `yes:` the DAG "yes" (not True)."""
    files = prod("  billing_daily:\n", f"  {key}:\n")
    files["snapshots/prod.json"] = snapshot_json(
        [dag(key, False), dag("etl_orders"), dag("report_daily", True)], "prod")
    base_repo(tmp_path, files)
    r = run(["plan", "prod", "--format", "json"], tmp_path)
    assert_clean(r, "plan", code=0)
    changes = {c["dag_id"]: c["action"] for c in json.loads(r.out)["changes"]}
    assert changes.get(key) == "pause", changes
    assert r.out.count(f'"dag_id": "{key}"') == 1


def test_sexagesimal_key_stays_text(tmp_path):
    """`1:30:` is the name "1:30" (YAML 1.1 would read 90): refused as a dag_id because of
    its ':', and the message shows what was written, not 90."""
    _check(tmp_path, prod("  billing_daily:\n", "  1:30:\n"), BOTH, PROD, 5,
           "invalid name '1:30'")


# ---- non-strings where a name is expected: an error at the line, with the quoted form -------

NAME_VALUES = {
    "dag-id-glob-int": (prod('dag_id: "etl_*"', "dag_id: [007]"), PROD, 12, 'quote it, "007"'),
    "dag-id-glob-float": (prod('dag_id: "etl_*"', "dag_id: [1.50]"), PROD, 12, '"1.50"'),
    "dag-id-glob-bool": (prod('dag_id: "etl_*"', "dag_id: [yes]"), PROD, 12, '"yes"'),
    "tag-int": (prod("tags: [etl]", "tags: [2024]"), PROD, 12, '"2024"'),
    "owner-null": (prod("tags: [etl]", "tags: [etl], owners: [null]"), PROD, 12, '"null"'),
    "owner-on": (prod("owner: team-billing", "owner: on"), PROD, 8, '"on"'),
    "reason-int": (prod('reason: "vendor outage"', "reason: 404"), PROD, 7, '"404"'),
    "group-name-int": (prod("name: etl-maintenance", "name: 007"), PROD, 11, '"007"'),
    "ticket-int": (prod("owner: team-billing", "owner: team-billing\n    ticket: 12345"),
                   PROD, 9, '"12345"'),
    "include-int": (prod("include: [common.yaml]", "include: [common.yaml, 2024]"), PROD, 2,
                    '"2024"'),
    "protect-int": ({"pausectl.yaml": PAUSECTL_YAML.replace('protect: ["critical_*"]',
                                                            "protect: [1000]")},
                    CONFIG, 12, '"1000"'),
    "canary-dag-int": (config_append("rollout: {canary: {dags: [007]}}\n"), CONFIG, 13,
                       '"007"'),
    "timezone-int": (prod("timezone: Europe/Berlin", "timezone: 0"), PROD, 17, '"0"'),
}


@pytest.mark.parametrize("name", list(NAME_VALUES))
def test_number_where_a_name_is_expected(name, tmp_path):
    files, file, line, msg = NAME_VALUES[name]
    _check(tmp_path, files, BOTH, file, line, msg)


# ---- numbers: finite, bounded ----------------------------------------------------------------

NUMBERS = {
    "priority-nan": (prod("priority: 10", "priority: .nan"), PROD, 16, "not a finite number"),
    "priority-inf": (prod("priority: 10", "priority: .inf"), PROD, 16, "not a finite number"),
    "priority-minus-inf": (prod("priority: 10", "priority: -.Inf"), PROD, 16, "finite"),
    "priority-float-overflow": (prod("priority: 10", "priority: 1.0e+999"), PROD, 16,
                                "out of range"),
    "priority-huge-int": (prod("priority: 10", "priority: " + "9" * 30), PROD, 16, "too large"),
    "priority-huge-hex": (prod("priority: 10", "priority: 0x" + "f" * 40), PROD, 16, "too large"),
    "priority-5000-digits": (prod("priority: 10", "priority: " + "7" * 5000), PROD, 16,
                             "too large"),
    "hold-hours-nan": (config_append("drift: {hold_manual_hours: .nan}\n"), CONFIG, 13, "finite"),
    "hold-hours-too-long": (config_append("drift: {hold_manual_hours: 100000}\n"), CONFIG, 13,
                            "maximum"),
    "wait-seconds-inf": (config_append("rollout: {gate: {wait_seconds: .inf}}\n"), CONFIG, 13,
                         "finite"),
    "wait-seconds-a-year": (config_append("rollout: {gate: {wait_seconds: 31536000}}\n"),
                            CONFIG, 13, "maximum"),
    "gate-timeout-huge": (config_append("rollout: {gate: {timeout_seconds: 1.0e+300}}\n"),
                          CONFIG, 13, "maximum"),
    "min-runs-huge": (config_append("rollout: {gate: {min_runs: 10000000}}\n"), CONFIG, 13,
                      "maximum"),
    "batch-zero": (config_append("rollout: {batches: [0]}\n"), CONFIG, 13, "minimum"),
    "batch-huge": (config_append("rollout: {batches: [2000000000]}\n"), CONFIG, 13, "maximum"),
    "batch-percent-over": (config_append('rollout: {batches: ["250%"]}\n'), CONFIG, 13,
                           "expected format"),
    "max-changes-huge": ({"pausectl.yaml": PAUSECTL_YAML.replace("max_changes: 50",
                                                                 "max_changes: 99000000")},
                         CONFIG, 11, "maximum"),
    "forgotten-days-huge": (config_append("lint: {forgotten_pause_days: 10000000}\n"), CONFIG,
                            13, "maximum"),
    "soak-hours-nan": (config_append("promotion: {soak_hours: .NaN}\n"), CONFIG, 13, "finite"),
    "webhook-timeout-huge": (config_append("notify: {webhooks: [{url_env: HOOK, timeout: 86400}]}\n"),
                             CONFIG, 13, "maximum"),
}


@pytest.mark.parametrize("name", list(NUMBERS))
def test_number_bounds(name, tmp_path):
    files, file, line, msg = NUMBERS[name]
    _check(tmp_path, files, BOTH, file, line, msg)


def test_backend_numbers_bounded(tmp_path):
    """An airflow-api backend's timeout/page_size: checked by validate (no server needed)."""
    files = {"pausectl.yaml": PAUSECTL_YAML.replace(
        "{type: snapshot, path: snapshots/prod.json}",
        '{type: airflow-api, url: "http://127.0.0.1:9", timeout: 1.0e+12}')}
    _check(tmp_path, files, [VALIDATE], CONFIG, 3, "maximum")


# ---- dates, durations, time zones -------------------------------------------------------------

TIMES = {
    "until-year-9999-west": (prod("until: 2030-01-01T00:00:00Z", "until: 9999-12-31T23:59:59-01:00"),
                             PROD, 9, "out of range"),
    "until-year-1": (prod("until: 2030-01-01T00:00:00Z", "until: 0001-01-01"), PROD, 9,
                     "out of range"),
    "until-far-future": (prod("until: 2030-01-01T00:00:00Z", "until: 8999-12-31T23:00:00-05:00"),
                         PROD, 9, "out of range"),
    "from-before-1970": (prod("until: 2030-01-01T00:00:00Z",
                              "until: 2030-01-01T00:00:00Z\n    from: 1960-01-01"), PROD, 10,
                         "out of range"),
    "until-hour-25": (prod("until: 2030-01-01T00:00:00Z", 'until: "2030-01-01T25:00:00Z"'),
                      PROD, 9, "bad timestamp"),
    "duration-over-a-year": (window(duration="400d"), PROD, 17, "longer than 366d"),
    "duration-20-digits": (window(duration="99999999999999999999d"), PROD, 17, "longer than"),
    "duration-huge-minutes": (window(duration="1d99999999999m"), PROD, 17, "longer than"),
    "tz-directory": (window(tz="Europe"), PROD, 17, "unknown time zone"),
    "tz-path-traversal": (window(tz="../../../../etc/passwd"), PROD, 17, "unknown time zone"),
    "tz-absolute-file": (window(tz="/etc/localtime"), PROD, 17, "unknown time zone"),
    "tz-too-long": (window(tz="A" * 100), PROD, 17, "too long"),
}


@pytest.mark.parametrize("name", list(TIMES))
def test_time_bounds(name, tmp_path):
    files, file, line, msg = TIMES[name]
    _check(tmp_path, files, BOTH, file, line, msg)


# ---- cron: aliases accepted, @reboot and crons that never fire refused ----------------------

BAD_CRONS = {
    "reboot": ("@reboot", "@reboot has no time"),
    "feb-30": ("0 0 30 2 *", "never fires"),
    "april-31": ("0 0 31 4 *", "never fires"),
    "31st-of-short-months": ("0 0 31 2,4,6,9,11 *", "never fires"),
    "unknown-alias": ("@every 5m", "bad cron"),
    "six-fields": ("0 0 2 * * SUN", "5 fields"),
    "step-zero": ("*/0 * * * *", "bad cron"),
}


@pytest.mark.parametrize("name", list(BAD_CRONS))
def test_bad_cron_at_its_line(name, tmp_path):
    cron, msg = BAD_CRONS[name]
    _check(tmp_path, window(cron=cron), BOTH, PROD, 17, msg)


def test_never_firing_budget_cron_in_pausectl_yaml(tmp_path):
    files = config_append('budgets:\n  never:\n    windows: [{cron: "0 0 30 2 *", duration: 1h}]\n')
    _check(tmp_path, files, BOTH, CONFIG, 15, "never fires")


ALIASES = ["@hourly", "@daily", "@midnight", "@weekly", "@monthly", "@yearly", "@annually"]


@pytest.mark.parametrize("alias", ALIASES)
def test_cron_alias_accepted(alias, tmp_path):
    """The window opens at the alias's fire time: a transition for etl_orders within the
    horizon (a year for @yearly/@annually)."""
    base_repo(tmp_path, window(cron=alias, duration="30m"))
    r = run(["validate"], tmp_path)
    assert_clean(r, "validate", code=0)
    horizon = "366d" if alias in ("@monthly", "@yearly", "@annually") else "8d"
    r = run(["schedule", "prod", "--at", "2026-03-10T00:30:00Z", "--next", horizon, "--format",
             "json"], tmp_path)
    assert_clean(r, "schedule", code=0)
    pauses = [t for t in json.loads(r.out)["transitions"]
              if t["dag_id"] == "etl_orders" and t["action"] == "pause"]
    assert pauses, r.out


def test_schedule_with_too_many_boundaries_is_refused(tmp_path):
    """A window every minute over a year: 1M boundaries, each a full resolve (hours of CPU)."""
    _check(tmp_path, window(cron="*/2 * * * *", duration="1m"),
           [["schedule", "prod", "--next", "366d"]], PROD, 11, "shorter --next", cpu_limit=5.0)


# ---- alias bombs fail fast ---------------------------------------------------------------------

BIG = "x" * 1_000_000


def _big_anchor(use: str) -> dict:
    """The dag entry's reason is a 1 MB anchored scalar; `use` aliases it (3,000 times)."""
    files = prod('reason: "vendor outage"', f'reason: &a "{BIG}"')
    text = files["prod.yaml"]
    return {"prod.yaml": text.replace(*use.split("|", 1))}


ALIAS_BOMBS = {
    # 3,000 x 1 MB through aliases: before the cap, `dag_id` ran > 5 minutes, `ticket` 70 s
    "large-scalar-in-glob-list": (_big_anchor('dag_id: "etl_*"|dag_id: [' + ", ".join(["*a"] * 3000) + "]"),
                                  PROD, 12),
    "large-scalar-in-tags": (_big_anchor("tags: [etl]|tags: [" + ", ".join(["*a"] * 3000) + "]"),
                             PROD, 12),
    "large-scalar-in-ticket": (_big_anchor("    priority: 10|    priority: 10\n    ticket: ["
                                           + ", ".join(["*a"] * 3000) + "]"), PROD, 17),
    "large-scalar-as-mapping-values": (_big_anchor(
        "groups:|lots: {" + ", ".join(f"k{i}: *a" for i in range(3000)) + "}\ngroups:"),
        PROD, 10),
    "nested-list-of-large-scalars": ({"prod.yaml": PROD_YAML.replace(
        'reason: "vendor outage"', 'reason: "vendor outage"\n    x: &l ["' + "y" * 200_000
        + '", "' + "z" * 200_000 + '"]').replace(
        "    priority: 10", "    priority: 10\n    ticket: [" + ", ".join(["*l"] * 500) + "]")},
        PROD, 18),
    "billion-laughs": ({"prod.yaml": "environment: prod\n" + "".join(
        f"l{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9 if i else ['"lol"'] * 9) + "]\n"
        for i in range(9))}, PROD, 6),
}


@pytest.mark.parametrize("name", list(ALIAS_BOMBS))
def test_alias_bomb_fails_fast(name, tmp_path):
    files, file, line = ALIAS_BOMBS[name]
    _check(tmp_path, files, BOTH, file, line, "alias bomb", cpu_limit=2.0)


def test_one_huge_scalar_refused(tmp_path):
    files = prod('reason: "vendor outage"', 'reason: "' + "r" * 1_100_000 + '"')
    _check(tmp_path, files, BOTH, PROD, 7, "characters (at most", cpu_limit=2.0)


# ---- snapshots: booleans are booleans, JSON bounded -------------------------------------------

SNAPSHOT = """\
{"environment": "prod", "dags": [
 {"dag_id": "billing_daily", "is_paused": false, "tags": ["billing"], "owners": ["team-billing"]},
 {"dag_id": "etl_orders", "is_paused": false, "tags": ["etl"], "owners": ["data-eng"]},
 {"dag_id": "report_daily", "is_paused": true, "tags": ["reporting"], "owners": ["analytics"]}
]}
"""


def snap(old: str, new: str) -> dict:
    assert SNAPSHOT.count(old) == 1, old
    return {"snapshots/prod.json": SNAPSHOT.replace(old, new)}


def field(text: str) -> dict:
    """One more field on etl_orders (line 3)."""
    return snap('"owners": ["data-eng"]}', '"owners": ["data-eng"], ' + text + "}")


SNAPSHOTS = {
    "is-paused-string-false": (snap('"etl_orders", "is_paused": false', '"etl_orders", "is_paused": "false"'), 3, "is_paused"),
    "is-paused-string-true": (snap('"etl_orders", "is_paused": false', '"etl_orders", "is_paused": "true"'), 3, "is_paused"),
    "is-paused-zero": (snap('"etl_orders", "is_paused": false', '"etl_orders", "is_paused": 0'), 3, "boolean"),
    "is-paused-one": (snap('"etl_orders", "is_paused": false', '"etl_orders", "is_paused": 1'), 3, "boolean"),
    "is-paused-null": (snap('"etl_orders", "is_paused": false', '"etl_orders", "is_paused": null'), 3, "boolean"),
    "is-stale-string": (field('"is_stale": "false"'), 3, "is_stale"),
    "import-errors-string": (field('"has_import_errors": "no"'), 3, "has_import_errors"),
    "tags-a-string": (snap('"tags": ["etl"]', '"tags": "etl"'), 3, "list of strings"),
    "owner-a-number": (snap('"owners": ["data-eng"]', '"owners": [7]'), 3, "list of strings"),
    "dag-id-a-number": (snap('"dag_id": "etl_orders"', '"dag_id": 7'), 3, "dag_id"),
    "dag-id-empty": (snap('"dag_id": "etl_orders"', '"dag_id": ""'), 3, "non-empty string"),
    "fileloc-object": (field('"fileloc": {"a": 1}'), 3, "fileloc"),
    "max-active-runs-bool": (field('"max_active_runs": true'), 3, "max_active_runs"),
    "max-active-runs-negative": (field('"max_active_runs": -5'), 3, "max_active_runs"),
    "nan": (field('"max_active_runs": NaN'), 3, "NaN is not valid JSON"),
    "infinity": (field('"x": Infinity'), 3, "Infinity"),
    "minus-infinity": (field('"x": [1, -Infinity]'), 3, "-Infinity"),
    "float-overflow": (field('"max_active_runs": 1e999'), 3, "out of range"),
    "huge-int": (field('"max_active_runs": ' + "9" * 40), 3, "integer too large"),
    "int-of-5000-digits": (field('"x": ' + "1" * 5000), 3, "integer too large"),
    "deep-nesting-in-extra-field": (field('"x": ' + "[" * 100 + "]" * 100), 3, "nested deeper"),
    "deep-nesting-unclosed": ({"snapshots/prod.json": "[" * 200_000}, 1, "nested deeper"),
    "not-utf8": ({"snapshots/prod.json": SNAPSHOT.encode().replace(b"etl_orders", b"etl_\xff")},
                 3, "UTF-8"),
}


@pytest.mark.parametrize("name", list(SNAPSHOTS))
def test_snapshot_values(name, tmp_path):
    files, line, msg = SNAPSHOTS[name]
    _check(tmp_path, files, [PLAN, ["explain", "prod", "etl_orders"]], SNAP, line, msg,
           cpu_limit=2.0)


def test_snapshot_with_bom_is_read(tmp_path):
    base_repo(tmp_path, {"snapshots/prod.json": "\ufeff" + SNAPSHOT})
    assert_clean(run(PLAN, tmp_path), PLAN, code=0)


# ---- globs never backtrack -------------------------------------------------------------------

EVIL = "*a" * 14 + "*b"      # the old regex `.*a.*a...b` took 8.5 s on 30 `a`s, growing as n^14


@pytest.mark.parametrize("where", ["group", "protect", "canary"])
def test_pathological_glob_is_linear(where, tmp_path):
    dags = [dag("a" * n) for n in (40, 120, 250)] + [dag("billing_daily"), dag("etl_orders"),
                                                      dag("report_daily", True)]
    files = {"snapshots/prod.json": snapshot_json(dags, "prod")}
    if where == "group":
        files |= prod('dag_id: "etl_*"', f'dag_id: "{EVIL}"')
    elif where == "protect":
        files["pausectl.yaml"] = PAUSECTL_YAML.replace('"critical_*"', f'"{EVIL}"')
    else:
        files["pausectl.yaml"] = PAUSECTL_YAML + f'rollout: {{canary: {{dag_id: "{EVIL}"}}}}\n'
    base_repo(tmp_path, files)
    r = run(["plan", "prod", "--format", "json"], tmp_path, timeout=10)
    assert_clean(r, "plan", code=0)
    assert r.cpu < 2.0, f"{r.cpu:.2f}s of CPU"


# ---- numbers and times on the command line ---------------------------------------------------

CLI_VALUES = [
    (["apply", "prod", "--yes", "--wait-seconds", "nan"], "Invalid value for '--wait-seconds'"),
    (["apply", "prod", "--yes", "--wait-seconds", "inf"], "Invalid value for '--wait-seconds'"),
    (["apply", "prod", "--yes", "--wait-seconds", "-1"], "Invalid value for '--wait-seconds'"),
    (["apply", "prod", "--yes", "--wait-seconds", "1e9"], "Invalid value for '--wait-seconds'"),
    (["apply", "prod", "--yes", "--gate-timeout", "NaN"], "Invalid value for '--gate-timeout'"),
    (["apply", "prod", "--yes", "--min-runs", "1" + "0" * 30], "Invalid value for '--min-runs'"),
    (["apply", "prod", "--yes", "--max-failed-runs", "-3"], "Invalid value for '--max-failed-runs'"),
]


@pytest.mark.parametrize("argv", [a for a, _ in CLI_VALUES], ids=lambda a: "-".join(a[3:]))
def test_cli_number_refused_before_anything(argv, tmp_path):
    msg = dict((tuple(a), m) for a, m in CLI_VALUES)[tuple(argv)]
    base_repo(tmp_path)
    before = tree_hash(tmp_path)
    r = run(argv, tmp_path)
    assert_clean(r, argv)
    assert msg in r.both, r.both
    assert tree_hash(tmp_path) == before, "the snapshot changed: the apply ran"


CLI_ERRORS = [
    (["plan", "prod", "--at", "NaN"], "--at", "bad timestamp"),
    (["plan", "prod", "--at", "9999-12-31T23:59:59-01:00"], "--at", "out of range"),
    (["plan", "prod", "--at", "0001-01-01T00:00:00Z"], "--at", "out of range"),
    (["plan", "prod", "--at", "99999-01-01T00:00:00Z"], "--at", "bad timestamp"),
    (["explain", "prod", "etl_orders", "--at", "1e999"], "--at", "bad timestamp"),
    (["schedule", "prod", "--next", "400d"], "--next", "longer than 366d"),
    (["schedule", "prod", "--next", "9" * 25 + "d"], "--next", "longer than 366d"),
    (["schedule", "prod", "--next", "9" * 40 + "d"], "--next", "bad duration"),
    (["schedule", "prod", "--next", "0m"], "--next", "positive"),
    (["schedule", "prod", "--next", "inf"], "--next", "bad duration"),
    (["schedule", "prod", "--at", "9000-01-01T00:00:00Z", "--next", "366d"], "--at",
     "out of range"),
]


@pytest.mark.parametrize("argv,option,msg", CLI_ERRORS, ids=lambda v: str(v)[:30])
def test_cli_time_refused(argv, option, msg, tmp_path):
    base_repo(tmp_path)
    r = run(argv, tmp_path)
    assert_clean(r, argv)
    assert_option_error(r, argv, option, msg)


BAD_BATCHES = ["²", "9" * 5000, "0", "101%", "1,,2", "-1", "1.5", "25 %"]


@pytest.mark.parametrize("spec", BAD_BATCHES, ids=lambda s: s[:10])
def test_cli_batches_refused(spec, tmp_path):
    base_repo(tmp_path)
    before = tree_hash(tmp_path)
    r = run(["apply", "prod", "--yes", "--batches", spec], tmp_path)
    assert_clean(r, "apply --batches")
    assert "bad batch size" in r.err, r.err
    assert tree_hash(tmp_path) == before


# ---- Variables (the snapshot backend keeps them in <snapshot>.vars.json) --------------------

VARS = "snapshots/prod.json.vars.json"
MARKER = "pausectl.emergency.prod"
VARIABLES = {
    "marker-not-json": ({MARKER: "{oops"}, "corrupt"),
    "marker-deep": ({MARKER: "[" * 100_000}, "nested deeper"),
    "marker-nan": ({MARKER: '{"prior": {}, "reason": NaN}'}, "NaN"),
    "marker-huge-number": ({MARKER: '{"prior": {}, "n": ' + "9" * 5000 + "}"}, "too large"),
    "marker-a-list": ({MARKER: "[1, 2]"}, "corrupt"),
    "marker-prior-not-a-map": ({MARKER: '{"prior": [1]}'}, "corrupt"),
}


def _state_of(tmp_path) -> tuple:
    """Every file's hash, the Variables file by its content: an apply takes and releases its
    lock there (the snapshot backend's Airflow), which rewrites the file, not a Variable."""
    files = tree_hash(tmp_path)
    files.pop("state/" + VARS, None)
    return files, json.loads((tmp_path / "state" / VARS).read_text())


@pytest.mark.parametrize("name", list(VARIABLES))
def test_hostile_variable(name, tmp_path):
    values, msg = VARIABLES[name]
    base_repo(tmp_path, {VARS: json.dumps(values)})
    before = _state_of(tmp_path)
    for argv in (PLAN, ["apply", "prod", "--yes"]):
        r = run(argv, tmp_path, timeout=10)
        assert_clean(r, argv)
        assert f"emergency marker {MARKER}" in r.err and msg in r.err, r.err
    assert _state_of(tmp_path) == before


@pytest.mark.parametrize("text,msg", [("[1]", "must map names to strings"),
                                      ('{"a": 1}', "must map names to strings"),
                                      ("[" * 5000, "nested deeper"),
                                      ('{"a": "x", "a2": NaN}', "NaN")],
                         ids=["a-list", "non-string-value", "deep", "nan"])
def test_hostile_variables_file(text, msg, tmp_path):
    base_repo(tmp_path, {VARS: text})
    before = tree_hash(tmp_path)
    r = run(PLAN, tmp_path)
    assert_clean(r, PLAN)
    assert_one_location(r, PLAN, "state/" + VARS, 1, msg)
    assert tree_hash(tmp_path) == before


def test_deep_lock_variable_is_an_unreadable_lock(tmp_path):
    base_repo(tmp_path, {VARS: json.dumps({"pausectl.lock.prod": "[" * 100_000})})
    before = _state_of(tmp_path)
    r = run(["apply", "prod", "--yes"], tmp_path)
    assert_clean(r, "apply")
    assert "locked by unreadable lock" in r.err, r.err
    assert _state_of(tmp_path) == before
