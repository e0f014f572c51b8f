"""The benchmark's own parts: real payloads, and a load generator that really spreads over hosts.

If these were wrong the benchmark figures would be wrong without anyone
noticing, so they get tests of their own against a real gunicorn.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest

from bench.loadgen import run_load, source_address
from bench.payloads import UploadTemplate, collect_snapshot
from reports import payload as payload_schema


def test_upload_template_gives_distinct_valid_400_process_snapshots_of_this_machine():
    snapshot = collect_snapshot()
    template = UploadTemplate(snapshot, host_id="bench-host-x")
    now = dt.datetime.now(dt.timezone.utc)
    first, second = (payload_schema.decode(template.body(), now=now) for _ in range(2))
    assert len(first.processes) == 400 and first.host.id == "bench-host-x"
    assert first.snapshot_id != second.snapshot_id
    assert abs((first.collected_at - now).total_seconds()) < 60
    assert len({process.pid for process in first.processes}) == 400, "padding must not repeat pids"


def test_source_addresses_are_distinct_loopback_addresses():
    addresses = [source_address(i) for i in range(600)]
    assert len(set(addresses)) == 600
    assert all(address.startswith("127.") for address in addresses)


@pytest.mark.slow
def test_the_load_generator_writes_one_day_file_per_connection(live_relevo):
    port = int(live_relevo.url.rsplit(":", 1)[1])
    result = run_load(port=port, token=live_relevo.agent_token, snapshot=collect_snapshot(), connections=3,
                      count=30, duration=60)
    assert result["errors"] == 0 and result["statuses"] == {"201": 30}
    assert len(result["latencies"]) == 30
    files = sorted(live_relevo.data_dir.glob("127.0.1.*_*.json"))
    assert [path.name.split("_")[0] for path in files] == ["127.0.1.1", "127.0.1.2", "127.0.1.3"]
    assert sum(len(json.loads(path.read_bytes())) for path in files) == 30
