"""A real Chromium on an identity conflict: two cloned machines upload as one host id over HTTP.

The list shows the badge and filters on it, the host page shows the banner.
Without Chromium it skips outside CI and fails under CI=true.
"""

from __future__ import annotations

import datetime as dt

import pytest

from relevo_testing.factories import make_payload
from reports.tests.browser import console_errors, shoot, sign_in, upload

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_a_person_sees_two_machines_behind_one_host_id(live_relevo, browser):
    server, driver = live_relevo, browser
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    clones = [("clone-a", "VM-0001"), ("clone-b", "VM-0002")] * 3
    for n, (hostname, serial) in enumerate(clones):
        upload(server, make_payload(host_id="cloned-machine-id", hostname=hostname,
                                    collected_at=now - dt.timedelta(minutes=5 * (len(clones) - n)),
                                    hardware={"serial": serial, "uuid": None}))
    upload(server, make_payload(host_id="own-machine-id", hostname="single-01", collected_at=now))

    sign_in(driver, server)
    # .lower(): the badge is upper-cased by CSS.
    rows = {row.find_element(By.CSS_SELECTOR, "th a").text: row.text.lower()
            for row in driver.find_elements(By.CSS_SELECTOR, "table.hosts tbody tr")}
    assert "id conflict" in rows["clone-b"] and "id conflict" not in rows["single-01"]

    driver.find_element(By.NAME, "identity_conflict").click()
    driver.find_element(By.CSS_SELECTOR, "form.filters button[type=submit]").click()
    WebDriverWait(driver, 15).until(lambda d: "identity_conflict=on" in d.current_url)
    assert [a.text for a in driver.find_elements(By.CSS_SELECTOR, "table.hosts tbody th a")] == ["clone-b"]

    driver.find_element(By.LINK_TEXT, "clone-b").click()
    WebDriverWait(driver, 15).until(lambda d: "/hosts/" in d.current_url)
    banner = driver.find_element(By.CSS_SELECTOR, "[role=alert].identity-conflict").text
    assert "Two machines seem to send this host id" in banner and "hardware serial, hostname" in banner
    shoot(driver, "16-identity-conflict")
    assert console_errors(driver) == []
