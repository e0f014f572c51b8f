"""A real Chromium on the host page's inventory sections and the changes page, against a real gunicorn.

Written like test_browser.py (and sharing its browser fixture and helpers):
snapshots go in over HTTP with an agent token, Chromium signs in and reads
the pages. Without Chromium it skips outside CI and fails under CI=true.
"""

from __future__ import annotations

import copy
import datetime as dt
import uuid

import pytest

from relevo_testing.factories import make_inventory, make_payload, make_software
from reports.tests.browser import console_errors, shoot, sign_in, upload

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_a_person_reads_a_hosts_inventory_and_sees_an_upgrade_and_a_closed_port(live_relevo, browser):
    server, driver = live_relevo, browser
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    software = make_software(300)
    software[120] = dict(software[120], name="openssl", version="3.0.11-1~deb12u2", vendor="Debian OpenSSL Team")
    inventory = make_inventory(software=software)
    inventory["listening"].append({"protocol": "tcp", "address": "0.0.0.0", "port": 5432, "pid": 777,
                                   "process": "postgres"})
    inventory["disks"][0]["free_bytes"] = 60 * 2**30  # 44% used
    inventory["disks"].append({"mount_point": "/var/lib/postgresql", "device": "/dev/nvme1n1", "fs_type": "xfs",
                               "total_bytes": 200 * 2**30, "free_bytes": 12 * 2**30})  # 94% used
    first = make_payload(host_id="browser-inv", hostname="inventory-browser-01",
                         collected_at=now - dt.timedelta(hours=1), **inventory)
    upload(server, first)

    sign_in(driver, server)
    driver.find_element(By.LINK_TEXT, "inventory-browser-01").click()
    WebDriverWait(driver, 15).until(lambda d: "/hosts/" in d.current_url)
    hardware = driver.find_element(By.ID, "hardware").text
    assert "Amazon EC2" in hardware and "m6i.large" in hardware and "Yes, aws" in hardware
    listening = driver.find_element(By.ID, "listening").text
    assert "5432" in listening and "postgres" in listening
    assert "02:fc:00:00:00:01" in driver.find_element(By.ID, "interfaces").text
    assert "ssh.service" in driver.find_element(By.ID, "services").text

    # The full disk is drawn in the warning colour; the other one is not.
    warned = driver.find_elements(By.CSS_SELECTOR, "#disks .usage.warn")
    assert len(warned) == 1 and "94%" in warned[0].text
    fill = warned[0].find_element(By.CSS_SELECTOR, ".fill")
    other = driver.find_element(By.CSS_SELECTOR, "#disks .usage:not(.warn) .fill")
    assert fill.value_of_css_property("background-color") != other.value_of_css_property("background-color")
    assert fill.size["width"] > other.size["width"] > 0
    shoot(driver, "08-host-inventory")

    software_rows = driver.find_elements(By.CSS_SELECTOR, "table.software tbody tr")
    assert len(software_rows) == 250 and "300 packages, 1–250 shown" in driver.find_element(By.ID, "software").text
    box = driver.find_element(By.ID, "id_software")
    box.send_keys("openssl")
    box.submit()
    WebDriverWait(driver, 15).until(lambda d: "software=openssl" in d.current_url)
    rows = driver.find_elements(By.CSS_SELECTOR, "table.software tbody tr")
    assert [r.text.split()[0] for r in rows] == ["openssl"] and "3.0.11-1~deb12u2" in rows[0].text
    assert "1 of 300 packages match" in driver.find_element(By.ID, "software-count").text

    second = copy.deepcopy(first)
    upgraded = copy.deepcopy(software)
    upgraded[120]["version"] = "3.0.15-1~deb12u1"
    second.update(make_inventory(software=upgraded), snapshot_id=str(uuid.uuid4()),
                  collected_at=(now - dt.timedelta(minutes=1)).isoformat())
    second["listening"] = first["listening"][:2]  # postgres closed 5432
    second["disks"] = first["disks"]
    upload(server, second)

    driver.find_element(By.LINK_TEXT, "What changed?").click()
    WebDriverWait(driver, 15).until(lambda d: "/changes/" in d.current_url)
    software_changes = driver.find_element(By.ID, "software-h").find_element(By.XPATH, "..").text
    assert "openssl" in software_changes and "upgraded" in software_changes
    assert "3.0.11-1~deb12u2" in software_changes and "3.0.15-1~deb12u1" in software_changes
    assert "removed" not in software_changes and "installed" not in software_changes
    ports = driver.find_element(By.ID, "ports-h").find_element(By.XPATH, "..").text
    assert "5432" in ports and "closed" in ports and "postgres" in ports and "opened" not in ports
    shoot(driver, "09-inventory-changes")

    assert console_errors(driver) == []
