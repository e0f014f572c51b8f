"""Reads for the inventory areas (software, sockets, disks, interfaces, services, hardware) on the pages.

The host page shows the areas of the host's newest snapshot, and its
*current* software list: the agent sends that list in full only when it
changed or once a day (docs/payload.md, "The software rule"), so most
snapshots carry only its digest, and the list is read from the snapshot that
``Host.software_snapshot`` names. The changes page compares two snapshots
with ``reports.diff``; when one of them sent only a digest, the list with that
digest is looked up here among the host's stored snapshots.

An area a snapshot does not carry (an older agent, a platform that cannot
tell) is ``None`` all the way to the template, which says "not reported".
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass
from typing import Optional

import msgspec
from django.core.paginator import Page, Paginator

from reports import payload as payload_schema
from reports import selectors
from reports.diff import free_percent, snapshot_diff
from reports.models import Host, Snapshot

# A disk this full (used share, percent) is shown in the warning colour.
FULL_DISK_PERCENT = 90.0
SOFTWARE_PER_PAGE = 250
MAX_SOFTWARE_SEARCH = 256
# How many of a host's snapshots are read, before and after a snapshot that
# sent only its software digest, to find the list with that digest. The agent
# sends its list at least once a day (288 runs at a 5-minute interval), and on
# the run after the server asked for it.
SOFTWARE_LOOKBACK = 2_000
SOFTWARE_LOOKAHEAD = 24


class _SoftwareOnly(msgspec.Struct):
    """The two software fields of a stored document; the list stays raw JSON until it is wanted."""

    software_digest: Optional[str] = None
    software: msgspec.Raw = msgspec.Raw(b"null")


_software_only = msgspec.json.Decoder(_SoftwareOnly)
_software_list = msgspec.json.Decoder(list[payload_schema.Software])


def _stored_software(snapshot: Snapshot) -> tuple[str | None, list[payload_schema.Software] | None]:
    """(digest, list) of a stored snapshot; the list is None when it sent only the digest."""
    blob = selectors.snapshot_document_json(snapshot=snapshot) if snapshot.is_archived else snapshot.document_bytes
    document = _software_only.decode(blob)
    raw = bytes(document.software)
    return document.software_digest, None if raw == b"null" else _software_list.decode(raw)


def software_with_digest(*, host: Host, digest: str, near: Snapshot) -> list[payload_schema.Software] | None:
    """The host's software list with this *digest*, from the stored snapshot nearest *near*; None if none holds it.

    The host's current list first (one row), then its snapshots before
    *near*, newest first, then the few after it.
    """
    if host.software_digest == digest and host.software_snapshot_id:
        current = Snapshot.objects.filter(pk=host.software_snapshot_id).only("document_compressed").first()
        if current is not None:
            found_digest, entries = _stored_software(current)
            if entries is not None and found_digest == digest:
                return entries
    rows = Snapshot.objects.filter(host=host).exclude(pk=near.pk).only("document_compressed")
    before = rows.filter(collected_at__lte=near.collected_at).order_by("-collected_at", "-pk")[:SOFTWARE_LOOKBACK]
    after = rows.filter(collected_at__gt=near.collected_at).order_by("collected_at", "pk")[:SOFTWARE_LOOKAHEAD]
    for candidates in (before, after):
        for row in candidates.iterator(chunk_size=50):
            found_digest, entries = _stored_software(row)
            if entries is not None and found_digest == digest:
                return entries
    return None


def changes_with_software(*, host: Host, changes: selectors.SnapshotChanges | None) -> selectors.SnapshotChanges | None:
    """*changes*, with software compared through the host's stored lists when a snapshot sent only its digest.

    Only when ``reports.diff`` could not settle it from the two documents
    alone (different digests, one list missing): the usual pair of
    digest-only snapshots with equal digests costs nothing here.
    """
    if changes is None or not changes.diff.software_unresolved:
        return changes
    old, new = (selectors.snapshot_document(snapshot=row).payload for row in (changes.old, changes.new))
    known = [
        software_with_digest(host=host, digest=p.software_digest, near=row)
        if p.software is None and p.software_digest is not None else None
        for p, row in ((old, changes.old), (new, changes.new))
    ]
    return dataclasses.replace(changes, diff=snapshot_diff(old, new, old_known=known[0], new_known=known[1]))


# --- the host page ---------------------------------------------------------------------

@dataclass(frozen=True)
class DiskRow:
    disk: payload_schema.Disk
    used_percent: float | None
    full: bool

    @property
    def bar_width(self) -> int:
        """Whole percent for the bar's CSS width (no locale's decimal comma in a style)."""
        return round(self.used_percent or 0)


@dataclass(frozen=True)
class SoftwareTable:
    """One page of the host's current software list, filtered."""

    page: Page
    total: int
    matched: int
    search: str
    as_of: dt.datetime | None
    # The newest snapshot names a different list than the one shown: the
    # server has asked the agent for it (docs/payload.md, the software rule).
    pending: bool


@dataclass(frozen=True)
class HostInventory:
    """What the host page shows of the inventory areas; None means "not reported"."""

    hardware: payload_schema.Hardware | None = None
    disks: list[DiskRow] | None = None
    interfaces: list[payload_schema.Interface] | None = None
    listening: list[payload_schema.ListeningSocket] | None = None
    services: list[payload_schema.Service] | None = None
    software: SoftwareTable | None = None
    full_disk_percent: float = FULL_DISK_PERCENT


def disk_rows(disks: list[payload_schema.Disk]) -> list[DiskRow]:
    rows = []
    for disk in disks:
        free = free_percent(disk)
        used = None if free is None else 100.0 - free
        rows.append(DiskRow(disk, used, used is not None and used >= FULL_DISK_PERCENT))
    return rows


def software_matches(entries: list[payload_schema.Software], search: str) -> list[payload_schema.Software]:
    """Entries whose name, version, vendor, arch or source contain every word of *search* (any case)."""
    words = search.lower().split()
    if not words:
        return entries
    return [e for e in entries
            if all(w in f"{e.name}\t{e.version or ''}\t{e.vendor or ''}\t{e.arch or ''}\t{e.source}".lower()
                   for w in words)]


def current_software(*, host: Host, payload: payload_schema.SnapshotPayload | None
                     ) -> tuple[list[payload_schema.Software] | None, dt.datetime | None, bool]:
    """(list, collected_at of the snapshot that carried it, pending) of the host's current software."""
    if payload is not None and payload.software is not None:
        return payload.software, payload.collected_at, False
    if not host.software_snapshot_id:
        return None, None, False
    row = Snapshot.objects.filter(pk=host.software_snapshot_id).only("collected_at", "document_compressed").first()
    if row is None:
        return None, None, False
    digest, entries = _stored_software(row)
    if entries is None:
        return None, None, False
    pending = bool(payload and payload.software_digest and payload.software_digest != digest)
    return entries, row.collected_at, pending


def host_inventory(*, host: Host, payload: payload_schema.SnapshotPayload | None, software_search: str = "",
                   software_page: str | None = None) -> HostInventory:
    """The inventory areas of the host's newest snapshot (*payload*) and its current software, filtered and paged."""
    search = (software_search or "").strip()[:MAX_SOFTWARE_SEARCH]
    entries, as_of, pending = current_software(host=host, payload=payload)
    software = None
    if entries is not None:
        matched = software_matches(sorted(entries, key=lambda e: (e.name.lower(), e.name, e.arch or "")), search)
        software = SoftwareTable(page=Paginator(matched, SOFTWARE_PER_PAGE).get_page(software_page),
                                 total=len(entries), matched=len(matched), search=search, as_of=as_of,
                                 pending=pending)
    if payload is None:
        return HostInventory(software=software)
    return HostInventory(
        hardware=payload.hardware,
        disks=None if payload.disks is None else disk_rows(sorted(payload.disks, key=lambda d: d.mount_point)),
        interfaces=None if payload.interfaces is None else sorted(payload.interfaces, key=lambda i: i.name),
        listening=None if payload.listening is None else sorted(
            payload.listening, key=lambda s: (s.port, s.protocol, s.address)),
        services=None if payload.services is None else sorted(payload.services, key=lambda s: s.name.lower()),
        software=software,
    )
