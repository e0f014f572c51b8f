"""Concurrency and crash proof against a real gunicorn with 4 workers, on loopback only.

* 16 clients upload 400 snapshots to the same address (so the same day file)
  at once: every one is acknowledged, and the file and the database both hold
  exactly those 400.
* The same, while worker processes are killed with SIGKILL again and again:
  clients retry like the agent does (same snapshot, same snapshot_id), and
  every snapshot that got a 2xx is in the file and in the database, once, and
  every day file parses.

Both are bounded: 400 uploads, a deadline, and a bounded number of kills.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from relevo_testing.factories import encode, make_payload

pytestmark = pytest.mark.slow

CLIENTS = 16
UPLOADS = 400
DEADLINE_SECONDS = 240
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def _start(relevo_server_factory):
    # The throttle stays on (its counting is part of the load) at a rate this test never reaches.
    return relevo_server_factory(workers=4, extra_env={"INVENTORY_THROTTLE_UPLOAD": "100000/min"})


def _payloads() -> list[dict]:
    return [make_payload(host_id=f"host-{i % CLIENTS}", hostname=f"web-{i % CLIENTS:02d}", processes=5)
            for i in range(UPLOADS)]


def _upload_all(server, payloads, *, retries: int) -> tuple[set[str], list[str]]:
    """Send every payload from CLIENTS threads; returns (acknowledged snapshot ids, errors)."""
    acknowledged: set[str] = set()
    errors: list[str] = []
    lock = threading.Lock()
    deadline = time.monotonic() + DEADLINE_SECONDS
    local = threading.local()

    def send(payload: dict) -> None:
        session = getattr(local, "session", None) or requests.Session()
        local.session = session
        body = encode(payload)
        headers = {"Authorization": f"Token {server.agent_token}", "Content-Type": "application/json"}
        for attempt in range(retries + 1):
            if time.monotonic() > deadline:
                break
            try:
                response = session.post(f"{server.url}/upload", data=body, headers=headers, timeout=60)
            except requests.RequestException as exc:
                outcome = f"{type(exc).__name__}"
                session = local.session = requests.Session()
            else:
                if response.status_code in (200, 201):
                    with lock:
                        acknowledged.add(payload["snapshot_id"])
                    return
                outcome = f"{response.status_code} {response.text[:200]}"
            if attempt == retries:
                with lock:
                    errors.append(f"{payload['snapshot_id']}: {outcome}")
            time.sleep(0.05 + random.random() * 0.1)

    with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
        list(pool.map(send, payloads))
    return acknowledged, errors


def _files(server) -> dict[str, list[dict]]:
    """Every day file, parsed (json.loads raises on a torn or invalid file)."""
    return {path.name: json.loads(path.read_bytes())
            for path in sorted(server.data_dir.iterdir()) if path.suffix == ".json"}


def _database_ids(server) -> list[str]:
    out = server.manage("shell", "-v", "0", "-c", (
        "from reports.models import Snapshot; "
        "print('\\n'.join(str(s) for s in Snapshot.objects.values_list('snapshot_id', flat=True)))"
    ))
    return [line.strip() for line in out.splitlines() if _UUID.match(line.strip())]


def test_16_clients_upload_400_snapshots_to_one_day_file_with_no_error(relevo_server_factory):
    server = _start(relevo_server_factory)
    payloads = _payloads()
    acknowledged, errors = _upload_all(server, payloads, retries=0)
    assert errors == []
    assert len(acknowledged) == UPLOADS
    files = _files(server)
    assert list(files) == [f"127.0.0.1_{payloads[0]['collected_at'][:10]}.json"]
    [documents] = files.values()
    in_file = [doc["snapshot_id"] for doc in documents]
    assert len(in_file) == UPLOADS and set(in_file) == acknowledged
    in_db = _database_ids(server)
    assert len(in_db) == UPLOADS and set(in_db) == acknowledged


def test_killing_workers_during_uploads_loses_no_acknowledged_snapshot(relevo_server_factory):
    server = _start(relevo_server_factory)
    payloads = _payloads()
    kills: list[int] = []
    stop = threading.Event()

    def killer() -> None:
        while not stop.is_set() and len(kills) < 25:
            time.sleep(0.08 + random.random() * 0.2)
            pids = server.worker_pids()  # only children of this test's own gunicorn
            if pids:
                pid = random.choice(pids)
                try:
                    os.kill(pid, signal.SIGKILL)
                    kills.append(pid)
                except ProcessLookupError:
                    pass

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    try:
        acknowledged, errors = _upload_all(server, payloads, retries=40)
    finally:
        stop.set()
        thread.join(timeout=10)

    assert len(kills) >= 5, "the workers were not killed often enough to prove anything"
    assert errors == [], errors[:5]
    assert len(acknowledged) == UPLOADS
    files = _files(server)  # every file parses
    in_file = [doc["snapshot_id"] for documents in files.values() for doc in documents]
    assert len(in_file) == len(set(in_file)), "a snapshot is in a day file twice"
    assert acknowledged <= set(in_file)
    in_db = _database_ids(server)
    assert len(in_db) == len(set(in_db))
    assert acknowledged <= set(in_db)
    # The file and the database agree: nothing recorded that is not in the file, nor the reverse.
    assert set(in_db) == set(in_file)
