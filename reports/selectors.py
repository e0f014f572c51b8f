"""Reads: what the API and the pages show, in one place.

``snapshots_for_ip`` answers ``/query``. It hands back the day file's bytes as
they are (the file is already a JSON array), streamed from disk so a worker's
memory does not grow with the file, without decoding and re-encoding every
process; ``latest`` reads one document by the offset recorded at append time
instead of scanning the file.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import Count, Exists, OuterRef, Q
from django.utils.timezone import now as timezone_now

from reports import payload as payload_schema
from reports import addresses, host_search, host_table, models, rowsql, store
from reports import processes as process_rule
from reports.diff import ProcessTally, SnapshotDiff, process_change_counts, snapshot_diff
from reports.documents import DocumentError
from reports.models import Host, HostSearch, ProcessRun, ProcessText, Snapshot

logger = logging.getLogger(__name__)

# How long a history row's process counts stay in the cache (they never change; this only bounds memory).
HISTORY_COUNTS_SECONDS = 24 * 3600


@dataclass(frozen=True)
class DaySnapshots:
    """The stored snapshots of one address and day: ``snapshots`` streams their JSON array."""

    ip: str
    date: dt.date
    available_dates: list[dt.date]
    snapshots: store.DayFileStream


def available_dates(*, ip: addresses.IPAddress) -> list[dt.date]:
    return list(
        Snapshot.objects.filter(ip=str(ip)).order_by("day").values_list("day", flat=True).distinct()
    )


def snapshots_for_ip(*, ip: addresses.IPAddress, day: dt.date | None = None, latest: bool = False) -> DaySnapshots | None:
    """The snapshots of *ip* on *day* (default: its most recent day), or None if nothing is stored."""
    dates = available_dates(ip=ip)
    if day is None:
        if not dates:
            return None
        day = dates[-1]
    if latest:
        body = _latest_document(ip=ip, day=day)
        if body is None:
            return None
        return DaySnapshots(str(ip), day, dates, store.DayFileStream.of_bytes(b"[" + body + b"]"))
    stream = store.open_day(ip, day)
    if stream is None:
        return None
    return DaySnapshots(str(ip), day, dates, stream)


def _latest_document(*, ip: addresses.IPAddress, day: dt.date) -> bytes | None:
    """The newest document of the day, read from its file by offset (the row's copy if the file lost it)."""
    row = rowsql.select_one(Snapshot, ["file_name", "file_offset", "file_length"],
                            where={"ip": str(ip), "day": day}, order_by=("-collected_at", "-file_offset"))
    return None if row is None else snapshot_document_json(snapshot=row)


def snapshot_document_json(*, snapshot: Snapshot) -> bytes:
    """The stored document of one snapshot as JSON bytes: from its day file, or from the row if the file is gone.

    The file is read by the offset recorded at append time, so no other
    document is decoded; the row's compressed copy is loaded only when the
    file no longer holds it (pruned by hand, a lost volume).
    """
    document = store.read_document(snapshot.file_name, snapshot.file_offset, snapshot.file_length)
    return document if document is not None else snapshot.document_bytes


def snapshot_get(*, snapshot_id) -> Snapshot | None:
    return Snapshot.objects.filter(snapshot_id=snapshot_id).select_related("host").first()


# --- hosts ------------------------------------------------------------------------

HOST_STATUSES = models.HOST_STATUSES


def host_status(host: Host, now: dt.datetime | None = None) -> str:
    """online / offline / stale, by the thresholds every host list and filter uses (``reports.models``)."""
    return models.host_status(host.last_seen, now)


def host_list(*, search: str = "", os_name: str = "", os_version: str = "", status: str = "",
              ordering: str = "hostname", identity_conflict: bool = False, now: dt.datetime | None = None,
              search_in_order: bool = False):
    """Hosts for the list page and /api/hosts/: search, filters and an ordering of ``reports.host_table``.

    ``search`` is a case-insensitive substring of the host's search text
    (``reports.host_search``: names, host id, its own and seen addresses,
    OS, version, kernel, CPU); ``os_version`` is exact, as the list counts
    it ("CentOS Linux 7"); ``status`` is one of HOST_STATUSES;
    ``identity_conflict`` keeps the hosts flagged as two machines sending one
    id (``reports.identity``). Unknown
    orderings fall back to hostname.

    ``search_in_order`` is for a search known to match many hosts (the
    list's capped count reached its cap, ``reports.paging``): the match is
    then tested on the rows as the sort's index yields them, and a page is
    full after a few hundred rows, where the subquery below collects every
    match and sorts them all. The same hosts either way; for a search that
    matches few, reading in sort order would read every host.
    """
    queryset = Host.objects.all()
    needle = host_search.search_needle(search)
    if needle and search_in_order:
        # Tested row by row, each host's text found by its key, as the sort's index yields the hosts.
        queryset = queryset.filter(Exists(HostSearch.objects.filter(host=OuterRef("pk"), text__contains=needle)))
    elif needle:
        # Matched in a subquery over the texts alone (HostSearch, 0018): SQLite scans that
        # narrow table, PostgreSQL reads its trigram index.
        queryset = queryset.filter(pk__in=HostSearch.objects.filter(text__contains=needle).values("host"))
    if os_name:
        queryset = queryset.filter(os_name=os_name)
    if os_version:
        queryset = queryset.filter(os_version=os_version)
    if status in HOST_STATUSES:
        queryset = queryset.with_status(status, now)
    if identity_conflict:
        queryset = queryset.filter(identity_conflict_since__isnull=False)
    return queryset.order_by(*host_table.order_by(ordering)).defer("process_index")


def host_counts(now: dt.datetime | None = None) -> dict[str, dict]:
    """Counts for the summary above the host list: by OS, by status, and by OS and version.

    ``versions`` maps each OS name to its versions with their counts, most
    hosts first, so "every CentOS 7" is one link.
    """
    by_version: dict[str, dict[str, int]] = {}
    # COUNT(*), not COUNT(id): the host_os_version index alone answers it (PostgreSQL read the
    # whole host table for the id, 84 ms at 100,000 hosts; docs/performance.md, fleet scale).
    rows = Host.objects.values_list("os_name", "os_version").annotate(n=Count("*")).order_by("os_name", "-n", "os_version")
    for name, version, n in rows:
        by_version.setdefault(name, {})[version] = n
    by_os = {name: sum(versions.values()) for name, versions in by_version.items()}
    return {"os": by_os, "versions": by_version, "status": Host.objects.status_counts(now)}


# --- host detail, history, changes (the pages; the API may reuse them) -----------

SNAPSHOT_SUMMARY_FIELDS = (
    "id", "snapshot_id", "host_id", "ip", "day", "collected_at", "received_at", "os_name", "os_version",
    "cpu_model", "process_count", "user_count", "memory_total_bytes", "memory_available_bytes", "file_name",
    "file_offset", "file_length",
)
PROCESS_ORDERINGS = {
    "cpu": (lambda p: p.cpu_percent or 0.0, True),
    "memory": (lambda p: p.memory_rss_bytes or 0, True),
    "name": (lambda p: ((p.name or "").lower(), p.pid), False),
    "user": (lambda p: ((p.username or "").lower(), (p.name or "").lower(), p.pid), False),
    "pid": (lambda p: p.pid, False),
    "status": (lambda p: ((p.status or "").lower(), p.pid), False),
}


def host_get(*, pk: int) -> Host | None:
    """One host by its database id (the pages' URLs), without the large process index."""
    return Host.objects.filter(pk=pk).defer("process_index").first()


def host_snapshots(*, host: Host):
    """The host's snapshots, newest first, as summary rows (documents are not loaded)."""
    return Snapshot.objects.filter(host=host).order_by("-collected_at", "-pk").only(*SNAPSHOT_SUMMARY_FIELDS)


def history_process_counts(*, host: Host, snapshots: list[Snapshot]) -> dict[int, tuple[int, int] | None]:
    """For each of *snapshots* (one page of ``host_snapshots``, newest first): its processes (started, stopped).

    Compared with the snapshot before it, as the changes page compares them
    (``diff.process_change_counts``); None for the host's first snapshot, or
    when a document cannot be read. Each pair's counts are kept in the cache
    under both snapshot ids (documents never change, and a late snapshot
    arriving between two makes a new pair), so a page seen again reads no
    document; otherwise each document is read from its day file by offset
    (``snapshot_document_json``), the page's and the one before the oldest.
    """
    if not snapshots:
        return {}
    before = _snapshots_before(host=host, snapshot=snapshots[-1]).only(*SNAPSHOT_SUMMARY_FIELDS).first()
    chain = [*snapshots, before] if before is not None else list(snapshots)
    pairs = {snapshot.pk: (snapshot, chain[index + 1]) for index, snapshot in enumerate(snapshots)
             if index + 1 < len(chain)}
    keys = {pk: f"relevo:history-counts:{new.snapshot_id}:{old.snapshot_id}" for pk, (new, old) in pairs.items()}
    cached = cache.get_many(list(keys.values()))
    tallies: dict[int, ProcessTally | None] = {}

    def tally(snapshot: Snapshot) -> ProcessTally | None:
        if snapshot.pk not in tallies:
            try:
                document = payload_schema.decode_stored(snapshot_document_json(snapshot=snapshot))
                tallies[snapshot.pk] = ProcessTally.of(document.payload.processes)
            except (payload_schema.PayloadError, DocumentError) as exc:
                logger.warning("history of host %s: snapshot %s not read: %s", host.pk, snapshot.snapshot_id, exc)
                tallies[snapshot.pk] = None
        return tallies[snapshot.pk]

    counts: dict[int, tuple[int, int] | None] = {snapshot.pk: None for snapshot in snapshots}
    fresh = {}
    for pk, (new, old) in pairs.items():
        if keys[pk] in cached:
            counts[pk] = tuple(cached[keys[pk]])
            continue
        new_tally, old_tally = tally(new), tally(old)
        if new_tally is not None and old_tally is not None:
            counts[pk] = fresh[keys[pk]] = process_change_counts(old_tally, new_tally)
    if fresh:
        cache.set_many(fresh, timeout=HISTORY_COUNTS_SECONDS)
    return counts


def host_snapshot(*, host: Host, snapshot_id) -> Snapshot | None:
    """One snapshot of *host* by its snapshot_id, with its document; None if it is not this host's."""
    try:
        return Snapshot.objects.filter(host=host, snapshot_id=snapshot_id).first()
    except (ValueError, ValidationError):
        return None


def snapshot_document(*, snapshot: Snapshot) -> payload_schema.StoredSnapshot:
    """The full stored snapshot, decoded from the row's compressed copy (no day file is opened).

    A row of a compacted day points into its day's archive instead; its
    document is read from the day file by offset first, which decodes less.
    """
    if snapshot.is_archived:
        return payload_schema.decode_stored(snapshot_document_json(snapshot=snapshot))
    return payload_schema.decode_stored(snapshot.document_bytes)


def snapshot_processes(*, processes: list[payload_schema.Process], search: str = "",
                       match: str = process_rule.MATCH_CMDLINE, ordering: str = "cpu") -> list[payload_schema.Process]:
    """The process table: the ``reports.processes`` filter (*match*: name or command line), then a sort.

    ``ordering`` is a key of PROCESS_ORDERINGS (cpu and memory sort biggest first);
    prefix ``-`` to reverse. Unknown orderings fall back to cpu.
    """
    needle = process_rule.query_needle(search)
    if needle:
        processes = process_rule.matching_processes(processes, needle, match)
    reverse_requested = ordering.startswith("-")
    key, descending = PROCESS_ORDERINGS.get(ordering.lstrip("-"), PROCESS_ORDERINGS["cpu"])
    return sorted(processes, key=key, reverse=descending != reverse_requested)


def process_tree(processes: list[payload_schema.Process]) -> list[tuple[int, payload_schema.Process]]:
    """(depth, process) in parent/child order; a process whose parent is not listed is a root.

    Iterative, and safe against pid cycles (a reused pid can make a process
    appear to be its own ancestor in a snapshot taken mid-fork).
    """
    by_pid = {p.pid: p for p in processes}
    children: dict[int, list[payload_schema.Process]] = {}
    roots = []
    for process in processes:
        if process.ppid is not None and process.ppid != process.pid and process.ppid in by_pid:
            children.setdefault(process.ppid, []).append(process)
        else:
            roots.append(process)
    ordered: list[tuple[int, payload_schema.Process]] = []
    seen: set[int] = set()
    stack = [(0, p) for p in sorted(roots, key=lambda p: p.pid, reverse=True)]
    while stack:
        depth, process = stack.pop()
        if process.pid in seen:
            continue
        seen.add(process.pid)
        ordered.append((depth, process))
        for child in sorted(children.get(process.pid, ()), key=lambda p: p.pid, reverse=True):
            stack.append((depth + 1, child))
    # Members of a pid cycle have no root; list them flat rather than lose them.
    ordered.extend((0, p) for p in processes if p.pid not in seen)
    return ordered


@dataclass(frozen=True)
class SeriesPoint:
    collected_at: dt.datetime
    process_count: int
    memory_used_bytes: int | None
    memory_total_bytes: int | None = None


def host_series(*, host: Host, limit: int = 100) -> list[SeriesPoint]:
    """Process count and memory in use over the host's last *limit* snapshots, oldest first.

    Read from the summary columns, so charting a month of history decompresses nothing.
    """
    rows = (
        Snapshot.objects.filter(host=host).order_by("-collected_at", "-pk")
        .values_list("collected_at", "process_count", "memory_total_bytes", "memory_available_bytes")[:limit]
    )
    points = []
    for collected_at, process_count, total, available in reversed(list(rows)):
        used = total - available if total is not None and available is not None else None
        points.append(SeriesPoint(collected_at, process_count, used, total))
    return points


@dataclass(frozen=True)
class DayFile:
    ip: str
    day: dt.date
    snapshots: int


def host_day_files(*, host: Host) -> list[DayFile]:
    """The day files holding this host's snapshots, newest first, with how many are its own."""
    rows = (
        Snapshot.objects.filter(host=host).values_list("day", "ip").annotate(n=Count("pk"))
        .order_by("-day", "ip")
    )
    return [DayFile(ip=ip, day=day, snapshots=n) for day, ip, n in rows]


def host_day_file(*, host: Host, ip: str, day: dt.date) -> store.DayFileStream | None:
    """A day file, streamed, only if *host* has a snapshot in it (so a page cannot fetch arbitrary files)."""
    try:
        address = addresses.parse_ip(ip)
    except ValueError:
        return None
    if not Snapshot.objects.filter(host=host, ip=str(address), day=day).exists():
        return None
    return store.open_day(address, day)


@dataclass(frozen=True)
class SnapshotChanges:
    old: Snapshot
    new: Snapshot
    diff: SnapshotDiff


def _snapshots_before(*, host: Host, snapshot: Snapshot):
    """The host's snapshots older than *snapshot*, newest first, in the history's order (equal times by id)."""
    return (Snapshot.objects.filter(host=host)
            .filter(Q(collected_at__lt=snapshot.collected_at) | Q(collected_at=snapshot.collected_at, pk__lt=snapshot.pk))
            .order_by("-collected_at", "-pk"))


def snapshot_changes(*, host: Host, old_id=None, new_id=None) -> SnapshotChanges | None:
    """The diff between two snapshots of *host*.

    Without ids: its last two. With only *new_id*: that snapshot and the one
    before it. With only *old_id*: that snapshot and the newest. A snapshot with no predecessor is compared with itself (the page
    says there is nothing to compare yet). None when the host has no snapshot
    or an id is not one of this host's.
    """
    if old_id and new_id:
        old, new = host_snapshot(host=host, snapshot_id=old_id), host_snapshot(host=host, snapshot_id=new_id)
    elif old_id:
        old = host_snapshot(host=host, snapshot_id=old_id)
        new = Snapshot.objects.filter(host=host).order_by("-collected_at", "-pk").first()
    elif new_id:
        new = host_snapshot(host=host, snapshot_id=new_id)
        if new is None:
            return None
        old = _snapshots_before(host=host, snapshot=new).first() or new
    else:
        latest = list(Snapshot.objects.filter(host=host).order_by("-collected_at", "-pk")[:2])
        if not latest:
            return None
        new = latest[0]
        old = latest[-1]
    if old is None or new is None:
        return None
    return SnapshotChanges(
        old=old, new=new,
        diff=snapshot_diff(snapshot_document(snapshot=old).payload, snapshot_document(snapshot=new).payload),
    )


@dataclass(frozen=True)
class ProcessHostMatch:
    """One host that ran matching processes in the range: when, which texts, and whether it still runs one.

    ``first_seen`` / ``last_seen`` are the first and last time a matching
    process was seen, within the range; ``matches`` are up to
    ``lines_per_host`` matching texts as ``(name, cmdline)``, ``match_count``
    all of them; ``processes`` (only when asked) are the matching processes
    of the host's newest snapshot.
    """

    host: Host
    status: str
    first_seen: dt.datetime
    last_seen: dt.datetime
    running: bool
    matches: list[tuple[str, str]]
    match_count: int
    processes: list | None = None


# A needle matching more texts than this is not walked host by host (one statement's parameters).
MAX_WALK_TEXTS = 1000


class ProcessSearch:
    """The hosts of a process search, one per host, ordered by host name; sliced lazily, for a paginator.

    The hosts and their times come from one grouped query, run once and kept
    (a host id and three times per host, so the count and every page share
    it); a slice then reads its hosts' rows, their matching texts and
    (``with_processes``) their newest documents.

    Counted by ``count_up_to`` (a capped paginator), a needle that more
    hosts run than the cap is not read whole: each page walks the hosts in
    name order and keeps those with a matching run (``in_order``).
    """

    def __init__(self, found_sql: str, params: list, runs, *, since, until, now, lines_per_host: int, needle: str,
                 match: str, with_processes: bool, texts=None):
        self._sql, self._params, self._runs, self._found = found_sql, params, runs, None
        self.since, self.until, self.now = since, until, now
        self._lines, self._needle, self._match, self._with_processes = lines_per_host, needle, match, with_processes
        self._texts = texts
        self._text_ids: list[int] | None = None
        self.in_order = False

    def _matching_text_ids(self) -> list[int]:
        """The ids of the texts the needle matches, read once: a few among the fleet's distinct texts."""
        if self._text_ids is None:
            self._text_ids = [] if self._texts is None else list(self._texts.values_list("id", flat=True))
        return self._text_ids

    def _walk_sql(self, select: str, tail: str, ids: list[int]) -> tuple[str, list]:
        """Hosts with a matching run in range, tested per host (EXISTS on a run index) as the hosts are read."""
        quote = connection.ops.quote_name
        runs, hosts = quote(ProcessRun._meta.db_table), quote(Host._meta.db_table)
        prep = ProcessRun._meta.get_field("started_at").get_db_prep_value
        marks = ", ".join(["%s"] * len(ids))
        params: list = list(ids)
        where = f"r.host_id = h.id AND r.text_id IN ({marks})"
        host_where = ""
        if self.since is None:
            where += " AND r.stopped_at IS NULL"
        else:
            if connection.vendor == "sqlite":
                # The host's runs (by host_id), never the text's: for one text SQLite chose the (text, start)
                # index and read every run of it per host. "+" keeps a column out of index choice there.
                where = where.replace("r.text_id", "+r.text_id")
            where += " AND r.started_at <= %s AND (r.stopped_at IS NULL OR r.stopped_at >= %s)"
            params += [prep(self.until, connection), prep(self.since, connection)]
            host_where = " AND h.last_seen >= %s"
            params.append(prep(self.since, connection))
        return (f"SELECT {select} FROM {hosts} h WHERE EXISTS (SELECT 1 FROM {runs} r WHERE {where}){host_where} "
                f"{tail}"), params

    def count_up_to(self, limit: int) -> int:
        """How many hosts match, counting no further than *limit* (``reports.paging.CappedPaginator``).

        The matching runs are read from their text's index until *limit*
        distinct hosts have one, so a needle that many hosts run stops early
        where the grouped query reads, groups and sorts every matching run.
        A needle with more texts than a statement takes, or none, counts the
        grouped query's rows. Reaching *limit* sets ``in_order``: pages are
        then read by walking hosts in name order (``_page_rows``).
        """
        if self._found is not None or not self._sql:
            return len(self._rows())
        ids = self._matching_text_ids()
        if not ids or len(ids) > MAX_WALK_TEXTS:
            return len(self._rows())
        quote = connection.ops.quote_name
        runs, hosts = quote(ProcessRun._meta.db_table), quote(Host._meta.db_table)
        prep = ProcessRun._meta.get_field("started_at").get_db_prep_value
        params: list = list(ids)
        where, join = "r.stopped_at IS NULL", ""
        if self.since is not None:
            # The host's last_seen bounds its open runs, as in the grouped query (the runs stay the outer loop).
            join = f"{'CROSS JOIN' if connection.vendor == 'sqlite' else 'JOIN'} {hosts} h ON h.id = r.host_id"
            where = "r.started_at <= %s AND (r.stopped_at IS NULL OR r.stopped_at >= %s) AND h.last_seen >= %s"
            params += [prep(self.until, connection), prep(self.since, connection), prep(self.since, connection)]
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT COUNT(*) FROM (SELECT DISTINCT r.host_id FROM {runs} r {join} "
                           f"WHERE r.text_id IN ({', '.join(['%s'] * len(ids))}) AND {where} LIMIT %s) c",
                           params + [limit])
            counted = cursor.fetchone()[0]
        # So many hosts match that a page is full after a few hundred hosts read in name order.
        self.in_order = counted >= limit
        return counted

    def _page_rows(self, key: slice) -> list[tuple]:
        """The rows of one page: from all rows, or (``in_order``) by walking hosts in name order.

        Walking reads the hosts by the hostname index and keeps those with
        a matching run in range until the page is full, then reads the
        times of those hosts alone with the grouped query: the rows are the
        ones the full query would give for the same slice.
        """
        ids = self._matching_text_ids() if self.in_order and self._found is None and self._sql else []
        if not ids or len(ids) > MAX_WALK_TEXTS or key.step not in (None, 1):
            return self._rows()[key]
        start, stop = key.start or 0, key.stop
        if start < 0 or stop is None or stop < start:
            return self._rows()[key]
        sql, params = self._walk_sql("h.id", "ORDER BY h.hostname, h.id LIMIT %s OFFSET %s", ids)
        with connection.cursor() as cursor:
            cursor.execute(sql, params + [stop - start, start])
            pks = [row[0] for row in cursor.fetchall()]
        if not pks:
            return []
        sql, params = _process_hosts_sql(self._texts, since=self.since, until=self.until, host_pks=pks)
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall()

    def _rows(self) -> list[tuple]:
        """(host pk, first start, last stop, open runs, last_seen) of every matching host, by host name, as read.

        The times stay as the database gave them until a page shows them
        (converting thousands of them for a count cost more than the query).
        """
        if self._found is None:
            self._found = []
            if self._sql:
                with connection.cursor() as cursor:
                    cursor.execute(self._sql, self._params)
                    self._found = cursor.fetchall()
        return self._found

    def count(self) -> int:
        return len(self._rows())

    def __len__(self) -> int:
        return self.count()

    def __getitem__(self, key):
        if not isinstance(key, slice):
            return self[key:key + 1][0]
        rows = [(pk, _db_time(first), _db_time(last_seen if running else last_stop))
                for pk, first, last_stop, running, last_seen in self._page_rows(key)]
        hosts = Host.objects.defer("process_index").in_bulk([row[0] for row in rows])
        texts: dict[int, set[str]] = {}
        running: set[int] = set()
        for host_pk, text, stopped_at in self._runs.filter(host__in=list(hosts)).values_list(
                "host", "text__text", "stopped_at"):
            texts.setdefault(host_pk, set()).add(text)
            if stopped_at is None:
                running.add(host_pk)
        documents = {}
        if self._with_processes:
            documents = Snapshot.objects.in_bulk([hosts[pk].latest_snapshot_id for pk in running
                                                  if hosts[pk].latest_snapshot_id])
        results = []
        for pk, first, last in rows:
            host = hosts[pk]
            if self.since is not None:
                first, last = max(first, self.since), min(last, self.until)
            lines = sorted(texts.get(host.pk, ()))
            processes = None
            if self._with_processes:
                snapshot = documents.get(host.latest_snapshot_id) if host.pk in running else None
                processes = [] if snapshot is None else process_rule.matching_processes(
                    snapshot_document(snapshot=snapshot).payload.processes, self._needle, self._match)
            results.append(ProcessHostMatch(
                host=host, status=host_status(host, self.now), first_seen=first, last_seen=last,
                running=host.pk in running,
                matches=[tuple(line.split("\t", 1)) if "\t" in line else (line, "") for line in lines[:self._lines]],
                match_count=len(lines), processes=processes,
            ))
        return results


def _db_time(value) -> dt.datetime:
    """A time from raw SQL: SQLite gives text (UTC), PostgreSQL an aware datetime."""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)


def process_search(*, query: str, match: str = process_rule.MATCH_NAME, since: dt.datetime | None = None,
                   until: dt.datetime | None = None, now: dt.datetime | None = None, lines_per_host: int = 5,
                   with_processes: bool = False) -> ProcessSearch:
    """Hosts that ran a process matching *query* between *since* and *until* (both or neither), from the history.

    Without a range: the hosts whose newest snapshot runs one (the open runs
    of ``reports.process_history``, the same hosts ``Host.objects.running``
    finds). With one: every host with a matching run that overlaps it; an
    open run of a host that stopped reporting counts up to its ``last_seen``.

    The needle is matched on the small table of distinct texts (by name, or
    name and command line, ``reports.processes``); the runs of those texts
    are read from their index and grouped by host before any host row is
    read, so a host is joined once, not once per run. A host whose
    ``last_seen`` is before *since* has no run in the range (a closed run
    stops at a snapshot, never after the newest), so that one comparison per
    host bounds its open runs.
    """
    now = now or timezone_now()
    needle = process_rule.query_needle(query)
    if not needle:
        texts = ProcessText.objects.none()
    elif match == process_rule.MATCH_NAME:
        texts = ProcessText.objects.filter(name__contains=needle)
    else:
        texts = ProcessText.objects.filter(text__contains=needle)
    runs = ProcessRun.objects.filter(text__in=texts.values("id"))
    if since is None:
        runs = runs.filter(stopped_at__isnull=True)
    else:
        runs = runs.filter(started_at__lte=until).filter(
            Q(stopped_at__gte=since) | Q(stopped_at__isnull=True, host__last_seen__gte=since))
    sql, params = "", []
    if needle:
        sql, params = _process_hosts_sql(texts, since=since, until=until)
    return ProcessSearch(sql, params, runs, since=since, until=until, now=now, lines_per_host=lines_per_host,
                         needle=needle, match=match, with_processes=with_processes, texts=texts if needle else None)


def _process_hosts_sql(texts, *, since, until, host_pks: list[int] | None = None) -> tuple[str, list]:
    """One statement: per matching host, (pk, first start, last stop, open runs, last_seen), by host name.

    With *host_pks*, only those hosts' rows (the page a walk in name order found).

    The matching texts drive the runs (SQLite: a CROSS JOIN keeps them the
    outer loop): otherwise SQLite walks a host-ordered index of every run to
    save itself sorting the groups, which reads the whole table.
    """
    quote = connection.ops.quote_name
    runs, hosts = quote(ProcessRun._meta.db_table), quote(Host._meta.db_table)
    texts_sql, texts_params = texts.values("id").query.sql_with_params()
    prep = ProcessRun._meta.get_field("started_at").get_db_prep_value
    join = "CROSS JOIN" if connection.vendor == "sqlite" else "JOIN"
    where, params = [], list(texts_params)
    host_where = ""
    if since is None:
        where.append("r.stopped_at IS NULL")
    else:
        where.append("r.started_at <= %s AND (r.stopped_at IS NULL OR r.stopped_at >= %s)")
        params += [prep(until, connection), prep(since, connection)]
    if host_pks is not None:
        where.append(f"r.host_id IN ({', '.join(['%s'] * len(host_pks))})")
        params += list(host_pks)
    if since is not None:
        host_where = "WHERE h.last_seen >= %s"
        params.append(prep(since, connection))
    sql = (f"SELECT h.id, g.first_start, g.last_stop, g.open_runs, h.last_seen FROM "
           f"(SELECT r.host_id, MIN(r.started_at) AS first_start, MAX(r.stopped_at) AS last_stop, "
           f"SUM(CASE WHEN r.stopped_at IS NULL THEN 1 ELSE 0 END) AS open_runs "
           f"FROM ({texts_sql}) t {join} {runs} r ON r.text_id = t.id WHERE {' AND '.join(where)} "
           f"GROUP BY r.host_id) g "
           f"JOIN {hosts} h ON h.id = g.host_id {host_where} ORDER BY h.hostname, h.id")
    return sql, params


# --- data lifecycle ---------------------------------------------------------------

def snapshot_days(*, before: dt.date | None = None) -> list[tuple[addresses.IPAddress, dt.date]]:
    """Every (address, day) that has rows, oldest first; with *before*, only days before it."""
    rows = Snapshot.objects.all()
    if before is not None:
        rows = rows.filter(day__lt=before)
    pairs = rows.order_by("day", "ip").values_list("ip", "day").distinct()
    return [(addresses.parse_ip(ip), day) for ip, day in pairs]


def with_latest_snapshot(hosts):
    """Join each host's newest snapshot row (without its document) so lists cost one query."""
    return hosts.select_related("latest_snapshot").defer("latest_snapshot__document_compressed")
