"""Driving a real Chromium for the browser tests: starting it, its console errors, screenshots at two widths.

Needs Debian's ``chromium`` and ``chromium-driver`` and selenium; the
``browser`` fixture (reports/tests/conftest.py) skips without them outside
CI and fails under CI=true.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

import requests

from relevo_testing.prerequisites import require

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "build" / "screenshots"
SIZES = {"laptop": (1366, 900), "phone": (390, 844)}


@contextlib.contextmanager
def chromium():
    """A headless Chromium with a fresh profile, quit and removed afterwards."""
    require(os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER),
            "Chromium is missing: apt-get install -y chromium chromium-driver (as .ci/run does)")
    require(importlib.util.find_spec("selenium") is not None,
            "selenium is missing: pip install -r requirements-dev.txt")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="relevo-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                 f"--user-data-dir={profile}", "--window-size=1366,900"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def console_errors(driver) -> list[str]:
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def shoot(driver, name: str) -> None:
    """Save the page at each width; the full page height, so nothing below the fold is missed."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for size_name, (width, height) in SIZES.items():
        driver.set_window_size(width, height)
        full = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(width, min(max(height, full + 120), 6000))
        assert driver.save_screenshot(str(SCREENSHOTS / f"{name}-{size_name}.png"))
        overflow = driver.execute_script(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 1, f"{name} scrolls sideways at {size_name} width ({overflow}px)"
    driver.set_window_size(*SIZES["laptop"])


def upload(server, payload: dict) -> None:
    """Send one snapshot to a live server with its agent token, as the agent does."""
    response = requests.post(f"{server.url}/upload", json=payload, timeout=10,
                             headers={"Authorization": f"Token {server.agent_token}"})
    assert response.status_code == 201, response.text


def sign_in(driver, server) -> None:
    """Sign in as the live server's admin through the login form."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(f"{server.url}/")
    driver.find_element(By.ID, "id_username").send_keys("admin")
    driver.find_element(By.ID, "id_password").send_keys(server.admin_password)
    driver.find_element(By.CSS_SELECTOR, "main button[type=submit]").click()
    WebDriverWait(driver, 15).until(lambda d: "/accounts/login/" not in d.current_url)


def search_page(driver, link_text: str, path: str, query: str) -> None:
    """Follow a navigation link to a search page, type *query* in its box and wait for the results' address."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.find_element(By.LINK_TEXT, link_text).click()
    WebDriverWait(driver, 15).until(lambda d: path in d.current_url)
    box = driver.find_element(By.NAME, "q")
    box.send_keys(query)
    box.submit()
    WebDriverWait(driver, 15).until(lambda d: f"q={query}" in d.current_url)
