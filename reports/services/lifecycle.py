"""The data lifecycle: prune, reindex, export and compact, one day file at a time.

Each holds the same locks as an upload of that file (``locks.day_file_locked``),
so it can run beside live traffic, and keeps the file and its rows in step:
what it removes, records or rewrites in one, it does in the other.
"""

from __future__ import annotations

import datetime as dt
import enum
import logging
import uuid
from dataclasses import dataclass

import msgspec
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from reports import addresses, inventory_index, locks, process_history
from reports.alerts import outbox as alerts_outbox
from reports import payload as payload_schema
from reports.models import Host, Snapshot
from reports.services.ingest import _adopt_unrecorded_tail, snapshot_record_stored

logger = logging.getLogger(__name__)


class DayAction(enum.Enum):
    """What happened to one day; the value is how the management commands print it."""

    WOULD_REMOVE = "would remove"
    REMOVED = "removed"
    RECORDED = "recorded"
    UP_TO_DATE = "up to date"
    NOT_IN_DATABASE = "skipped: not in the database, run reindex first"
    WOULD_WRITE = "would write"
    WRITTEN = "written"
    WOULD_COMPACT = "would compact"
    COMPACTED = "compacted"
    NOTHING_TO_COMPACT = "nothing to compact"


@dataclass(frozen=True)
class DayChange:
    """What a lifecycle service did (or, with ``dry_run``, would do) to one day."""

    file: str
    snapshots: int
    action: DayAction


def day_prune(*, ip: addresses.IPAddress, day: dt.date, dry_run: bool = False) -> DayChange:
    """Remove one day: its file and its rows, together; hosts left with no snapshot go too.

    The file is unlinked inside the transaction, just before the commit: if
    the unlink fails nothing is deleted; if the commit fails the rows outlive
    the file, and the next prune (which also looks at days known only to the
    database) removes them.
    """
    with locks.day_file_locked(ip, day) as writer:
        rows = Snapshot.objects.filter(ip=str(ip), day=day)
        count = max(rows.count(), sum(1 for _ in writer.documents()))
        if dry_run:
            return DayChange(writer.path.name, count, DayAction.WOULD_REMOVE)
        with transaction.atomic():
            host_ids = set(rows.values_list("host_id", flat=True))
            rows.delete()
            gone = Host.objects.filter(pk__in=host_ids, snapshots__isnull=True)
            inventory_index.hosts_forget(host_pks=gone.values_list("pk", flat=True))
            gone.delete()
            writer.remove()
    return DayChange(writer.path.name, count, DayAction.REMOVED)


@dataclass(frozen=True)
class HistoryPruned:
    """What ``history_prune`` removed (or, with ``dry_run``, would remove) of the process history."""

    runs: int
    texts: int


def history_prune(*, before: dt.date, dry_run: bool = False) -> HistoryPruned:
    """Remove the process runs that stopped before the day *before* (local time) and the texts no run names.

    The history lives only in the database, so it has no day file to follow:
    a run goes once it stopped before the first day prune keeps, whatever
    its host. A run still open (its host still reports the process, or has
    not reported since) is kept, however old its start. Runs after the day
    files, so the runs of the hosts those removed are gone already
    (``on_delete=CASCADE``) and their texts go here.
    """
    start = timezone.make_aware(dt.datetime.combine(before, dt.time()))
    runs, texts = process_history.history_prune(before=start, dry_run=dry_run)
    return HistoryPruned(runs, texts)


def day_reindex(*, ip: addresses.IPAddress, day: dt.date) -> DayChange:
    """Record every document of a day file that has no row yet (disaster recovery; idempotent)."""
    with locks.day_file_locked(ip, day) as writer, transaction.atomic(), alerts_outbox.paused():
        known = set(Snapshot.objects.filter(ip=str(ip), day=day).values_list("snapshot_id", flat=True))
        added = 0
        for offset, document in writer.documents():
            try:
                stored = payload_schema.decode_stored(document)
            except payload_schema.PayloadError as exc:
                logger.error("skipping an unreadable document at %s:%d: %s", writer.path.name, offset, exc.message)
                continue
            if stored.payload.snapshot_id in known:
                continue
            if Snapshot.objects.filter(snapshot_id=stored.payload.snapshot_id).exists():
                logger.warning("snapshot %s in %s is recorded under another day file; kept there",
                               stored.payload.snapshot_id, writer.path.name)
                continue
            snapshot_record_stored(stored, ip=ip, day=day, writer=writer, offset=offset, document=document)
            known.add(stored.payload.snapshot_id)
            added += 1
    return DayChange(writer.path.name, added, DayAction.RECORDED if added else DayAction.UP_TO_DATE)


class _DocumentId(msgspec.Struct):
    """Only the id of a stored document; msgspec skips the rest without building it."""

    snapshot_id: uuid.UUID


def day_export(*, ip: addresses.IPAddress, day: dt.date, dry_run: bool = False) -> DayChange:
    """Write a day file back from the database rows (their compressed documents), in file order.

    A file that holds a snapshot the database does not know is left alone:
    rewriting it would lose that snapshot (run ``reindex`` first). The rows'
    offsets are updated to the written file, so ``latest`` reads stay direct.
    """
    with locks.day_file_locked(ip, day) as writer:
        rows = list(
            Snapshot.objects.filter(ip=str(ip), day=day).order_by("file_offset", "received_at", "pk")
            .only("snapshot_id", "file_name", "file_offset", "file_length", "document_compressed")
        )
        in_file = {msgspec.json.decode(document, type=_DocumentId).snapshot_id for _, document in writer.documents()}
        unknown = in_file - {row.snapshot_id for row in rows}
        if unknown:
            return DayChange(writer.path.name, len(unknown), DayAction.NOT_IN_DATABASE)
        documents = [row.document_bytes for row in rows]
        current = [document for _, document in writer.documents()]
        if current == documents:
            return DayChange(writer.path.name, len(rows), DayAction.UP_TO_DATE)
        if dry_run:
            return DayChange(writer.path.name, len(rows), DayAction.WOULD_WRITE)
        with transaction.atomic():
            positions = writer.replace_all(documents)
            for row, (offset, length) in zip(rows, positions, strict=True):
                row.file_name, row.file_offset, row.file_length = writer.path.name, offset, length
            Snapshot.objects.bulk_update(rows, ["file_name", "file_offset", "file_length"], batch_size=500)
    return DayChange(writer.path.name, len(rows), DayAction.WRITTEN)


# --- compaction of closed days -----------------------------------------------------
# The file format, the crash protocol and the rule for a day that has both a
# ``.zst`` and a plain file live in ``reports.store``; this decides when a day
# is closed and holds the same locks as an upload of that day, so compaction
# runs beside live traffic and a late upload waits for it, then starts a new
# plain file. No row changes: a document keeps its offset in the decompressed
# day. The one database write is the adoption of a document a crashed worker
# left in the file without a row, done first, exactly as the next upload would.


def compact_cutoff(*, now: dt.datetime | None = None) -> dt.date:
    """The first day that is not compacted yet: today minus ``INVENTORY_COMPACT_AFTER_DAYS``."""
    return timezone.localtime(now or timezone.now()).date() - dt.timedelta(days=settings.INVENTORY_COMPACT_AFTER_DAYS)


def day_compact(*, ip: addresses.IPAddress, day: dt.date, dry_run: bool = False) -> DayChange:
    """Merge the plain day file of *ip* and *day* into its ``.zst`` (created if the day has none)."""
    with locks.day_file_locked(ip, day) as writer:
        if dry_run:
            count = writer.plain_document_count()
            return DayChange(writer.path.name, count, DayAction.WOULD_COMPACT if count else DayAction.NOTHING_TO_COMPACT)
        _adopt_unrecorded_tail(writer, ip=ip, day=day)
        count = writer.compact()
    return DayChange(writer.path.name, count, DayAction.COMPACTED if count else DayAction.NOTHING_TO_COMPACT)
