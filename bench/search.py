"""Search benchmark: the inventory questions at 10,000 hosts x 1,500 packages (15 million host-package pairs).

Fills the search tables of a fresh database directly (``executemany`` on
SQLite, ``COPY`` on PostgreSQL; the secondary indexes are built after the
load, as a bulk load does), then times, in this process, the selectors the
API and pages call, each as a listing page answers it (the first 50 hosts by
name and the total count):

- ``search.software_version``: which hosts have openssl at 3.0.11,
- ``search.listening_port``: which hosts listen on 3389,
- ``search.disk_full``: which hosts have a disk over 90% full,
- ``search.fleet_software``: a page of the fleet software list with host counts.

The fleet is shaped like real ones: 1,000 packages every host has (in one to
three versions, the newest on most hosts), 500 drawn per host from a long
tail of 3,000, ~15 listening sockets and 3 disks a host.

    .venv/bin/python bench/search.py [--hosts 10000] [--packages 1500] [--database-url postgres://...]
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import shutil
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common, inprocess  # noqa: E402

TARGET_P50_MS = 50.0
PAGE = 50
CORE_PACKAGES = 1_000
TAIL_PACKAGES = 3_000
# Version spread of a core package over the fleet: the newest on 60% of hosts, then 30%, then 10%.
VERSION_SPREAD = [0] * 6 + [1] * 3 + [2]
OPENSSL_VERSIONS = ["3.0.11", "3.0.13", "3.0.15"]
COMMON_PORTS = [(22, 1.0), (80, 0.3), (443, 0.3), (5432, 0.05), (3306, 0.05), (3389, 0.05), (8080, 0.1),
                (53, 0.1), (123, 0.2), (9100, 0.5)]


def _words(rng: random.Random, count: int) -> list[str]:
    stems = ["lib", "python3-", "golang-", "node-", "perl-", "fonts-", "gir1.2-", "x11-", "", "ruby-"]
    roots = ["ssl", "curl", "xml", "gtk", "glib", "pam", "systemd", "krb5", "ldap", "sasl", "png", "jpeg", "zstd",
             "lz4", "bz2", "ffi", "gnutls", "nettle", "idn", "uuid", "blkid", "mount", "audit", "cap", "acl"]
    names = set()
    while len(names) < count:
        names.add(f"{rng.choice(stems)}{rng.choice(roots)}{rng.randrange(1000)}")
    return sorted(names)


def _version(rng: random.Random) -> str:
    return f"{rng.randrange(1, 12)}.{rng.randrange(0, 30)}.{rng.randrange(0, 9)}-{rng.randrange(1, 6)}"


def _catalog(rng: random.Random) -> tuple[list[tuple], list[list[int]], list[int]]:
    """Every package version's row, the version row indexes of each core package, and the tail's rows."""
    from reports import inventory_index
    from reports import payload as payload_schema

    rows: list[tuple] = []

    def add(name: str, version: str, arch: str = "amd64") -> int:
        entry = payload_schema.Software(name=name, version=version, vendor="Debian", arch=arch, source="deb")
        rows.append((inventory_index.software_key(entry), name, version, "Debian", arch, "deb"))
        return len(rows) - 1

    core = [[add("openssl", v) for v in OPENSSL_VERSIONS]]
    for name in _words(rng, CORE_PACKAGES + TAIL_PACKAGES)[: CORE_PACKAGES - 1]:
        core.append([add(name, _version(rng)) for _ in range(rng.choice([1, 2, 3]))])
    tail = [add(f"tail-{name}", _version(rng), rng.choice(["amd64", "all"])) for name in _words(rng, TAIL_PACKAGES)]
    return rows, core, tail


def _pairs(host_pks: list[int], software_ids: list[int], core: list[list[int]], tail: list[int],
           packages: int, rng: random.Random):
    """(host, software, install_date) rows in primary-key order, one host after another."""
    tail_count = max(0, packages - len(core))
    core = core[:packages]
    for number, host_pk in enumerate(host_pks):
        chosen = [versions[VERSION_SPREAD[(number * 7 + index * 13) % 10] % len(versions)]
                  for index, versions in enumerate(core)]
        chosen.extend(rng.sample(tail, tail_count))
        for sid in sorted(software_ids[i] for i in chosen):
            yield (host_pk, sid, None)


def _load(*, hosts: int, packages: int, postgres: bool) -> float:
    from django.db import connection, transaction

    from reports import inventory_index
    from reports.models import Host, HostDisk, HostListeningSocket, HostSoftware, Software

    rng = random.Random(15)
    began = time.monotonic()
    now = dt.datetime.now(dt.timezone.utc)
    with transaction.atomic():
        Host.objects.bulk_create([
            Host(host_id=f"fleet-{i:05d}", hostname=f"fleet-{i:05d}", last_ip=f"10.{i // 62_500}.{i // 250 % 250}."
                 f"{1 + i % 250}", first_seen=now, last_seen=now, os_name="Linux") for i in range(hosts)
        ], batch_size=1000)
    host_pks = list(Host.objects.order_by("pk").values_list("pk", flat=True))
    rows, core, tail = _catalog(rng)
    with transaction.atomic():
        Software.objects.bulk_create([Software(key=k, name=n, version=v, vendor=ve, arch=a, source=s)
                                      for k, n, v, ve, a, s in rows], batch_size=1000)
    ids_by_key = dict(Software.objects.values_list("key", "pk"))
    software_ids = [ids_by_key[row[0]] for row in rows]

    table = HostSoftware._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute("DROP INDEX host_software_by_software")
    pairs = _pairs(host_pks, software_ids, core, tail, packages, rng)
    if postgres:
        with connection.cursor() as cursor, cursor.cursor.copy(
                f"COPY {table} (host_id, software_id, install_date) FROM STDIN") as copy:
            for row in pairs:
                copy.write_row(row)
    else:
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA synchronous=OFF")
            with transaction.atomic():
                cursor.executemany(f"INSERT INTO {table} (host_id, software_id, install_date) VALUES (%s, %s, %s)",
                                   pairs)
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE INDEX host_software_by_software ON {table} (software_id, host_id)")

    sockets, disks = [], []
    for host_pk in host_pks:
        for port, share in COMMON_PORTS:
            if rng.random() < share:
                sockets.append(HostListeningSocket(host_id=host_pk, protocol="udp" if port in (53, 123) else "tcp",
                                                   address="0.0.0.0", port=port, pid=rng.randrange(1, 60_000),
                                                   process=f"daemon-{port}"))
        for _ in range(8):
            sockets.append(HostListeningSocket(host_id=host_pk, protocol="tcp", address="127.0.0.1",
                                               port=rng.randrange(1024, 65_536), pid=rng.randrange(1, 60_000),
                                               process="worker"))
        for mount in ("/", "/var", "/boot"):
            total = rng.choice([20, 50, 100, 500]) * 2**30
            used = min(99.9, rng.betavariate(4, 3) * 100)
            free = int(total * (1 - used / 100))
            disks.append(HostDisk(host_id=host_pk, mount_point=mount, device="/dev/sda1", fs_type="ext4",
                                  total_bytes=total, free_bytes=free,
                                  used_percent=round(100 * (total - free) / total, 3)))
    with transaction.atomic():
        HostListeningSocket.objects.bulk_create(sockets, batch_size=2000)
        HostDisk.objects.bulk_create(disks, batch_size=2000)
        inventory_index.software_counts_rebuild()
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return time.monotonic() - began


def _measure(name: str, run, requests: int) -> None:
    for _ in range(3):
        run(0)  # warm the caches, as a running server's are
    times = []
    for number in range(requests):
        began = time.perf_counter()
        run(number)
        times.append((time.perf_counter() - began) * 1000)
    p50, p99 = common.percentile(times, 0.5), common.percentile(times, 0.99)
    common.report(f"{name}.p50", p50, "ms", target=f"<= {TARGET_P50_MS:.0f} ms", ok=p50 <= TARGET_P50_MS)
    common.report(f"{name}.p99", p99, "ms")


def _page(queryset, page: int = 0) -> tuple[int, int]:
    """What a list endpoint runs: the total count and one page of rows."""
    return queryset.count(), len(list(queryset[page * PAGE:(page + 1) * PAGE]))


def _fresh_postgres_database(url: str) -> tuple[str, str]:
    """A new, empty database on the server of *url*; returns its URL and its name."""
    import psycopg

    parts = urllib.parse.urlsplit(url)
    name = f"relevo_bench_search_{int(time.time())}"
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    return urllib.parse.urlunsplit(parts._replace(path=f"/{name}")), name


def _drop_postgres_database(url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=10_000)
    parser.add_argument("--packages", type=int, default=1_500, help="packages per host")
    parser.add_argument("--requests", type=int, default=200, help="timed runs of each question")
    parser.add_argument("--database-url", default="", help="a PostgreSQL server URL (a new database is made there)")
    args = parser.parse_args(argv)
    print(common.machine_line())

    base = Path(tempfile.mkdtemp(prefix="relevo-bench-search-"))
    created = None
    try:
        extra_env = {}
        if args.database_url:
            url, created = _fresh_postgres_database(args.database_url)
            extra_env["DATABASE_URL"] = url
        inprocess.setup(base / "data", extra_env)
        from reports import inventory_selectors
        from reports.models import HostSoftware

        seconds = _load(hosts=args.hosts, packages=args.packages, postgres=bool(args.database_url))
        pairs = HostSoftware.objects.count()
        database = "PostgreSQL" if args.database_url else "SQLite"
        print(f"search: loaded {args.hosts} hosts x {args.packages} packages ({pairs} host-package pairs) "
              f"into {database} in {seconds:.0f} s")
        common.report("search.pairs", pairs, "pairs")
        openssl = inventory_selectors.hosts_with_software(name="openssl", version="3.0.11")
        print(f"search: {openssl.count()} hosts have openssl 3.0.11, "
              f"{inventory_selectors.hosts_listening(port=3389).count()} listen on 3389, "
              f"{inventory_selectors.hosts_with_full_disk().count()} have a disk over 90% full, "
              f"{inventory_selectors.software_list().count()} packages in the fleet list")
        _measure("search.software_version",
                 lambda n: _page(inventory_selectors.hosts_with_software(name="openssl", version="3.0.11")),
                 args.requests)
        _measure("search.listening_port", lambda n: _page(inventory_selectors.hosts_listening(port=3389)),
                 args.requests)
        _measure("search.disk_full", lambda n: _page(inventory_selectors.hosts_with_full_disk()), args.requests)
        _measure("search.fleet_software", lambda n: _page(inventory_selectors.software_list(), n % 20),
                 args.requests)
        _measure("search.fleet_software_filtered",
                 lambda n: _page(inventory_selectors.software_list(search="ssl")), args.requests)
    finally:
        if created:
            from django.db import connections

            connections.close_all()
            _drop_postgres_database(args.database_url, created)
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
