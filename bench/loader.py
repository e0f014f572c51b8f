"""Fill the database fast with a realistic fleet, for benchmarks (not for tests).

``load(hosts=10_000, snapshots_per_host=30)`` bulk-inserts Host and Snapshot
rows straight through the ORM, skipping ``snapshot_ingest`` (which fsyncs every
upload and would need hours for 300,000 snapshots). What it makes looks like
ingest's output: the host columns ingest derives (``services.host_columns``),
``process_index``, its process history (``_ProcessRuns``: what
``reports.process_history`` would hold) and a compressed schema-v1 document
of 80 to 350 processes with Linux-like names and command lines. Three shortcuts, all invisible to the pages being timed:

- The newest snapshot of each host carries a document of its own (its host id,
  hostname and snapshot id). Older snapshots share one of a pool of 64
  compressed documents, so loading stays bounded in minutes.
- The process history (``_ProcessRuns``) is drawn on its own, not derived
  from the documents: open runs of the newest snapshot's texts and passing
  programs over the last ten days, the shape a 7-day process search meets.
- No day files are written: rows name a day file and offset, but the files do
  not exist (``/query`` and raw downloads of these hosts answer "not found").

Call it with Django set up, against an empty (migrated) database::

    from bench.loader import load
    load(hosts=10_000, snapshots_per_host=30)
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import random
import uuid

from django.db import connection, transaction
from django.utils import timezone

from reports import addresses, documents, host_search, services
from reports import processes as process_rule
from reports import payload as payload_schema
from reports.models import Host, HostSearch, Snapshot

POOL_SIZE = 64
BATCH = 2_000

_DAEMONS = [
    ("systemd", ["/sbin/init"]), ("systemd-journald", ["/lib/systemd/systemd-journald"]),
    ("systemd-udevd", ["/lib/systemd/systemd-udevd"]), ("systemd-logind", ["/lib/systemd/systemd-logind"]),
    ("dbus-daemon", ["/usr/bin/dbus-daemon", "--system", "--address=systemd:", "--nofork"]),
    ("sshd", ["sshd: /usr/sbin/sshd -D [listener] 0 of 10-100 startups"]),
    ("cron", ["/usr/sbin/cron", "-f"]), ("rsyslogd", ["/usr/sbin/rsyslogd", "-n", "-iNONE"]),
    ("chronyd", ["/usr/sbin/chronyd", "-F", "1"]), ("agetty", ["/sbin/agetty", "-o", "-p -- \\u", "--noclear", "tty1"]),
    ("containerd", ["/usr/bin/containerd"]), ("dockerd", ["/usr/bin/dockerd", "-H", "fd://"]),
    ("node_exporter", ["/usr/local/bin/node_exporter", "--collector.systemd"]),
    ("python3", ["/usr/bin/python3", "-m", "agent", "--server", "https://relevo.internal"]),
]
_SERVICES = [
    [("nginx", ["nginx: master process /usr/sbin/nginx -g daemon on; master_process on;"])]
    + [("nginx", ["nginx: worker process"])] * 4,
    [("postgres", ["/usr/lib/postgresql/15/bin/postgres", "-D", "/var/lib/postgresql/15/main"])]
    + [("postgres", [f"postgres: 15/main: {w}"]) for w in
       ("checkpointer", "background writer", "walwriter", "autovacuum launcher", "logical replication launcher")],
    [("java", ["/usr/bin/java", "-Xms2g", "-Xmx2g", "-jar", "/opt/app/service.jar", "--spring.profiles.active=prod"])],
    [("redis-server", ["/usr/bin/redis-server", "127.0.0.1:6379"])],
    [("gunicorn", ["/srv/app/.venv/bin/python", "/srv/app/.venv/bin/gunicorn", "app.wsgi", "-w", "4"])] * 5,
    [("node", ["/usr/bin/node", "/srv/web/server.js", "--port", "3000"])] * 2,
    [("mysqld", ["/usr/sbin/mysqld"])],
]


def _processes(rng: random.Random, count: int) -> list[dict]:
    names: list[tuple[str, list[str]]] = list(_DAEMONS)
    for service in rng.sample(_SERVICES, k=rng.randint(1, 3)):
        names.extend(service)
    users = ["alice", "bob", "deploy"]
    for i in range(rng.randint(0, 6)):
        names.append(("bash", ["-bash"]))
        names.append(("sshd", [f"sshd: {rng.choice(users)}@pts/{i}"]))
    cpu = 0
    while len(names) < count:
        names.append((f"kworker/{cpu % 8}:{rng.randint(0, 3)}{rng.choice(['', 'H', '-events'])}", []))
        cpu += 1
    processes = []
    pid = 1
    for index, (name, cmdline) in enumerate(names[:count]):
        pid += rng.randint(1, 40)
        processes.append({
            "pid": 1 if index == 0 else pid, "ppid": 0 if index == 0 else (2 if not cmdline else 1),
            "name": name, "username": "root" if not cmdline or index < 14 else rng.choice(["www-data", "postgres", "root"]),
            "status": "sleeping", "create_time": "2026-11-20T06:12:03+00:00",
            "cpu_percent": round(rng.expovariate(1.0), 1) if cmdline else 0.0,
            "memory_rss_bytes": rng.randint(2_000, 400_000) * 1024 if cmdline else 0,
            "memory_percent": round(rng.random() * 3, 2), "num_threads": rng.randint(1, 40),
            "exe": f"/usr/bin/{name}" if cmdline else None, "cmdline": cmdline,
        })
    return processes


def _document(rng: random.Random, *, host_id: str, hostname: str, ip: str, collected_at: dt.datetime,
              processes: list[dict], memory_total: int, memory_available: int, os_pick: tuple) -> dict:
    os_name, distribution, version, kernel = os_pick
    return {
        "schema_version": 1, "snapshot_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "collected_at": collected_at.isoformat(), "agent": {"version": "1.0.0"},
        "host": {"id": host_id, "hostname": hostname, "fqdn": f"{hostname}.example.internal", "ips": [ip],
                 "boot_time": "2026-11-20T06:12:00+00:00"},
        "os": {"name": os_name, "version": f"#1 SMP {distribution} {kernel}", "release": kernel, "build": None,
               "distribution": distribution, "distribution_version": version, "kernel": kernel, "arch": "x86_64"},
        "cpu": {"model": rng.choice(_CPUS), "vendor": "GenuineIntel", "arch": "x86_64", "physical_cores": 4,
                "logical_cores": 8, "frequency_mhz": 2300.0, "usage_percent": round(rng.random() * 60, 1)},
        "memory": {"total_bytes": memory_total, "available_bytes": memory_available},
        "users": [{"name": "alice", "terminal": "pts/0", "host": "10.0.0.7", "started": "2026-11-27T07:40:00+00:00"}]
        if rng.random() < 0.3 else [],
        "users_source": "utmp", "processes": processes,
        "received_at": collected_at.isoformat(), "ip": ip,
    }


_CPUS = ["Intel(R) Xeon(R) CPU E5-2686 v4 @ 2.30GHz", "Intel(R) Xeon(R) Gold 6248R CPU @ 3.00GHz",
         "AMD EPYC 7R13 Processor", "Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz"]
_OSES = [("Linux", "Debian GNU/Linux", "12", "6.1.0-30-amd64"), ("Linux", "Ubuntu", "22.04", "5.15.0-126-generic"),
         ("Linux", "Rocky Linux", "9.4", "5.14.0-427.el9.x86_64"), ("Windows", "Windows Server 2022 Standard", "21H2", "10.0.20348")]


def _encode(document: dict) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode()


_SNAPSHOT_COLUMNS = (
    "snapshot_id", "host", "ip", "day", "collected_at", "received_at", "os_name", "os_version", "cpu_model",
    "process_count", "user_count", "memory_total_bytes", "memory_available_bytes", "file_name",
    "file_offset", "file_length", "document_compressed",
)


def _snapshot_insert() -> tuple[str, callable]:
    """One INSERT for Snapshot rows and a function giving a row's values as the backend stores them.

    ``bulk_create`` prepares every value through ``Field.get_db_prep_save``,
    which at 3,000,000 rows is most of the load; these are the same
    conversions, done once per kind of column.
    """
    fields = [Snapshot._meta.get_field(name) for name in _SNAPSHOT_COLUMNS]
    sql = (f"INSERT INTO {connection.ops.quote_name(Snapshot._meta.db_table)} "
           f"({', '.join(connection.ops.quote_name(f.column) for f in fields)}) VALUES ({', '.join(['%s'] * len(fields))})")
    ops, uuid_field = connection.ops, fields[0]

    def values(row: list) -> list:
        row[0] = uuid_field.get_db_prep_value(row[0], connection)
        row[3] = ops.adapt_datefield_value(row[3])
        row[4], row[5] = ops.adapt_datetimefield_value(row[4]), ops.adapt_datetimefield_value(row[5])
        return row

    return sql, values


def _tune_for_loading() -> None:
    """SQLite: no journal and no syncs while loading (a crash means loading again), a big page cache."""
    if connection.vendor == "sqlite" and not connection.in_atomic_block:  # a test's transaction: leave it be
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA journal_mode=OFF")
            cursor.execute("PRAGMA synchronous=OFF")
            cursor.execute("PRAGMA cache_size=-1000000")


def _tune_for_serving() -> None:
    """Statistics for the planner, and SQLite's WAL back for the server.

    PostgreSQL gets a VACUUM as well, as autovacuum would give a table after
    a bulk load: without it no page is marked all-visible (and the host
    table holds 100,000 dead rows from ``_latest_snapshots``), so every count
    reads the heap instead of an index (docs/performance.md, fleet scale).
    """
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql" and not connection.in_atomic_block:
            cursor.execute("VACUUM (ANALYZE)")
            return
        cursor.execute("ANALYZE")
        if connection.vendor == "sqlite" and not connection.in_atomic_block:
            cursor.execute("PRAGMA journal_mode=WAL")


def load(*, hosts: int = 10_000, snapshots_per_host: int = 30, seed: int = 4,
         now: dt.datetime | None = None, interval: dt.timedelta = dt.timedelta(minutes=30),
         progress=print) -> dict[str, int]:
    """Insert *hosts* hosts with *snapshots_per_host* snapshots each, *interval* apart; returns row counts and bytes."""
    rng = random.Random(seed)
    now = now or timezone.now()
    pool = []
    for _ in range(POOL_SIZE):
        processes = _processes(rng, rng.randint(80, 350))
        total = rng.choice([4, 8, 16, 32, 64]) * 1024**3
        document = _document(rng, host_id="pool", hostname="pool", ip="10.0.0.1", collected_at=now,
                             processes=processes, memory_total=total, memory_available=int(total * 0.4),
                             os_pick=rng.choice(_OSES))
        pool.append((processes, documents.pack(_encode(document))))
    insert_sql, db_values = _snapshot_insert()
    runs = _ProcessRuns(random.Random(seed + 1))
    _tune_for_loading()
    stored_bytes = 0
    made_hosts = made_snapshots = 0
    for start in range(0, hosts, BATCH):
        with transaction.atomic():
            batch_hosts, plans, texts = [], [], []
            for number in range(start, min(start + BATCH, hosts)):
                ip = str(ipaddress.IPv4Address("10.0.0.0") + 256 + number)
                roll = rng.random()
                age = (dt.timedelta(seconds=rng.randint(0, 900)) if roll < 0.8
                       else dt.timedelta(hours=rng.randint(1, 100)) if roll < 0.95
                       else dt.timedelta(days=rng.randint(8, 60)))
                last_seen = (now - age).replace(microsecond=0)
                processes = _processes(rng, rng.randint(80, 350))
                total = rng.choice([4, 8, 16, 32, 64]) * 1024**3
                os_pick = rng.choice(_OSES)
                hostname = f"{rng.choice(['web', 'db', 'app', 'cache', 'build', 'mail'])}-{number:05d}"
                document = _document(rng, host_id=f"machine-{number:08x}", hostname=hostname, ip=ip,
                                     collected_at=last_seen, processes=processes, memory_total=total,
                                     memory_available=int(total * rng.uniform(0.1, 0.8)), os_pick=os_pick)
                first_seen = last_seen - interval * (snapshots_per_host - 1)
                payload = payload_schema.decode_stored(_encode(document)).payload
                text = host_search.search_text(payload, last_ip=ip)
                batch_hosts.append(Host(
                    host_id=payload.host.id, first_seen=first_seen, last_seen=last_seen,
                    **process_rule.index_columns(payload.processes),
                    **services.host_columns(payload, addresses.parse_ip(ip)),
                    **host_search.host_search_columns(payload, text=text),
                ))
                plans.append((document, last_seen, ip, total))
                texts.append(text)
            Host.objects.bulk_create(batch_hosts)
            HostSearch.objects.bulk_create(HostSearch(host=host, text=text)
                                           for host, text in zip(batch_hosts, texts, strict=True))
            runs.add(batch_hosts, now=now)
            rows = []
            for host, (document, last_seen, ip, total) in zip(batch_hosts, plans, strict=True):
                for back in range(snapshots_per_host - 1, -1, -1):
                    collected_at = last_seen - interval * back
                    if back == 0:
                        blob, count = documents.pack(_encode(document)), len(document["processes"])
                        available = document["memory"]["available_bytes"]
                        snapshot_id = uuid.UUID(document["snapshot_id"])
                    else:
                        processes, blob = pool[rng.randrange(POOL_SIZE)]
                        count = len(processes)
                        available = int(total * rng.uniform(0.1, 0.8))
                        snapshot_id = uuid.UUID(int=rng.getrandbits(128), version=4)
                    day = timezone.localtime(collected_at).date()
                    stored_bytes += len(blob)
                    rows.append(db_values([
                        snapshot_id, host.pk, ip, day, collected_at, collected_at, host.os_name, host.os_version,
                        host.cpu_model, count, host.user_count, total, available,
                        f"{ip}_{day.isoformat()}.json", 0, len(blob), blob,
                    ]))
            with connection.cursor() as cursor:
                cursor.executemany(insert_sql, rows)
        made_hosts += len(batch_hosts)
        made_snapshots += len(rows)
        progress(f"loader: {made_hosts}/{hosts} hosts, {made_snapshots} snapshots")
    _latest_snapshots()
    _tune_for_serving()
    return {"hosts": made_hosts, "snapshots": made_snapshots, "document_bytes": stored_bytes, "process_runs": runs.count}


# Programs that come and go (closed runs over the last HISTORY_DAYS): sessions, an editor, upgrades, and on
# a few hosts a miner that ran for a while, as on issue 18's fleet.
_PASSING = [
    ("sshd", "sshd: {user}@pts/{n}"), ("bash", "-bash"), ("vim", "vim /etc/nginx/nginx.conf"),
    ("apt-get", "apt-get upgrade -y"), ("postgres", "postgres: 15/main: autovacuum worker"),
    ("python3", "/usr/bin/python3 /opt/backup/run.py --full"), ("sudo", "sudo systemctl restart nginx"),
]
HISTORY_DAYS = 10
PASSING_RUNS = 8


class _ProcessRuns:
    """The process history of the loaded hosts (``reports.process_history``), inserted directly, fast.

    Each host gets an open run for every line of its ``process_index``
    (started when the host was first seen) and PASSING_RUNS closed runs of
    programs that came and went over the last HISTORY_DAYS, 5 minutes to 6
    hours long; one host in a hundred ran a miner. The texts are a few
    hundred for the whole fleet (as in a real one), kept in a dict.
    """

    def __init__(self, rng: random.Random):
        self.rng, self.ids, self.count = rng, {}, 0
        from reports.models import ProcessRun, ProcessText
        quote = connection.ops.quote_name
        self.text_sql = (f"INSERT INTO {quote(ProcessText._meta.db_table)} (digest, text, name) VALUES (%s, %s, %s)")
        self.run_sql = (f"INSERT INTO {quote(ProcessRun._meta.db_table)} (host_id, text_id, started_at, stopped_at) "
                        f"VALUES (%s, %s, %s, %s)")

    def _id(self, cursor, text: str) -> int:
        from reports import process_history
        from reports.models import ProcessText
        if text not in self.ids:
            cursor.execute(self.text_sql, [process_history.text_digest(text), text, text.split("\t", 1)[0]])
            self.ids[text] = ProcessText.objects.get(digest=process_history.text_digest(text)).pk
        return self.ids[text]

    def add(self, hosts: list[Host], *, now: dt.datetime) -> None:
        adapt, rng = connection.ops.adapt_datetimefield_value, self.rng
        rows = []
        with connection.cursor() as cursor:
            for host in hosts:
                for line in host.process_index.split("\n") if host.process_index else ():
                    rows.append((host.pk, self._id(cursor, line), adapt(host.first_seen), None))
                passing = [rng.choice(_PASSING) for _ in range(PASSING_RUNS)]
                if rng.random() < 0.01:
                    passing.append(("xmrig", "/tmp/.x/xmrig -o pool.example:3333"))
                for name, cmdline in passing:
                    text = f"{name}\t{cmdline.format(user=rng.choice(['alice', 'bob', 'deploy']), n=rng.randint(0, 9))}"
                    stopped = min(host.last_seen, now - dt.timedelta(seconds=rng.randint(0, HISTORY_DAYS * 86_400)))
                    started = stopped - dt.timedelta(seconds=rng.randint(300, 6 * 3600))
                    rows.append((host.pk, self._id(cursor, text), adapt(started), adapt(stopped)))
            cursor.executemany(self.run_sql, rows)
        self.count += len(rows)


def _latest_snapshots() -> None:
    """Point every host at its newest snapshot, as ingest does, in one statement (the index answers each)."""
    host_table = connection.ops.quote_name(Host._meta.db_table)
    snapshot_table = connection.ops.quote_name(Snapshot._meta.db_table)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {host_table} SET latest_snapshot_id = (SELECT s.id FROM {snapshot_table} s "
            f"WHERE s.host_id = {host_table}.id ORDER BY s.collected_at DESC, s.id DESC LIMIT 1)"
        )

