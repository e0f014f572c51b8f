"""A real Chromium against a real gunicorn, with snapshots uploaded over HTTP.

Needs Debian's ``chromium`` and ``chromium-driver`` (``.ci/run`` installs them):
outside CI the test skips with that hint, under CI=true it fails. Screenshots
of each page at a laptop and a phone width go to ``build/screenshots/``.
"""

from __future__ import annotations

import datetime as dt
import uuid
from urllib.parse import quote

import pytest

from relevo_testing.factories import make_payload
from reports.tests.browser import console_errors, shoot, upload

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def process(pid, name, cmdline, *, ppid=1, user="root", cpu=0.0, rss=10_000_000):
    return {"pid": pid, "ppid": ppid, "name": name, "username": user, "status": "sleeping", "create_time": None,
            "cpu_percent": cpu, "memory_rss_bytes": rss, "memory_percent": 0.2, "num_threads": 2,
            "exe": None, "cmdline": cmdline}


def test_a_person_signs_in_and_browses_hosts_processes_and_changes(live_relevo, browser):
    server = live_relevo
    driver = browser
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(f"{server.url}/")
    assert "/accounts/login/" in driver.current_url, "pages need a signed-in user"
    shoot(driver, "01-login")
    driver.find_element(By.ID, "id_username").send_keys("admin")
    driver.find_element(By.ID, "id_password").send_keys(server.admin_password)
    driver.find_element(By.CSS_SELECTOR, "main button[type=submit]").click()
    WebDriverWait(driver, 15).until(lambda d: "/accounts/login/" not in d.current_url)
    assert driver.current_url.rstrip("/") == server.url, driver.current_url
    body = driver.find_element(By.TAG_NAME, "body").text
    assert "No hosts yet: run the agent" in body and f"--server {server.url}" in body
    shoot(driver, "00-empty")

    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    first = make_payload(host_id="browser-web", hostname="web-browser-01",
                         collected_at=now - dt.timedelta(hours=1), processes=0)
    first["processes"] = [process(1, "systemd", ["/sbin/init"], ppid=0),
                          process(410, "nginx", ["nginx: master process /usr/sbin/nginx"], cpu=1.5),
                          process(411, "nginx", ["nginx: worker process"], ppid=410, user="www-data", cpu=12.0),
                          process(520, "cron", ["/usr/sbin/cron", "-f"])]
    upload(server, first)
    second = dict(first, snapshot_id=str(uuid.uuid4()), collected_at=(now - dt.timedelta(minutes=1)).isoformat())
    second["processes"] = first["processes"][:3] + [
        process(9001, "cron", ["/usr/sbin/cron", "-f"]),
        process(777, "postgres", ["/usr/lib/postgresql/15/bin/postgres", "-D", "/var/lib/postgresql"],
                user="postgres", cpu=4.0, rss=120_000_000),
    ]
    second["users"] = [{"name": "carol", "terminal": "pts/3", "host": "10.0.0.42", "started": None}]
    upload(server, second)
    upload(server, make_payload(host_id="browser-db", hostname="db-browser-02", collected_at=now))

    driver.get(f"{server.url}/")
    body = driver.find_element(By.TAG_NAME, "body").text
    assert "web-browser-01" in body and "db-browser-02" in body and "ONLINE" in body.upper()
    assert driver.find_elements(By.CSS_SELECTOR, "table.hosts thead th[scope=col]")
    shoot(driver, "02-hosts")

    driver.find_element(By.LINK_TEXT, "web-browser-01").click()
    WebDriverWait(driver, 15).until(lambda d: "/hosts/" in d.current_url)
    body = driver.find_element(By.TAG_NAME, "body").text
    assert "Processes" in body and "postgres" in body and "carol" in body
    assert len(driver.find_elements(By.CSS_SELECTOR, "svg.chart polyline")) == 2
    shoot(driver, "03-host-detail")

    driver.find_element(By.ID, "id_tree").click()
    driver.find_element(By.CSS_SELECTOR, "#processes button[type=submit]").click()
    WebDriverWait(driver, 15).until(lambda d: "tree=on" in d.current_url)
    assert driver.find_elements(By.CSS_SELECTOR, "table.processes .tree")

    driver.find_element(By.LINK_TEXT, "What changed?").click()
    WebDriverWait(driver, 15).until(lambda d: "/changes/" in d.current_url)
    started = driver.find_element(By.ID, "started-h").find_element(By.XPATH, "..").text
    stopped = driver.find_element(By.ID, "stopped-h").find_element(By.XPATH, "..").text
    assert "postgres" in started and "cron" not in started, "cron restarted with a new pid: not new"
    assert "cron" not in stopped
    shoot(driver, "04-changes")

    driver.get(f"{server.url}/processes/?q={quote('postgres')}")
    body = driver.find_element(By.TAG_NAME, "body").text
    assert "web-browser-01" in body and "db-browser-02" not in body
    shoot(driver, "05-process-search")

    # The admin: make an agent token, see it once, and upload with it for real.
    driver.get(f"{server.url}/admin/reports/agenttoken/add/")
    driver.find_element(By.ID, "id_name").send_keys("from-the-browser")
    driver.find_element(By.NAME, "_save").click()
    WebDriverWait(driver, 15).until(lambda d: d.find_elements(By.ID, "raw-token"))
    raw = driver.find_element(By.ID, "raw-token").get_attribute("value")
    assert raw.startswith("rlv_a_")
    shoot(driver, "06-admin-token-created")
    server.agent_token = raw
    upload(server, make_payload(host_id="browser-new", hostname="made-with-admin-token"))
    driver.get(f"{server.url}/admin/reports/host/")
    assert "made-with-admin-token" in driver.find_element(By.TAG_NAME, "body").text
    shoot(driver, "07-admin-hosts")

    assert console_errors(driver) == []
