"""Capabilities by version, the one event-log normalisation, and the bulk path's term
building: pure functions, no server (the same facts are measured on every real version in
tests/live/test_capabilities_live.py). The event rows are the exact shapes each writer produces,
copied from Airflow's source (docs/airflow-versions.md names the functions)."""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta, timezone

import pytest

from reconciler.live import bulk
from reconciler.live.capabilities import MEASURED, capabilities_for, for_orm, parse_version
from reconciler.live.events import (attribute, command_line, ilike_matches, normalise,
                                        parse_extra, prefix_matches)

T0 = datetime(2026, 3, 1, tzinfo=timezone.utc)

# version -> (bulk_scope, pattern_or, prefix_pattern, event_is_paused_trusted), as read in
# each version's source (docs/airflow-versions.md)
TABLE = {
    "2.9.3": ("page", False, False, True), "2.10.5": ("page", False, False, True),
    "2.11.2": ("page", False, False, True), "3.0.6": ("page", False, False, False),
    "3.1.8": ("page", False, False, True), "3.2.1": ("page", True, False, True),
    "3.2.2": ("all", True, True, True), "3.3.2": ("all", True, True, True),
}


@pytest.mark.parametrize("version", MEASURED)
def test_capabilities_of_every_measured_version(version):
    api = "v1" if version.startswith("2.") else "v2"
    c = capabilities_for(version, api)
    assert (c.bulk_scope, c.pattern_or, c.prefix_pattern, c.event_is_paused_trusted) == \
        TABLE[version]
    assert c.supported and c.measured and c.auto_pause
    assert c.bulk_paused_filter is (api == "v2")      # AF2's PATCH /dags has no `paused`
    assert c.bulk_ordered is (api == "v1")            # AF2 orders its page by dag_id
    assert c.auth == (("jwt",) if api == "v2" else ("session", "basic"))
    # 3.1+ GET /eventLogs hides rows whose dag_id is no DAG (PermittedEventLogFilter)
    assert c.event_regex_rows is (version in ("2.9.3", "2.10.5", "2.11.2", "3.0.6"))
    assert for_orm(version).event_regex_rows                   # the DB shows every row
    assert c.to_json()["bulk_strategy"] == c.bulk_strategy


def test_versions_between_and_beyond_the_measured_ones_are_conservative():
    assert parse_version("3.2.2rc1") == (3, 2, 2, 0)
    assert parse_version("2.10.5+composer") == (2, 10, 5, 1)
    assert parse_version("3.3.0.dev0") == (3, 3, 0, 0) and parse_version("nope") is None
    assert capabilities_for("3.2.2rc1", "v2").bulk_scope == "page"    # before the fix
    assert capabilities_for("3.2.0", "v2").pattern_or is False         # not read: as 3.1.8
    assert capabilities_for("3.0.0", "v2").event_is_paused_trusted is False
    assert capabilities_for("3.4.1", "v2").bulk_all and not capabilities_for("3.4.1",
                                                                              "v2").supported
    unknown = capabilities_for(None, "v2")
    assert (unknown.bulk_scope, unknown.pattern_or, unknown.prefix_pattern) == \
        ("page", False, False) and not unknown.supported
    assert not capabilities_for("2.8.4", "v1").auto_pause
    assert for_orm("2.11.2").api == "v1" and for_orm("3.1.8").api == "v2"


# ------------------------------------------------------------------ event rows, per writer

def ev(name, dag_id, owner, extra, version="3.3.2", minutes=0):
    api = "v1" if version.startswith("2.") else "v2"
    return normalise(name, dag_id, owner, T0 + timedelta(minutes=minutes), extra,
                     capabilities_for(version, api))


@pytest.mark.parametrize("version", MEASURED)
def test_the_schedulers_auto_pause_is_via_airflow(version):
    # airflow/models/dagrun.py DagRun._check_last_n_dagruns_failed, 2.9.3 .. 3.3.2
    e = ev("paused", "etl_x", "scheduler", "[('dag_id', 'etl_x'), ('is_paused', True)]",
           version)
    assert (e.dag_id, e.event, e.via, e.user, e.is_paused, e.detail) == \
        ("etl_x", "paused", "airflow", "scheduler", True, "auto-paused by Airflow")
    assert e.describe() == "auto-paused by Airflow (scheduler) at 2026-03-01T00:00:00+00:00"


def test_af2_ui_toggle_is_a_user_not_the_scheduler():
    # airflow/www/views.py Airflow.paused + www/decorators.py action_logging (AF2)
    e = ev("paused", "etl_x", "scheduler", '{"is_paused": true}', "2.11.2")
    assert (e.via, e.event, e.is_paused) == ("api", "patch_dag", True)   # a user named so
    e = ev("paused", "etl_x", "alice", '{"is_paused": false}', "2.9.3")
    assert (e.via, e.user, e.is_paused) == ("api", "alice", False)


def test_rest_events_af2_prefixes_and_af3_names():
    a = ev("api.patch_dag", "d", "alice", '{"update_mask": "is_paused", "is_paused": true}',
           "2.10.5")
    u = ev("ui.patch_dags", None, "bob", '{"dag_id_pattern": "etl_", "is_paused": false}',
           "2.10.5")
    assert (a.via, a.is_paused, a.event) == ("api", True, "patch_dag")
    assert (u.via, u.dag_id, u.pattern, u.pattern_kind, u.is_paused) == \
        ("bulk", None, "etl_", "ilike", False)
    p = ev("patch_dags", None, "carol", '{"dag_id_prefix_pattern": "etl_0", "paused": "false",'
           ' "is_paused": true, "method": "PATCH"}', "3.3.2")
    assert (p.pattern, p.pattern_kind, p.detail) == ("etl_0", "prefix", "etl_0")
    assert ev("trigger_dag_run", "d", "x", "{}") is None


def test_3_0_x_event_values_are_not_trusted():
    # api_fastapi/logging/decorators.py 3.0.6: params["is_paused"] == "false" on a JSON bool
    # is always False (apache/airflow #55074); 3.1.8 logs the value itself
    assert ev("patch_dag", "d", "a", '{"is_paused": false, "method": "PATCH"}',
              "3.0.6").is_paused is None
    assert ev("patch_dags", None, "a", '{"dag_id_pattern": "x", "is_paused": false}',
              "3.0.6").is_paused is None
    assert ev("patch_dag", "d", "a", '{"is_paused": true, "method": "PATCH"}',
              "3.1.8").is_paused is True


def test_cli_events_plain_and_regex():
    # utils/cli_action_loggers.py default_action_log: extra {"host_name", "full_command"}
    plain = ev("cli_dag_pause", "etl_001", "root", '{"host_name": "vm", "full_command": '
               '"[\'/venv/bin/airflow\', \'dags\', \'pause\', \'etl_001\', \'-y\']"}')
    assert (plain.via, plain.dag_id, plain.is_paused, plain.pattern) == \
        ("cli", "etl_001", True, None)
    assert plain.detail == "airflow dags pause etl_001 -y"
    rx = ev("cli_dag_unpause", "^etl_00[12]$", "root", '{"full_command": "[\'airflow\', '
            '\'dags\', \'unpause\', \'^etl_00[12]$\', \'--treat-dag-id-as-regex\', \'-y\']"}')
    assert (rx.dag_id, rx.pattern, rx.pattern_kind, rx.is_paused) == \
        (None, "^etl_00[12]$", "regex", False)
    assert "regex '^etl_00[12]$'" in rx.describe()
    abbrev = ev("cli_dag_pause", "x.*", "root", '{"full_command": "[\'airflow\', \'dags\', '
                '\'pause\', \'x.*\', \'--treat-dag-id\']"}')
    assert abbrev.pattern_kind == "regex"         # argparse accepts the abbreviation


def test_no_user_recorded_is_said():
    # AF3 all-admins mode: SimpleAuthManagerLogin._create_anonymous_admin_user "Anonymous"
    e = ev("patch_dag", "d", "Anonymous", '{"is_paused": true}')
    assert e.user == "Anonymous" and "all-admins mode" in e.describe()
    assert "not logged in" in ev("patch_dag", "d", "anonymous", "{}").describe()


def test_pausectl_rows_and_bad_extras():
    e = ev("pausectl.pause", "d", "bot", '{"is_paused": true, "source": "pausectl", '
           '"reason": "r"}')
    assert (e.via, e.is_paused, e.detail) == ("pausectl", True, "r")
    assert ev("pausectl.unpause", "d", "op", '{"source": "PauseDagsOperator"}').via == \
        "operator"
    for junk in ("not json", "[1, 2", "__import__('os')", "{'a': 1}", "", None, "[" * 5000):
        assert isinstance(parse_extra(junk)[0], dict)            # never evaluated, never raises
    assert parse_extra("[('dag_id', 'x'), ('is_paused', True)]") == (
        {"dag_id": "x", "is_paused": True}, True)
    assert command_line("['/a/b/airflow', 'dags', 'pause', 'it s']") == \
        "airflow dags pause 'it s'"


def test_attribution_of_pattern_events_to_the_dags_they_match():
    v2 = capabilities_for("3.3.2", "v2")
    rows = [ev("patch_dags", None, "a", '{"dag_id_pattern": "etl_0|ml", "is_paused": true}',
               minutes=3),
            ev("patch_dags", None, "b", '{"dag_id_prefix_pattern": "rep", "is_paused": true}',
               minutes=2),
            ev("cli_dag_pause", "^etl_00[1-2]$", "root", '{"full_command": "[\'airflow\', '
               '\'dags\', \'pause\', \'^etl_00[1-2]$\', \'--treat-dag-id-as-regex\']"}',
               minutes=1),
            ev("patch_dag", "etl_001", "c", '{"is_paused": false}')]
    out = attribute(rows, ["etl_001", "etl_009", "report_1", "ml_x", "other"], v2)
    got = {(e.dag_id, e.user) for e in out}
    assert got == {("etl_001", "a"), ("etl_009", "a"), ("ml_x", "a"), ("report_1", "b"),
                   ("etl_001", "root"), ("etl_001", "c")}
    assert [e.when for e in out] == sorted((e.when for e in out), reverse=True)
    assert attribute(rows, None, v2) == sorted(rows, key=lambda e: e.when, reverse=True)
    # AF2 and 3.0-3.1 take `|` literally
    assert not attribute(rows[:1], ["ml_x"], capabilities_for("3.1.8", "v2"))


# ------------------------------------------------------------------ matching emulation, terms

def test_prefix_emulation_follows_airflows_range_rules():
    # api_fastapi/common/parameters.py _PrefixPatternParam (3.2.2, 3.3.2)
    assert prefix_matches("etl_0", "etl_012") and not prefix_matches("etl_0", "etl_1")
    assert prefix_matches("etl_", "etlx")             # trailing `_` dropped: over-match
    assert prefix_matches("ab9", "abcz")              # 9 -> ':' is no alnum: [ab9, abd)
    assert not prefix_matches("Etl", "etl_1")         # case-sensitive
    assert prefix_matches("~", "anything") and prefix_matches("x|etl", "etl_1")
    assert ilike_matches("a_b", "AXB") and not ilike_matches("a|b", "a", or_terms=False)


@pytest.mark.parametrize("kind", ["ilike", "prefix"])
def test_compact_terms_cover_every_target_and_no_avoided_id(kind):
    rng = random.Random(11)
    words = ["etl", "report", "ml", "critical", "Etl", "e", "tl", "x_y", "a.b", "q-1", "z9"]
    match = bulk.term_matcher(kind)
    for _ in range(300):
        ids = sorted({f"{rng.choice(words)}{rng.choice(['_', '', '.', '-'])}"
                      f"{rng.randrange(0, 300)}" for _ in range(rng.randrange(2, 60))})
        avoid = [d for d in ids if rng.random() < 0.3]
        targets = [d for d in ids if d not in avoid]
        terms, rest = bulk.compact_terms(targets, avoid, kind)
        for d in avoid:
            assert not any(match(t, d) for t in terms), (kind, d, terms)
        for d in targets:
            assert d in rest or any(match(t, d) for t in terms), (kind, d, terms)
        assert len(terms) <= max(1, len(targets))
    assert bulk.compact_terms(["a", "b"], [], kind) == ([bulk.MATCH_ALL[kind]], [])
    assert bulk.compact_terms(["b", "a"], None, kind) == (["a", "b"], [])


def test_chunks_respect_the_pattern_length_and_or_support():
    terms = [f"t{i:03d}" for i in range(50)]
    chunks = bulk.chunk_terms(terms, 40, or_terms=True)
    assert all(len("%7C".join(c)) <= 40 for c in chunks) and sum(map(len, chunks)) == 50
    assert bulk.chunk_terms(terms, 40, or_terms=False) == [[t] for t in terms]
    assert bulk.chunk_terms(["x" * 50, "y"], 40, or_terms=True) == [["y"]]


def test_attribution_index_agrees_with_the_plain_emulation():
    rng = random.Random(5)
    alphabet = "ab_x1E"
    caps = capabilities_for("3.3.2", "v2")
    for _ in range(200):
        ids = sorted({"".join(rng.choice(alphabet) for _ in range(rng.randint(1, 6)))
                      for _ in range(30)})
        term = "".join(rng.choice(alphabet + "%") for _ in range(rng.randint(1, 4)))
        for kind, field in (("ilike", "dag_id_pattern"), ("prefix", "dag_id_prefix_pattern")):
            e = ev("patch_dags", None, "u", json.dumps({field: term}))
            got = {x.dag_id for x in attribute([e], ids, caps)}
            match = ilike_matches if kind == "ilike" else prefix_matches
            assert got == {d for d in ids if match(term, d)}, (kind, term)
