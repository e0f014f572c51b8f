"""A real Chromium on process search across history, against a real gunicorn.

Three hosts upload over HTTP: one ran a miner for a while and stopped, one
runs it now, one never did. Chromium signs in, searches now and over a
range, follows a host's link to its filtered process list, and meets the
error of a range that ends before it starts. Without Chromium it skips
outside CI and fails under CI=true.
"""

from __future__ import annotations

import datetime as dt

import pytest

from relevo_testing.factories import make_payload
from reports.tests.browser import console_errors, search_page, shoot, sign_in, upload

pytestmark = [pytest.mark.browser, pytest.mark.slow]

MINER = {"pid": 4242, "ppid": 1, "name": "xmrig", "username": "nobody", "cmdline": ["/tmp/.x/xmrig", "-o", "pool:3333"]}
# Its command line names the miner, its name does not: a name-only search leaves it out, and so does its link.
WATCHER = {"pid": 4300, "ppid": 1, "name": "tail", "username": "root", "cmdline": ["tail", "-f", "/var/log/xmrig.log"]}
SSHD = {"pid": 700, "ppid": 1, "name": "sshd", "username": "root", "cmdline": ["/usr/sbin/sshd", "-D"]}


def snapshot(host_id: str, hostname: str, at: dt.datetime, processes: list[dict]) -> dict:
    payload = make_payload(host_id=host_id, hostname=hostname, collected_at=at, processes=0)
    payload["processes"] = processes
    return payload


def test_a_person_finds_which_hosts_ran_a_program_in_a_time_range(live_relevo, browser):
    server, driver = live_relevo, browser
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    for minutes, processes in ((60, [SSHD]), (40, [SSHD, MINER]), (20, [SSHD])):
        upload(server, snapshot("ph-1", "history-was-01", now - dt.timedelta(minutes=minutes), processes))
    upload(server, snapshot("ph-2", "history-now-02", now - dt.timedelta(minutes=5), [SSHD, MINER, WATCHER]))
    upload(server, snapshot("ph-3", "history-never-03", now - dt.timedelta(minutes=5), [SSHD]))

    sign_in(driver, server)
    search_page(driver, "Process search", "/processes/", "XMRIG")
    hosts = [a.text for a in driver.find_elements(By.CSS_SELECTOR, "#process-hosts tbody th a")]
    assert hosts == ["history-now-02"], "without dates: the newest snapshot of each host"

    # The range: from a day ago to now finds the host that stopped it too.
    since = (now - dt.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    field = driver.find_element(By.NAME, "since")
    driver.execute_script("arguments[0].value = arguments[1]", field, since)
    field.submit()
    WebDriverWait(driver, 15).until(lambda d: "since=" in d.current_url)
    rows = driver.find_elements(By.CSS_SELECTOR, "#process-hosts tbody tr")
    assert [r.find_element(By.CSS_SELECTOR, "th a").text for r in rows] == ["history-now-02", "history-was-01"]
    was = rows[1].text
    assert "offline" not in was and "Debian GNU/Linux 12" in was and "/tmp/.x/xmrig -o pool:3333" in was
    assert "(running)" in rows[0].text and "(running)" not in was
    assert "2 hosts ran XMRIG between" in driver.find_element(By.TAG_NAME, "body").text
    shoot(driver, "15-process-search-history")

    # The host still running it links to its process list, filtered by the same text and the same match.
    rows[0].find_element(By.LINK_TEXT, "Show in its process list").click()
    WebDriverWait(driver, 15).until(lambda d: "pq=XMRIG" in d.current_url)
    assert "match=name" in driver.current_url
    table = driver.find_element(By.ID, "processes").text
    assert "xmrig" in table and "sshd" not in table and "/var/log/xmrig.log" not in table
    from selenium.webdriver.support.ui import Select
    match = Select(driver.find_element(By.CSS_SELECTOR, "#processes select[name=match]"))
    assert match.first_selected_option.text == "Process name"
    match.select_by_visible_text("Name or command line")
    driver.find_element(By.CSS_SELECTOR, "#processes button[type=submit]").click()
    WebDriverWait(driver, 15).until(lambda d: "match=cmdline" in d.current_url)
    assert "/var/log/xmrig.log" in driver.find_element(By.ID, "processes").text

    assert console_errors(driver) == []

    # A range that ends before it starts is refused (400), with the reason by the field.
    driver.get(f"{server.url}/processes/?q=xmrig&since=2026-11-20T10:00&until=2026-11-19T10:00")
    assert "The end of the range is before its start." in driver.find_element(By.ID, "until-error").text
    assert not driver.find_elements(By.CSS_SELECTOR, "#process-hosts")
    [error] = console_errors(driver)
    assert "status of 400" in error, "the page's own answer, and nothing else"
