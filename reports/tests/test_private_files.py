"""Private files (issue 13, item 8): everything in the data folder is 0600 / 0700, whatever the umask.

The live test runs a real gunicorn, with ``migrate`` and the management
commands before it, under umask 000 (the worst case: SQLite alone would
create 0666 files), and looks at every file and folder it left.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat

import pytest
import requests

from relevo_testing import live
from relevo_testing.factories import encode, make_payload
from reports.checks import check_private_files
from reports.private import PrivateSqliteConnection


@contextlib.contextmanager
def umask(value: int):
    old = os.umask(value)
    try:
        yield
    finally:
        os.umask(old)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_sqlite_database_wal_and_shm_are_created_private_under_umask_000(tmp_path):
    path = tmp_path / "new-folder" / "relevo.sqlite3"
    with umask(0):
        db = sqlite3.connect(path, factory=PrivateSqliteConnection, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE t (x)")
        db.execute("INSERT INTO t VALUES (1)")
        names = sorted(p.name for p in path.parent.iterdir())
        modes = {name: mode(path.parent / name) for name in names}
        db.close()
    assert names == ["relevo.sqlite3", "relevo.sqlite3-shm", "relevo.sqlite3-wal"]
    assert modes == dict.fromkeys(names, 0o600)
    assert mode(path.parent) == 0o700


def test_an_existing_database_file_is_left_as_it_is(tmp_path):
    path = tmp_path / "relevo.sqlite3"
    sqlite3.connect(path).close()
    os.chmod(path, 0o640)  # an operator's choice
    sqlite3.connect(path, factory=PrivateSqliteConnection).close()
    assert mode(path) == 0o640


def test_memory_databases_need_no_file(tmp_path, monkeypatch):
    folder = tmp_path / "cwd"
    folder.mkdir()
    monkeypatch.chdir(folder)
    for name in (":memory:", "file:memdb1?mode=memory&cache=shared"):
        sqlite3.connect(name, factory=PrivateSqliteConnection, uri=True).close()
    assert list(folder.iterdir()) == []


@pytest.mark.slow
def test_a_live_server_under_umask_000_leaves_only_private_files(tmp_path):
    with umask(0):
        server = live.start(tmp_path / "srv", extra_env={"DATABASE_URL": ""})  # SQLite, also in a PostgreSQL run
    try:
        for i in range(3):
            response = requests.post(f"{server.url}/upload", data=encode(make_payload(host_id=f"h{i}")), timeout=30,
                                     headers={"Authorization": f"Token {server.agent_token}",
                                              "Content-Type": "application/json"})
            assert response.status_code == 201, response.text
        requests.get(f"{server.url}/upload", headers={"Authorization": "Token rlv_a_wrong"}, timeout=30)
        requests.post(f"{server.url}/accounts/login/", timeout=30, data={"username": "x", "password": "y"})
    finally:
        server.stop()
    found = {}
    for folder, dirs, files in os.walk(server.data_dir):
        found[folder] = mode(folder)
        for name in files:
            found[os.path.join(folder, name)] = mode(os.path.join(folder, name))
    names = {os.path.basename(path) for path in found}
    assert {"relevo.sqlite3", "relevo-throttle.sqlite3"} <= names
    assert any(name.endswith(".json") for name in names)  # the day file
    assert {path: m for path, m in found.items() if m not in (0o600, 0o700)} == {}
    assert found[str(server.data_dir)] == 0o700


def test_check_warns_when_the_data_folder_is_open_to_others(data_dir, monkeypatch):
    monkeypatch.setattr("reports.dbwrite.sqlite_database_file", lambda: None)  # the folder alone
    os.chmod(data_dir, 0o700)
    assert check_private_files() == []
    os.chmod(data_dir, 0o755)
    [warning] = check_private_files()
    assert warning.id == "reports.W020" and "chmod 700" in warning.hint


def test_check_warns_when_the_database_is_readable_by_others(data_dir, monkeypatch):
    os.chmod(data_dir, 0o700)
    database = data_dir / "relevo.sqlite3"
    with umask(0o022):
        sqlite3.connect(database).close()  # as SQLite alone (or an older Relevo) made it: 0644
    monkeypatch.setattr("reports.dbwrite.sqlite_database_file", lambda: str(database))
    [warning] = check_private_files()
    assert warning.id == "reports.W021" and str(database) in warning.msg and "chmod 600" in warning.hint
    os.chmod(database, 0o600)
    assert check_private_files() == []
