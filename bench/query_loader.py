"""Fill a Relevo data folder fast for the query benchmark: hosts x days of real snapshots.

``snapshot_ingest`` fsyncs every upload, which would take hours for 300,000
snapshots, so this loader writes what ingest would have written, directly:

- Every snapshot gets its Snapshot row with the summary columns and a
  400-process stored document compressed by ``reports.documents.pack``, and
  every host its Host row with ``latest_snapshot`` and ``process_index``, as
  ingest makes them (the columns come from ``services.host_columns``).
- ``file_hosts`` hosts (the ones the benchmark queries) also get their real
  day files, written through ``reports.store`` (fsync off: the loader's own
  durability is not what is measured), with the rows pointing at the exact
  offsets. The other hosts' rows name day files that are not written: writing
  them all would take 40+ GB of disk for files the benchmark never opens.
- Each host's document is its own (host id, pids and numbers differ); for the
  hosts without files the 30 days share the host's compressed document, so the
  database holds 300,000 documents of the right size without compressing each.

SQLite only (the default store); the database is the project's migrated one.
"""

from __future__ import annotations

import datetime as dt
import random
import uuid
from dataclasses import dataclass

import msgspec

from django.db import connection, transaction
from django.test import override_settings

from reports import addresses, documents, host_search, services, store
from reports import processes as process_rule
from reports import payload as payload_schema
from reports.models import Host, HostSearch, Snapshot

_ID = "00000000-0000-4000-8000-000000000000"
_COLLECTED = "2000-01-01T00:00:00.000000+00:00"
_RECEIVED = "2000-01-02T00:00:00.000000+00:00"


def host_ip(index: int) -> str:
    """127.1.0.1, 127.1.0.2, ...: loopback names, one per host (no traffic goes to them)."""
    return f"127.{1 + index // 62_500}.{index // 250 % 250}.{1 + index % 250}"


@dataclass
class LoadedHost:
    ip: str
    days: list[dt.date]
    has_files: bool


class _StoredTemplate:
    """One host's stored document with fixed-width snapshot_id and times, replaced by slicing."""

    def __init__(self, snapshot: dict, ip: str):
        payload = payload_schema.decode(msgspec.json.encode(snapshot), now=dt.datetime.now(dt.timezone.utc))
        self.payload = payload
        raw = msgspec.json.decode(payload_schema.encode_stored(payload, received_at=dt.datetime.now(dt.timezone.utc), ip=ip))
        raw["snapshot_id"], raw["collected_at"], raw["received_at"] = _ID, _COLLECTED, _RECEIVED
        self.raw = msgspec.json.encode(raw)

    def document(self, snapshot_id: uuid.UUID, collected_at: dt.datetime) -> bytes:
        stamp = collected_at.strftime("%Y-%m-%dT%H:%M:%S.%f+00:00").encode()
        return (self.raw.replace(_ID.encode(), str(snapshot_id).encode(), 1)
                .replace(_COLLECTED.encode(), stamp, 1).replace(_RECEIVED.encode(), stamp, 1))


def _host_snapshot(base: dict, index: int, rng: random.Random) -> dict:
    snapshot = msgspec.json.decode(msgspec.json.encode(base))
    snapshot["host"]["id"] = f"fleet-{index:05d}"
    snapshot["host"]["hostname"] = f"fleet-{index:05d}"
    snapshot["host"]["fqdn"] = f"fleet-{index:05d}.example.internal"
    for process in snapshot["processes"]:
        process["pid"] = process["pid"] + index % 9_000
        if process.get("cpu_percent") is not None:
            process["cpu_percent"] = round(rng.random() * 5, 1)
        if process.get("memory_rss_bytes"):
            process["memory_rss_bytes"] = int(process["memory_rss_bytes"] * (0.5 + rng.random()))
    return snapshot


def _sqlite_row(values: list) -> list:
    """The Snapshot row's values as Django's SQLite backend stores them (uuid hex, UTC text times).

    ``Field.get_db_prep_save`` does the same per value but cost 0.2 ms a row,
    a minute for 300,000 rows.
    """
    adapt = connection.ops.adapt_datetimefield_value
    row = list(values)
    row[0] = values[0].hex
    row[3] = values[3].isoformat()
    row[4], row[5] = adapt(values[4]), adapt(values[5])
    return row


_SNAPSHOT_COLUMNS = (
    "snapshot_id", "host", "ip", "day", "collected_at", "received_at", "os_name", "os_version", "cpu_model",
    "process_count", "user_count", "memory_total_bytes", "memory_available_bytes", "file_name",
    "file_offset", "file_length", "document_compressed",
)
HOSTS_PER_TRANSACTION = 200


def _load_host(index: int, *, base_snapshot: dict, days: list[dt.date], with_files: bool,
               rng: random.Random) -> tuple[LoadedHost, list[list]]:
    """One host's Host row (created here), day files if asked, and its Snapshot rows (returned)."""
    ip = host_ip(index)
    address = addresses.parse_ip(ip)
    template = _StoredTemplate(_host_snapshot(base_snapshot, index, rng), ip)
    payload = template.payload
    shared_blob = None if with_files else documents.pack(template.document(uuid.uuid4(), dt.datetime.now(dt.timezone.utc)))
    summary = services.snapshot_summary(payload)
    newest = dt.datetime.combine(days[-1], dt.time(12, 0), dt.timezone.utc)
    text = host_search.search_text(payload, last_ip=ip)
    host = Host.objects.create(
        host_id=payload.host.id, first_seen=newest - dt.timedelta(days=len(days) - 1), last_seen=newest,
        **process_rule.index_columns(payload.processes), **services.host_columns(payload, address),
        **host_search.host_search_columns(payload, text=text),
    )
    HostSearch.objects.create(host=host, text=text)
    rows = []
    for day in days:
        snapshot_id = uuid.uuid4()
        collected_at = dt.datetime.combine(day, dt.time(12, 0), dt.timezone.utc) + dt.timedelta(seconds=index % 3_600)
        name = store.file_name(address, day)
        offset, length = len(store.OPEN_TAIL), len(template.raw)  # the replaced fields keep their width
        blob = shared_blob
        if with_files:
            document = template.document(snapshot_id, collected_at)
            with store.locked_for_append(address, day) as writer:
                appended = writer.append(document)
            name, offset, length = appended.file_name, appended.offset, appended.length
            blob = documents.pack(document)
        rows.append(_sqlite_row([
            snapshot_id, host.pk, ip, day, collected_at, collected_at, summary["os_name"], summary["os_version"],
            summary["cpu_model"], summary["process_count"], summary["user_count"], summary["memory_total_bytes"],
            payload.memory.available_bytes if payload.memory else None, name, offset, length, blob,
        ]))
    return LoadedHost(ip=ip, days=days, has_files=with_files), rows


def load(*, base_snapshot: dict, hosts: int, days: int, file_hosts: int, last_day: dt.date,
         progress=print) -> list[LoadedHost]:
    """Load *hosts* x *days* snapshots ending at *last_day*; returns what the benchmark may query."""
    if connection.vendor != "sqlite":
        raise RuntimeError("the query loader writes SQLite only")
    rng = random.Random(7)
    day_list = [last_day - dt.timedelta(days=offset) for offset in range(days - 1, -1, -1)]
    fields = [Snapshot._meta.get_field(name) for name in _SNAPSHOT_COLUMNS]
    insert_snapshot = (
        f"INSERT INTO {Snapshot._meta.db_table} ({', '.join(f.column for f in fields)}) "
        f"VALUES ({', '.join(['%s'] * len(fields))})"
    )
    host_table, snapshot_table = Host._meta.db_table, Snapshot._meta.db_table
    loaded: list[LoadedHost] = []
    # A loader, not a server: no journal and no syncs while loading (a crash
    # means loading again), WAL again for the server afterwards.
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA journal_mode=OFF")
        cursor.execute("PRAGMA synchronous=OFF")
    with override_settings(INVENTORY_FSYNC=False):
        for first in range(0, hosts, HOSTS_PER_TRANSACTION):
            with transaction.atomic():
                rows: list[list] = []
                for index in range(first, min(hosts, first + HOSTS_PER_TRANSACTION)):
                    host, host_rows = _load_host(index, base_snapshot=base_snapshot, days=day_list,
                                                 with_files=index < file_hosts, rng=rng)
                    loaded.append(host)
                    rows.extend(host_rows)
                with connection.cursor() as cursor:
                    cursor.executemany(insert_snapshot, rows)
            if (first // HOSTS_PER_TRANSACTION) % 10 == 9:
                progress(f"loader: {len(loaded)}/{hosts} hosts")
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {host_table} SET latest_snapshot_id = (SELECT s.id FROM {snapshot_table} s "
            f"WHERE s.host_id = {host_table}.id ORDER BY s.collected_at DESC LIMIT 1)"
        )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
        cursor.execute("PRAGMA journal_mode=WAL")
    return loaded

