"""The database write transaction of an upload, with SQLite writers queued by the kernel.

SQLite allows one writer at a time; a second ``BEGIN IMMEDIATE`` waits in
SQLite's busy handler, which polls with sleeps of up to 100 ms. Under a
steady upload load that turns a 1 ms wait into a 100 ms one (the p99 of the
ingest benchmark was 730 ms). Taking an ``flock`` on a file beside the
database first makes waiting writers queue in the kernel and wake the moment
the previous one commits; the busy handler is then only a fallback for
writers that do not take the lock (admin, management commands). The
throttle counter stays out of this queue: on SQLite it counts in a file of
its own (``reports.throttling``). On other databases this is a plain
``transaction.atomic()``.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator

from django.db import connection, transaction


def sqlite_database_file() -> str | None:
    """The path of the default database if it is SQLite in a file, else None.

    None for other databases and for in-memory SQLite; also for ``file:`` URI
    names (pytest-django's in-memory test database is one), which are not
    plain paths that a file beside them could be named after.
    """
    if connection.vendor != "sqlite":
        return None
    name = str(connection.settings_dict.get("NAME") or "")
    if not name or name == ":memory:" or name.startswith("file:") or "mode=memory" in name:
        return None
    return name


def _sqlite_lock_path() -> str | None:
    name = sqlite_database_file()
    return None if name is None else name + ".write-lock"


@contextlib.contextmanager
def sqlite_writer_lock() -> Iterator[None]:
    """Hold the kernel lock that SQLite writers queue on (nothing on other databases).

    Not re-entrant: never take it inside ``write_transaction``.
    """
    path = _sqlite_lock_path()
    if path is None or connection.in_atomic_block:
        yield
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


@contextlib.contextmanager
def write_transaction() -> Iterator[None]:
    """``transaction.atomic()``, entered only after this process holds the SQLite writer lock."""
    with sqlite_writer_lock(), transaction.atomic():
        yield
