"""Query benchmark: /query latency and database size at 10,000 hosts x 30 days (300,000 snapshots).

Loads the fleet with ``bench/query_loader.py`` (a direct loader, see there
what it writes), starts a real gunicorn on that data folder and times, from
one client connection at a time with a reader token:

- ``/query?ip=X&latest=true``: the newest snapshot of a host's newest day,
- ``/query?ip=X&date=D``: a whole day file,
- ``/api/hosts/`` (reader token) and the hosts page ``/`` (signed-in session;
  ``bench/pages.py`` measures every page in depth).

It prints p50 and p99 of each, and the database size and bytes per snapshot.
Beyond ``--direct-hosts`` (10,000) the fleet is filled by ``bench/loader.py``
(pooled 80-350 process documents, 10.0.x.x addresses): 100,000 hosts of
400-process documents would need 60 GB.

    .venv/bin/python bench/query.py [--hosts 10000] [--days 30] [--requests 400]
    .venv/bin/python bench/query.py --hosts 100000 --days 30   # issue 18's fleet (about 20 GB, see --direct-hosts)
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common, inprocess  # noqa: E402
from bench.payloads import collect_snapshot  # noqa: E402
from relevo_testing import live  # noqa: E402

TARGETS = {
    "latest": (5.0, 25.0),
    "day": (20.0, None),
    "listing": (150.0, 500.0),  # issue 18: /api/hosts/ and the hosts page at 100,000 hosts x 30 days
}
TARGET_DB_KB = 25.0
# A 400-process snapshot stored in the database (compressed) plus in a day file
# (about 150 KB) needs room: refuse rather than fill a shared disk.
BYTES_PER_SNAPSHOT_ESTIMATE = 20_000
BYTES_PER_FILE_ESTIMATE = 160_000
BYTES_PER_FLEET_SNAPSHOT_ESTIMATE = 6_000  # bench/loader.py's 80-350 process documents


def timed_get(port: int, path: str, headers: dict[str, str]) -> tuple[float, int, int]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    began = time.perf_counter()
    conn.request("GET", path, headers=headers)
    response = conn.getresponse()
    body = response.read()
    elapsed = time.perf_counter() - began
    conn.close()
    return elapsed, response.status, len(body)


def measure(port: int, name: str, paths: list[str], headers: dict[str, str], target: tuple | None = None) -> None:
    for path in paths[:5]:  # warm the workers
        timed_get(port, path, headers)
    times, sizes, failures = [], [], 0
    for path in paths:
        elapsed, status, size = timed_get(port, path, headers)
        if status != 200:
            failures += 1
            continue
        times.append(elapsed * 1000)
        sizes.append(size)
    if not times:
        print(f"{name}: not measured (every request answered with an error; first path {paths[0]})")
        return
    p50, p99 = common.percentile(times, 0.5), common.percentile(times, 0.99)
    p50_target, p99_target = target or (None, None)
    print(f"{name}: {len(times)} requests, {failures} errors, median body {int(common.median(sizes))} bytes")
    common.report(f"{name}.p50", p50, "ms", target=f"<= {p50_target:g} ms" if p50_target else "",
                  ok=p50 <= p50_target if p50_target else None)
    common.report(f"{name}.p99", p99, "ms", target=f"<= {p99_target:g} ms" if p99_target else "",
                  ok=p99 <= p99_target if p99_target else None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--file-hosts", type=int, default=300, help="hosts whose day files are written and queried")
    parser.add_argument("--direct-hosts", type=int, default=10_000,
                        help="hosts loaded with their own 400-process documents; the rest of --hosts by bench/loader.py")
    parser.add_argument("--requests", type=int, default=400, help="requests per measured endpoint")
    parser.add_argument("--workers", type=int, default=common.default_workers())
    args = parser.parse_args(argv)
    print(common.machine_line())

    base = Path(tempfile.mkdtemp(prefix="relevo-bench-query-"))
    direct = min(args.hosts, args.direct_hosts)
    need = (direct * BYTES_PER_SNAPSHOT_ESTIMATE + (args.hosts - direct) * BYTES_PER_FLEET_SNAPSHOT_ESTIMATE
            + args.file_hosts * BYTES_PER_FILE_ESTIMATE) * args.days
    free = shutil.disk_usage(base).free
    if free < 1.5 * need:
        scale = max(0.01, free / (1.5 * need))
        args.hosts = max(args.file_hosts, int(args.hosts * scale))
        direct = min(args.hosts, direct)
        print(f"query: only {free / 2**30:.1f} GiB free; loading {args.hosts} hosts instead (figures are NOT at full scale)")
    server = None
    try:
        prepared = live.prepare(base, common.BENCH_RATES)
        inprocess.setup(base / "data")
        from django.conf import settings
        from django.db import connection

        from bench import query_loader
        from reports.models import Snapshot

        began = time.monotonic()
        today = dt.datetime.now(dt.timezone.utc).date()
        loaded = query_loader.load(base_snapshot=collect_snapshot(), hosts=direct, days=args.days,
                                   file_hosts=args.file_hosts, last_day=today)
        if args.hosts > direct:  # the fleet around them: one snapshot a day, pooled documents
            from bench import loader

            loader.load(hosts=args.hosts - direct, snapshots_per_host=args.days, interval=dt.timedelta(days=1),
                        progress=lambda line: print(line, flush=True) if "0000/" in line else None)
        load_seconds = time.monotonic() - began
        count = Snapshot.objects.count()
        connection.close()
        database = Path(settings.DATABASES["default"]["NAME"])
        db_bytes = sum(p.stat().st_size for p in database.parent.glob(database.name + "*") if p.is_file())
        print(f"query: loaded {count} snapshots of {args.hosts} hosts x {args.days} days in {load_seconds:.0f} s "
              f"({args.file_hosts} hosts with day files)")
        common.report("query.snapshots", count, "snapshots")
        common.report("query.database_size", db_bytes / 2**20, "MB")
        per_kb = db_bytes / max(count, 1) / 1024
        common.report("query.database_per_snapshot", per_kb, "KB", target=f"<= {TARGET_DB_KB:.0f}",
                      ok=per_kb <= TARGET_DB_KB)

        server = common.start_server(base, workers=args.workers, prepared=prepared)
        headers = {"Authorization": f"Token {server.reader_token}"}
        rng = random.Random(11)
        queried = [host for host in loaded if host.has_files]
        picks = [rng.choice(queried) for _ in range(args.requests)]
        measure(server.port, "query.latest", [f"/query?ip={h.ip}&latest=true" for h in picks], headers,
                TARGETS["latest"])
        measure(server.port, "query.day",
                [f"/query?ip={h.ip}&date={rng.choice(h.days).isoformat()}" for h in picks], headers, TARGETS["day"])
        listing = max(50, args.requests // 4)
        measure(server.port, "query.api_hosts", ["/api/hosts/"] * listing, headers, TARGETS["listing"])
        measure(server.port, "query.api_hosts_filtered", ["/api/hosts/?status=online&ordering=-last_seen"] * listing,
                headers, TARGETS["listing"])
        # The pages take a signed-in session, as a person would have (bench/pages.py times them all).
        from bench.pages import sign_in

        session = sign_in(server.url, prepared[1]["admin_password"])
        cookie = "; ".join(f"{name}={value}" for name, value in session.cookies.items())
        measure(server.port, "query.hosts_page", ["/"] * listing, {"Cookie": cookie}, TARGETS["listing"])
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
