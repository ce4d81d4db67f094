"""Headless Debian Chromium for the UI tests, driven by Selenium through /usr/bin/chromedriver
(an explicit Service: Selenium Manager never downloads a browser or a driver).

Missing Chromium: the tests skip locally and fail when CI=true (`make test` installs it:
the `browser` target). Screenshots go to .airflow/screenshots/ (gitignored with .airflow/).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
SHOTS = Path(__file__).resolve().parents[2] / ".airflow" / "screenshots"
# the closed network: no background fetches, no QUIC, no component updates
FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1400,1000"]


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("true", "1")


def chrome():
    """A fresh headless Chromium (its own profile dir); the caller quits it."""
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.path.exists(p)]
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        missing.append("selenium (pip)")
    if missing:
        msg = f"no browser: {', '.join(missing)} missing (make browser installs them)"
        if in_ci():
            pytest.fail(msg, pytrace=False)
        pytest.skip(msg)
    profile = tempfile.mkdtemp(prefix="pausectl-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in FLAGS + [f"--user-data-dir={profile}"]:
        opts.add_argument(flag)
    # console messages and network events, read back by the tests
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(60)
    driver._pausectl_profile = profile
    return driver


def quit_chrome(driver) -> None:
    profile = getattr(driver, "_pausectl_profile", None)
    try:
        driver.quit()
    finally:
        if profile:
            shutil.rmtree(profile, ignore_errors=True)


def shot(driver, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path


def console_errors(driver) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e.get("level") == "SEVERE"]


def network_requests(driver) -> list[str]:
    """Network URLs (http, https, ws, ftp) asked for since the last call, from the DevTools
    performance log (Chromium's own chrome:// pages and data: URLs are not the network)."""
    import json
    urls = []
    for entry in driver.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        if msg.get("method") == "Network.requestWillBeSent":
            url = msg["params"]["request"]["url"]
            if url.split(":", 1)[0].lower() in ("http", "https", "ws", "wss", "ftp"):
                urls.append(url)
    return urls
