"""Failures a client should wait out, told apart from bugs: a full disk and an unreachable database.

Both used to surface as 500s, which say "the server is broken" and are
logged with a traceback per request. They are not the client's fault and
not a defect in Relevo; the snapshot is fine and the agent keeps it:

* **storage_full** (507 Insufficient Storage, ``Retry-After``): the data
  folder's file system has no room (``store.StorageFull``, an ``OSError``
  ENOSPC/EDQUOT anywhere else), SQLite's "database or disk is full", or
  PostgreSQL's ``disk_full`` (53100). Someone has to free space, so the
  wait asked for is longer than the agent waits in one run: it spools the
  snapshot at once and delivers it on a later run.
* **database_unavailable** (503 Service Unavailable, ``Retry-After``): the
  connection to PostgreSQL failed or was cut (no SQLSTATE, class 08, or
  57P01-57P03 while the server shuts down or starts up, 53300 too many
  connections), Django's ``InterfaceError`` on a closed connection, or SQLite
  still locked after its busy timeout. A restart or failover lasts seconds.

* **database_not_migrated** (503, ``Retry-After``): a table or column is
  missing *and* the database has migrations left to apply: the server was
  started (``runserver``, a new release) before ``python manage.py migrate``.
  Nothing is written (the token lookup is the first query of an upload),
  and the answer says what to run; the agent spools meanwhile.

Everything else, ``ProgrammingError`` and ``IntegrityError`` included, stays
an unhandled error (a 500 with a traceback in the log): a missing table in a
migrated database or a bad query must not hide behind "try again later".
"""

from __future__ import annotations

import errno
import sqlite3
from dataclasses import dataclass

import psycopg
from django.db import DEFAULT_DB_ALIAS, DatabaseError, InterfaceError, OperationalError, ProgrammingError, connections
from django.db.migrations.executor import MigrationExecutor

from reports import store

STORAGE_FULL_RETRY_SECONDS = 300
DATABASE_RETRY_SECONDS = 5

_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
_PG_UNAVAILABLE = frozenset({"57P01", "57P02", "57P03", "53300"})
_SQLITE_BUSY = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})
_PG_MISSING = frozenset({"42P01", "42703"})  # undefined_table, undefined_column
_SQLITE_MISSING = ("no such table", "no such column", "has no column named")


@dataclass(frozen=True)
class Outage:
    """How to answer a request that failed for one of these reasons."""

    status: int
    code: str
    detail: str
    retry_after: int


STORAGE_FULL = Outage(507, "storage_full",
                      "The server has no room left to store this; it was not kept. Try again later.",
                      STORAGE_FULL_RETRY_SECONDS)
DATABASE_UNAVAILABLE = Outage(503, "database_unavailable",
                              "The server cannot reach its database; nothing was changed. Try again shortly.",
                              DATABASE_RETRY_SECONDS)
DATABASE_NOT_MIGRATED = Outage(503, "database_not_migrated",
                               "The database has not been set up for this version of Relevo; nothing was changed. "
                               "An administrator must run python manage.py migrate.",
                               60)


def classify(exc: BaseException) -> Outage | None:
    """The outage *exc* stands for, or None when it is any other error."""
    if isinstance(exc, store.StorageFull):
        return STORAGE_FULL
    if isinstance(exc, OSError) and exc.errno in _FULL_ERRNOS:
        return STORAGE_FULL
    if isinstance(exc, InterfaceError):
        return DATABASE_UNAVAILABLE
    if _schema_missing(exc):
        return DATABASE_NOT_MIGRATED if migrations_unapplied() else None
    if not isinstance(exc, OperationalError):
        return None
    cause = exc.__cause__
    if isinstance(cause, sqlite3.Error):
        code = getattr(cause, "sqlite_errorcode", None)
        primary = code & 0xFF if isinstance(code, int) else None
        if primary == sqlite3.SQLITE_FULL:
            return STORAGE_FULL
        return DATABASE_UNAVAILABLE if primary in _SQLITE_BUSY else None
    if not isinstance(cause, psycopg.Error):
        return None
    sqlstate = cause.sqlstate
    if sqlstate == "53100":
        return STORAGE_FULL
    if sqlstate is None or sqlstate.startswith("08") or sqlstate in _PG_UNAVAILABLE:
        return DATABASE_UNAVAILABLE
    return None


def _schema_missing(exc: BaseException) -> bool:
    """Whether *exc* is the database saying a table or column does not exist."""
    if not isinstance(exc, (OperationalError, ProgrammingError)):
        return False
    cause = exc.__cause__
    if isinstance(cause, psycopg.Error):
        return cause.sqlstate in _PG_MISSING
    return isinstance(cause, sqlite3.OperationalError) and str(cause).startswith(_SQLITE_MISSING)


def migrations_unapplied(alias: str = DEFAULT_DB_ALIAS) -> bool:
    """Whether the database has migrations left to apply (asked only after a missing table: it reads the graph).

    A database that cannot even be asked counts as migrated, so the error
    that brought us here stays the 500 it is.
    """
    connection = connections[alias]
    try:
        executor = MigrationExecutor(connection)
        return bool(executor.migration_plan(executor.loader.graph.leaf_nodes()))
    except DatabaseError:
        return False
