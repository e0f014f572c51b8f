"""How snapshot_ingest orders its file and database work, against a real gunicorn and real files.

The day file is appended and fsynced before the database write lock is
taken, and SQLite writers queue on a kernel lock beside the database file
(reports/dbwrite.py) instead of in SQLite's sleeping busy handler. The
upload throttle counts in a file of its own, so it never waits in that queue.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import threading
import time

import requests

from relevo_testing.factories import encode, make_payload


# What these tests prove is SQLite's writer queue, so their servers use SQLite on
# both legs of `make test` (an empty DATABASE_URL means the embedded database).
SQLITE = {"DATABASE_URL": ""}


def rows_for(server, snapshot_id: str) -> int:
    database = sqlite3.connect(f"file:{server.data_dir / 'relevo.sqlite3'}?mode=ro", uri=True, timeout=30)
    try:
        return database.execute("SELECT COUNT(*) FROM reports_snapshot WHERE snapshot_id = ?",
                                [snapshot_id.replace("-", "")]).fetchone()[0]
    finally:
        database.close()


def hold_writer_lock(server) -> int:
    fd = os.open(server.data_dir / "relevo.sqlite3.write-lock", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def test_uploads_wait_for_the_sqlite_writer_lock_with_their_document_already_on_disk(relevo_server_factory):
    # The upload throttle is on (the default): its count, in its own file, must not wait for this lock.
    live_relevo = relevo_server_factory(extra_env=SQLITE)
    payload = make_payload()
    headers = {"Authorization": f"Token {live_relevo.agent_token}", "Content-Type": "application/json"}
    answer: dict = {}

    def post() -> None:
        answer["response"] = requests.post(f"{live_relevo.url}/upload", data=encode(payload), headers=headers,
                                           timeout=60)

    lock_fd = hold_writer_lock(live_relevo)
    try:
        thread = threading.Thread(target=post)
        thread.start()
        deadline = time.monotonic() + 20
        day_files: list = []
        while time.monotonic() < deadline and not day_files:
            day_files = [p for p in live_relevo.data_dir.glob("127.0.0.1_*.json")
                         if payload["snapshot_id"].encode() in p.read_bytes()]
            time.sleep(0.05)
        assert day_files, "the document should be in the day file while the upload waits for the database"
        time.sleep(0.3)
        assert thread.is_alive(), "the upload must not be answered before its row is committed"
        assert rows_for(live_relevo, payload["snapshot_id"]) == 0
    finally:
        os.close(lock_fd)
    thread.join(timeout=30)
    assert answer["response"].status_code == 201, answer["response"].text
    assert rows_for(live_relevo, payload["snapshot_id"]) == 1
    stored = json.loads(day_files[0].read_bytes())
    assert [item["snapshot_id"] for item in stored] == [payload["snapshot_id"]]
