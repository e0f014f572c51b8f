#!/usr/bin/env python3
"""Benchmark: the dashboard pages at 10,000 hosts and 300,000 snapshots, through real gunicorn.

    .venv/bin/python bench/pages.py              # load once (cached in build/), then time
    .venv/bin/python bench/pages.py --fresh      # rebuild the database first
    .venv/bin/python bench/pages.py --hosts 1000 --per-host 10 --requests 50   # a quick run

The database is filled by ``bench/loader.py`` (bulk inserts, about 2-4
minutes for the full size) and kept in ``build/bench-pages-<hosts>x<per-host>/``
so reruns only time. A real gunicorn (2 workers, the production settings,
SQLite in WAL mode) serves it on 127.0.0.1; one signed-in ``requests`` session
asks each page in turn, sequentially, and the script prints the median and
99th percentile wall time per page. Targets from issue 4: hosts page median
<= 100 ms, host detail median <= 150 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from relevo_testing import live  # noqa: E402  (needs ROOT on the path)

TARGETS_MS = {"hosts page": 100, "host detail": 150}


def prepare(base: Path, *, hosts: int, per_host: int, fresh: bool) -> tuple[dict, dict]:
    marker = base / "prepared.json"
    if marker.exists() and not fresh:
        saved = json.loads(marker.read_text())
        print(f"pages: reusing the loaded database in {base} (--fresh to rebuild)")
        live.manage(saved["env"], "migrate", "--noinput", "-v", "0")  # the code may have moved on since
        return saved["env"], saved["credentials"]
    if base.exists():
        for path in sorted(base.rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()
    base.mkdir(parents=True, exist_ok=True)
    env, credentials = live.prepare(base)
    os.environ.update(env)
    import django
    django.setup()
    from bench.loader import load
    started = time.monotonic()
    counts = load(hosts=hosts, snapshots_per_host=per_host, progress=lambda line: print(line, flush=True))
    print(f"pages: loaded {counts['hosts']} hosts, {counts['snapshots']} snapshots "
          f"({counts['document_bytes'] / 1e9:.2f} GB compressed documents) in {time.monotonic() - started:.0f} s")
    marker.write_text(json.dumps({"env": env, "credentials": credentials}))
    return env, credentials


def sign_in(url: str, password: str) -> requests.Session:
    session = requests.Session()
    page = session.get(f"{url}/accounts/login/", timeout=30)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    response = session.post(f"{url}/accounts/login/", timeout=30, allow_redirects=False,
                            data={"username": "admin", "password": password, "csrfmiddlewaretoken": token, "next": "/"})
    assert response.status_code == 302, f"sign-in failed: {response.status_code}"
    return session


def timed(session: requests.Session, urls: list[str]) -> list[float]:
    times = []
    for url in urls:
        started = time.perf_counter()
        response = session.get(url, timeout=60)
        elapsed = (time.perf_counter() - started) * 1000
        if response.status_code != 200:
            raise SystemExit(f"{url} answered {response.status_code}")
        times.append(elapsed)
    return times


def report(name: str, times: list[float]) -> None:
    ordered = sorted(times)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    median = statistics.median(ordered)
    target = TARGETS_MS.get(name)
    verdict = "" if target is None else f"  target median <= {target} ms: {'OK' if median <= target else 'MISSED'}"
    print(f"pages: {name:<34} n={len(times):<4} median={median:7.1f} ms  p99={p99:7.1f} ms{verdict}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hosts", type=int, default=10_000)
    parser.add_argument("--per-host", type=int, default=30)
    parser.add_argument("--requests", type=int, default=200, help="requests per page kind")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--fresh", action="store_true")
    args = parser.parse_args(argv)

    base = ROOT / "build" / f"bench-pages-{args.hosts}x{args.per_host}"
    env, credentials = prepare(base, hosts=args.hosts, per_host=args.per_host, fresh=args.fresh)
    server = live.start(base, workers=args.workers, prepared=(env, credentials), timeout=60)
    try:
        url = server.url
        session = sign_in(url, credentials["admin_password"])
        hosts_page = session.get(f"{url}/?sort=-last_seen", timeout=60).text
        detail_ids = [int(pk) for pk in re.findall(r'href="/hosts/(\d+)/"', hosts_page)]
        rng = random.Random(7)
        pks = [rng.randint(1, args.hosts) for _ in range(args.requests)]
        n = args.requests
        timed(session, [f"{url}/"] * 10 + [f"{url}/hosts/{detail_ids[0]}/"] * 10)  # warm both workers
        print(f"pages: {args.hosts} hosts x {args.per_host} snapshots, {args.workers} gunicorn workers, "
              f"sequential requests on one signed-in session")
        report("hosts page", timed(session, [f"{url}/"] * n))
        report("hosts page, sort -last_seen, page 100", timed(session, [f"{url}/?sort=-last_seen&page=100"] * (n // 2)))
        report("hosts page, search + filters", timed(session, [f"{url}/?q=web-00&os=Linux&status=online"] * (n // 2)))
        report("host detail", timed(session, [f"{url}/hosts/{pk}/" for pk in pks]))
        report("host detail, parent/child view", timed(session, [f"{url}/hosts/{pk}/?tree=on" for pk in pks[: n // 2]]))
        report("changes (last two snapshots)", timed(session, [f"{url}/hosts/{pk}/changes/" for pk in pks[: n // 2]]))
        report("process search 'postgres'", timed(session, [f"{url}/processes/?q=postgres"] * (n // 4)))
        report("admin host changelist", timed(session, [f"{url}/admin/reports/host/"] * (n // 4)))
        report("admin snapshot changelist", timed(session, [f"{url}/admin/reports/snapshot/"] * (n // 4)))
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
