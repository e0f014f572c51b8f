"""Screenshots of every page at 1440 and 390 px: ``make screenshots`` (or ``python scripts/screenshots.py``).

Starts a throwaway live server (``relevo_testing.live``: its own database and
data folder under a temporary directory), uploads a small demo fleet over
HTTP as agents would (a Debian web server with kernel threads, long command
lines and a six-hour outage in its history, an Ubuntu database host, a
Windows server), signs in with a headless Chromium (``reports/tests/browser.py``)
and saves each page, full height, to ``build/screenshots/<page>-<width>.png``.
Exit status 0 when every page loaded without a console error, 1 otherwise.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from relevo_testing import live  # noqa: E402
from relevo_testing.factories import make_inventory, make_payload  # noqa: E402
from reports.tests.browser import chromium, console_errors, sign_in, upload  # noqa: E402

WIDTHS = (1440, 390)
OUT = ROOT / "build" / "screenshots"


def _process(pid, name, cmdline, *, ppid=1, user="root", cpu=0.0, rss=10_000_000, threads=1, exe=None,
             started="2026-11-20T06:12:03+00:00"):
    return {"pid": pid, "ppid": ppid, "name": name, "username": user, "status": "sleeping",
            "create_time": started, "cpu_percent": cpu, "memory_rss_bytes": rss, "memory_percent": 0.2,
            "num_threads": threads, "exe": exe, "cmdline": cmdline}


def _linux_processes(extra: int) -> list[dict]:
    java = ["/usr/lib/jvm/java-17-openjdk-amd64/bin/java", "-Xms2g", "-Xmx2g", "-XX:+UseG1GC",
            "-Dlog4j.configurationFile=/etc/app/log4j2.xml", "-Dspring.profiles.active=production,metrics",
            "-classpath", "/opt/app/lib/app.jar:/opt/app/lib/dependencies/*", "com.example.inventory.Application",
            "--server.port=8080", "--management.endpoints.web.exposure.include=health,info,prometheus"]
    processes = [
        _process(1, "systemd", ["/sbin/init"], ppid=0, rss=12_000_000, exe="/usr/lib/systemd/systemd"),
        _process(2, "kthreadd", None, ppid=0, rss=0),
        *[_process(10 + i, f"kworker/{i}:1-events", None, ppid=2, rss=0) for i in range(12)],
        _process(400, "nginx", ["nginx: master process /usr/sbin/nginx -g daemon on;"], cpu=1.0, rss=5_000_000,
                 exe="/usr/sbin/nginx"),
        _process(401, "nginx", ["nginx: worker process"], ppid=400, user="www-data", cpu=30.0, rss=9_000_000,
                 exe="/usr/sbin/nginx"),
        _process(900, "java", java, user="app", cpu=12.5, rss=2_300_000_000, threads=57,
                 exe="/usr/lib/jvm/java-17-openjdk-amd64/bin/java"),
    ]
    processes += [_process(2000 + i, f"worker-{i}", [f"/usr/bin/worker-{i}", "--queue", "default"],
                           cpu=0.1, rss=20_000_000, exe=f"/usr/bin/worker-{i}") for i in range(extra)]
    return processes


def demo_fleet(now: dt.datetime) -> list[dict]:
    """Snapshots of three hosts over the last day, oldest first; the web server misses six hours."""
    payloads = []
    start = now.replace(minute=0, second=0, microsecond=0) - dt.timedelta(hours=20)
    times = [start + dt.timedelta(minutes=15 * i) for i in range(80)]
    times = [t for t in times if not start + dt.timedelta(hours=6) <= t < start + dt.timedelta(hours=12)]
    for i, at in enumerate(times + [now - dt.timedelta(minutes=1)]):
        payload = make_payload(host_id="demo-web-01", hostname="web-01", collected_at=at,
                               processes=0, **make_inventory())
        payload["processes"] = _linux_processes(110 + (i % 7) * 3)
        payload["memory"] = {"total_bytes": 8 * 2**30, "available_bytes": int((3 + (i % 5) * 0.3) * 2**30)}
        payloads.append(payload)
    ubuntu = make_payload(host_id="demo-db-01", hostname="db-01", collected_at=now - dt.timedelta(minutes=3))
    ubuntu["os"] = dict(ubuntu["os"], distribution="Ubuntu", distribution_version="24.04")
    windows = make_payload(host_id="demo-win-01", hostname="WIN-FILES", collected_at=now - dt.timedelta(hours=2))
    windows["os"] = {"name": "Windows", "version": "10.0.20348", "release": "2022Server", "build": "20348",
                     "distribution": None, "distribution_version": None, "kernel": None, "arch": "AMD64"}
    windows["processes"] = [_process(4, "System", None, ppid=0, rss=0),
                            _process(812, "svchost.exe", ["C:\\Windows\\system32\\svchost.exe", "-k", "netsvcs"],
                                     user="NT AUTHORITY\\SYSTEM")]
    return payloads + [ubuntu, windows]


def pages(server: live.LiveRelevo) -> list[tuple[str, str]]:
    """(file stem, path) of every page, with the web server's id from the read API."""
    hosts = requests.get(f"{server.url}/api/hosts/", timeout=10,
                         headers={"Authorization": f"Token {server.reader_token}"}).json()["results"]
    web = next(h["id"] for h in hosts if h["hostname"] == "web-01")
    return [
        ("01-hosts", "/"), ("02-host", f"/hosts/{web}/"), ("03-host-kernel-threads", f"/hosts/{web}/?kthreads=on&psort=-pid#processes"),
        ("04-changes", f"/hosts/{web}/changes/"), ("05-process-search", "/processes/?q=nginx"),
        ("06-software", "/software/"), ("07-add-hosts", "/hosts/add/"), ("08-not-found", "/no-such-page/"),
        ("09-admin-hosts", "/admin/reports/host/"), ("10-admin-snapshots", "/admin/reports/snapshot/"),
        ("11-api-docs", "/api/docs/"), ("12-alerts", "/alerts/"),
    ]


def shoot_all(server: live.LiveRelevo, out: Path) -> list[str]:
    """Save every page at every width; returns the console errors met, as 'page: message'."""
    out.mkdir(parents=True, exist_ok=True)
    problems = []
    with chromium() as driver:
        sign_in(driver, server)
        for stem, path in pages(server):
            for width in WIDTHS:
                driver.set_window_size(width, 900)
                driver.get(server.url + path)
                full = driver.execute_script("return document.documentElement.scrollHeight")
                driver.set_window_size(width, min(max(900, full + 120), 8000))
                target = out / f"{stem}-{width}.png"
                driver.save_screenshot(str(target))
                print(target.relative_to(ROOT) if target.is_relative_to(ROOT) else target, flush=True)
            problems += [f"{path}: {message}" for message in console_errors(driver)
                         if stem != "08-not-found" or "404" not in message]
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help="folder for the PNGs (default build/screenshots)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="relevo-screenshots-") as base:
        server = live.start(Path(base), workers=1)
        try:
            for payload in demo_fleet(dt.datetime.now(dt.timezone.utc).replace(microsecond=0)):
                upload(server, payload)
            problems = shoot_all(server, args.out)
        finally:
            server.stop()
    for problem in problems:
        print(f"console error: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
