"""What throttling costs per request: the counter alone, and /upload with and without it.

    .venv/bin/python bench/throttle.py [--n 2000] [--uploads 300]

Runs in-process against a fresh SQLite database in a temporary folder (and
Redis on 127.0.0.1:6379 if it answers). Prints one line per measurement:
microseconds (wall and CPU) per throttle hit, the same while another process
commits to the main database the way uploads do, and milliseconds of wall
time per /upload.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    tmp = Path(tempfile.mkdtemp(prefix="relevo-bench-throttle-"))
    try:
        return run(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run(tmp: Path) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="throttle hits per backend")
    parser.add_argument("--uploads", type=int, default=300, help="uploads per variant")
    args = parser.parse_args()

    os.environ.update({
        "DJANGO_SETTINGS_MODULE": "inventory_site.settings", "DJANGO_SECRET_KEY": "bench-only-not-secret",
        "INVENTORY_DATA_DIR": str(tmp), "DJANGO_ALLOWED_HOSTS": "testserver",
        "INVENTORY_REQUEST_LOG": "false",  # a JSON line per upload would bury the figures
    })
    os.environ.pop("DATABASE_URL", None)
    os.environ.pop("REDIS_URL", None)
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.test import Client

    from reports import services, throttling
    from relevo_testing.factories import encode, make_payload

    call_command("migrate", verbosity=0)
    rate = (10**9, 60)

    def time_hits(label: str) -> None:
        for i in range(50):  # the first hit of a process opens its connection; that is not a per-hit cost
            throttling.hit(f"bench:{i % 50}", rate)
        start, start_cpu = time.perf_counter(), time.process_time()
        for i in range(args.n):
            throttling.hit(f"bench:{i % 50}", rate)
        per = (time.perf_counter() - start) / args.n * 1e6
        per_cpu = (time.process_time() - start_cpu) / args.n * 1e6
        print(f"throttle hit, {label}: {per:.1f} us/hit ({per_cpu:.1f} us CPU) over {args.n} hits")

    time_hits("database (SQLite upsert)")
    time_hits_beside_commits("database (SQLite upsert)", args.n, rate)
    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=0.5).close()
    except OSError:
        print("throttle hit, redis: skipped (no Redis on 127.0.0.1:6379)")
    else:
        settings.REDIS_URL = "redis://127.0.0.1:6379/15"
        time_hits("redis (one pipeline)")
        settings.REDIS_URL = ""

    _, token = services.agent_token_create(name="bench")
    client = Client(REMOTE_ADDR="10.9.0.1", HTTP_AUTHORIZATION=f"Token {token}")
    bodies = [encode(make_payload(processes=50)) for _ in range(args.uploads * 2)]
    for variant, value in (("throttle off", "off"), ("throttle on (database)", "100000/min")):
        settings.INVENTORY_THROTTLE_UPLOAD = value
        times = []
        for body in bodies[: args.uploads] if value == "off" else bodies[args.uploads:]:
            start = time.perf_counter()
            response = client.post("/upload", body, content_type="application/json")
            times.append(time.perf_counter() - start)
            assert response.status_code == 201, response.content
        print(f"/upload, {variant}: median {statistics.median(times) * 1e3:.2f} ms, "
              f"mean {statistics.mean(times) * 1e3:.2f} ms over {args.uploads} uploads (50 processes, fsync on)")
    return 0


def _commit_like_uploads(stop) -> None:
    """Commit small transactions to the main database the way uploads do (writer lock, WAL fsync) until *stop*."""
    from django.db import connection

    from reports import dbwrite

    while not stop.is_set():
        with dbwrite.write_transaction(), connection.cursor() as cursor:
            cursor.execute("INSERT INTO bench_commits (body) VALUES (randomblob(4096))")
        time.sleep(0.002)  # an upload's other work between its commits


def time_hits_beside_commits(label: str, n: int, rate: tuple[int, int]) -> None:
    """Per-hit latency while another process keeps committing to the main database."""
    from django.db import connection, connections

    from reports import throttling

    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE IF NOT EXISTS bench_commits (id INTEGER PRIMARY KEY, body BLOB)")
    connections.close_all()  # SQLite connections must not cross the fork
    context = multiprocessing.get_context("fork")
    stop = context.Event()
    writer = context.Process(target=_commit_like_uploads, args=(stop,), daemon=True)
    writer.start()
    try:
        time.sleep(0.2)
        times = []
        for i in range(n):
            start = time.perf_counter()
            throttling.hit(f"bench:{i % 50}", rate)
            times.append(time.perf_counter() - start)
    finally:
        stop.set()
        writer.join(timeout=10)
    times.sort()
    print(f"throttle hit, {label}, while another process commits to the main database: "
          f"median {statistics.median(times) * 1e6:.1f} us, p99 {times[int(len(times) * 0.99)] * 1e6:.1f} us, "
          f"max {times[-1] * 1e3:.1f} ms over {n} hits")


if __name__ == "__main__":
    raise SystemExit(main())
