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


def make_software(count: int = 3, *, version: str = "1.0") -> list[dict]:
    """A software list as an agent sends it (dpkg-like entries)."""
    return [{"name": f"pkg-{i:04d}", "version": f"{version}-{i}", "vendor": "Debian Maintainers",
             "arch": "amd64", "source": "deb", "install_date": "2026-05-09"} for i in range(count)]


def software_digest(software: list[dict]) -> str:
    """The canonical digest of a software list, as the server computes it."""
    import msgspec

    from reports import payload as payload_schema

    return payload_schema.software_digest(msgspec.convert(software, list[payload_schema.Software]))


def make_inventory(*, software: list[dict] | None = None, full: bool = True) -> dict:
    """The inventory fields of a snapshot (docs/payload.md), the software list in full or as its digest."""
    software = make_software() if software is None else software
    return {
        "software": software if full else None,
        "software_digest": software_digest(software),
        "software_count": len(software),
        "listening": [{"protocol": "tcp", "address": "0.0.0.0", "port": 22, "pid": 812, "process": "sshd"},
                      {"protocol": "udp", "address": "::", "port": 53, "pid": None, "process": None}],
        "disks": [{"mount_point": "/", "device": "/dev/nvme0n1p1", "fs_type": "ext4",
                   "total_bytes": 107_374_182_400, "free_bytes": 9_663_676_416}],
        "interfaces": [{"name": "ens5", "mac": "02:fc:00:00:00:01",
                        "addresses": [{"address": "10.0.1.15", "prefix_length": 24},
                                      {"address": "fe80::fc:ff:fe00:1", "prefix_length": 64}],
                        "up": True, "speed_mbps": 10000, "mtu": 9001}],
        "services": [{"name": "ssh.service", "active_state": "active", "sub_state": "running",
                      "enabled": "enabled"},
                     {"name": "wuauserv", "display_name": "Windows Update", "status": "stopped",
                      "start_type": "manual", "account": "LocalSystem",
                      "binary_path": "C:\\Windows\\system32\\svchost.exe -k netsvcs"}],
        "hardware": {"vendor": "Amazon EC2", "model": "m6i.large", "serial": "ec2abcdef-0123", "uuid":
                     "ec2abcde-f012-3456-789a-bcdef0123456", "bios_vendor": "Amazon EC2", "bios_version": "1.0",
                     "bios_date": "2017-10-16", "virtual": True, "hypervisor": "aws"},
    }
