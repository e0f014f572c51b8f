"""The "Add hosts" page in a real Chromium against a real gunicorn (see test_browser.py for the setup).

A staff user finds the page from the empty host list, downloads a package with
the browser's session, and, with enrollment off, makes a fleet token that then
really uploads a snapshot.
"""

from __future__ import annotations

import hashlib

import pytest
import requests

from relevo_testing.factories import make_payload
from reports.tests.browser import console_errors, shoot, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.slow]

MSI = "relevo-agent-1.0.0-x64.msi"


def test_staff_add_hosts_downloads_a_package_and_makes_a_working_fleet_token(relevo_server_factory, browser,
                                                                             tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    dist = tmp_path / "dist"
    dist.mkdir()
    content = b"MSI bytes " * 1000
    (dist / MSI).write_bytes(content)
    server = relevo_server_factory(extra_env={"INVENTORY_PACKAGES_DIR": str(dist)})
    driver = browser
    sign_in(driver, server)

    driver.find_element(By.LINK_TEXT, "Add hosts").click()  # from the "No hosts yet" page
    WebDriverWait(driver, 15).until(lambda d: d.current_url.endswith("/hosts/add/"))
    body = driver.find_element(By.TAG_NAME, "body").text
    assert MSI in body and hashlib.sha256(content).hexdigest() in body
    assert "Enrollment is off" in body
    shoot(driver, "10-add-hosts")

    link = driver.find_element(By.LINK_TEXT, MSI).get_attribute("href")
    cookies = {c["name"]: c["value"] for c in driver.get_cookies()}
    download = requests.get(link, cookies=cookies, timeout=10)
    assert download.status_code == 200 and download.content == content
    assert requests.get(link, timeout=10, allow_redirects=False).status_code == 302  # not without a session

    driver.find_element(By.XPATH, "//button[normalize-space()='Make a fleet token']").click()
    WebDriverWait(driver, 15).until(lambda d: d.find_elements(By.ID, "new-token"))
    token = driver.find_element(By.ID, "new-token").text
    msi_command = driver.find_element(By.ID, "cmd-msi").text
    assert msi_command == f"msiexec /i {MSI} /qn SERVER={server.url} TOKEN={token}"
    shoot(driver, "11-add-hosts-token")
    assert console_errors(driver) == []

    upload = requests.post(f"{server.url}/upload", json=make_payload(host_id="added-from-page"), timeout=10,
                           headers={"Authorization": f"Token {token}"})
    assert upload.status_code == 201, upload.text
