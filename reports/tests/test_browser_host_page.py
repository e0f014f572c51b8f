"""A real Chromium on the host page: kernel threads hidden, sortable headers that say their direction,
long command lines opened without JavaScript, charts on a time axis, and an HTML 404 for a mistyped URL.

Needs Debian's ``chromium`` and ``chromium-driver`` (the ``browser`` fixture
skips without them outside CI, fails under CI=true).
"""

from __future__ import annotations

import datetime as dt

import pytest

from relevo_testing.factories import make_payload
from reports.tests.browser import console_errors, shoot, sign_in, upload

pytestmark = [pytest.mark.browser, pytest.mark.slow]

JAVA = ["/usr/lib/jvm/java-17-openjdk-amd64/bin/java", "-Xmx2g"] + [f"-Dapp.setting{i}=a-long-value-{i}" for i in range(12)]


def _process(pid, name, cmdline, *, ppid=1, cpu=0.0):
    return {"pid": pid, "ppid": ppid, "name": name, "username": "root", "status": "sleeping",
            "create_time": "2026-11-20T06:12:03+00:00", "cpu_percent": cpu, "memory_rss_bytes": 0 if cmdline is None else 5_000_000,
            "memory_percent": 0.1, "num_threads": 3, "exe": None if cmdline is None else cmdline[0], "cmdline": cmdline}


def test_an_operator_reads_the_process_table_and_charts_of_a_host(live_relevo, browser):
    from selenium.webdriver.common.by import By

    server, driver = live_relevo, browser
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    for minutes in (420, 405, 30, 15, 0):  # fifteen-minute steps around a six-and-a-half-hour gap
        payload = make_payload(host_id="browser-host", hostname="browser-host", collected_at=now - dt.timedelta(minutes=minutes))
        payload["processes"] = (
            [_process(1, "systemd", ["/sbin/init"], ppid=0), _process(2, "kthreadd", None, ppid=0)]
            + [_process(10 + i, f"kworker/{i}:1", None, ppid=2) for i in range(5)]
            + [_process(900, "java", JAVA, cpu=20.0), _process(901, "sshd", ["/usr/sbin/sshd", "-D"], cpu=1.0)]
        )
        upload(server, payload)
    sign_in(driver, server)
    driver.find_element(By.LINK_TEXT, "browser-host").click()
    page = driver.find_element(By.ID, "processes")
    assert "6 kernel threads hidden" in page.text and "kworker" not in page.text

    details = page.find_element(By.CSS_SELECTOR, "details.cmd-more")
    closed_height = details.size["height"]
    assert details.get_attribute("open") is None and "show all" in details.text
    details.find_element(By.TAG_NAME, "summary").click()
    assert details.get_attribute("open") is not None and details.size["height"] > closed_height
    assert JAVA[-1] in details.text and "show all" not in details.text
    assert driver.execute_script(
        "return getComputedStyle(arguments[0]).overflowWrap", driver.find_element(By.CSS_SELECTOR, "td.cmd")) == "anywhere"

    pid_header = lambda: driver.find_element(By.XPATH, "//section[@id='processes']//th[a[starts-with(normalize-space(.), 'PID')]]")
    assert pid_header().get_attribute("aria-sort") == "none"
    pid_header().find_element(By.TAG_NAME, "a").click()
    assert pid_header().get_attribute("aria-sort") == "ascending" and "▲" in pid_header().text
    pid_header().find_element(By.TAG_NAME, "a").click()
    assert pid_header().get_attribute("aria-sort") == "descending" and "▼" in pid_header().text
    assert driver.find_elements(By.CSS_SELECTOR, "#processes tbody tr")[0].text.startswith("901")

    driver.find_element(By.LINK_TEXT, "show them").click()
    assert "kworker/4:1" in driver.find_element(By.ID, "processes").text

    charts = driver.find_elements(By.CSS_SELECTOR, "svg.chart")
    assert len(charts) == 2
    labels = [t.text for t in charts[0].find_elements(By.CSS_SELECTOR, "text.chart-label")]
    assert "0" in labels and sum(1 for label in labels if label[:2] == "20" and ":" in label) == 3, labels
    assert len(charts[0].find_elements(By.TAG_NAME, "polyline")) == 2, "the gap breaks the line"
    assert "Booted" in driver.page_source and "at the last snapshot" in driver.page_source
    assert console_errors(driver) == []
    shoot(driver, "20-host-page")

    driver.get(f"{server.url}/hostz/")
    assert "No such page" in driver.find_element(By.TAG_NAME, "h1").text
