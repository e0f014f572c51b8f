"""Files the server keeps are private to its user: 0600 files, 0700 folders, whatever the umask.

The SQLite database holds password hashes, sessions and every snapshot; under
the usual umask 022 SQLite would create it 0644, and its ``-wal`` and ``-shm``
files with it (SQLite gives them the mode of the database file). So the
database file is created here, 0600, before SQLite opens it: the
``factory`` that settings hand to ``sqlite3.connect`` for every connection
Django makes (server, ``migrate``, any management command), so no code path
can open it first. A file that already exists is left as it is (an operator
may have chosen its mode); ``manage.py check`` warns when it or the data
folder is open to others (``reports.checks``).

A leaf module: settings import it, so it imports nothing of Django or ours.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import stat
from pathlib import Path

FILE_MODE = 0o600
FOLDER_MODE = 0o700


def make_private_folder(path: str | os.PathLike) -> None:
    """Create *path* (and missing parents) as 0700; an existing folder keeps its mode."""
    Path(path).mkdir(mode=FOLDER_MODE, parents=True, exist_ok=True)


def create_private_file(path: str | os.PathLike) -> bool:
    """Create *path* empty and 0600 if nothing is there yet; True if it was created.

    ``O_EXCL`` makes this never open, follow or change what exists (a file, or a
    link an operator put there). The umask can only take bits away from 0600.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)
    except OSError as exc:
        if exc.errno == errno.EEXIST:
            return False
        raise
    os.close(fd)
    return True


def _plain_path(database) -> str | None:
    """The file path of a ``sqlite3.connect`` database argument, or None for memory and ``file:`` URIs."""
    name = os.fspath(database) if isinstance(database, (str, bytes, os.PathLike)) else ""
    if isinstance(name, bytes):
        name = os.fsdecode(name)
    if not name or name == ":memory:" or name.startswith("file:"):
        return None
    return name


class PrivateSqliteConnection(sqlite3.Connection):
    """``sqlite3.Connection`` that creates a missing database file 0600 (and its folder 0700) first."""

    def __init__(self, database, *args, **kwargs):
        path = _plain_path(database)
        if path is not None and not os.path.lexists(path):
            make_private_folder(os.path.dirname(os.path.abspath(path)))
            create_private_file(path)
        super().__init__(database, *args, **kwargs)


def open_to_others(path: str | os.PathLike) -> bool:
    """Whether anyone but the owner and group may read, write or enter *path* (False if missing)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return False
    return bool(stat.S_IMODE(mode) & 0o007)
