"""`pausectl report --html` in headless Chromium: the example state (state/) as written by the
CLI, and a hostile set of status documents (an emergency, script in every string, old pauses,
a hold) rendered by the same code. The file must load nothing from the network, log no console
error, draw its timeline and charts, and show hostile strings as text."""

from __future__ import annotations

from datetime import timedelta

from browser import chrome, console_errors, network_requests, quit_chrome, shot
from helpers import REPO, run_cli

from reconciler.core.timeutil import iso, utcnow
from reconciler.operate.report import render_html

XSS = '<script>document.title="pwned"</script><img src=x onerror="document.title=1">'


def _check(driver, path):
    network_requests(driver)        # drop what the blank start page did
    driver.get(path.as_uri())
    assert console_errors(driver) == []
    assert network_requests(driver) == []
    assert driver.find_elements("css selector", "script") == []
    assert driver.find_elements("css selector", "#timeline")[0].size["height"] > 0


def test_example_state_report_in_the_browser(tmp_path):
    out = tmp_path / "fleet.html"
    r = run_cli(["report", "dev", "staging", "prod", "--state", "state", "--html", str(out)],
                REPO)
    assert r.returncode == 0, r.stderr
    assert "wrote" in r.stdout
    driver = chrome()
    try:
        _check(driver, out)
        find = driver.find_elements
        # the weekend window of group nightly-maintenance in each environment
        assert len(find("css selector", "#timeline rect.win")) >= 3
        assert [e.text for e in find("css selector", "#summary tbody th")] == \
            ["dev", "staging", "prod"]
        # billing_daily: paused in prod only, git wants it running there (pending apply)
        row = next(r for r in find("css selector", "#fleet tbody tr")
                   if r.find_element("css selector", "th").text == "billing_daily")
        assert "differs" in row.get_attribute("class")
        assert "pending" in row.find_elements("css selector", "td")[2].get_attribute("class")
        shot(driver, "fleet-report")
    finally:
        quit_chrome(driver)


def _doc(env: str, now, emergency=None) -> dict:
    old = iso(now - timedelta(days=45))
    return {"version": 1, "environment": env, "generated_at": iso(now), "command": "drift",
            "emergency": emergency, "summary": {"dags": 2, "paused": 2}, "omitted": 0,
            "windows": [{"at": iso(now + timedelta(days=1)), "event": "window start",
                         "in_force": True, "rule": XSS, "where": "x.yaml:1", "paused": True},
                        {"at": iso(now + timedelta(days=1, hours=3)), "event": "window end",
                         "in_force": False, "rule": XSS, "where": "x.yaml:1", "paused": True}],
            "dags": [{"dag_id": XSS, "live_paused": True, "desired_paused": True,
                      "managed": True, "reason": XSS, "owner": XSS, "ticket": XSS,
                      "paused_since": old, "rule": XSS,
                      "drift": {"cause": "manual", "description": XSS},
                      "hold": {"why": XSS, "until": iso(now + timedelta(days=3))},
                      "next": {"at": iso(now + timedelta(days=2)), "action": "unpause"}},
                     {"dag_id": "etl", "live_paused": True, "desired_paused": True,
                      "managed": True, "reason": "r", "paused_since": iso(now - timedelta(days=3))}]}


def test_hostile_documents_render_as_text(tmp_path):
    now = utcnow()
    docs = [_doc("prod", now, {"reason": XSS, "owner": XSS, "started": iso(now)}),
            _doc("dev", now)]
    out = tmp_path / "hostile.html"
    out.write_text(render_html(docs, now))
    driver = chrome()
    try:
        _check(driver, out)
        assert driver.title.startswith("pausectl fleet report")
        assert driver.find_elements("css selector", "img") == []
        banner = driver.find_element("css selector", ".banner").text
        assert banner.startswith("EMERGENCY in prod: <script>")
        bars = driver.find_elements("css selector", "#pause-age rect.bar")
        assert len(bars) == 4
        assert len(driver.find_elements("css selector", "#pause-age rect.bar.old")) == 2
        assert len(driver.find_elements("css selector", "#timeline rect.hold")) == 2
        assert len(driver.find_elements("css selector", "#timeline rect.tick")) == 2
        shot(driver, "fleet-report-hostile")
    finally:
        quit_chrome(driver)
