"""Reads: what the API and the pages show, in one place.

``snapshots_for_ip`` answers ``/query``. It hands back the day file's bytes as
they are (the file is already a JSON array), so a full day is returned without
decoding and re-encoding every process, and ``latest`` reads one document by
the offset recorded at append time instead of scanning the file.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.conf import settings
from django.db.models import Count, Q
from django.utils import timezone

from reports import payload as payload_schema
from reports import rowsql, store
from reports.durations import parse_duration
from reports.models import Host, Snapshot


@dataclass(frozen=True)
class DaySnapshots:
    """The stored snapshots of one address and day, as JSON bytes."""

    ip: str
    date: dt.date
    available_dates: list[dt.date]
    snapshots_json: bytes


def available_dates(*, ip: store.IPAddress) -> list[dt.date]:
    return list(
        Snapshot.objects.filter(ip=str(ip)).order_by("day").values_list("day", flat=True).distinct()
    )


def snapshots_for_ip(*, ip: store.IPAddress, day: dt.date | None = None, latest: bool = False) -> DaySnapshots | None:
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
        return DaySnapshots(str(ip), day, dates, b"[" + body + b"]")
    content = store.read_day(ip, day)
    if content is None:
        return None
    return DaySnapshots(str(ip), day, dates, content)


def _latest_document(*, ip: store.IPAddress, day: dt.date) -> bytes | None:
    """The newest document of the day, read from its file by offset (the row's copy if the file lost it)."""
    row = rowsql.select_one(Snapshot, ["file_name", "file_offset", "file_length"],
                            where={"ip": str(ip), "day": day}, order_by=("-collected_at", "-file_offset"))
    if row is None:
        return None
    document = store.read_document(row.file_name, row.file_offset, row.file_length)
    return document if document is not None else row.document_bytes


def snapshot_get(*, snapshot_id) -> Snapshot | None:
    return Snapshot.objects.filter(snapshot_id=snapshot_id).select_related("host").first()


# --- hosts ------------------------------------------------------------------------

HOST_STATUSES = ("online", "offline", "stale")
HOST_ORDERINGS = (
    "hostname", "last_ip", "os_name", "os_version", "cpu_model", "process_count", "user_count",
    "last_seen", "first_seen",
)


def status_thresholds(now: dt.datetime | None = None) -> tuple[dt.datetime, dt.datetime]:
    """(offline_before, stale_before): a host last seen before these is offline / stale."""
    now = now or timezone.now()
    return (now - parse_duration(settings.INVENTORY_OFFLINE_AFTER),
            now - parse_duration(settings.INVENTORY_STALE_AFTER))


def host_status(host: Host, now: dt.datetime | None = None) -> str:
    offline_before, stale_before = status_thresholds(now)
    if host.last_seen < stale_before:
        return "stale"
    if host.last_seen < offline_before:
        return "offline"
    return "online"


def host_list(*, search: str = "", os_name: str = "", status: str = "", ordering: str = "hostname",
              now: dt.datetime | None = None):
    """Hosts for the list page and /api/hosts/: search, filters and a whitelisted ordering.

    ``search`` matches hostname, IP or host id (case-insensitive substring);
    ``status`` is one of HOST_STATUSES. Unknown orderings fall back to hostname.
    """
    queryset = Host.objects.all()
    search = search.strip()
    if search:
        queryset = queryset.filter(
            Q(hostname__icontains=search) | Q(last_ip__icontains=search) | Q(host_id__icontains=search)
        )
    if os_name:
        queryset = queryset.filter(os_name=os_name)
    if status in HOST_STATUSES:
        offline_before, stale_before = status_thresholds(now)
        if status == "online":
            queryset = queryset.filter(last_seen__gte=offline_before)
        elif status == "offline":
            queryset = queryset.filter(last_seen__lt=offline_before, last_seen__gte=stale_before)
        else:
            queryset = queryset.filter(last_seen__lt=stale_before)
    field = ordering.lstrip("-")
    if field not in HOST_ORDERINGS:
        ordering, field = "hostname", "hostname"
    return queryset.order_by(ordering, "pk" if not ordering.startswith("-") else "-pk").defer("process_index")


def host_counts(now: dt.datetime | None = None) -> dict[str, dict[str, int]]:
    """Counts by OS and by status, for the summary above the host list."""
    offline_before, stale_before = status_thresholds(now)
    by_os = dict(Host.objects.values_list("os_name").annotate(n=Count("pk")).order_by("os_name"))
    online = Host.objects.filter(last_seen__gte=offline_before).count()
    stale = Host.objects.filter(last_seen__lt=stale_before).count()
    total = Host.objects.count()
    return {"os": by_os, "status": {"online": online, "offline": total - online - stale, "stale": stale}}


def process_search(*, query: str, limit: int = 100):
    """Hosts whose newest snapshot runs a process whose name or command line contains *query*."""
    query = query.strip().lower()
    if not query:
        return Host.objects.none()
    return Host.objects.filter(process_index__contains=query).order_by("hostname", "pk").defer("process_index")[:limit]


# --- data lifecycle ---------------------------------------------------------------

def snapshot_days(*, before: dt.date | None = None) -> list[tuple[store.IPAddress, dt.date]]:
    """Every (address, day) that has rows, oldest first; with *before*, only days before it."""
    rows = Snapshot.objects.all()
    if before is not None:
        rows = rows.filter(day__lt=before)
    pairs = rows.order_by("day", "ip").values_list("ip", "day").distinct()
    return [(store.parse_ip(ip), day) for ip, day in pairs]
# --- read API (issue 5): host detail, a host's snapshots, documents, process matches -------

def host_get(*, pk: int) -> Host | None:
    return Host.objects.filter(pk=pk).defer("process_index").first()


def snapshots_for_host(*, host: Host):
    """A host's snapshots, newest first, without their compressed documents."""
    return Snapshot.objects.filter(host=host).order_by("-collected_at", "-pk").defer("document_zlib")


def snapshot_document(*, snapshot: Snapshot) -> bytes:
    """The stored document of one snapshot: from its day file, or from the row if the file is gone."""
    document = store.read_document(snapshot.file_name, snapshot.file_offset, snapshot.file_length)
    return document if document is not None else snapshot.document_bytes


@dataclass(frozen=True)
class ProcessMatch:
    """A host whose newest snapshot runs matching processes, with those processes."""

    host: Host
    processes: list


def process_matches(*, query: str, limit: int = 100) -> list[ProcessMatch]:
    """``process_search`` plus the matching processes themselves, read from each newest snapshot."""
    needle = query.strip().lower()
    hosts = list(process_search(query=query, limit=limit))
    latest = Snapshot.objects.in_bulk([h.latest_snapshot_id for h in hosts if h.latest_snapshot_id])
    matches = []
    for host in hosts:
        snapshot = latest.get(host.latest_snapshot_id)
        processes = []
        if snapshot is not None:
            stored = payload_schema.decode_stored(snapshot.document_bytes)
            for process in stored.payload.processes:
                cmdline = " ".join(process.cmdline or ())
                if needle in (process.name or "").lower() or needle in cmdline.lower():
                    processes.append(process)
        matches.append(ProcessMatch(host=host, processes=processes))
    return matches


def with_latest_snapshot(hosts):
    """Join each host's newest snapshot row (without its document) so lists cost one query."""
    return hosts.select_related("latest_snapshot").defer("latest_snapshot__document_zlib")
