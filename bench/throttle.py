"""What throttling costs per request: the counter alone, and /upload with and without it.

    .venv/bin/python bench/bench_throttle.py [--n 2000] [--uploads 300]

Runs in-process against a fresh SQLite database in a temporary folder (and
Redis on 127.0.0.1:6379 if it answers). Prints one line per measurement:
microseconds per throttle hit, and milliseconds of wall time per /upload.
"""

from __future__ import annotations

import argparse
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
    from reports.tests.factories import encode, make_payload

    call_command("migrate", verbosity=0)
    rate = (10**9, 60)

    def time_hits(label: str) -> None:
        start = time.perf_counter()
        for i in range(args.n):
            throttling.hit(f"bench:{i % 50}", rate)
        per = (time.perf_counter() - start) / args.n * 1e6
        print(f"throttle hit, {label}: {per:.1f} us/hit over {args.n} hits")

    time_hits("database (SQLite upsert)")
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


if __name__ == "__main__":
    raise SystemExit(main())
