"""A real Chromium on the Software page and the hosts list's "has software" filter, against a real gunicorn.

Two hosts send their software lists over HTTP with an agent token; Chromium
signs in, searches the fleet's software, drills down from a host count to
the hosts, and filters the hosts list by a package. Without Chromium it
skips outside CI and fails under CI=true.
"""

from __future__ import annotations

import datetime as dt

import pytest

from relevo_testing.factories import make_inventory, make_payload, make_software
from reports.tests.browser import console_errors, search_page, shoot, sign_in, upload

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def with_package(software: list[dict], name: str, version: str) -> list[dict]:
    return [*software, {"name": name, "version": version, "vendor": "Relevo Tests", "arch": "amd64",
                        "source": "deb", "install_date": "2026-05-09"}]


def test_a_person_finds_a_package_and_the_hosts_that_have_it(live_relevo, browser):
    server, driver = live_relevo, browser
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    # Both hosts have zebra-tool; at two versions, so the drill-down by version names one host each.
    for host_id, hostname, version in (("sw-browser-1", "software-browser-01", "2.1.0"),
                                       ("sw-browser-2", "software-browser-02", "2.2.0")):
        software = with_package(make_software(40), "zebra-tool", version)
        upload(server, make_payload(host_id=host_id, hostname=hostname, collected_at=now,
                                    **make_inventory(software=software)))
    upload(server, make_payload(host_id="sw-browser-3", hostname="software-browser-03", collected_at=now,
                                **make_inventory(software=make_software(5))))

    sign_in(driver, server)
    search_page(driver, "Software", "/software/", "ZEBRA")
    rows = [row.text for row in driver.find_elements(By.CSS_SELECTOR, "table.data tbody tr")]
    assert len(rows) == 2 and all(row.startswith("zebra-tool") for row in rows), rows
    assert "2.1.0" in rows[0] + rows[1] and "2.2.0" in rows[0] + rows[1]
    shoot(driver, "13-software-search")

    # The host count of 2.2.0 links to the one host that has that version.
    [row] = [r for r in driver.find_elements(By.CSS_SELECTOR, "table.data tbody tr") if "2.2.0" in r.text]
    count = row.find_element(By.CSS_SELECTOR, "td.c-num a")
    assert count.text == "1"
    count.click()
    WebDriverWait(driver, 15).until(lambda d: "name=zebra-tool" in d.current_url)
    assert "Hosts with zebra-tool 2.2.0" in driver.find_element(By.TAG_NAME, "h1").text
    hosts = [a.text for a in driver.find_elements(By.CSS_SELECTOR, "table.data tbody th a")]
    assert hosts == ["software-browser-02"]
    shoot(driver, "14-software-hosts")

    # "All versions" leads to every host with the package, and one of them opens its page.
    driver.find_element(By.PARTIAL_LINK_TEXT, "All versions of zebra-tool").click()
    WebDriverWait(driver, 15).until(lambda d: "q=zebra-tool" in d.current_url)
    assert len(driver.find_elements(By.CSS_SELECTOR, "table.data tbody tr")) == 2
    driver.get(f"{server.url}/software/?name=zebra-tool")
    hosts = sorted(a.text for a in driver.find_elements(By.CSS_SELECTOR, "table.data tbody th a"))
    assert hosts == ["software-browser-01", "software-browser-02"]
    driver.find_element(By.LINK_TEXT, "software-browser-01").click()
    WebDriverWait(driver, 15).until(lambda d: "/hosts/" in d.current_url)
    assert "zebra-tool" in driver.find_element(By.ID, "software").text

    # The hosts list's "Has software" filter keeps the two hosts and drops the third.
    driver.get(f"{server.url}/")
    field = driver.find_element(By.NAME, "software")
    field.send_keys("zebra-tool")
    field.submit()
    WebDriverWait(driver, 15).until(lambda d: "software=zebra-tool" in d.current_url)
    listed = sorted(a.text for a in driver.find_elements(By.CSS_SELECTOR, "table.hosts tbody th a"))
    assert listed == ["software-browser-01", "software-browser-02"]
    shoot(driver, "15-hosts-with-software")
    assert console_errors(driver) == []
