"""Locks that serialize the writers of one day file across server nodes.

``reports.store`` takes an ``flock`` on the day file, which orders the
workers of one machine. Several nodes behind a load balancer share the data
folder over the network (EFS, NFS), where ``flock`` is emulated and has been
known to be unreliable, so on PostgreSQL every writer of a day file also holds
an advisory lock keyed by that file's name. The database is the one thing all
nodes already agree on.

The lock is taken after the file lock (always in that order, so no two
writers can wait for each other; ``day_file_locked`` is the one place that
takes both) and held until the caller has committed or
undone its append: a session-level ``pg_advisory_lock`` rather than the
transaction-level one, because undoing a failed append happens after the
transaction has rolled back and must still be serialized. If the connection
dies, PostgreSQL releases the lock with it.

SQLite needs nothing more: it is one file on one machine, its IMMEDIATE
transactions already serialize writers, and ``flock`` covers the day file.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import logging
from collections.abc import Iterator

from django.db import DatabaseError, connection

from reports import addresses, rowsql, store

logger = logging.getLogger(__name__)

# Keeps Relevo's keys apart from any other advisory-lock user of the same database.
_NAMESPACE = b"relevo-day-file:"


def lock_key(ip: addresses.IPAddress, day: dt.date) -> int:
    """A signed 64-bit key for the day file (PostgreSQL's advisory keys are bigint)."""
    digest = hashlib.blake2b(_NAMESPACE + store.file_name(ip, day).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


@contextlib.contextmanager
def day_file_lock(ip: addresses.IPAddress, day: dt.date) -> Iterator[None]:
    """Hold the cross-node lock of one day file (a no-op on SQLite)."""
    if connection.vendor != "postgresql":
        yield
        return
    key = lock_key(ip, day)
    rowsql.scalar("SELECT pg_advisory_lock(%s)", [key])
    try:
        yield
    finally:
        try:
            rowsql.scalar("SELECT pg_advisory_unlock(%s)", [key])
        except DatabaseError:
            # The connection is broken: closing it is what releases the lock server-side.
            logger.warning("could not release the advisory lock of %s; closing the connection",
                           store.file_name(ip, day))
            connection.close()


@contextlib.contextmanager
def day_file_locked(ip: addresses.IPAddress, day: dt.date) -> Iterator[store.DayFileWriter]:
    """Every lock a writer of one day file needs, in the one order all writers use: file, then database.

    Ingest and the lifecycle services (prune, reindex, export) all enter a
    day file through here, so none of them can take the two the other way
    round and wait on a writer that waits on it.
    """
    with store.locked_for_append(ip, day) as writer, day_file_lock(ip, day):
        yield writer
