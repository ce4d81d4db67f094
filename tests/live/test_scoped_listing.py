"""A plan lists only the DAGs its rules can match (policy/scope.py) when nothing else is in
the plan: the same plan as with the whole listing, in fewer rows and requests, against real
Airflow 3.3.2 and 2.11.2; and the states that must still list everything."""

from __future__ import annotations

import json

import httpx
import pytest

from helpers import db_states, main_captured, set_states, write_files
from reconciler.policy import scope
from reconciler.state.model import Defaults, EnvState, Rule
from reconciler.policy.selectors import Selector


def _state(unmanaged="ignore", dags=(), globs=None, tags=None, cascade="none", sensors=None):
    st = EnvState("e", "e.yaml", defaults=Defaults(unmanaged=unmanaged), sensors=sensors or {})
    for d in dags:
        st.dag_rules[d] = [Rule("dag", d, True, "e.yaml:1", cascade=cascade)]
    if globs is not None or tags is not None:
        spec = {k: v for k, v in (("dag_id", globs), ("tags", tags)) if v}
        st.groups.append(Rule("group", "g", True, "e.yaml:2", selector=Selector.from_spec(spec)))
    return st


def test_terms_come_from_ids_and_globs_and_are_compacted():
    st = _state(dags=[f"ml_b{i:05d}" for i in range(1000)], globs=["etl_*", "*_daily_?"])
    # the longest common prefixes that fit (ml_b0000..ml_b0099: 100 + 2 terms)
    assert scope.listing_terms(st, 200) == sorted(
        {f"ml_b{i:04d}" for i in range(100)} | {"etl_", "_daily_"})
    # without `|`, 4 terms at most: the ids share "ml_b00" (every term cut to 6 characters)
    assert scope.listing_terms(st, 4) == ["_daily", "etl_", "ml_b00"]
    assert scope.listing_terms(_state(dags=["a_1", "xa_1y"]), 10) == ["a_1"]   # substring


@pytest.mark.parametrize("st", [
    _state(unmanaged="report", dags=["etl_000"]),          # unmanaged DAGs are in the plan
    _state(dags=["etl_000"], cascade="downstream"),        # a cascade follows edges anywhere
    _state(dags=["etl_000"], sensors={"etl_000": ["x"]}),
    _state(tags=["etl"]),                                  # by tag alone: any DAG
    _state(globs=["e*"]),                                  # "e": most of a server
    _state(dags=[f"{c}{d}xyz" for c in "abcdefgh" for d in "abcdefgh"]),   # nothing fits 4
])
def test_states_that_can_match_more_list_everything(st):
    assert scope.listing_terms(st, 4) is None


def _repo(tmp_path, server, dags: str, groups: str = ""):
    write_files(tmp_path / "state", {
        "pausectl.yaml": (
            "environments:\n  af:\n    backend: {type: airflow-api, url: '%s', auth: "
            "password-token, username_env: SC_USER, password_env: SC_PASS}\n"
            "rollout: {batches: ['100%%'], gate: {wait_seconds: 0}}\n" % server.url),
        "af.yaml": "environment: af\ndefaults: {unmanaged: ignore}\ndags:\n" + dags + groups})
    return tmp_path


def _run(root, args, capsys, monkeypatch, server):
    """main() in this process; also the URLs of its GET /dags requests, from the transport."""
    monkeypatch.setenv("SC_USER", server.username)
    monkeypatch.setenv("SC_PASS", server.password)
    gets: list[str] = []
    real = httpx.HTTPTransport.handle_request

    def handle(self, request):
        if request.method == "GET" and request.url.path.endswith("/dags") and \
                request.url.params.get("order_by") == "dag_id":     # listing pages, not probes
            gets.append(str(request.url))
        return real(self, request)
    monkeypatch.setattr(httpx.HTTPTransport, "handle_request", handle)
    code, out, err = main_captured(root, args, capsys, monkeypatch)
    monkeypatch.setattr(httpx.HTTPTransport, "handle_request", real)
    return code, out, err, gets


@pytest.mark.airflow
def test_a_scoped_plan_equals_the_full_one_and_apply_changes_exactly_it(
        airflow_server, tmp_path, capsys, monkeypatch):
    server = airflow_server
    server.reset()
    set_states(server, {"report_003": False, "ml_007": False, "etl_010": False})
    root = _repo(tmp_path, server,
                 "  etl_010: {paused: true, reason: r, owner: o}\n"
                 "  report_003: {paused: false}\n  misc_orphan: {paused: false}\n"
                 "  no_such_dag_x: {paused: false}\n",
                 "groups:\n  - {name: ml, match: {dag_id: 'ml_00*'}, paused: false}\n")
    args = ["plan", "af", "--format", "json", "--at", "2026-12-02T00:00:00Z"]
    code, scoped, err, gets = _run(root, args, capsys, monkeypatch, server)
    assert code == 0, err
    # every listing request carried a pattern: no full listing of the 154 DAGs
    assert gets and all("dag_id_pattern=" in u for u in gets), gets
    monkeypatch.setattr(scope, "listing_terms", lambda *a, **k: None)
    code, full, _, all_gets = _run(root, args, capsys, monkeypatch, server)
    monkeypatch.undo()
    assert code == 0 and not any("dag_id_pattern=" in u for u in all_gets)
    a, b = json.loads(scoped), json.loads(full)
    assert a.pop("live_hash") != b.pop("live_hash")      # the hash of what was read
    a.pop("generated_at"), b.pop("generated_at")
    assert a == b
    assert [m["dag_id"] for m in a["missing"]] == ["no_such_dag_x"]
    assert {c["dag_id"] for c in a["changes"]} == {"etl_010", "misc_orphan"} | {
        f"ml_00{i}" for i in range(10) if i != 7}
    before = db_states(server)
    code, _, err, _ = _run(root, ["apply", "af", "--yes"], capsys, monkeypatch, server)
    assert code == 0, err
    after = db_states(server)
    changed = {d for d in after if after[d] != before[d]}
    assert changed == {c["dag_id"] for c in a["changes"]}
