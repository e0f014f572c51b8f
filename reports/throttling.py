"""Request limits, counted in a store that every gunicorn worker shares.

Counts are fixed windows (``120/min`` = at most 120 hits per calendar minute
and key). Counting costs ONE round trip per request whatever the backend:

* Redis (``REDIS_URL`` set): ``SET key 0 EX window NX`` and ``INCR key`` in one
  pipeline.
* otherwise the database: one ``INSERT ... ON CONFLICT DO UPDATE ... RETURNING``
  on ``ThrottleCounter`` (SQLite >= 3.35 and PostgreSQL both have it), written
  without waiting for a disk flush (an UNLOGGED table on PostgreSQL; on SQLite
  that one statement runs with ``synchronous=OFF``): a counter lost in a power
  cut only resets a limit, while an fsync per request would double ingest's.

DRF's own ``SimpleRateThrottle`` keeps a list of timestamps per key in the
cache and does a get and a set on every request (two round trips, a value that
grows with the rate, lost updates between workers), which is why it is not
used here.

Keys (documented in docs/security.md):

* upload: agent token + client address. A fleet sharing one token is counted
  per host, so a rate that suits one agent suits a fleet of any size; a
  host-bound token is per host already.
* read: the user (session or API token), whatever address it comes from.
* enroll, and failed authentication: the client address.

If the counting store fails, the request is let through and the failure is
logged: a Redis outage must not stop ingest.
"""

from __future__ import annotations

import functools
import logging
import math
import re
import time

from django.conf import settings
from django.db import DatabaseError, connection
from rest_framework import exceptions, throttling

from reports import dbwrite
from reports.models import AgentToken, ThrottleCounter
from reports.network import client_ip

logger = logging.getLogger(__name__)

_RATE_RE = re.compile(r"^\s*(?P<count>\d+)\s*/\s*(?P<number>\d*)\s*(?P<unit>s|sec|second|m|min|minute|h|hour|d|day)s?\s*$")
_UNIT_SECONDS = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60,
                 "h": 3600, "hour": 3600, "d": 86400, "day": 86400}
_DISABLED = {"", "0", "off", "none", "unlimited"}


def parse_rate(text: str) -> tuple[int, int] | None:
    """``"120/min"`` -> (120, 60); ``"10/5s"`` -> (10, 5); ``"off"`` -> None. ValueError otherwise."""
    if text is None or text.strip().lower() in _DISABLED:
        return None
    match = _RATE_RE.match(text.lower())
    if not match:
        raise ValueError(f"{text!r} is not a rate like 120/min, 10/s or off")
    count = int(match["count"])
    seconds = _UNIT_SECONDS[match["unit"]] * int(match["number"] or 1)
    if count < 1 or seconds < 1:
        raise ValueError(f"{text!r}: the count and the period must be at least 1")
    return count, seconds


class DatabaseCounter:
    """Counts in the ``ThrottleCounter`` table with one upsert per hit."""

    def __init__(self):
        qn = connection.ops.quote_name
        table = qn(ThrottleCounter._meta.db_table)
        self._sql = (
            f"INSERT INTO {table} ({qn('key')}, window_start, hits) VALUES (%s, %s, 1) "
            f"ON CONFLICT ({qn('key')}) DO UPDATE SET "
            f"hits = CASE WHEN {table}.window_start = excluded.window_start THEN {table}.hits + 1 ELSE 1 END, "
            f"window_start = excluded.window_start "
            f"RETURNING hits"
        )

    def hit(self, key: str, window_start: int, seconds: int) -> int:
        with connection.cursor() as cursor:
            if connection.vendor != "sqlite" or connection.in_atomic_block:
                # (SQLite cannot change synchronous inside a transaction; the caller's commit decides.)
                # PostgreSQL: the table is UNLOGGED (migration 0004), so this commit waits for no WAL flush.
                cursor.execute(self._sql, [key, window_start])
                return cursor.fetchone()[0]
            # SQLite: a counter needs no durability, so this one commit skips the WAL fsync that
            # synchronous=FULL would cost (about a millisecond); the pragmas touch no disk.
            cursor.execute("PRAGMA synchronous")
            previous = cursor.fetchone()[0]
            cursor.execute("PRAGMA synchronous=OFF")
            try:
                # Queue with the upload transactions in the kernel, not in SQLite's sleeping busy handler.
                with dbwrite.sqlite_writer_lock():
                    cursor.execute(self._sql, [key, window_start])
                    return cursor.fetchone()[0]
            finally:
                cursor.execute(f"PRAGMA synchronous={int(previous)}")


class RedisCounter:
    """Counts in Redis; the key expires with its window, so nothing needs pruning."""

    def __init__(self, url: str):
        import redis  # only needed when REDIS_URL is set

        self._errors = (redis.RedisError,)
        self._client = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)

    def hit(self, key: str, window_start: int, seconds: int) -> int:
        name = f"relevo:throttle:{key}:{window_start}"
        pipe = self._client.pipeline(transaction=False)
        pipe.set(name, 0, ex=seconds + 1, nx=True)
        pipe.incr(name)
        return int(pipe.execute()[1])


@functools.lru_cache(maxsize=4)
def _counter(redis_url: str):
    return RedisCounter(redis_url) if redis_url else DatabaseCounter()


def hit(key: str, rate: tuple[int, int], *, now: float | None = None) -> tuple[bool, float]:
    """Count one hit on *key*; returns (allowed, seconds until the window ends)."""
    limit, seconds = rate
    now = time.time() if now is None else now
    window_start = int(now // seconds) * seconds
    counter = _counter(settings.REDIS_URL)
    try:
        count = counter.hit(key, window_start, seconds)
    except (DatabaseError, *getattr(counter, "_errors", ())) as exc:
        logger.warning("throttle counter unavailable, letting the request through: %s", exc.__class__.__name__)
        return True, 0.0
    return count <= limit, window_start + seconds - now


def _address(request) -> str:
    try:
        return str(client_ip(request.META))
    except ValueError:
        return "unknown"


class RelevoThrottle(throttling.BaseThrottle):
    """A fixed-window limit whose rate is a setting and whose key the subclass picks."""

    scope = ""
    rate_setting = ""

    def key(self, request) -> str | None:
        raise NotImplementedError

    def allow_request(self, request, view) -> bool:
        rate = parse_rate(getattr(settings, self.rate_setting))
        key = self.key(request) if rate else None
        if key is None:
            return True
        allowed, self._wait = hit(f"{self.scope}:{key}", rate)
        return allowed

    def wait(self) -> float:
        return max(1.0, math.ceil(self._wait))


class UploadThrottle(RelevoThrottle):
    scope = "upload"
    rate_setting = "INVENTORY_THROTTLE_UPLOAD"

    def key(self, request) -> str | None:
        if not isinstance(request.auth, AgentToken):
            return None  # refused by the permission check anyway
        return f"{request.auth.pk}:{_address(request)}"


class ReadThrottle(RelevoThrottle):
    scope = "read"
    rate_setting = "INVENTORY_THROTTLE_READ"

    def key(self, request) -> str | None:
        user = request.user
        if user is not None and user.is_authenticated and getattr(user, "pk", None) is not None:
            return f"user:{user.pk}"
        return f"addr:{_address(request)}"


class EnrollThrottle(RelevoThrottle):
    scope = "enroll"
    rate_setting = "INVENTORY_THROTTLE_ENROLL"

    def key(self, request) -> str | None:
        return _address(request)


def auth_failure(request) -> None:
    """Count a failed credential from this address; raise 429 once it is over the limit.

    Only failures are counted, so a valid token costs nothing here. Tokens are
    256 random bits, so this is not what stops guessing; it stops a client
    from using the auth path (a database lookup each) to load the server.
    """
    rate = parse_rate(settings.INVENTORY_THROTTLE_AUTH_FAILURES)
    if rate is None:
        return
    allowed, wait = hit(f"authfail:{_address(request)}", rate)
    if not allowed:
        raise exceptions.Throttled(wait=max(1, math.ceil(wait)))
