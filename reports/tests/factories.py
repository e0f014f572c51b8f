"""Builders for valid schema-v1 payloads, for tests that need many snapshots."""

from __future__ import annotations

import copy
import datetime as dt
import json
import uuid


def make_payload(*, host_id: str = "host-1", hostname: str = "web-01", processes: int = 3,
                 collected_at: dt.datetime | None = None, **overrides) -> dict:
    collected_at = collected_at or dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    payload = {
        "schema_version": 1,
        "snapshot_id": str(uuid.uuid4()),
        "collected_at": collected_at.isoformat(),
        "agent": {"version": "1.0.0"},
        "host": {"id": host_id, "hostname": hostname, "fqdn": f"{hostname}.example.internal",
                 "ips": ["10.0.1.15"], "boot_time": "2026-11-20T06:12:00+00:00"},
        "os": {"name": "Linux", "version": "#1 SMP Debian 6.1.123-1", "release": "6.1.0-30-amd64",
               "build": None, "distribution": "Debian GNU/Linux", "distribution_version": "12",
               "kernel": "6.1.0-30-amd64", "arch": "x86_64"},
        "cpu": {"model": "Intel(R) Xeon(R) CPU E5-2686 v4 @ 2.30GHz", "vendor": "GenuineIntel",
                "arch": "x86_64", "physical_cores": 2, "logical_cores": 4, "frequency_mhz": 2300.0,
                "usage_percent": 7.5},
        "memory": {"total_bytes": 8_245_592_064, "available_bytes": 6_012_345_344},
        "users": [{"name": "alice", "terminal": "pts/0", "host": "10.0.0.7",
                   "started": "2026-11-27T07:40:00+00:00"}],
        "users_source": "utmp",
        "processes": [
            {"pid": 1000 + i, "ppid": 1, "name": f"proc-{i}", "username": "root", "status": "sleeping",
             "create_time": "2026-11-20T06:12:03+00:00", "cpu_percent": 0.5, "memory_rss_bytes": 12_845_056,
             "memory_percent": 0.16, "num_threads": 2, "exe": f"/usr/bin/proc-{i}",
             "cmdline": [f"/usr/bin/proc-{i}", "--flag"]}
            for i in range(processes)
        ],
    }
    payload = copy.deepcopy(payload)
    payload.update(overrides)
    return payload


def encode(payload: dict) -> bytes:
    return json.dumps(payload).encode()


def rewrite_as_zlib(snapshot_id) -> bytes:
    """Give a Snapshot row the zlib blob Relevo wrote before zstd, as upgraded databases still hold; returns it."""
    import zlib

    from reports.models import Snapshot

    row = Snapshot.objects.get(snapshot_id=snapshot_id)
    blob = zlib.compress(row.document_bytes, 1)
    Snapshot.objects.filter(pk=row.pk).update(document_compressed=blob)
    return blob
