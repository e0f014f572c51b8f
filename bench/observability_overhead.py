"""What the operations layer adds to each request: log line, upload metrics, cross-node lock.

    .venv/bin/python bench/observability_overhead.py            # SQLite: the lock is a no-op
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test .venv/bin/python bench/observability_overhead.py

Prints microseconds per call (median of 5 rounds). The request log line goes
to a null handler here: what is measured is building it, not the terminal.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "inventory_site.settings")
os.environ.setdefault("DJANGO_SECRET_KEY", "bench-only-not-a-secret")

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402
from django.http import HttpResponse  # noqa: E402
from django.test import RequestFactory  # noqa: E402

from reports import addresses, locks, metrics  # noqa: E402
from reports.middleware import RequestLogMiddleware, note_host_id  # noqa: E402

ROUNDS, CALLS = 5, 5000


def per_call_us(function) -> float:
    timings = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        for _ in range(CALLS):
            function()
        timings.append((time.perf_counter() - started) / CALLS * 1e6)
    return statistics.median(timings)


def main() -> None:
    logger = logging.getLogger("relevo.request")
    logger.handlers = [logging.NullHandler()]
    factory = RequestFactory()

    def view(request):
        note_host_id(request, "host-1")
        return HttpResponse(status=201)

    middleware = RequestLogMiddleware(view)
    request = factory.post("/upload", data=b"{}", content_type="application/json", REMOTE_ADDR="10.0.0.5")
    ip, day = addresses.parse_ip("10.0.0.5"), dt.date(2026, 11, 27)

    def lock_round_trip():
        with locks.day_file_lock(ip, day):
            pass

    print(f"request middleware (log line + upload metrics): {per_call_us(lambda: middleware(request)):8.1f} us/request")
    print(f"metrics.record_upload alone:                     "
          f"{per_call_us(lambda: metrics.record_upload(status=201, reason=None, seconds=0.002)):8.1f} us/upload")
    print(f"day_file_lock on {connection.vendor:<10}:                   {per_call_us(lock_round_trip):8.1f} us/upload")


if __name__ == "__main__":
    main()
