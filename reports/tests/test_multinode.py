"""Two server nodes (separate gunicorn masters) on one PostgreSQL and one data folder.

This is the production shape behind a load balancer: 16 clients spread over
both nodes post to the same address, so every upload goes to the same day
file. Nothing may fail, and every snapshot must be in the file and in the
database exactly once, at the offset its row records.
"""

from __future__ import annotations

import json
import threading
import uuid

import psycopg
import pytest
import requests

from relevo_testing import live
from relevo_testing.factories import encode, make_payload
from relevo_testing.live import PG_URL, postgres_reachable
from relevo_testing.prerequisites import require

CLIENTS = 16
UPLOADS_PER_CLIENT = 12


@pytest.mark.slow
def test_two_nodes_sixteen_clients_one_day_file_every_snapshot_once(tmp_path_factory):
    require(postgres_reachable(), f"PostgreSQL must answer at {PG_URL} (set RELEVO_PG_URL)")
    base = tmp_path_factory.mktemp("nodes")
    database_url = live.create_database(PG_URL)
    # Sixteen clients share one token and one address here: the upload limit is for fleets, not this test.
    prepared = live.prepare(base, {"DATABASE_URL": database_url, "INVENTORY_THROTTLE_UPLOAD": "off"})
    nodes = [live.start(base / f"node{n}", prepared=prepared) for n in (1, 2)]
    try:
        assert nodes[0].process.pid != nodes[1].process.pid and nodes[0].url != nodes[1].url
        sent: list[str] = []
        failures: list[str] = []
        lock = threading.Lock()

        def client(number: int) -> None:
            session = requests.Session()
            headers = {"Authorization": f"Token {prepared[1]['agent_token']}", "Content-Type": "application/json"}
            for index in range(UPLOADS_PER_CLIENT):
                node = nodes[(number + index) % 2]
                payload = make_payload(host_id=f"host-{number}", hostname=f"client-{number}")
                try:
                    response = session.post(f"{node.url}/upload", data=encode(payload), headers=headers, timeout=60)
                except requests.RequestException as exc:
                    with lock:
                        failures.append(f"client {number}: {exc}")
                    continue
                with lock:
                    if response.status_code == 201:
                        sent.append(payload["snapshot_id"])
                    else:
                        failures.append(f"client {number} via {node.url}: {response.status_code} {response.text}")

        threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=300)
        assert not any(thread.is_alive() for thread in threads)
        assert failures == []
        assert len(sent) == CLIENTS * UPLOADS_PER_CLIENT

        [day_file] = [p for p in nodes[0].data_dir.iterdir() if p.name.endswith(".json")]
        content = day_file.read_bytes()
        in_file = [item["snapshot_id"] for item in json.loads(content)]
        assert sorted(in_file) == sorted(sent)  # each exactly once

        with psycopg.connect(database_url) as conn:
            rows = conn.execute(
                "SELECT snapshot_id, file_name, file_offset, file_length FROM reports_snapshot").fetchall()
        assert sorted(str(row[0]) for row in rows) == sorted(sent)
        for snapshot_id, file_name, offset, length in rows:
            assert file_name == day_file.name
            assert json.loads(content[offset:offset + length])["snapshot_id"] == str(snapshot_id)

        answer = requests.get(f"{nodes[1].url}/query", params={"ip": "127.0.0.1"}, timeout=30,
                              headers={"Authorization": f"Token {prepared[1]['reader_token']}"})
        assert answer.status_code == 200
        assert {s["snapshot_id"] for s in answer.json()["snapshots"]} == {str(uuid.UUID(s)) for s in sent}
    finally:
        for node in nodes:
            node.stop()
        live.drop_database(database_url)
