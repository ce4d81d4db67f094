"""Webhook notifications against a real local HTTP server (http.server on 127.0.0.1): JSON and
Slack bodies, retries with backoff on 500/429, no retry on 400, timeouts, connection refused,
the total time bound, and the CLI (apply, emergency pause/recover) never failing or printing a
URL because a webhook is down."""

from __future__ import annotations

import shutil
import time

import pytest

from helpers import EXAMPLE_STATE, run_cli
from webhooks import Hooks, refused_url
from reconciler.operate.notify import Message, apply_message, drift_message, send


@pytest.fixture
def hooks():
    h = Hooks()
    yield h
    h.close()


def msg(event="drift") -> Message:
    return Message(event, "prod", "pausectl: 1 DAG(s) drifted from git in prod", "warning",
                   ["• etl_a: live paused, git says running"], {"drifted": [{"dag_id": "etl_a"}]})


def cfg(*hooks):
    return {"webhooks": list(hooks)}


def test_json_and_slack_bodies_are_delivered(hooks):
    env = {"H_JSON": hooks.url + "/json?token=abc", "H_SLACK": hooks.url + "/slack"}
    warnings = send(cfg({"url_env": "H_JSON"}, {"url_env": "H_SLACK", "format": "slack"}),
                    msg(), environ=env)
    assert warnings == []
    body = hooks.at("/json")[0]["body"]
    assert body["source"] == "pausectl" and body["version"] == 1
    assert body["event"] == "drift" and body["environment"] == "prod"
    assert body["severity"] == "warning" and "etl_a" in body["text"]
    assert body["details"] == {"drifted": [{"dag_id": "etl_a"}]}
    slack = hooks.at("/slack")[0]["body"]
    assert slack["text"].startswith(":warning: pausectl: 1 DAG(s) drifted")
    assert [b["type"] for b in slack["blocks"]] == ["header", "section", "context"]
    assert "etl_a" in slack["blocks"][1]["text"]["text"]
    assert hooks.at("/json")[0]["ua"] == "pausectl-notify/1"


def test_500s_are_retried_with_backoff_until_delivered(hooks):
    hooks.script["/flaky"] = [(500, 0, {}), (503, 0, {}), (200, 0, {})]
    t0 = time.monotonic()
    warnings = send(cfg({"url_env": "H", "retries": 3}), msg(), environ={"H": hooks.url + "/flaky"})
    assert warnings == []
    reqs = hooks.at("/flaky")
    assert len(reqs) == 3
    gaps = [b["t"] - a["t"] for a, b in zip(reqs, reqs[1:])]
    assert gaps[0] >= 0.3 and gaps[1] >= 0.7 * 2 * 0.5      # ~0.5 s, then ~1 s (jittered)
    assert time.monotonic() - t0 < 5


def test_429_retry_after_is_honoured(hooks):
    hooks.script["/busy"] = [(429, 0, {"Retry-After": "1"}), (200, 0, {})]
    assert send(cfg({"url_env": "H"}), msg(), environ={"H": hooks.url + "/busy"}) == []
    a, b = hooks.at("/busy")
    assert b["t"] - a["t"] >= 0.95


def test_persistent_500_gives_one_warning_without_the_url(hooks):
    hooks.script["/down"] = [(500, 0, {})]
    url = hooks.url + "/down?token=SECRET123"
    warnings = send(cfg({"url_env": "PAUSECTL_HOOK", "retries": 2}), msg(),
                    environ={"PAUSECTL_HOOK": url})
    assert len(hooks.at("/down")) == 3
    assert warnings == ["notify: webhook #1 (PAUSECTL_HOOK) failed after 3 attempt(s) (HTTP 500); "
                        "the command itself is not affected"]


def test_a_400_is_not_retried(hooks):
    hooks.script["/bad"] = [(400, 0, {})]
    warnings = send(cfg({"url_env": "H", "retries": 5}), msg(), environ={"H": hooks.url + "/bad"})
    assert len(hooks.at("/bad")) == 1
    assert warnings == ["notify: webhook #1 (H) refused the drift message (HTTP 400); not retried"]


def test_timeouts_and_refused_connections_are_warnings_within_the_budget(hooks):
    hooks.script["/slow"] = [(200, 3, {})]
    env = {"SLOW": hooks.url + "/slow", "GONE": refused_url(), "OK": hooks.url + "/ok"}
    t0 = time.monotonic()
    warnings = send(cfg({"url_env": "SLOW", "timeout": 0.3, "retries": 1},
                        {"url_env": "GONE", "retries": 1},
                        {"url_env": "OK"}), msg(), environ=env, budget=5)
    took = time.monotonic() - t0
    assert took < 3, took                    # both bad hooks run in parallel, bounded
    assert len(hooks.at("/ok")) == 1 and len(hooks.at("/slow")) == 2
    text = "\n".join(sorted(warnings))
    assert "webhook #1 (SLOW) failed after 2 attempt(s) (timed out after 0.3s)" in text
    assert "webhook #2 (GONE) failed after 2 attempt(s) (ConnectError" in text
    assert "SECRET123" not in text and "127.0.0.1" not in text


def test_the_total_time_is_bounded_whatever_the_retries(hooks):
    hooks.script["/down"] = [(503, 0, {})]
    t0 = time.monotonic()
    warnings = send(cfg({"url_env": "H", "retries": 10, "timeout": 5}), msg(),
                    environ={"H": hooks.url + "/down"}, budget=1.5)
    took = time.monotonic() - t0
    assert took < 2.5, took
    assert len(warnings) == 1 and "HTTP 503" in warnings[0]
    assert 1 < len(hooks.at("/down")) < 11


def test_unset_env_var_and_bad_scheme_are_skipped_with_a_warning(hooks):
    warnings = send(cfg({"url_env": "NOPE"}, {"url_env": "FTP"}), msg(),
                    environ={"FTP": "ftp://example.com/x"})
    assert warnings == ["notify: webhook #1 (NOPE): environment variable NOPE is not set; skipped",
                        "notify: webhook #2 (FTP): FTP is not an http(s) URL; skipped"]


def test_events_select_webhooks_and_a_gate_failure_reaches_apply_subscribers(hooks):
    env = {f"H{i}": f"{hooks.url}/h{i}" for i in range(4)}
    config = cfg({"url_env": "H0", "events": ["drift"]}, {"url_env": "H1", "events": ["apply"]},
                 {"url_env": "H2", "events": ["gate_failure"]}, {"url_env": "H3"})

    class P:
        changes = []

        def summary(self):
            return {"pause": 0, "unpause": 1}

    gate = [{"passed": False, "message": "2 failed run(s) > max_failed_runs 0"}]
    assert send(config, apply_message("prod", P(), "rolled_back", 1, gate), environ=env) == []
    assert [len(hooks.at(f"/h{i}")) for i in range(4)] == [0, 1, 1, 1]
    body = hooks.at("/h1")[0]["body"]
    assert body["event"] == "gate_failure" and body["severity"] == "error"
    assert "rolled back" in body["title"] and "2 failed run(s)" in body["text"]
    report = {"environment": "prod", "mode": "enforce", "pending_git_changes": [],
              "drifted": [{"dag_id": "a", "live_paused": True, "desired_paused": False,
                           "rule": "prod.yaml:3", "changed_by": "bob", "how": "UI/API",
                           "when": "t", "description": "paused by bob via UI/API at t"}]}
    assert send(config, drift_message(report), environ=env) == []
    assert [len(hooks.at(f"/h{i}")) for i in range(4)] == [1, 1, 1, 2]


NOTIFY = """
notify:
  webhooks:
    - {url_env: HOOK_JSON, format: json}
    - {url_env: HOOK_SLACK, format: slack, events: [apply, emergency]}
    - {url_env: HOOK_DOWN, timeout: 0.5, retries: 1}
"""


def test_cli_apply_and_emergency_notify_and_never_fail_on_a_dead_webhook(hooks, tmp_path):
    shutil.copytree(EXAMPLE_STATE, tmp_path / "state")
    cfg_file = tmp_path / "state" / "pausectl.yaml"
    cfg_file.write_text(cfg_file.read_text() + NOTIFY)
    hooks.script["/down"] = [(500, 0, {})]
    env = {"HOOK_JSON": hooks.url + "/json?token=SECRET123", "HOOK_SLACK": hooks.url + "/slack",
           "HOOK_DOWN": hooks.url + "/down?token=SECRET123",
           "PAUSECTL_JOURNAL_DIR": str(tmp_path / "journal")}
    out = run_cli(["apply", "prod", "--yes", "--batches", "100%", "--wait-seconds", "0"],
                  cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr
    assert "Apply complete: 5 DAG(s) changed in prod." in out.stdout + out.stderr
    assert "warning: notify: webhook #3 (HOOK_DOWN) failed after 2 attempt(s) (HTTP 500)" \
        in out.stderr
    assert "SECRET123" not in out.stdout + out.stderr and hooks.url not in out.stderr
    body = hooks.at("/json")[-1]["body"]
    assert body["event"] == "apply" and body["details"]["changed"] == 5
    assert body["title"] == "pausectl: applied 5 change(s) in prod (3 paused, 2 unpaused)"
    assert "vendor_feed_acme" in body["text"]
    assert hooks.at("/slack")[-1]["body"]["text"].startswith(":information_source: pausectl: "
                                                            "applied 5")

    out = run_cli(["emergency", "pause", "prod", "--reason", "warehouse down", "--owner", "oncall"],
                  cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr
    body = hooks.at("/json")[-1]["body"]
    assert body["event"] == "emergency" and body["details"]["action"] == "pause"
    assert body["details"]["reason"] == "warehouse down" and body["severity"] == "error"
    out = run_cli(["emergency", "recover", "prod", "--yes", "--batches", "100%",
                   "--wait-seconds", "0"], cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr
    body = hooks.at("/slack")[-1]["body"]
    assert "emergency in prod recovered" in body["text"]
    assert "SECRET123" not in out.stdout + out.stderr


def test_httpx_request_logging_never_shows_a_webhook_url(hooks, caplog):
    import logging
    caplog.set_level(logging.DEBUG)
    url = hooks.url + "/json?token=SECRET123"
    assert send(cfg({"url_env": "H"}), msg(), environ={"H": url}) == []
    assert len(hooks.at("/json")) == 1
    assert "SECRET123" not in caplog.text and hooks.url not in caplog.text


def test_publish_notifies_each_outcome_writes_one_metrics_file_then_renders(hooks, tmp_path,
                                                                            monkeypatch):
    """The one publish stage every command ends in (operate/publish.py)."""
    from prometheus_client.parser import text_string_to_metric_families

    from reconciler.apply.executor import ApplyResult
    from reconciler.operate.publish import Outcome, publish
    from reconciler.plan.model import Change, Plan
    from reconciler.plan.records import ApplyStatus
    monkeypatch.setenv("H", hooks.url + "/all")

    class Cfg:
        notify = cfg({"url_env": "H"})

    plan = Plan("prod", "t", "t", None, changes=[
        Change("etl_a", "unpause", True, False, "prod.yaml:3", "back", "o")]).freeze({}, [])
    drifted = {"dag_id": "etl_b", "live_paused": True, "desired_paused": False, "rule": "r:1",
               "changed_by": "ann", "how": "UI", "when": "t", "description": "paused by ann"}
    outcomes = [Outcome("prod", plan, result=ApplyResult(ApplyStatus.DONE, None, changed=1),
                        seconds=1.5),
                Outcome("dev", report={"environment": "dev", "drifted": [drifted]}),
                Outcome("prod", emergency={"action": "recover", "count": 1, "detail": "d"})]
    seen = []

    def render():     # last: after the webhooks were sent and the metrics file written
        seen.append((sorted(h["body"]["event"] for h in hooks.at("/all")),
                     (tmp_path / "m.prom").exists()))

    assert publish(Cfg, "apply", outcomes, metrics_file=str(tmp_path / "m.prom"),
                   render=render) == []
    assert seen == [(["apply", "drift", "emergency"], True)]
    names = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in
             text_string_to_metric_families((tmp_path / "m.prom").read_text()) for s in f.samples}
    assert names[("pausectl_apply_duration_seconds", (("env", "prod"),))] == 1.5
    assert names[("pausectl_manual_drift_dags", (("env", "dev"),))] == 1
    # notify off (the operator's notify=False); a metrics file that cannot be written warns
    (tmp_path / "dir.prom").mkdir()
    warnings = publish(Cfg, "apply", outcomes, metrics_file=str(tmp_path / "dir.prom"),
                       notify=False)
    assert len(hooks.at("/all")) == 3 and len(warnings) == 1
    assert "cannot write metrics" in warnings[0]
