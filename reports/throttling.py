"""Request limits, counted in a store that every gunicorn worker shares.

Counts are fixed windows (``120/min`` = at most 120 hits per calendar minute
and key). Counting costs ONE statement or round trip per request whatever the
backend, and none of them waits for a disk flush (a counter lost in a power
cut only resets a limit, while an fsync per request would double ingest's):

* Redis (``REDIS_URL`` set): ``SET key 0 EX window NX`` and ``INCR key`` in one
  pipeline.
* SQLite in a file (the default): one ``INSERT ... ON CONFLICT DO UPDATE ...
  RETURNING`` in a database file of its own beside the main one
  (``relevo.sqlite3`` -> ``relevo-throttle.sqlite3``), through the ``sqlite3``
  module. Counting in the main database made every request queue for its one
  writer behind the upload transactions, each holding it through a WAL fsync.
* PostgreSQL: the same upsert on ``ThrottleCounter``, an UNLOGGED table.

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
import os
import re
import sqlite3
import threading
import time
from pathlib import Path

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connection
from rest_framework import exceptions, throttling

from reports import dbwrite, rowsql
from reports.models import AgentToken, ThrottleCounter
from reports.addresses import client_address

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
    """Counts in the ``ThrottleCounter`` table with one upsert per hit.

    Used on PostgreSQL, where the table is UNLOGGED (migration 0004) so the
    commit waits for no WAL flush. SQLite only comes here when it is not a
    plain file (in memory, as pytest-django's test database, or named by a
    ``file:`` URI): in memory there is no disk to wait for and no other
    process to share counts with, so the table in that same database is the
    simplest correct store.
    """

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
        # Prepared on PostgreSQL (reports.rowsql): it runs on every request, and parsing and
        # planning it afresh each time cost the server more than running it.
        return rowsql.scalar(self._sql, [key, window_start])


def counter_file(database_file: str) -> str:
    """Where ``SqliteFileCounter`` counts for a database: ``relevo.sqlite3`` -> ``relevo-throttle.sqlite3``."""
    path = Path(database_file)
    return str(path.with_name(f"{path.stem}-throttle{path.suffix}"))


_COUNTER_TABLE = """
CREATE TABLE IF NOT EXISTS throttle_counter (
    key TEXT PRIMARY KEY,
    window_start INTEGER NOT NULL,
    window_end INTEGER NOT NULL,
    hits INTEGER NOT NULL
) WITHOUT ROWID
"""
_COUNTER_UPSERT = (
    "INSERT INTO throttle_counter (key, window_start, window_end, hits) VALUES (?, ?, ?, 1) "
    "ON CONFLICT (key) DO UPDATE SET "
    "hits = CASE WHEN throttle_counter.window_start = excluded.window_start THEN throttle_counter.hits + 1 ELSE 1 END, "
    "window_start = excluded.window_start, window_end = excluded.window_end "
    "RETURNING hits"
)
# A row whose window ended before the current hit's began can only ever be reset, so it can go.
_COUNTER_PRUNE = "DELETE FROM throttle_counter WHERE window_end <= ?"

# Connections opened before a fork, kept only so that the garbage collector does not close them in the child.
_inherited_connections: list[sqlite3.Connection] = []


class SqliteFileCounter:
    """Counts in an SQLite file of its own, one autocommitted upsert per hit.

    The main SQLite database has one writer at a time, and each upload holds
    it through a WAL fsync; here only counters are written, each commit lasts
    microseconds, and no Django cursor wrapper is in the way. The file is
    shared by every worker on the machine, like the main database.

    WAL with ``synchronous=NORMAL``: a commit waits for no disk flush (the WAL
    is synced only when a checkpoint copies it back, about once per thousand
    pages written). The counts need no durability, losing the last ones in a
    power cut only resets a limit; but ``synchronous=OFF`` could leave the
    file corrupt after one, which would turn the limits off until someone
    deleted it.

    Each process opens its own connection on first use, and again after a
    fork: SQLite connections must not cross one (gunicorn forks its workers).
    Each thread has its own too, as with Django's connections. One hit in
    ``prune_every`` (and each connection's first) also deletes the rows whose
    window ended, so keys that stopped coming do not pile up.
    """

    _errors = (sqlite3.Error, OSError)

    def __init__(self, path: str, *, prune_every: int = 1000, busy_timeout: float = 5.0):
        self.path = path
        self._prune_every = prune_every
        self._busy_timeout = busy_timeout  # commits take microseconds; waiting longer means something is wrong
        self._local = threading.local()

    def _open(self) -> sqlite3.Connection:
        # Created here rather than by SQLite so that it is private to the server's user;
        # SQLite gives its -wal and -shm files the same mode.
        os.close(os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600))
        db = sqlite3.connect(self.path, timeout=self._busy_timeout, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute(_COUNTER_TABLE)
        except BaseException:
            db.close()
            raise
        return db

    def _connection(self) -> sqlite3.Connection:
        local = self._local
        pid = os.getpid()
        if getattr(local, "pid", None) != pid:
            if getattr(local, "db", None) is not None:
                # Never used or closed here: closing is a use, and could checkpoint the parent's WAL.
                _inherited_connections.append(local.db)
            local.db = None
            local.db = self._open()
            local.pid = pid
            local.hits = 0
        return local.db

    def hit(self, key: str, window_start: int, seconds: int) -> int:
        db = self._connection()
        local = self._local
        if local.hits % self._prune_every == 0:
            db.execute(_COUNTER_PRUNE, (window_start,))
        local.hits += 1
        return db.execute(_COUNTER_UPSERT, (key, window_start, window_start + seconds)).fetchone()[0]


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


@functools.lru_cache(maxsize=8)
def _counter(redis_url: str, database_engine: str, database_name: str):
    # The database's engine and name only key the cache (pytest-django renames the database to its
    # test one); reading them from settings costs far less per hit than going through ``connection``.
    if redis_url:
        return RedisCounter(redis_url)
    sqlite_file = dbwrite.sqlite_database_file()
    if sqlite_file:
        return SqliteFileCounter(counter_file(sqlite_file))
    return DatabaseCounter()


def current_counter():
    """The counter that this process counts in, given the settings and the default database."""
    database = settings.DATABASES[DEFAULT_DB_ALIAS]
    return _counter(settings.REDIS_URL, database["ENGINE"], str(database["NAME"]))


# The time windows are cut from. A module attribute so that a test counting hits can pin it inside one
# window: hits that straddle a window's end are counted in two windows, as they should be.
clock = time.time


def hit(key: str, rate: tuple[int, int], *, now: float | None = None) -> tuple[bool, float]:
    """Count one hit on *key*; returns (allowed, seconds until the window ends)."""
    limit, seconds = rate
    now = clock() if now is None else now
    window_start = int(now // seconds) * seconds
    counter = current_counter()
    try:
        count = counter.hit(key, window_start, seconds)
    except (DatabaseError, *getattr(counter, "_errors", ())) as exc:
        logger.warning("throttle counter unavailable, letting the request through: %s", exc.__class__.__name__)
        return True, 0.0
    return count <= limit, window_start + seconds - now


def _address(request) -> str:
    return client_address(request) or "unknown"


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
