"""pausectl's Airflow plugin in a real browser (headless Debian Chromium) on a real Airflow:
3.3.2 (external view tab on the DAG page + the instance page) and 2.11.2 (AppBuilder view
under the "pausectl" menu), each a dedicated server whose processes see pausectl's
`airflow.plugins` entry point (tests/ui/ui_support.py), prepared in the background.

pausectl itself publishes the status document (apply, then the publish stage writes
`pausectl.status.ui` through the airflow-api backend); a second, hand-written document adds
an environment with an old pause and a hostile link. Screenshots: .airflow/screenshots/.
"""

from __future__ import annotations

import json
from datetime import timedelta

import httpx
import pytest
from browser import chrome, console_errors, quit_chrome, shot
from early import Early
from helpers import run_cli
from ui_support import (
    LIMITED2,
    SCRIPT_REASON,
    USERS3,
    legacy_doc,
    make_server,
    state_repo,
)

from reconciler.core.timeutil import iso, utcnow

pytestmark = pytest.mark.airflow
EARLY = Early("ui-airflow", make_server)


def prestart() -> None:
    """conftest calls this once collection shows tests of this module will run."""
    EARLY.prestart("ui3", "ui2")


@pytest.fixture(scope="module", autouse=True)
def _drop_unused_servers():
    yield
    EARLY.drop_unused()


def _publish(server, tmp, monkeypatch) -> None:
    """`pausectl apply` (pauses three DAGs through the API) of an environment with
    `status_variable: true`: its publish stage writes the status document; then one with the audit events (pause times)."""
    from reconciler.engine import load, open_backend, plan_observed
    from reconciler.observe import PAUSED, observe
    from reconciler.operate.publish import Outcome, publish
    state = state_repo(tmp, server)
    monkeypatch.setenv("UI_USER", "admin")
    monkeypatch.setenv("UI_PASS", "admin")
    out = run_cli(["apply", "ui", "--state", str(state), "--yes"], tmp, env={
        "UI_USER": "admin", "UI_PASS": "admin"})
    assert out.returncode == 0, out.stdout + out.stderr
    assert "warning" not in out.stderr
    ctx = load(state, "ui")
    backend = open_backend(ctx.cfg, "ui")
    try:
        # the apply's own publish stage wrote it, with the state after the apply
        applied = json.loads(backend.get_variable("pausectl.status.ui"))
        assert applied["command"] == "apply"
        assert {d["dag_id"]: d["live_paused"] for d in applied["dags"]} == {
            "ui_paused": True, "ui_running": False, "ui_script": True, "ui_secret": True}
        assert all(d["drift"] is None for d in applied["dags"])
        assert {d["dag_id"] for d in applied["dags"] if d["paused_since"]} == {
            "ui_paused", "ui_script", "ui_secret"}
        # a publish with the observation's events adds each pause's time
        obs = observe(ctx, backend, utcnow(), events_for=PAUSED)
        plan, res = plan_observed(ctx, obs)
        warnings = publish(ctx.cfg, "apply", [Outcome("ui", plan, list(obs.live), res,
                                                      store=backend,
                                                      events=obs.last_events())],
                           notify=False)
        assert warnings == []
        legacy = json.dumps(legacy_doc()).replace("FORTY_DAYS_AGO",
                                                  iso(utcnow() - timedelta(days=40)))
        backend.set_variable("pausectl.status.legacy", legacy)
        doc = json.loads(backend.get_variable("pausectl.status.ui"))
    finally:
        backend.close()
    paused = {d["dag_id"]: d for d in doc["dags"]}["ui_paused"]
    assert (paused["reason"], paused["ticket"], paused["live_paused"]) == \
        ("vendor API down", "INC-77", True)
    assert paused["paused_since"] is not None       # pausectl's own PATCH, from the event log


@pytest.fixture(scope="module", params=[3, 2], ids=["af3", "af2"])
def ui_server(request, tmp_path_factory):
    server = EARLY.get(f"ui{request.param}")
    mp = pytest.MonkeyPatch()
    try:
        _publish(server, tmp_path_factory.mktemp(f"ui{request.param}"), mp)
        yield server
    finally:
        mp.undo()
        server.stop()


@pytest.fixture(scope="module")
def admin(ui_server):
    """One Chromium per server, logged in as admin once (the UI's bundles load once)."""
    driver = chrome()
    try:
        _login(driver, ui_server, "admin", "admin")
        yield driver
    finally:
        quit_chrome(driver)


@pytest.fixture()
def browser(admin):
    admin.switch_to.default_content()
    yield admin
    admin.switch_to.default_content()


def _wait(driver, css: str, timeout: float = 60):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    return WebDriverWait(driver, timeout).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, css))[0]


def _login(driver, server, user: str, password: str) -> None:
    """Airflow's own login form: AF3 simple auth manager's /auth/login, AF2 FAB's /login/."""
    from selenium.webdriver.common.by import By
    driver.get(f"{server.url}/auth/login" if server.major == 3 else f"{server.url}/login/")
    _wait(driver, "input[name=username]").send_keys(user)
    driver.find_element(By.CSS_SELECTOR, "input[name=password]").send_keys(password)
    if server.major == 3:
        driver.find_element(By.XPATH, "//button[normalize-space()='Sign in']").click()
        from selenium.webdriver.support.ui import WebDriverWait
        WebDriverWait(driver, 60).until(lambda d: d.get_cookie("_token"))
    else:
        driver.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
        from selenium.webdriver.support.ui import WebDriverWait
        WebDriverWait(driver, 60).until(lambda d: "/login" not in d.current_url)


def _text(driver, css: str) -> str:
    from selenium.webdriver.common.by import By
    return " ".join(e.text for e in driver.find_elements(By.CSS_SELECTOR, css))


def _open_dag_page(driver, server, dag_id: str) -> None:
    """AF3: the DAG's own page with the "Pause policy" tab (the external view, an iframe of
    /pausectl/dag/<id>); AF2: the view's per-DAG page."""
    if server.major == 3:
        driver.get(f"{server.url}/dags/{dag_id}/plugin/pause-policy")
        frame = _wait(driver, "iframe")
        driver.switch_to.frame(frame)
        _wait(driver, "section.env, #none")
    else:
        # the "pausectl" menu of Airflow's navigation bar leads to the view
        driver.get(f"{server.url}/home")
        menu = _wait(driver, "a[href$='/pausectl/']")
        assert menu.get_attribute("textContent").strip() == "Pause policy"
        driver.get(f"{server.url}/pausectl/dag/{dag_id}")
        _wait(driver, "section.env, #none")


def test_dag_page_shows_reason_owner_ticket_until(ui_server, browser):
    _open_dag_page(browser, ui_server, "ui_paused")
    ui = browser.find_element("css selector", 'section.env[data-env="ui"]').text
    for want in ("vendor API down", "data-eng", "INC-77", "2030-01-01T00:00:00Z", "paused"):
        assert want in ui, ui
    browser.switch_to.default_content()
    shot(browser, f"af{ui_server.major}-dag-page")


def test_script_reason_renders_as_text(ui_server, browser):
    # the plugin's page itself (on AF3 the tab's iframe shows this very URL)
    browser.get(f"{ui_server.url}/pausectl/dag/ui_script")
    _wait(browser, "section.env, #none")
    assert SCRIPT_REASON in _text(browser, "span.reason")
    assert browser.title != "pwned"
    assert browser.find_elements("css selector", "script, img") == []
    alerts = [m for m in console_errors(browser) if "alert" in m]
    assert alerts == []
    browser.switch_to.default_content()
    shot(browser, f"af{ui_server.major}-script-reason")


def _rows(driver) -> set[tuple[str, str]]:
    """(dag_id, environment) of the table's rows, read in one step (WebDriver's own script:
    the page's CSP forbids page scripts, not the driver's)."""
    rows = driver.execute_script(
        "return Array.from(document.querySelectorAll('#dags tbody tr'))"
        ".map(r => [r.cells[0].innerText.trim(), r.cells[1].innerText.trim()])")
    return {tuple(r) for r in rows}


def _detached(element):
    """EC.staleness_of, also when ChromeDriver answers the check mid-navigation with "Node
    with given id does not belong to the document" (a WebDriverException, not a
    StaleElementReferenceException: seen once in CI): either way the old page is gone."""
    from selenium.common.exceptions import WebDriverException

    def gone(_driver) -> bool:
        try:
            element.is_enabled()
        except WebDriverException:
            return True
        return False
    return gone


def test_instance_page_filters(ui_server, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select
    base = f"{ui_server.url}/pausectl/"
    browser.get(base)
    _wait(browser, "#dags, #none")
    everything = _rows(browser)
    assert {("ui_paused", "ui"), ("ui_running", "ui"), ("ui_script", "ui"),
            ("ui_secret", "ui"), ("ui_paused", "legacy")} <= everything
    shot(browser, f"af{ui_server.major}-instance-page")
    # the form itself: state=running
    from selenium.webdriver.support.ui import WebDriverWait
    old = browser.find_element(By.ID, "dags")
    Select(browser.find_element(By.NAME, "state")).select_by_value("running")
    browser.find_element(By.CSS_SELECTOR, "form.filters button").click()
    WebDriverWait(browser, 60).until(_detached(old))      # the filtered page loaded
    _wait(browser, "#dags, #none")
    assert "state=running" in browser.current_url
    assert _rows(browser) == {("ui_running", "ui")}
    cases = {"state=paused&owner=finance": {("ui_secret", "ui")},
             "tag=report": {("ui_running", "ui")},
             "drift=yes": {("ui_paused", "legacy")},
             "min_days=30": {("ui_paused", "legacy")},
             "owner=DATA-ENG&state=paused&min_days=0": {("ui_paused", "ui"),
                                                         ("ui_script", "ui"),
                                                         ("ui_paused", "legacy")}}
    for query, want in cases.items():
        browser.get(f"{base}?{query}")
        _wait(browser, "#dags, #none")
        assert _rows(browser) == want, query
    # the hand-written document's javascript: link is not a link
    browser.get(f"{ui_server.url}/pausectl/dag/ui_paused")
    assert not browser.find_elements(By.CSS_SELECTOR, "a[href^='javascript']")


@pytest.fixture()
def other_browser():
    driver = chrome()
    yield driver
    quit_chrome(driver)


def test_unauthorised_user_sees_nothing(ui_server, other_browser):
    # without any login: no page at all (AF3 401 like the REST API, AF2 the login page);
    # asked before this test's browser connects (AF2's sync workers serve one socket each)
    r = httpx.get(f"{ui_server.url}/pausectl/dag/ui_secret", timeout=60,
                  follow_redirects=False)
    assert r.status_code == (401 if ui_server.major == 3 else 302)
    assert "quarterly close" not in r.text
    browser = other_browser
    user, password = ("nobody", USERS3["nobody"]) if ui_server.major == 3 else LIMITED2
    _login(browser, ui_server, user, password)
    browser.get(f"{ui_server.url}/pausectl/")
    _wait(browser, "#dags, #none")
    page = browser.page_source
    # AF3 nobody: no role, reads no DAG; AF2 limited: reads ui_paused only
    for hidden in ("ui_secret", "quarterly close", "FIN-9", "ui_running", "ui_script"):
        assert hidden not in page
    if ui_server.major == 2:
        assert _rows(browser) == {("ui_paused", "ui"), ("ui_paused", "legacy")}
    else:
        assert _rows(browser) == set()
    browser.get(f"{ui_server.url}/pausectl/dag/ui_secret")
    _wait(browser, "section.env, #none")
    assert "quarterly close" not in browser.page_source
    assert browser.find_elements("css selector", "#none")
    shot(browser, f"af{ui_server.major}-unauthorised")
