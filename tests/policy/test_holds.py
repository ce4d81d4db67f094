"""Holds offline (snapshot backend): the CLI flow (hold, list, plan, release, expiry through
apply), safety.max_hold_hours, and the holds Variable as hostile input. Live AF3/AF2:
test_holds_live.py."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from helpers import BASE_DAGS, dag, make_state, run_inprocess, snapshot_json
from reconciler.policy import holds as H

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)
VARS = "state/snapshots/prod.json.vars.json"


def _cli(tmp_path, *args):
    return run_inprocess(list(args), tmp_path)


def _vars(tmp_path) -> dict:
    p = tmp_path / VARS
    return json.loads(p.read_text()) if p.exists() else {}


def _record(**over) -> dict:
    rec = {"dag_id": "etl_orders", "paused": True, "by": "alice", "reason": "INC-7",
           "since": "2026-12-01T10:00:00Z", "until": "2026-12-01T14:00:00Z", "renewals": 0}
    rec.update(over)
    return rec


def _text(*records, fmt=1) -> str:
    return json.dumps({"format": fmt, "holds": list(records)})


# ---------------------------------------------------------------- the CLI flow, offline

def test_hold_pauses_now_shows_in_plan_and_expires_through_apply(tmp_path):
    make_state(tmp_path)
    r = _cli(tmp_path, "hold", "prod", "etl_orders", "--for", "4h", "--reason",
             "INC-7 <script>alert(1)</script>", "--yes")
    assert r.returncode == 0, r.stderr
    assert "etl_orders: paused now; held paused (by " in r.stdout
    assert "ends in 4h00m" in r.stdout or "ends in 3h59m" in r.stdout
    snap = json.loads((tmp_path / "state/snapshots/prod.json").read_text())
    assert {d["dag_id"]: d["is_paused"] for d in snap["dags"]}["etl_orders"] is True
    stored = json.loads(_vars(tmp_path)["pausectl.holds.prod"])
    assert stored["format"] == 1 and stored["holds"][0]["dag_id"] == "etl_orders"
    assert stored["holds"][0]["reason"] == "INC-7 <script>alert(1)</script>"

    plan = _cli(tmp_path, "plan", "prod")
    assert plan.returncode == 0, plan.stderr
    assert "held     etl_orders  held paused (by " in plan.stdout
    assert "1 held" in plan.stdout
    md = _cli(tmp_path, "plan", "prod", "--format", "markdown").stdout
    assert "<script>" not in md                      # neutralised for Markdown
    js = json.loads(_cli(tmp_path, "plan", "prod", "--format", "json").stdout)
    held = js["held"][0]
    assert held["hold"]["by"] and held["hold"]["until"].endswith("Z")
    assert js["summary"]["held"] == 1
    import jsonschema
    from reconciler.state.schema import load_schema
    jsonschema.validate(js, load_schema("plan.schema.json"))
    assert "etl_orders" not in [c["dag_id"] for c in js["changes"]]

    listed = _cli(tmp_path, "hold", "prod", "--list")
    assert listed.returncode == 0 and "etl_orders  held paused" in listed.stdout

    # five hours later the hold has ended: the plan puts back git (etl_orders runs)
    later = (datetime.now(timezone.utc) + timedelta(hours=5)).isoformat()
    p2 = _cli(tmp_path, "plan", "prod", "--at", later)
    assert "unpause  etl_orders  paused -> running" in p2.stdout, p2.stdout


def test_expired_hold_is_removed_by_the_next_apply(tmp_path, monkeypatch):
    make_state(tmp_path, {"snapshots/prod.json.vars.json": json.dumps({
        "pausectl.holds.prod": _text(_record(until="2026-01-01T14:00:00Z",
                                             since="2026-01-01T10:00:00Z"))})})
    snap = tmp_path / "state/snapshots/prod.json"
    data = json.loads(snap.read_text())
    for d in data["dags"]:
        if d["dag_id"] == "etl_orders":
            d["is_paused"] = True
    snap.write_text(json.dumps(data))
    monkeypatch.setenv("PAUSECTL_JOURNAL_DIR", str(tmp_path / "journals"))
    r = _cli(tmp_path, "apply", "prod", "--yes")
    assert r.returncode == 0, r.stderr
    assert "hold on etl_orders ended" in r.stderr
    assert "pausectl.holds.prod" not in _vars(tmp_path)
    live = {d["dag_id"]: d["is_paused"] for d in json.loads(snap.read_text())["dags"]}
    assert live["etl_orders"] is False               # git's state is back


def test_renewal_counts_and_release(tmp_path):
    make_state(tmp_path)
    for _ in range(2):
        assert _cli(tmp_path, "hold", "prod", "etl_orders", "--for", "1h", "--reason", "x",
                    "--yes").returncode == 0
    rec = json.loads(_vars(tmp_path)["pausectl.holds.prod"])["holds"][0]
    assert rec["renewals"] == 1
    r = _cli(tmp_path, "hold", "prod", "--release", "etl_orders", "--yes")
    assert r.returncode == 0 and "released etl_orders" in r.stdout
    assert "pausectl.holds.prod" not in _vars(tmp_path)
    r = _cli(tmp_path, "hold", "prod", "--release", "etl_orders", "--yes")
    assert r.returncode == 1 and r.stderr.startswith("error: no hold on etl_orders")


@pytest.mark.parametrize("args, message", [
    (["--for", "25h"], "longer than safety.max_hold_hours (24h)"),
    (["--until", "2001-01-01T00:00:00Z"], "not in the future"),
    (["--for", "4h", "--until", "2030-01-01T00:00:00Z"], "one of them"),
    ([], "one of them"),
    (["--for", "soon"], "--for: bad duration"),
])
def test_hold_refuses_bad_windows(tmp_path, args, message):
    make_state(tmp_path)
    r = _cli(tmp_path, "hold", "prod", "etl_orders", "--reason", "x", "--yes", *args)
    assert r.returncode == 1 and message in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_max_hold_hours_from_config_and_bad_inputs(tmp_path):
    root = make_state(tmp_path)
    cfg = (root / "pausectl.yaml").read_text().replace("max_changes: 50",
                                                       "max_changes: 50\n  max_hold_hours: 2")
    (root / "pausectl.yaml").write_text(cfg)
    r = _cli(tmp_path, "hold", "prod", "etl_orders", "--for", "3h", "--reason", "x", "--yes")
    assert r.returncode == 1 and "(2h)" in r.stderr
    for dag, reason, msg in (("no_such_dag", "x", "not in Airflow"),
                             ("bad/id", "x", "not a DAG id"),
                             ("etl_orders", "a\x1b[31mred", "control characters"),
                             ("etl_orders", "y" * 600, "longer than 500")):
        r = _cli(tmp_path, "hold", "prod", dag, "--for", "1h", "--reason", reason, "--yes")
        assert r.returncode == 1 and msg in r.stderr, (dag, r.stderr)
    assert "pausectl.holds.prod" not in _vars(tmp_path)   # nothing recorded


def test_hold_keeps_the_apply_guards(tmp_path):
    root = make_state(tmp_path, {"snapshots/prod.json": snapshot_json(
        BASE_DAGS + [dag("critical_ledger", False)] + [dag(f"d{i}") for i in range(51)],
        "prod")})
    r = _cli(tmp_path, "hold", "prod", "critical_ledger", "--for", "1h", "--reason", "x",
             "--yes")
    assert r.returncode == 1 and "protected by safety.protect: critical_ledger" in r.stderr
    many = [f"d{i}" for i in range(51)]
    r = _cli(tmp_path, "hold", "prod", *many, "--for", "1h", "--reason", "x", "--yes")
    assert r.returncode == 1 and "more than safety.max_changes (50)" in r.stderr
    assert _cli(tmp_path, "emergency", "pause", "prod", "--reason", "db down").returncode == 0
    r = _cli(tmp_path, "hold", "prod", "etl_orders", "--running", "--for", "1h", "--reason",
             "x", "--yes")
    assert r.returncode == 1 and "an emergency pause is active in prod" in r.stderr
    assert "pausectl.holds.prod" not in _vars(tmp_path)
    assert root.exists()


# ---------------------------------------------------------------- hostile Variable

@pytest.mark.parametrize("raw, warning", [
    ("not json", "not valid JSON"),
    ('{"format": 2, "holds": []}', "not a pausectl holds record"),
    ('{"format": 1, "holds": {"etl_orders": {}}}', "not a pausectl holds record"),
    ("[" * 100_000, "not valid JSON"),
    ('{"format": 1, "holds": [], "pad": "' + "x" * (300 * 1024) + '"}', "larger than 256 KiB"),
    ('{"format": 1, "holds": [1e999999]}', None),
    (_text(_record(renewals=10 ** 30)), "not valid JSON"),     # safejson: no huge numbers
])
def test_hostile_variable_shapes_hold_nothing(raw, warning):
    holds, warnings = H.parse(raw, "prod")
    assert holds == {}
    if warning:
        assert any(warning in w for w in warnings), warnings
    assert all(len(w) < 300 for w in warnings)


@pytest.mark.parametrize("entry, why", [
    (_record(dag_id="../etc"), "not a DAG id"),
    (_record(dag_id="x" * 300), "not a DAG id"),
    (_record(paused="yes"), "'paused'"),
    (_record(reason="a\nb"), "control characters"),
    (_record(reason="\u202egnp.exe"), "control characters"),
    (_record(by="x" * 10_000), "longer than 500"),
    (_record(reason=""), "non-empty"),
    (_record(reason=["list"]), "non-empty string"),
    (_record(until="tomorrow"), None),
    (_record(until="2026-12-01T09:00:00Z"), "after 'since'"),
    (_record(until="9999-12-31T23:59:59-01:00"), None),
    (_record(renewals=True), "renewals"),
    (_record(renewals=20_000), "renewals"),
    ("just a string", "not an object"),
])
def test_hostile_entries_are_dropped_with_a_warning(entry, why):
    good = _record(dag_id="report_daily")
    holds, warnings = H.parse(_text(entry, good), "prod")
    assert list(holds) == ["report_daily"]             # the good one still counts
    assert len(warnings) == 1 and "ignored" in warnings[0]
    if why:
        assert why in warnings[0], warnings
    assert "\n" not in warnings[0] and "\u202e" not in warnings[0]


def test_script_tags_are_kept_but_neutralised_and_too_many_holds_are_capped():
    rec = _record(reason="<script>alert(1)</script> | `rm` [x](http://e)")
    holds, warnings = H.parse(_text(rec), "prod")
    assert holds["etl_orders"].reason.startswith("<script>") and not warnings
    from reconciler.plan.render import md_escape
    assert "<script>" not in md_escape(holds["etl_orders"].describe(NOW))
    many = [_record(dag_id=f"d{i}") for i in range(H.MAX_HOLDS + 5)]
    text = json.dumps({"format": 1, "holds": many}, separators=(",", ":"))
    if len(text) <= H.MAX_BYTES:
        holds, warnings = H.parse(text, "prod")
        assert len(holds) == H.MAX_HOLDS and "only the first" in warnings[0]
    dup = _text(_record(), _record(reason="second"))
    holds, warnings = H.parse(dup, "prod")
    assert holds["etl_orders"].reason == "INC-7" and "held twice" in warnings[0]


def test_describe_and_expiry():
    h = H.parse(_text(_record(renewals=3)), "prod")[0]["etl_orders"]
    assert h.describe(NOW) == ("held paused (by alice, reason 'INC-7', ends in 2h00m, "
                               "renewed 3x)")
    assert not h.active(NOW + timedelta(hours=3))
    assert "expired at 2026-12-01T14:00:00Z" in h.describe(NOW + timedelta(hours=3))
    view = H.HoldView.of({"etl_orders": h}, NOW + timedelta(hours=3))
    assert not view.active and "etl_orders" in view.expired


def test_plan_with_a_hostile_holds_variable_warns_and_changes_nothing(tmp_path):
    make_state(tmp_path, {"snapshots/prod.json.vars.json": json.dumps(
        {"pausectl.holds.prod": '{"format":1,"holds":[{"dag_id":"etl_orders","paused":"\\u001b[2J"}]}'})})
    r = _cli(tmp_path, "plan", "prod")
    assert r.returncode == 0, r.stderr
    assert "warning: Variable pausectl.holds.prod: hold of etl_orders ignored" in r.stdout
    assert "\x1b" not in r.stdout
