"""Reads: what the API and the pages show, in one place.

``snapshots_for_ip`` answers ``/query``. It hands back the day file's bytes as
they are (the file is already a JSON array), so a full day is returned without
decoding and re-encoding every process, and ``latest`` reads one document by
the offset recorded at append time instead of scanning the file.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from reports import store
from reports.models import Snapshot


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
    row = (
        Snapshot.objects.filter(ip=str(ip), day=day)
        .order_by("-collected_at", "-file_offset")
        .only("file_name", "file_offset", "file_length", "document_zlib")
        .first()
    )
    if row is None:
        return None
    document = store.read_document(row.file_name, row.file_offset, row.file_length)
    return document if document is not None else row.document_bytes


def snapshot_get(*, snapshot_id) -> Snapshot | None:
    return Snapshot.objects.filter(snapshot_id=snapshot_id).select_related("host").first()
