"""Where the throttle counts on SQLite: a file of its own beside the main database.

The counter file is real (in ``tmp_path``, or beside a live gunicorn's
database); no connection or clock is faked. The live test holds the main
database's write lock the way an upload commit does and shows that two
workers still count, in the same row of the same file.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import threading
import time

import requests

from relevo_testing.factories import encode, make_payload
from reports import throttling

# The live servers here must run on SQLite on both legs of `make test` (an empty
# DATABASE_URL means the embedded database): SQLite's counter file is what is under test.
SQLITE = {"DATABASE_URL": ""}
ENROLL_SECRET = "enroll-secret-for-tests-0123456789"


def read_rows(path) -> dict[str, tuple[int, int, int]]:
    """key -> (window_start, window_end, hits), read through a connection of the test's own."""
    database = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        rows = database.execute("SELECT key, window_start, window_end, hits FROM throttle_counter").fetchall()
    finally:
        database.close()
    return {key: (start, end, hits) for key, start, end, hits in rows}


def test_the_counter_file_is_named_after_the_database_beside_it():
    assert throttling.counter_file("/srv/relevo/data/relevo.sqlite3") == "/srv/relevo/data/relevo-throttle.sqlite3"
    assert throttling.counter_file("/var/lib/db") == "/var/lib/db-throttle"


def test_counts_reset_when_the_window_changes(tmp_path):
    counter = throttling.SqliteFileCounter(str(tmp_path / "relevo-throttle.sqlite3"))
    assert [counter.hit("upload:1:10.0.0.5", 1200, 60) for _ in range(3)] == [1, 2, 3]
    assert counter.hit("upload:1:10.0.0.6", 1200, 60) == 1  # each key its own count
    assert counter.hit("upload:1:10.0.0.5", 1260, 60) == 1  # the next minute starts from zero
    assert counter.hit("upload:1:10.0.0.5", 1260, 60) == 2
    assert read_rows(tmp_path / "relevo-throttle.sqlite3") == {
        "upload:1:10.0.0.5": (1260, 1320, 2), "upload:1:10.0.0.6": (1200, 1260, 1),
    }


def test_each_hit_commits_at_once_without_waiting_for_a_flush_and_the_file_is_private(tmp_path):
    path = tmp_path / "relevo-throttle.sqlite3"
    counter = throttling.SqliteFileCounter(str(path))
    counter.hit("read:user:1", 0, 60)
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # would fail at once if the hit had left its transaction open
        other.execute("ROLLBACK")
        assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        other.close()
    assert counter._connection().execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL: no flush per commit
    for name in ("relevo-throttle.sqlite3", "relevo-throttle.sqlite3-wal", "relevo-throttle.sqlite3-shm"):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o600, name


def test_rows_whose_window_ended_are_pruned_now_and_then(tmp_path):
    path = tmp_path / "relevo-throttle.sqlite3"
    counter = throttling.SqliteFileCounter(str(path), prune_every=3)
    counter.hit("upload:old", 60, 60)  # hit 1 prunes an empty table
    counter.hit("enroll:this-day", 0, 86400)
    counter.hit("upload:old", 120, 60)
    counter.hit("upload:new", 1200, 60)  # hit 4 prunes: upload:old ended at 180, before 1200
    assert read_rows(path) == {"enroll:this-day": (0, 86400, 1), "upload:new": (1200, 1260, 1)}


def test_a_forked_child_counts_in_the_same_file_through_a_connection_of_its_own(tmp_path):
    counter = throttling.SqliteFileCounter(str(tmp_path / "relevo-throttle.sqlite3"))
    assert counter.hit("upload:1:10.0.0.5", 1200, 60) == 1
    inherited = counter._connection()
    pid = os.fork()
    if pid == 0:  # the child, like a gunicorn worker forked after the master counted once
        ok = False
        try:
            ok = [counter.hit("upload:1:10.0.0.5", 1200, 60) for _ in range(3)] == [2, 3, 4] \
                and counter._connection() is not inherited
        finally:
            os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert counter.hit("upload:1:10.0.0.5", 1200, 60) == 5
    assert counter._connection() is inherited


def _side_file_hits(path, key: str) -> int:
    try:
        return read_rows(path).get(key, (0, 0, 0))[2]
    except sqlite3.OperationalError:
        return 0  # the file or its table does not exist before the first hit


def _wait_for_hits(path, key: str, hits: int, *, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while _side_file_hits(path, key) < hits:
        assert time.monotonic() < deadline, f"{key} never reached {hits} hits"
        time.sleep(0.05)


def test_gunicorn_workers_share_one_count_in_the_side_file_without_the_main_database(relevo_server_factory):
    """Two workers count the same key while the main database is write-locked, and the third hit is refused.

    The test holds the main database's write transaction, as an upload's commit
    does. Enrollment A counts, then waits for that lock inside its worker; a
    sync worker serves one request at a time, so enrollment B is counted by the
    other worker. Both counted into one row while the lock was held; with
    counters per worker the third enrollment would have been let through.
    (A day window, so that no window ends while the test runs.)
    """
    server = relevo_server_factory(workers=2, extra_env={
        **SQLITE, "INVENTORY_ENROLL_SECRET": ENROLL_SECRET, "INVENTORY_THROTTLE_ENROLL": "2/day",
    })
    side_file = server.data_dir / "relevo-throttle.sqlite3"
    answers: dict[str, requests.Response] = {}

    def enroll(name: str) -> None:
        answers[name] = requests.post(f"{server.url}/enroll", json={"enroll_secret": ENROLL_SECRET, "host_id": name},
                                      timeout=60)

    main_db = sqlite3.connect(server.data_dir / "relevo.sqlite3", timeout=30, isolation_level=None)
    threads = [threading.Thread(target=enroll, args=(name,)) for name in ("host-a", "host-b")]
    try:
        main_db.execute("BEGIN IMMEDIATE")
        threads[0].start()
        _wait_for_hits(side_file, "enroll:127.0.0.1", 1)
        threads[1].start()
        _wait_for_hits(side_file, "enroll:127.0.0.1", 2)
        time.sleep(0.3)
        assert all(thread.is_alive() for thread in threads), "both enrollments wait for the main database"
    finally:
        main_db.execute("ROLLBACK")
    for thread in threads:
        thread.join(timeout=60)
    assert [answers[name].status_code for name in ("host-a", "host-b")] == [201, 201]

    refused = requests.post(f"{server.url}/enroll", json={"enroll_secret": ENROLL_SECRET, "host_id": "host-c"},
                            timeout=30)
    assert refused.status_code == 429, refused.text
    assert int(refused.headers["Retry-After"]) >= 1
    assert _side_file_hits(side_file, "enroll:127.0.0.1") == 3
    assert main_db.execute("SELECT COUNT(*) FROM reports_throttlecounter").fetchone()[0] == 0
    main_db.close()
    assert stat.S_IMODE(side_file.stat().st_mode) == 0o600


def test_a_live_upload_limit_counts_in_the_side_file_and_not_in_the_database(relevo_server_factory):
    """Through the whole request path: the upload key is counted beside the database, not in it."""
    server = relevo_server_factory(extra_env={**SQLITE, "INVENTORY_THROTTLE_UPLOAD": "2/day"})
    headers = {"Authorization": f"Token {server.agent_token}", "Content-Type": "application/json"}
    statuses = [requests.post(f"{server.url}/upload", data=encode(make_payload()), headers=headers, timeout=30)
                .status_code for _ in range(3)]
    assert statuses == [201, 201, 429]
    [(key, (_, _, hits))] = read_rows(server.data_dir / "relevo-throttle.sqlite3").items()
    assert key.startswith("upload:") and key.endswith(":127.0.0.1") and hits == 3
    main_db = sqlite3.connect(f"file:{server.data_dir / 'relevo.sqlite3'}?mode=ro", uri=True, timeout=30)
    try:
        assert main_db.execute("SELECT COUNT(*) FROM reports_throttlecounter").fetchone()[0] == 0
    finally:
        main_db.close()
