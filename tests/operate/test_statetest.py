"""`pausectl test`: the example state's own tests pass (run here, so CI runs them), every kind
of assertion fails with its file:line, expected vs got and the deciding rule, in text, json and
github output; a malformed test file is one line and exit 1; `--live` uses the environment's
backend instead of the test's own live state. No Airflow: snapshots and inline DAGs."""

from __future__ import annotations

import json
import shutil

import pytest

try:
    from helpers import BASE_FILES, EXAMPLE_STATE, REPO, main_captured
except ImportError:  # pragma: no cover
    from tests.helpers import BASE_FILES, EXAMPLE_STATE, REPO, main_captured

# BASE_FILES' prod: etl-maintenance (prod.yaml:11) pauses tag etl on Sundays 02:00-04:00
# Berlin; billing_daily is paused by its dag entry (prod.yaml:5); report_* runs (common.yaml)
FAILING = """\
tests:
  - name: wrong on purpose
    environment: prod
    at: "2026-12-06T02:30"
    timezone: Europe/Berlin
    expect:
      dags:
        etl_orders: running
        billing_daily: {rule: reporting}
        report_daily: {state: running, batch: 2}
        ghost_dag: paused
      conflicts: [etl_orders]
      summary: {pause: 7}
"""

PASSING = """\
tests:
  - name: the window pauses etl
    environment: prod
    at: "2026-12-06T02:30"
    timezone: Europe/Berlin
    expect:
      dags:
        etl_orders: {state: paused, rule: "prod.yaml:11", batch: 1}
        billing_daily: {state: paused, rule: dag entry billing_daily}
        report_daily: {state: running, rule: reporting, batch: 1}
      conflicts: []
      summary: {pause: 2, unpause: 1}
  - name: outside the window etl runs
    environment: prod
    at: "2026-12-06T04:00:00+01:00"
    expect:
      dags: {etl_orders: running}
"""


def _check_result_schema(data: dict) -> None:
    """`--format json` is described by statetest.schema.json's $defs.result."""
    import jsonschema
    schema = json.loads((REPO / "schemas" / "statetest.schema.json").read_text())
    jsonschema.validate(data, {**schema["$defs"]["result"], "$defs": schema["$defs"]})


@pytest.fixture
def repo(pausectl_state):
    return pausectl_state(dict(BASE_FILES))


def run(cwd, args, capsys, monkeypatch):
    return main_captured(cwd, ["test", *args], capsys, monkeypatch)


def test_the_example_state_tests_pass(tmp_path, capsys, monkeypatch):
    # a copy: the example's snapshot backends must not gain lock files from a test
    shutil.copytree(EXAMPLE_STATE, tmp_path / "state")
    code, out, err = run(tmp_path, ["--verbose"], capsys, monkeypatch)
    assert code == 0, out + err
    assert "all passed" in out and "FAIL" not in out
    names = [line.split(": ok ", 1)[1] for line in out.splitlines() if ": ok " in line]
    assert any("sunday maintenance" in n for n in names) and len(names) >= 6


def test_passing_assertions_of_every_kind(repo, capsys, monkeypatch):
    repo.write({"tests/prod.yaml": PASSING})
    code, out, err = run(repo.root.parent, ["--format", "json"], capsys, monkeypatch)
    data = json.loads(out)
    assert code == 0, out + err
    _check_result_schema(data)
    assert (data["tests"], data["passed"], data["failed"]) == (2, 2, 0)
    assert data["checks"] == 12
    # the wall-clock time in Berlin became the UTC instant
    assert data["results"][0]["at"] == "2026-12-06T01:30:00Z"


def test_every_kind_of_failure_names_its_line_expected_got_and_rule(repo, capsys, monkeypatch):
    repo.write({"tests/prod.yaml": FAILING})
    code, out, err = run(repo.root.parent, [], capsys, monkeypatch)
    assert code == 1
    lines = out.splitlines()
    fails = [ln for ln in lines if " FAIL " in ln]
    assert len(fails) == 6, out
    f = "state/tests/prod.yaml"
    assert f"{f}:8: FAIL [wrong on purpose] etl_orders: expected running, got paused" in out
    # the deciding rule follows on the next line
    i = lines.index(next(ln for ln in lines if ln.startswith(f"{f}:8:")))
    assert lines[i + 1].startswith("    deciding rule: group etl-maintenance (state/prod.yaml:11)")
    assert f"{f}:9: FAIL [wrong on purpose] billing_daily rule: expected reporting, got " \
           "dag entry billing_daily (state/prod.yaml:5)" in out
    assert f"{f}:10: FAIL [wrong on purpose] report_daily batch: expected 2, got 1" in out
    assert f"{f}:11: FAIL [wrong on purpose] ghost_dag: expected paused, got absent" in out
    assert f"{f}:12: FAIL [wrong on purpose] conflicts: expected ['etl_orders'], got none" in out
    assert f"{f}:13: FAIL [wrong on purpose] summary.pause: expected 7, got 2" in out
    assert "1 of 1 test(s) failed (6 of " in err


def test_github_annotations_are_neutralised(repo, capsys, monkeypatch):
    hostile = FAILING.replace("wrong on purpose", "x%0A::warning::owned,\\r")
    repo.write({"tests/prod.yaml": hostile})
    code, out, _ = run(repo.root.parent, ["--format", "github"], capsys, monkeypatch)
    assert code == 1
    ann = [ln for ln in out.splitlines() if ln.startswith("::error ")]
    assert len(ann) == 6
    assert ann[0].startswith("::error file=state/tests/prod.yaml,line=8,title=pausectl test::")
    for line in ann:
        body = line.split("::", 2)[2]
        assert "::" not in body and "%0A" not in body.replace("%250A", "")
    assert not [ln for ln in out.splitlines() if ln.startswith("::warning")]


def test_expected_validation_errors(repo, capsys, monkeypatch):
    broken = "environment: prod\\ndags:\\n  billing_daily: {paused: true, reason: outage}\\n"
    repo.write({"tests/errors.yaml": f"""\
tests:
  - name: a pause needs an owner
    environment: prod
    files: {{prod.yaml: "{broken}"}}
    expect:
      errors: [{{message: "missing required key 'owner'", file: prod.yaml, line: 3}}]
  - name: wrong line expected
    environment: prod
    files: {{prod.yaml: "{broken}"}}
    expect:
      errors: [{{message: "missing required key 'owner'", line: 2}}]
  - name: the real state is valid
    environment: prod
    expect: {{errors: []}}
  - name: a broken state fails a plain assertion with its error
    environment: prod
    files: {{prod.yaml: "{broken}"}}
    expect: {{dags: {{billing_daily: paused}}}}
"""})
    code, out, err = run(repo.root.parent, ["--format", "json"], capsys, monkeypatch)
    assert code == 1, err
    _check_result_schema(json.loads(out))
    res = {r["name"]: r for r in json.loads(out)["results"]}
    assert res["a pause needs an owner"]["passed"]
    assert res["the real state is valid"]["passed"]
    wrong = res["wrong line expected"]["failures"][0]
    assert wrong["line"] == 11 and "prod.yaml:3: dags.billing_daily: missing required key" \
        in wrong["got"]
    broken_case = res["a broken state fails a plain assertion with its error"]["failures"][0]
    assert broken_case["subject"] == "state" and "state/prod.yaml:3" in broken_case["got"]
    # the scratch copy never touched the real file
    assert "team-billing" in (repo.root / "prod.yaml").read_text()


def test_inline_live_state_held_skipped_missing(repo, capsys, monkeypatch):
    repo.write({"pausectl.yaml": BASE_FILES["pausectl.yaml"] + "drift: {mode: report}\n",
                "tests/live.yaml": """\
tests:
  - name: a manual pause is kept, a stale DAG is never flipped
    environment: prod
    at: "2026-12-06T02:30:00+01:00"
    live:
      dags:
        - {dag_id: etl_orders, paused: false, tags: [etl]}
        - {dag_id: etl_gone, paused: false, tags: [etl], is_stale: true}
        - {dag_id: report_daily, paused: true}
      events:
        - {dag_id: report_daily, when: "2026-12-05T09:00:00Z", via: api, user: bob,
           is_paused: true}
    expect:
      dags:
        etl_orders: {state: paused, batch: 1}
        etl_gone: skipped
        report_daily: held
        billing_daily: missing
"""})
    code, out, err = run(repo.root.parent, [], capsys, monkeypatch)
    assert code == 0, out + err


def test_a_drained_pause_is_draining(repo, capsys, monkeypatch):
    repo.write({"tests/drain.yaml": """\
tests:
  - name: billing drains before it pauses
    environment: prod
    files:
      prod.yaml: |
        environment: prod
        dags:
          billing_daily: {paused: drain, reason: "vendor outage", owner: team-billing}
    expect:
      dags:
        billing_daily: draining
        etl_orders: unmanaged          # the replaced prod.yaml has no rule for it
"""})
    code, out, err = run(repo.root.parent, [], capsys, monkeypatch)
    assert code == 0, out + err


def test_live_uses_the_environments_backend(repo, capsys, monkeypatch):
    # the test's inline DAG says etl_orders does not exist; prod's snapshot has it
    repo.write({"tests/live.yaml": """\
tests:
  - name: etl_orders exists in prod
    environment: prod
    at: "2026-12-06T02:30:00+01:00"
    live: {dags: [{dag_id: other}]}
    expect: {dags: {etl_orders: paused}}
"""})
    code, out, _ = run(repo.root.parent, [], capsys, monkeypatch)
    assert code == 1 and "expected paused, got absent" in out
    code, out, err = run(repo.root.parent, ["--live"], capsys, monkeypatch)
    assert code == 0, out + err


@pytest.mark.parametrize("text,where,what", [
    ("tests:\n  - name: x\n    environment: prod\n    expect: {dags: {a: sleeping}}\n",
     ":4:", "is not one of"),
    ("tests:\n  - name: x\n    environment: prod\n    colour: red\n    expect: {summary: {}}\n",
     ":4:", "unknown key 'colour'"),
    ("tests:\n  - name: x\n    environment: prod\n    at: tomorrow\n    expect: {errors: []}\n",
     ":4:", "bad time 'tomorrow'"),
    (("tests:\n  - name: x\n    environment: prod\n    files: {a/../../../etc/x.yaml: ''}\n"
      "    expect: {errors: []}\n"), ":4:", "leaves the state repo"),
    (("tests:\n  - name: x\n    environment: prod\n    live: {snapshot: ../../etc/passwd}\n"
      "    expect: {dags: {a: paused}}\n"), ":4:", "outside"),
])
def test_a_malformed_test_file_is_one_line_and_exit_1(repo, capsys, monkeypatch, text, where,
                                                       what):
    repo.write({"tests/bad.yaml": text})
    code, out, err = run(repo.root.parent, [], capsys, monkeypatch)
    assert code == 1
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("error: ") and "state/tests/bad.yaml" + where in err and what in err, err
    assert "Traceback" not in err + out


def test_no_tests_and_a_missing_path(repo, capsys, monkeypatch):
    code, out, err = run(repo.root.parent, [], capsys, monkeypatch)
    assert code == 0 and "no state tests found" in out
    code, out, err = run(repo.root.parent, ["state/tests/nope.yaml"], capsys, monkeypatch)
    assert code == 1 and "state/tests/nope.yaml: test file not found" in err


def test_the_schema_ships_with_the_others():
    from reconciler.state.schema import SCHEMA_FILES, schema_dir
    assert "statetest.schema.json" in SCHEMA_FILES
    assert (schema_dir() / "statetest.schema.json").is_file()
    assert (REPO / "state" / "tests" / "prod.yaml").read_text().startswith(
        "# yaml-language-server: $schema=../../schemas/statetest.schema.json")
