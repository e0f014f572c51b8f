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
from django.db import connection, transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from reports import addresses, archive, documents as row_documents, inventory_index, locks, process_history, store
from reports.alerts import outbox as alerts_outbox
from reports import payload as payload_schema
from reports.models import DocumentArchive, Host, Snapshot
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
    ARCHIVED = "archived"


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
            DocumentArchive.objects.filter(ip=str(ip), day=day).delete()
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
        if added and not writer.plain_document_count() and store.compacted_path(ip, day).exists():
            try:
                _archive_day(ip=ip, day=day)  # its own savepoint: a failure keeps the rows just recorded
            except row_documents.DocumentError as exc:
                logger.error("the database's copy of %s was not archived: %s", writer.path.name, exc)
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
        documents = _row_documents(rows, ip=ip, day=day)
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


def _row_documents(rows: list[Snapshot], *, ip: addresses.IPAddress, day: dt.date) -> list[bytes]:
    """The database's copy of each row's document, in the rows' order; the day's archive is decoded once."""
    blobs = {row.snapshot_id: bytes(row.document_compressed) for row in rows}
    archived = None
    found = []
    for row in rows:
        index = archive.reference_index(row.document_compressed)
        if index is None:
            found.append(row_documents.unpack(
                row.document_compressed,
                base_blob=lambda snapshot_id: blobs.get(snapshot_id) or Snapshot.objects.filter(
                    snapshot_id=snapshot_id).values_list("document_compressed", flat=True).first()))
            continue
        if archived is None:
            kept = DocumentArchive.objects.filter(ip=str(ip), day=day).first()
            if kept is None:
                raise row_documents.DocumentError(f"rows of {ip} {day} name an archive that is gone")
            archived = list(kept.documents())
        if index >= len(archived):
            raise row_documents.DocumentError(f"a row of {ip} {day} names document {index} of an archive of "
                                              f"{len(archived)}")
        found.append(archived[index])
    return found


def _archive_day(*, ip: addresses.IPAddress, day: dt.date) -> int:
    """Replace the row blobs of one host-day by one ``DocumentArchive``; how many rows it now holds.

    Called under the day's locks. The archive is built from the database's
    own copies (so it stays a copy independent of the day file), decoded and
    compared byte for byte before anything changes, and written in the same
    transaction that turns the blobs into references: a crash leaves either
    the old rows or the archive, never neither. A day whose rows already all
    point into the archive is left alone; a row added since (a late snapshot,
    a reindex) makes the archive be rebuilt with it.
    """
    with transaction.atomic():
        rows = list(Snapshot.objects.filter(ip=str(ip), day=day).order_by("file_offset", "received_at", "pk")
                    .only("pk", "snapshot_id", "document_compressed"))
        if not rows:
            DocumentArchive.objects.filter(ip=str(ip), day=day).delete()
            return 0
        if all(archive.reference_index(row.document_compressed) is not None for row in rows):
            return 0
        day_documents = _row_documents(rows, ip=ip, day=day)
        max_bytes = (len(rows) + 1) * row_documents.max_document_bytes()
        blob = archive.build(day_documents, max_bytes=max_bytes)
        DocumentArchive.objects.update_or_create(ip=str(ip), day=day, defaults={"count": len(rows), "archive": blob})
        references = {row.pk: archive.reference(index) for index, row in enumerate(rows)}
        if connection.vendor == "sqlite":
            _rewrite_rows_packed(references)
        else:
            for row in rows:
                row.document_compressed = references[row.pk]
            Snapshot.objects.bulk_update(rows, ["document_compressed"], batch_size=500)
    return len(rows)


def host_days_note(sender, instance: Host, **kwargs) -> None:
    """``pre_delete`` of a Host: note the host-days its rows are in, before the cascade removes the rows."""
    instance._document_days = set(Snapshot.objects.filter(host=instance).values_list("ip", "day").distinct())


def host_archives_forget(sender, instance: Host, **kwargs) -> None:
    """``post_delete`` of a Host: delete the archives of its host-days that no row points into any more.

    A deleted host's rows go by the foreign key's cascade, however the host
    is deleted (``day_prune``, a queryset, the shell); the archive is keyed
    by address and day, not by host, because one address's day file may
    hold several hosts (behind NAT), so no foreign key can take it with
    them. An archive still used by another host's rows stays as it is: its
    indexes are what those rows name. Runs in the deletion's transaction.
    """
    days = getattr(instance, "_document_days", None)
    if not days:
        return
    pairs = Q()
    for ip, day in days:
        pairs |= Q(ip=ip, day=day)
    used = Snapshot.objects.filter(ip=OuterRef("ip"), day=OuterRef("day"))
    DocumentArchive.objects.filter(pairs).exclude(Exists(used)).delete()


def _rewrite_rows_packed(blobs: dict[int, bytes]) -> None:
    """Give SQLite rows new blobs by deleting and inserting them again, same ids, in this transaction.

    An UPDATE that shrinks a row leaves its B-tree page as empty as the big
    row left it (SQLite rebalances pages that a DELETE leaves underfull, not
    ones an UPDATE does), and new rows never land there: their ids are
    higher. Deleting the rows lets SQLite merge the pages; inserting them
    back packs the small rows together. The foreign keys that point at these
    rows are deferred to the commit, by which time every id is back.
    """
    table = Snapshot._meta.db_table
    ids = sorted(blobs)
    with connection.cursor() as cursor:
        rows = []
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            cursor.execute(f'SELECT * FROM "{table}" WHERE id IN ({",".join("%s" for _ in chunk)})', chunk)
            rows.extend(cursor.fetchall())
            names = [column[0] for column in cursor.description]
        blob_at, id_at = names.index("document_compressed"), names.index("id")
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            cursor.execute(f'DELETE FROM "{table}" WHERE id IN ({",".join("%s" for _ in chunk)})', chunk)
        columns = ", ".join(f'"{name}"' for name in names)
        marks = ", ".join("%s" for _ in names)
        fresh = []
        for row in sorted(rows, key=lambda r: r[id_at]):
            row = list(row)
            row[blob_at] = blobs[row[id_at]]
            fresh.append(row)
        cursor.executemany(f'INSERT INTO "{table}" ({columns}) VALUES ({marks})', fresh)


# --- compaction of closed days -----------------------------------------------------
# The file format, the crash protocol and the rule for a day that has both a
# ``.zst`` and a plain file live in ``reports.store``; this decides when a day
# is closed and holds the same locks as an upload of that day, so compaction
# runs beside live traffic and a late upload waits for it, then starts a new
# plain file. A document keeps its offset in the decompressed day, so no
# row's place changes. The database writes are the adoption of a document a
# crashed worker left in the file without a row, done first, exactly as the
# next upload would; and, once the file is compacted, the archive of the
# day's documents that replaces the rows' blobs (``_archive_day``).


def compact_cutoff(*, now: dt.datetime | None = None) -> dt.date:
    """The first day that is not compacted yet: today minus ``INVENTORY_COMPACT_AFTER_DAYS``."""
    return timezone.localtime(now or timezone.now()).date() - dt.timedelta(days=settings.INVENTORY_COMPACT_AFTER_DAYS)


def day_archive(*, ip: addresses.IPAddress, day: dt.date) -> DayChange:
    """Archive the rows of a day that is compacted already but whose rows still hold their own blobs.

    What a compaction interrupted between its file and its archive (a crash,
    a damaged row that has since been reindexed) leaves; ``manage.py
    compact`` looks back ``ARCHIVE_LOOKBACK_DAYS`` for such days.
    """
    with locks.day_file_locked(ip, day) as writer:
        if writer.plain_document_count() or not store.compacted_path(ip, day).exists():
            return DayChange(writer.path.name, 0, DayAction.NOTHING_TO_COMPACT)
        count = _archive_day(ip=ip, day=day)
    return DayChange(writer.path.name, count, DayAction.ARCHIVED if count else DayAction.NOTHING_TO_COMPACT)


# Days before the compaction cutoff whose archive ``manage.py compact`` finishes if a run was cut short.
ARCHIVE_LOOKBACK_DAYS = 7


def day_compact(*, ip: addresses.IPAddress, day: dt.date, dry_run: bool = False) -> DayChange:
    """Merge the plain day file of *ip* and *day* into its ``.zst`` (created if the day has none)."""
    with locks.day_file_locked(ip, day) as writer:
        if dry_run:
            count = writer.plain_document_count()
            return DayChange(writer.path.name, count, DayAction.WOULD_COMPACT if count else DayAction.NOTHING_TO_COMPACT)
        _adopt_unrecorded_tail(writer, ip=ip, day=day)
        count = writer.compact()
        try:
            _archive_day(ip=ip, day=day)
        except row_documents.DocumentError as exc:
            # The rows keep their own blobs: nothing is lost, the day costs more bytes, and it is said.
            logger.error("the database's copy of %s was not archived: %s", writer.path.name, exc)
    return DayChange(writer.path.name, count, DayAction.COMPACTED if count else DayAction.NOTHING_TO_COMPACT)
