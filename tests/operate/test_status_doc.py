"""The status document (operate/status_doc.py) and its publish: built from the example state,
valid against schemas/status.schema.json (also with the optional hold/draining/impact fields),
size-bounded with the least interesting DAGs cut first, written by the publish stage to the
outcome's store (a failing store is a warning), and `pausectl report`'s bad input."""

from __future__ import annotations

import json

from helpers import REPO, main_captured

from reconciler.core.timeutil import utcnow
from reconciler.engine import load, open_backend, plan_observed
from reconciler.observe import PAUSED, observe
from reconciler.operate import status_doc
from reconciler.operate.publish import Outcome, publish
from reconciler.state.schema import validate_json


def _observed(env="prod"):
    ctx = load(REPO / "state", env)
    backend = open_backend(ctx.cfg, env)
    obs = observe(ctx, backend, utcnow(), events_for=PAUSED)
    plan, res = plan_observed(ctx, obs)
    return ctx, obs, plan, res


def test_example_state_document_is_valid_and_complete():
    _, obs, plan, res = _observed()
    extra = {"billing_daily": {"hold": {"why": "manual pause held 24h", "until": None},
                               "impact": {"downstream": ["etl_orders"]}}}
    doc = status_doc.build("prod", command="plan", live=obs.live, resolution=res, plan=plan,
                           events=obs.last_events(), extra=extra)
    assert validate_json(doc, "status.schema.json") == []
    by_id = {d["dag_id"]: d for d in doc["dags"]}
    billing = by_id["billing_daily"]
    assert (billing["reason"], billing["owner"], billing["ticket"], billing["rule"]) == \
        ("vendor outage resolved", "team-billing", "INC-120", "state/prod.yaml:12")
    assert billing["drift"]["cause"] == "git" and billing["hold"]["why"].startswith("manual")
    assert "hold" not in by_id["etl_orders"]
    assert doc["summary"]["dags"] == len(obs.live) and doc["omitted"] == 0
    assert any(w["event"] == "window start" for w in doc["windows"])


def test_bound_cuts_least_interesting_first():
    _, obs, plan, res = _observed()
    doc = status_doc.build("prod", command="plan", live=obs.live, resolution=res, plan=plan)
    paused = {d["dag_id"] for d in doc["dags"] if d["live_paused"]}
    limit = len(status_doc.encode({**doc, "dags": [d for d in doc["dags"]
                                                  if d["dag_id"] in paused]})) + 40
    cut = status_doc.bound(doc, limit)
    assert len(status_doc.encode(cut).encode()) <= limit
    assert paused <= {d["dag_id"] for d in cut["dags"]}
    assert cut["omitted"] == len(doc["dags"]) - len(cut["dags"]) > 0
    assert validate_json(cut, "status.schema.json") == []


class _Store:
    def __init__(self, fail=False):
        self.values, self.fail = {}, fail

    def set_variable(self, key, value):
        if self.fail:
            raise RuntimeError("403 Forbidden: no Variable write access")
        self.values[key] = value


def test_publish_writes_the_status_variable_and_warns_on_failure():
    ctx, obs, plan, res = _observed("staging")
    store = _Store()
    out = Outcome("staging", plan, list(obs.live), res, store=store, events=obs.last_events())
    assert publish(ctx.cfg, "apply", [out], notify=False) == []
    doc = json.loads(store.values["pausectl.status.staging"])
    assert doc["command"] == "apply" and doc["environment"] == "staging"
    # no store: nothing written (a plan on a snapshot does not touch its file)
    assert publish(ctx.cfg, "plan", [Outcome("staging", plan, list(obs.live), res)],
                   notify=False) == []
    warnings = publish(ctx.cfg, "apply", [Outcome("staging", plan, list(obs.live), res,
                                                  store=_Store(fail=True))], notify=False)
    assert warnings == [("staging: status document not written to pausectl.status.staging: "
                         "403 Forbidden: no Variable write access")]


def test_report_bad_input_is_one_line(tmp_path, capsys, monkeypatch):
    code, _, err = main_captured(REPO, ["report", "nosuch", "--state", "state", "--html",
                                        str(tmp_path / "x.html")], capsys, monkeypatch)
    assert code == 1 and err.startswith("error: ") and len(err.strip().splitlines()) == 1
    assert "nosuch" in err and "Traceback" not in err
    assert not (tmp_path / "x.html").exists()
    code, _, err = main_captured(REPO, ["report", "prod", "--state", "state"], capsys,
                                 monkeypatch)
    assert code == 1 and "--html" in err


def test_switch_never_writes_a_snapshot_and_apply_state_is_after(monkeypatch):
    ctx, obs, plan, res = _observed("prod")
    snapshot = (REPO / "state" / "snapshots" / "prod.json").read_bytes()
    monkeypatch.setenv("PAUSECTL_STATUS_VARIABLE", "1")
    assert publish(ctx.cfg, "plan", [Outcome("prod", plan, list(obs.live), res)],
                   notify=False) == []
    assert (REPO / "state" / "snapshots" / "prod.json").read_bytes() == snapshot
    # a finished apply: its changes are the live state now, and no longer pending
    from reconciler.apply.executor import ApplyResult
    from reconciler.plan.records import ApplyStatus
    store = _Store()
    done = ApplyResult(ApplyStatus.DONE, None, changed=len(plan.changes))
    assert publish(ctx.cfg, "apply", [Outcome("prod", plan, list(obs.live), res, result=done,
                                              store=store)], notify=False) == []
    doc = json.loads(store.values["pausectl.status.prod"])
    changed = {c.dag_id: c.desired_paused for c in plan.changes}
    assert changed
    for d in doc["dags"]:
        if d["dag_id"] in changed:
            assert d["live_paused"] is changed[d["dag_id"]] and d["drift"] is None
            assert (d["paused_since"] is not None) is changed[d["dag_id"]]
    assert doc["summary"]["pending"] == 0
