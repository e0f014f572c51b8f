"""Bytes on disk per snapshot, before and after compaction, and reads of compacted days (issue 16).

A realistic 5-minute series: ``--hosts`` hosts x ``--snapshots`` snapshots a
day for ``--days`` days (each day continues the day before's series for the
same hosts), 400 processes each; every step a third of the processes' CPU figures
and half of their memory figures change, 2% of the processes are replaced,
users log in and out, and the software list changes rarely (sent in full on a
host's first upload and when it changes, as the agent's software rule does).
The series is generated from this machine's real snapshot (``bench/payloads``)
with a fixed seed, so both databases get the same bytes.

Every snapshot goes through the real upload path (Django's WSGI handler,
token auth, validation, day file, rows) in process, and each day is compacted
(``services.day_compact``) once it is closed, before the next day's uploads.
Printed per database: bytes per snapshot of the day files, of the database
and in total, before compaction (the first day, as a one-day run sees it) and
after (everything ingested), and the p50 of ``/query`` on a compacted day and
of ``/api/snapshots/<id>/``.

What grows with retention is measured, not assumed. After each day's
compaction the kept bytes (day files plus the database's kept bytes, below)
are measured; ``total_after`` is the last of them over every snapshot
ingested, so it also carries what a host costs once (its ``Host`` row, its
software list, the empty tables) spread over ``--days`` x ``--snapshots``
snapshots a host. With two days or more:

- ``last_day_added``: the kept bytes the last day added, divided by its
  snapshots, all in (day file, archive, rows, indexes, and whatever per-host
  rows grew): the cost of one more snapshot of history, which 90 days of
  retention multiply;
- ``fixed_per_host``: the kept bytes after the first day minus that day's
  snapshots at the ``last_day_added`` rate, divided by the hosts: what a host
  costs whatever the retention (the empty tables' share is counted in it);
- ``projected_90_days_1000_hosts``: ``fixed_per_host`` x 1,000 +
  ``last_day_added`` x 288 x 90 x 1,000, in GB of 10^9 bytes: the compacted
  history of 1,000 hosts at one snapshot every 5 minutes (the days not
  compacted yet come on top; docs/performance.md says how much).

The database is measured honestly: on SQLite the file after a
``wal_checkpoint(TRUNCATE)`` (so the WAL is counted, and empty); on
PostgreSQL every table with its indexes and TOAST after a ``CHECKPOINT``
(``pg_total_relation_size``), and the WAL written during the first day's
ingest is printed beside it (after a checkpoint the server recycles WAL segments, so it is
traffic, not space kept). After compaction, which replaces each day's row
blobs by one archive, both are printed: the raw size (``_raw``: the SQLite
file, PostgreSQL's relations after ``VACUUM``) and what is *kept*, the
bytes the next day's rows cannot reuse (SQLite's pages in use, PostgreSQL's
relations after ``VACUUM FULL``); ``total_after`` and the lines that follow
it are judged on the kept bytes, because the space compaction frees is
where the next day's rows are written, so it does not grow with retention
(docs/performance.md says more). PostgreSQL runs in a fresh database created on the
server of ``--database-url`` and dropped at the end.

    .venv/bin/python bench/storage.py [--hosts 50] [--snapshots 288] [--days 2] [--database-url postgres://...]
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common, inprocess  # noqa: E402
from bench.payloads import TARGET_PROCESSES, pad_processes  # noqa: E402

TOTAL_TARGET_KB = 3.8
PROJECTED_TARGET_GB = 100.0
PROJECTED_HOSTS, PROJECTED_DAYS, SNAPSHOTS_PER_DAY = 1000, 90, 288
QUERY_TARGET_MS = 100.0
BY_ID_TARGET_MS = 20.0
DEFAULT_DATABASE_URL = os.environ.get("RELEVO_BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test")
USER_NAMES = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy"]


class Series:
    """The snapshots of one host through one day, generated step by step from a real snapshot."""

    def __init__(self, base: dict, index: int, day_start: dt.datetime, *, seed: int):
        self.rng = random.Random(seed * 1000 + index)
        self.snapshot = {**base, "host": {**base["host"], "id": f"storage-host-{index:04d}",
                                          "hostname": f"web-{index:04d}", "fqdn": f"web-{index:04d}.example.net"}}
        self.processes = [dict(p) for p in base["processes"]]
        self.pool = [dict(p) for p in base["processes"]]
        self.next_pid = 100_000 + index * 1000
        self.software = [dict(s) for s in base.get("software") or []]
        self.software_changed = True
        self.users: list[dict] = []
        self.start = day_start + dt.timedelta(seconds=self.rng.randrange(0, 240))
        self.step = 0  # over the whole series
        self.day_step = 0  # within the current day

    def next_day(self) -> None:
        """Go on with the same processes, users and software list the next day, at the same time of day."""
        self.start += dt.timedelta(days=1)
        self.day_step = 0

    def _change(self, now: dt.datetime) -> None:
        rng, processes = self.rng, self.processes
        count = len(processes)
        for i in rng.sample(range(count), count // 3):
            processes[i]["cpu_percent"] = round(rng.expovariate(1 / 3.0), 2)
        for i in rng.sample(range(count), count // 2):
            process = processes[i]
            rss = max(4096, int((process.get("memory_rss_bytes") or 1 << 24) * rng.uniform(0.97, 1.03)) // 4096 * 4096)
            process["memory_rss_bytes"] = rss
            process["memory_percent"] = round(rss * 100 / (64 << 30), 3)
        for i in rng.sample(range(count), max(1, count // 50)):
            fresh = dict(rng.choice(self.pool))
            fresh.update(pid=self.next_pid, create_time=now.isoformat(), cpu_percent=round(rng.uniform(0, 20), 2))
            self.next_pid += 1
            processes[i] = fresh
        if rng.random() < 0.1:
            self.users.append({"name": rng.choice(USER_NAMES), "terminal": f"pts/{rng.randrange(20)}",
                               "host": f"192.0.2.{rng.randrange(1, 250)}", "started": now.isoformat()})
        if self.users and rng.random() < 0.1:
            self.users.pop(rng.randrange(len(self.users)))
        if self.software and rng.random() < 1 / 144:  # about twice a day: a package upgraded
            package = rng.choice(self.software)
            package["version"] = f"{package['version']}+u{self.step}"
            self.software_changed = True

    def next_body(self) -> bytes:
        from agent.inventory import software_digest
        import msgspec

        now = self.start + dt.timedelta(minutes=5 * self.day_step)
        if self.step:
            self._change(now)
        snapshot = self.snapshot
        snapshot.update(snapshot_id=str(uuid.UUID(int=self.rng.getrandbits(128), version=4)),
                        collected_at=now.isoformat(), processes=self.processes, users=self.users)
        if self.software:
            snapshot["software_digest"] = software_digest(self.software)
            snapshot["software_count"] = len(self.software)
            snapshot["software"] = self.software if self.software_changed else None
            self.software_changed = False
        if snapshot.get("memory"):
            snapshot["memory"]["available_bytes"] = self.rng.randrange(8 << 30, 32 << 30)
        self.step += 1
        self.day_step += 1
        return msgspec.json.encode(snapshot)


def base_snapshot() -> dict:
    """This machine's snapshot, with its full software list, padded to 400 processes."""
    from agent.collector import snapshot_collect

    snapshot = snapshot_collect(sample_seconds=0.2)
    snapshot["processes"] = pad_processes(snapshot["processes"], TARGET_PROCESSES)
    return snapshot


def line(name: str, value: float, unit: str, target: float | None = None, *, fmt: str = ".2f") -> None:
    verdict = "" if target is None else f"  [target <= {target:g} {unit}, {'ok' if value <= target else 'MISSED'}]"
    print(f"{name}: {value:{fmt}} {unit}{verdict}", flush=True)


def database_bytes(vendor: str) -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        if vendor == "sqlite":
            cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            name = Path(connection.settings_dict["NAME"])
            return sum(p.stat().st_size for p in name.parent.glob(name.name + "*"))
        cursor.execute("CHECKPOINT")
        cursor.execute("SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
                       "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'r' AND n.nspname = 'public'")
        return int(cursor.fetchone()[0])


def database_kept_bytes(vendor: str) -> int:
    """The database's bytes in use: what the next day's rows cannot take over.

    Compaction replaces a day's row blobs by one archive; the space the
    blobs held stays in the database (SQLite's free pages, PostgreSQL's
    dead tuples), and the next day's ingest writes into it instead of
    growing the files. On SQLite that is the pages in use, ``page_count -
    freelist_count``; on PostgreSQL the relations' sizes after ``VACUUM
    FULL`` (which rewrites them packed; run here in the bench's own database).
    """
    from django.db import connection

    with connection.cursor() as cursor:
        if vendor == "sqlite":
            cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            cursor.execute("PRAGMA page_count")
            pages = cursor.fetchone()[0]
            cursor.execute("PRAGMA freelist_count")
            free = cursor.fetchone()[0]
            cursor.execute("PRAGMA page_size")
            return (pages - free) * cursor.fetchone()[0]
    connection.ensure_connection()
    previous = connection.connection.autocommit
    connection.connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            cursor.execute("VACUUM FULL")
    finally:
        connection.connection.autocommit = previous
    return database_bytes(vendor)


def database_breakdown(vendor: str) -> dict[str, int]:
    """Bytes of the database by part: the documents' column, and each table and index with its pages.

    Says where the database's share of a snapshot goes, so the next change
    to the row format is decided by figures (SQLite's dbstat, PostgreSQL's
    relation sizes).
    """
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT coalesce(sum(length(document_compressed)), 0) FROM reports_snapshot")
        parts = {"document_column": int(cursor.fetchone()[0])}
        if vendor == "sqlite":
            cursor.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name")
        else:
            cursor.execute("SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class c "
                           "JOIN pg_namespace n ON n.oid = c.relnamespace "
                           "WHERE c.relkind IN ('r', 'i') AND n.nspname = 'public'")
        for name, size in cursor.fetchall():
            if name.startswith(("reports_snapshot", "reports_host", "snapshot_", "reports_documentarchive",
                                "document_archive", "reports_software", "software_", "reports_process", "processrun_",
                                "sqlite_autoindex")):
                parts[name] = int(size)
    return parts


def wal_lsn() -> int | None:
    from django.db import connection

    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')")
        return int(cursor.fetchone()[0])


def day_file_bytes(data_dir: Path) -> tuple[int, int]:
    """(plain bytes, compacted bytes) of the day files in *data_dir*."""
    plain = sum(p.stat().st_size for p in data_dir.glob("*_*.json"))
    return plain, sum(p.stat().st_size for p in data_dir.glob("*_*.json.zst"))


def child(args) -> int:
    """One database: ingest the series a day at a time, compacting and measuring each day, then time the reads."""
    data_dir = Path(args.data)
    extra = dict(common.BENCH_RATES, INVENTORY_FSYNC="false")  # sizes do not depend on fsync; the run is faster
    if args.database_url:
        extra["DATABASE_URL"] = args.database_url
    inprocess.setup(data_dir, extra)
    os.environ["INVENTORY_FSYNC"] = "false"
    import gc

    from django.contrib.auth import get_user_model
    from django.core.handlers.wsgi import WSGIHandler
    from django.db import connection

    from reports import services, store
    from reports.models import Snapshot

    vendor = connection.vendor
    _, agent_token = services.agent_token_create(name="bench-storage")
    user = get_user_model().objects.create_user("bench-reader", password="bench-only-password")
    _, reader_token = services.api_token_create(user=user)
    handler = WSGIHandler()
    gc.freeze()

    def request(method: str, path: str, *, query: str = "", body: bytes = b"", token: str, address: str):
        environ = {
            "REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query, "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "80", "HTTP_HOST": "127.0.0.1", "SERVER_PROTOCOL": "HTTP/1.1",
            "wsgi.url_scheme": "http", "CONTENT_TYPE": "application/json", "CONTENT_LENGTH": str(len(body)),
            "wsgi.input": io.BytesIO(body), "wsgi.errors": sys.stderr, "HTTP_AUTHORIZATION": f"Token {token}",
            "REMOTE_ADDR": address,
        }
        statuses = []
        response = handler(environ, lambda status, headers: statuses.append(status))
        size = sum(len(chunk) for chunk in response)
        response.close()
        return int(statuses[0].split()[0]), size

    import json
    base = json.loads(Path(args.snapshot).read_text())
    first_day = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=9 + args.days)).date()
    day_start = dt.datetime.combine(first_day, dt.time(0, 0), dt.timezone.utc)
    series = [Series(base, h, day_start, seed=args.seed) for h in range(args.hosts)]
    addresses = [f"10.20.{h // 250}.{h % 250 + 1}" for h in range(args.hosts)]
    prefix = f"storage.{vendor}"
    per_day = args.hosts * args.snapshots
    kept_after_day: list[int] = []  # day files + the database's kept bytes, after each day's compaction
    compact_seconds, compacted_days = 0.0, 0
    for day_number in range(args.days):
        day = first_day + dt.timedelta(days=day_number)
        if day_number:
            for one in series:
                one.next_day()
        wal_before = wal_lsn()
        began = time.perf_counter()
        body_bytes = 0
        for step in range(args.snapshots):
            for host, one in enumerate(series):
                body = one.next_body()
                body_bytes += len(body)
                status, _ = request("POST", "/upload", body=body, token=agent_token, address=addresses[host])
                if status != 201:
                    raise RuntimeError(f"upload {step} of host {host} on day {day_number + 1} answered {status}")
        ingest_seconds = time.perf_counter() - began
        wal_after = wal_lsn()
        # Prose, not a figure: run_all.LINE must not read it (a number right after the colon would be one).
        print(f"{vendor}: day {day_number + 1}, ingested {per_day} snapshots of {body_bytes / per_day / 1000:.1f} KB "
              f"in {ingest_seconds:.0f} s", flush=True)
        if day_number == 0:  # the first day before its compaction, as a one-day run prints it
            plain, _ = day_file_bytes(data_dir)
            database = database_bytes(vendor)
            line(f"{prefix}.day_files_before", plain / per_day / 1000, "KB/snapshot")
            line(f"{prefix}.database", database / per_day / 1000, "KB/snapshot")
            if wal_before is not None:
                line(f"{prefix}.wal_written", (wal_after - wal_before) / per_day / 1000, "KB/snapshot")
            line(f"{prefix}.total_before", (plain + database) / per_day / 1000, "KB/snapshot")
            for part, size in sorted(database_breakdown(vendor).items()):
                line(f"{prefix}.database.{part}", size / per_day / 1000, "KB/snapshot")
        began = time.perf_counter()
        days = store.uncompacted_days(before=day + dt.timedelta(days=1))
        for ip, one_day in days:
            services.day_compact(ip=ip, day=one_day)
        compact_seconds += time.perf_counter() - began
        compacted_days += len(days)
        if day_number < args.days - 1:
            plain_after, compacted = day_file_bytes(data_dir)
            kept_after_day.append(plain_after + compacted + database_kept_bytes(vendor))

    count = per_day * args.days
    plain_after, compacted = day_file_bytes(data_dir)
    line(f"{prefix}.compact_per_day", compact_seconds / max(1, compacted_days) * 1000, "ms", fmt=".0f")
    line(f"{prefix}.day_files_after", (plain_after + compacted) / count / 1000, "KB/snapshot")
    if vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("VACUUM")
    database_raw = database_bytes(vendor)
    line(f"{prefix}.database_after_raw", database_raw / count / 1000, "KB/snapshot")
    database_kept = database_kept_bytes(vendor)
    kept_after_day.append(plain_after + compacted + database_kept)
    line(f"{prefix}.database_after_kept", database_kept / count / 1000, "KB/snapshot")
    for part, size in sorted(database_breakdown(vendor).items()):
        line(f"{prefix}.database_after.{part}", size / count / 1000, "KB/snapshot")
    line(f"{prefix}.total_after_raw", (plain_after + compacted + database_raw) / count / 1000, "KB/snapshot")
    line(f"{prefix}.total_after", kept_after_day[-1] / count / 1000, "KB/snapshot", TOTAL_TARGET_KB)
    if args.days >= 2:
        added = (kept_after_day[-1] - kept_after_day[-2]) / per_day
        fixed_per_host = (kept_after_day[0] - added * per_day) / args.hosts
        projected = fixed_per_host * PROJECTED_HOSTS + added * SNAPSHOTS_PER_DAY * PROJECTED_DAYS * PROJECTED_HOSTS
        line(f"{prefix}.last_day_added", added / 1000, "KB/snapshot", TOTAL_TARGET_KB)
        line(f"{prefix}.fixed_per_host", fixed_per_host / 1000, "KB")
        line(f"{prefix}.projected_90_days_1000_hosts", projected / 1e9, "GB", PROJECTED_TARGET_GB)
    day = first_day  # the reads below go to the first day, compacted

    rng = random.Random(args.seed)
    timings = []
    for _ in range(args.reads):
        address = rng.choice(addresses)
        started = time.perf_counter()
        status, size = request("GET", "/query", query=f"ip={address}&date={day.isoformat()}", token=reader_token,
                               address="127.0.0.1")
        timings.append((time.perf_counter() - started) * 1000)
        if status != 200 or size < args.snapshots * 1000:
            raise RuntimeError(f"/query answered {status} with {size} bytes")
    line(f"{prefix}.query_compacted_day_p50", statistics.median(timings), "ms", QUERY_TARGET_MS)
    ids = list(Snapshot.objects.values_list("snapshot_id", flat=True))
    timings = []
    for _ in range(args.reads * 3):
        started = time.perf_counter()
        status, _ = request("GET", f"/api/snapshots/{rng.choice(ids)}/", token=reader_token, address="127.0.0.1")
        timings.append((time.perf_counter() - started) * 1000)
        if status != 200:
            raise RuntimeError(f"/api/snapshots/<id>/ answered {status}")
    line(f"{prefix}.snapshot_by_id_p50", statistics.median(timings), "ms", BY_ID_TARGET_MS)
    rows = list(Snapshot.objects.values_list("file_name", "file_offset", "file_length"))
    timings = []
    for _ in range(args.reads * 3):  # the store's part of it: one document by offset from a compacted day
        started = time.perf_counter()
        if store.read_document(*rng.choice(rows)) is None:
            raise RuntimeError("a document could not be read by its offset")
        timings.append((time.perf_counter() - started) * 1000)
    line(f"{prefix}.read_document_p50", statistics.median(timings), "ms")
    connection.close()
    return 0


def _postgres_database(url: str, name: str, *, create: bool) -> str | None:
    """Create (or drop) a database named *name* on the server of *url*; returns its URL, None if unreachable."""
    import psycopg
    from urllib.parse import urlsplit, urlunsplit

    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
            if create:
                conn.execute(f'CREATE DATABASE "{name}"')
            else:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    except psycopg.OperationalError as exc:
        print(f"storage.postgresql: not measured, cannot reach {url}: {str(exc).strip()}", flush=True)
        return None
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=50)
    parser.add_argument("--snapshots", type=int, default=288, help="snapshots per host (288: a day at 5 minutes)")
    parser.add_argument("--days", type=int, default=2,
                        help="days of the series, each compacted when closed (2 or more print the marginal lines)")
    parser.add_argument("--reads", type=int, default=20, help="/query requests timed (3x as many by-id reads)")
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL,
                        help="a PostgreSQL server to measure too ('' for SQLite only)")
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--snapshot", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.days < 1:
        parser.error("--days must be 1 or more")
    if args.child:
        return child(args)

    print(common.machine_line())
    print(f"series: {args.hosts} hosts, {args.snapshots} snapshots a day each for {args.days} days, "
          f"{TARGET_PROCESSES} processes", flush=True)
    with tempfile.TemporaryDirectory(prefix="relevo-bench-storage-") as tmp:
        base = Path(tmp)
        snapshot_path = base / "snapshot.json"
        import json
        snapshot_path.write_text(json.dumps(base_snapshot()))
        runs = [("sqlite", None)]
        pg_name = f"relevo_bench_storage_{os.getpid()}"
        if args.database_url:
            runs.append(("postgresql", _postgres_database(args.database_url, pg_name, create=True)))
        status = 0
        try:
            for vendor, url in runs:
                if vendor == "postgresql" and url is None:
                    continue
                command = [sys.executable, __file__, "--child", "--data", str(base / vendor), "--snapshot",
                           str(snapshot_path), "--hosts", str(args.hosts), "--snapshots", str(args.snapshots),
                           "--days", str(args.days), "--reads", str(args.reads), "--seed", str(args.seed), "--database-url", url or ""]
                status |= subprocess.run(command).returncode
        finally:
            if args.database_url and len(runs) > 1 and runs[1][1] is not None:
                _postgres_database(args.database_url, pg_name, create=False)
    return status


if __name__ == "__main__":
    sys.exit(main())
