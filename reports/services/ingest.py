"""Ingest: storing one uploaded snapshot in its day file and the database, once.

``snapshot_ingest`` is the heart of Relevo. Its order of work is what makes a
201 mean "kept":

1. Take the day file's exclusive lock (one writer per file, across workers;
   on PostgreSQL also across nodes, see ``reports.locks``).
2. Adopt a document that a crashed worker fsynced but never recorded.
3. Append and fsync the document (no database lock is held yet).
4. Open one short database transaction (SQLite: ``BEGIN IMMEDIATE``, entered
   through ``reports.dbwrite``), insert the rows and commit.
5. If anything fails before the commit is done, cut the document back out.
   If the connection to a database server breaks during the COMMIT itself,
   the outcome is unknown: the document stays, for step 2 of the next writer
   to settle against the database (see ``_commit_outcome_unknown``).

A replayed ``snapshot_id`` is answered from its row before any of this; two
copies racing each other are stopped by the unique constraint in step 4.
The answer names the stored snapshot's address, day and file, so a caller
bound to one host (``host_binding``) gets it only for that host's snapshots.
A worker killed between 3's fsync and its commit leaves a document in the file
with no row; step 2 of the next writer of that file records it, so the file
and the database agree again, and the agent's retry is answered from it.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.utils import timezone

from reports import payload as payload_schema
from reports import addresses, archive, documents, host_search, identity, inventory_index, locks, processes, rowsql, store
from reports import process_history
from reports.alerts import outbox as alerts_outbox
from reports.dbwrite import write_transaction
from reports.models import Host, HostSearch, Snapshot

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class IngestResult:
    """What ``/upload`` answers; ``created`` is False for a replayed snapshot_id."""

    snapshot_id: str
    ip: str
    date: str
    file: str
    created: bool
    # The upload sent only software_digest and the server holds no list with
    # that digest: the agent sends its full list next run (docs/payload.md).
    software_wanted: bool = False

    def as_dict(self) -> dict[str, object]:
        return {"snapshot_id": self.snapshot_id, "ip": self.ip, "date": self.date, "file": self.file,
                "software_wanted": self.software_wanted}


class SnapshotOfAnotherHost(Exception):
    """A replayed snapshot_id is stored for a host other than the one the caller is bound to."""


def _replayed(snapshot: Snapshot, *, host_binding: str | None) -> IngestResult:
    """The answer to a replay, for a caller allowed to see it.

    An agent token from /enroll may upload only for its own host.id; without
    this check it could send another host's snapshot_id under its own host.id
    and be told that host's address, day and file name. A fleet token
    (``host_binding`` None) may upload for any host.id, so it could ask under
    the other host's id anyway: refusing it here would hide nothing.
    """
    if host_binding is not None and not Host.objects.filter(pk=snapshot.host_id, host_id=host_binding).exists():
        raise SnapshotOfAnotherHost(str(snapshot.snapshot_id))
    return _result(snapshot, created=False)


def _result(snapshot: Snapshot, *, created: bool) -> IngestResult:
    return IngestResult(
        snapshot_id=str(snapshot.snapshot_id),
        ip=snapshot.ip,
        date=snapshot.day.isoformat(),
        file=snapshot.file_name,
        created=created,
    )


class DayFileFull(Exception):
    """The snapshot's day file has reached ``INVENTORY_DAY_FILE_MAX_BYTES``: it is not stored.

    Permanent for this snapshot (its day cannot take more), so the API answers
    413 and the agent keeps the snapshot aside instead of retrying it.
    """

    def __init__(self, *, file_name: str, limit_bytes: int):
        super().__init__(f"{file_name} has reached its limit of {limit_bytes} bytes")
        self.file_name = file_name
        self.limit_bytes = limit_bytes


def snapshot_day(collected_at: dt.datetime) -> dt.date:
    """The day file a snapshot belongs to: its collection date in the server's TIME_ZONE."""
    return timezone.localtime(collected_at).date()


def snapshot_ingest(
    *,
    payload: payload_schema.SnapshotPayload,
    ip: addresses.IPAddress,
    received_at: dt.datetime | None = None,
    host_binding: str | None = None,
) -> IngestResult:
    """Store one validated snapshot in its day file and the database, durably and once.

    *host_binding* is the host.id the caller's token is bound to (None: any);
    a replay of a snapshot stored for another host raises SnapshotOfAnotherHost.
    """
    existing = _snapshot_by_id(payload.snapshot_id)
    if existing is not None:
        return _replayed(existing, host_binding=host_binding)

    received_at = received_at or timezone.now()
    day = snapshot_day(payload.collected_at)
    document = payload_schema.encode_stored(payload, received_at=received_at, ip=str(ip))
    derived = _Derived.of(payload, ip)
    alerts_outbox.active_rules()  # a reload of the cached rules, when due, happens here, outside every lock

    with locks.day_file_locked(ip, day) as writer:
        last = _last_recorded(writer, ip=ip, day=day)
        adopted = _adopt_unrecorded_tail(writer, ip=ip, day=day, last=last)
        if adopted is not None:
            if adopted == payload.snapshot_id:
                existing = _snapshot_by_id(payload.snapshot_id)
                if existing is not None:
                    return _replayed(existing, host_binding=host_binding)
            last = _last_recorded(writer, ip=ip, day=day)
        # Packed under the file lock, which orders this file's rows, so the
        # base chosen is the newest row of the file; still before the
        # database's write lock, which every other upload queues on.
        prepared = _Prepared(_pack(document, last=last), derived)
        if writer.size_after(document) > settings.INVENTORY_DAY_FILE_MAX_BYTES:
            raise DayFileFull(file_name=writer.path.name, limit_bytes=settings.INVENTORY_DAY_FILE_MAX_BYTES)
        # The fsync happens before the database write lock is taken, so other
        # day files' writers are not held up by this one's disk flush. A crash
        # between here and the commit leaves a tail that the next writer of
        # this file adopts (above); a failure we see is undone below.
        appended = writer.append(document)  # a full disk raises store.StorageFull, with nothing appended
        committing = False
        try:
            snapshot_row = _snapshot_row(payload=payload, ip=ip, day=day, received_at=received_at,
                                         appended=appended, prepared=prepared)
            with write_transaction():
                software_wanted = _record(
                    payload=payload, ip=ip, day=day, received_at=received_at,
                    appended=appended, prepared=prepared, snapshot_row=snapshot_row,
                )
                committing = True
        except IntegrityError:
            # The same snapshot_id was committed meanwhile (a concurrent replay,
            # or the host's address changed between two tries): keep that one.
            writer.undo(appended)
            existing = _snapshot_by_id(payload.snapshot_id)
            if existing is None:
                raise
            return _replayed(existing, host_binding=host_binding)
        except BaseException as exc:
            if not (committing and _commit_outcome_unknown(exc)):
                writer.undo(appended)
            raise
    return IngestResult(
        snapshot_id=str(payload.snapshot_id), ip=str(ip), date=day.isoformat(),
        file=appended.file_name, created=True, software_wanted=software_wanted,
    )


def _commit_outcome_unknown(exc: BaseException) -> bool:
    """Whether a failed COMMIT may have been committed all the same.

    When the connection to a database server breaks during COMMIT (a restart,
    a failover), the server may have committed before the answer was lost.
    Undoing the append then would leave a row pointing at a document that is
    gone, or at the next one written in its place. The fsynced document is
    kept instead, and the next writer of the file asks the database
    (``_adopt_unrecorded_tail``): a row already there leaves it as it is, no
    row gets one. SQLite is in this process, so its COMMIT's outcome is known.
    """
    return isinstance(exc, DatabaseError) and connection.vendor != "sqlite"


@dataclass(frozen=True)
class _Derived:
    """What a snapshot's rows need from its payload and address alone, computed before any lock is taken.

    Every upload's transaction holds the database's write lock (SQLite: the
    one write lock that every other upload queues on; PostgreSQL: the host's
    row), so the transaction only reads what needs that lock (the host's
    columns, its index digests) and writes. What depends on the payload alone
    is computed here: the process index, the host and search columns, the
    identity seen, the search rows' digests. The comparisons against the
    values read under the lock still decide what is written (``_host_update``).
    """

    process_index: str
    process_index_digest: str
    columns: dict[str, object]
    search_columns: dict[str, object]
    search_text: str
    seen: identity.Identity
    digests: inventory_index.Digests

    @classmethod
    def of(cls, payload: payload_schema.SnapshotPayload, ip: addresses.IPAddress) -> _Derived:
        columns = host_columns(payload, ip)
        last_ip = columns["last_ip"]
        index = processes.process_index(payload.processes)
        text = host_search.search_text(payload, last_ip=last_ip)
        return cls(
            process_index=index,
            process_index_digest=processes.index_digest(index),
            columns=columns,
            search_columns=host_search.host_search_columns(payload, text=text),
            search_text=text,
            seen=identity.Identity.of(hostname=columns["hostname"], address=last_ip, hardware=payload.hardware),
            digests=inventory_index.Digests.of(payload),
        )


@dataclass(frozen=True)
class _Prepared:
    """What a snapshot's rows need, computed before the database transaction: its blob and its ``_Derived``.

    Compressing the document is the largest CPU work of ``_record``; done
    inside the transaction it would lengthen the hold of the write lock.
    """

    packed_document: bytes
    derived: _Derived

    @property
    def process_index(self) -> str:
        return self.derived.process_index

    @classmethod
    def of(cls, payload: payload_schema.SnapshotPayload, document: bytes, *, ip: addresses.IPAddress,
           last: Snapshot | None) -> _Prepared:
        return cls(_pack(document, last=last), _Derived.of(payload, ip))


def _pack(document: bytes, *, last: Snapshot | None) -> bytes:
    """The row's blob for *document*: a delta against the base of *last*, the newest row of its day file.

    A full frame (``documents.pack``) when the file has no row yet or its rows are archived, when the
    run since its base reaches ``documents.DELTA_RUN``, or when the base
    cannot be read; every delta then names a full row of the same file
    (the format: ``reports.documents``).
    """
    if last is None or archive.reference_index(last.document_compressed) is not None:
        return documents.pack(document)  # no row yet, or the day's rows are archived (a late snapshot)
    header = documents.delta_header(last.document_compressed)
    if header is None:
        base = documents.Base(last.snapshot_id, 1)
        base_blob = last.document_compressed
    elif header.distance + 1 < documents.DELTA_RUN:
        base, base_blob = documents.Base(header.snapshot_id, header.distance + 1), None
    else:
        return documents.pack(document)

    def base_document() -> bytes:
        blob = base_blob
        if blob is None:
            row = rowsql.select_one(Snapshot, ["document_compressed"], where={"snapshot_id": base.snapshot_id})
            if row is None:
                raise documents.DocumentError(f"base {base.snapshot_id} is gone")
            blob = row.document_compressed
        return documents.unpack(blob)

    try:
        return documents.pack_delta(document, base=base, base_document=base_document)
    except documents.DocumentError as exc:
        logger.warning("storing a full document: %s", exc)
        return documents.pack(document)


# The summary columns that Host and Snapshot rows share, derived from a snapshot
# by snapshot_summary; the host also keeps who and where it is (HOST_COLUMNS).
SUMMARY_COLUMNS = ("os_name", "os_version", "cpu_model", "process_count", "user_count", "memory_total_bytes")
HOST_COLUMNS = ("hostname", "fqdn", "last_ip", *SUMMARY_COLUMNS)


def snapshot_summary(payload: payload_schema.SnapshotPayload) -> dict[str, object]:
    """The SUMMARY_COLUMNS of a snapshot, as ingest writes them to its Snapshot row and its Host.

    Pure, so the benchmark loaders that fill a database without ingest
    derive exactly what ingest would. ``os_version`` names the distribution
    and its version when the agent knows them ("Debian GNU/Linux 12"), else
    the most specific version the OS reports.
    """
    system = payload.os
    if system.distribution:
        os_version = f"{system.distribution} {system.distribution_version or ''}".strip()
    else:
        os_version = system.distribution_version or system.version or system.release or ""
    return {
        "os_name": system.name[:64],
        "os_version": os_version[:255],
        "cpu_model": (payload.cpu.model or "")[:255],
        "process_count": len(payload.processes),
        "user_count": len(payload.users),
        "memory_total_bytes": payload.memory.total_bytes if payload.memory else None,
    }


def host_columns(payload: payload_schema.SnapshotPayload, ip: addresses.IPAddress) -> dict[str, object]:
    """The HOST_COLUMNS a snapshot gives its host: what the host looks like if this snapshot is its newest."""
    return {
        "hostname": payload.host.hostname[:255],
        "fqdn": (payload.host.fqdn or "")[:255],
        "last_ip": str(ip),
        **snapshot_summary(payload),
    }


def _record(
    *,
    payload: payload_schema.SnapshotPayload,
    ip: addresses.IPAddress,
    day: dt.date,
    received_at: dt.datetime,
    appended: store.Appended,
    prepared: _Prepared,
    snapshot_row: rowsql.PreparedInsert | None = None,
) -> bool:
    """Insert the Snapshot row and bring its Host up to date (inside the caller's transaction).

    Returns whether the host's software list is wanted (see
    :func:`_software_update`). Runs on every upload, so its statements go
    through ``reports.rowsql`` instead of the query compiler (see there why).
    *snapshot_row* is the Snapshot INSERT (``_snapshot_row``), when the
    caller prepared it before its transaction.
    """
    columns = prepared.derived.columns
    host = _host_get_or_create(payload, columns)
    if snapshot_row is None:
        snapshot_row = _snapshot_row(payload=payload, ip=ip, day=day, received_at=received_at,
                                     appended=appended, prepared=prepared)
    snapshot_pk = rowsql.insert_run(snapshot_row, host=host.pk)
    return _host_update(payload, host, snapshot_pk=snapshot_pk, columns=columns, prepared=prepared)


def _host_get_or_create(payload: payload_schema.SnapshotPayload, columns: dict[str, object]) -> Host:
    """The snapshot's Host, locked for update; created from this snapshot if it is the host's first."""
    host = _host_for_update(payload.host.id)
    if host is not None:
        return host
    try:
        # A savepoint: the first uploads of a new host through two day
        # files (two addresses) can race here on PostgreSQL; the loser
        # takes the winner's row instead of failing.
        with transaction.atomic():
            return Host.objects.create(host_id=payload.host.id, first_seen=payload.collected_at,
                                       last_seen=payload.collected_at, **columns)
    except IntegrityError:
        host = _host_for_update(payload.host.id)
        if host is None:
            raise
        return host


def _snapshot_row(*, payload: payload_schema.SnapshotPayload, ip: addresses.IPAddress, day: dt.date,
                  received_at: dt.datetime, appended: store.Appended, prepared: _Prepared) -> rowsql.PreparedInsert:
    """The Snapshot row's INSERT (summary columns, file position, compressed document), all but its host.

    Its values are adapted for the database here, before the transaction;
    the host's key is the one value known only inside it.
    """
    columns = prepared.derived.columns
    return rowsql.insert_prepare(Snapshot, {
        "snapshot_id": payload.snapshot_id,
        "ip": str(ip),
        "day": day,
        "collected_at": payload.collected_at,
        "received_at": received_at,
        "memory_available_bytes": payload.memory.available_bytes if payload.memory else None,
        "file_name": appended.file_name,
        "file_offset": appended.offset,
        "file_length": appended.length,
        "document_compressed": prepared.packed_document,
        **{name: columns[name] for name in SUMMARY_COLUMNS},
    }, late=("host",))


def _host_update(payload: payload_schema.SnapshotPayload, host: Host, *, snapshot_pk: int,
                 columns: dict[str, object], prepared: _Prepared) -> bool:
    """Write the host columns this snapshot changes; returns whether the software list is wanted.

    A snapshot older than the host's newest (a spooled one delivered late)
    only moves ``first_seen`` back, if it is older than that too.
    """
    derived = prepared.derived
    changes: dict[str, object] = {}
    if payload.collected_at >= host.last_seen:
        # Only what differs is written: every indexed column in the SET list
        # costs SQLite an index page in the WAL even when its value is the
        # same, and a host's name, address and OS rarely change between
        # uploads, nor do its search columns. The process index (the largest
        # column) is compared by its digest, so an unchanged process list is
        # neither read back nor sent; where the stored digest is not known
        # yet, the UPDATE compares the text itself (rowsql's keep_if_equal).
        changes.update({name: value for name, value in columns.items() if getattr(host, name) != value})
        changes.update(latest_snapshot=snapshot_pk, last_seen=payload.collected_at)
        if host.process_index_digest != derived.process_index_digest:
            changes.update(process_index=derived.process_index, process_index_digest=derived.process_index_digest)
        changes.update(identity.identity_changes(host, derived.seen, at=payload.collected_at))
        changes.update({name: value for name, value in derived.search_columns.items()
                        if getattr(host, name) != value})
        if "search_digest" in changes:
            rowsql.upsert(HostSearch, {"host": host.pk, "text": derived.search_text})
    if payload.collected_at < host.first_seen:
        changes["first_seen"] = payload.collected_at
    wanted = _software_update(payload, host, snapshot_pk=snapshot_pk, changes=changes)
    alerts_outbox.upload_alerts(host=host, payload=payload, changes=changes, process_index=derived.process_index,
                                digests=derived.digests)
    inventory_index.host_rows_update(host=host, payload=payload, changes=changes, digests=derived.digests)
    process_history.upload_record(host=host, payload=payload, changes=changes)
    if changes:
        rowsql.update(Host, host.pk, changes, keep_if_equal=("process_index",))
    return wanted


def _software_update(payload: payload_schema.SnapshotPayload, host: Host, *, snapshot_pk: int,
                     changes: dict[str, object]) -> bool:
    """Keep which snapshot holds the host's current software list; say whether the list is wanted.

    The agent sends its software list in full only when it changed or once a
    day, and ``software_digest`` otherwise (docs/payload.md, "The software
    rule"). A full list becomes the host's current one when it is the newest
    snapshot, or when the host has none. A digest-only upload is answered with
    ``software_wanted`` when the server holds no list with that digest (never
    sent, changed, or its snapshot pruned: ``software_snapshot`` is then null).
    """
    current = (host.software_digest, host.software_snapshot_id)
    if payload.software is not None:
        if payload.collected_at >= host.last_seen or host.software_snapshot_id is None:
            changes.update(software_digest=payload.software_digest, software_snapshot=snapshot_pk)
        return False
    if payload.software_digest is None:
        return False  # an agent older than the software rule
    return current[0] != payload.software_digest or current[1] is None


# What _host_update compares before writing a host: its times and every column it would overwrite.
_HOST_UPDATE_FIELDS = ["last_seen", "first_seen", *HOST_COLUMNS, "process_index_digest", "software_digest",
                       "software_snapshot",
                       *identity.HOST_FIELDS, *host_search.COLUMNS]


def _host_for_update(host_id: str) -> Host | None:
    return rowsql.select_one(Host, _HOST_UPDATE_FIELDS, where={"host_id": host_id}, for_update=True)


def _last_recorded(writer: store.DayFileWriter, *, ip: addresses.IPAddress, day: dt.date) -> Snapshot | None:
    """The row of the file's last recorded document: where it ends, and its blob (the next delta's base)."""
    if writer.documents_end == 0:
        return None
    return rowsql.select_one(Snapshot, ["snapshot_id", "file_offset", "file_length", "document_compressed"],
                             where={"ip": str(ip), "day": day}, order_by="-file_offset")


_UNREAD = object()


def _adopt_unrecorded_tail(writer: store.DayFileWriter, *, ip: addresses.IPAddress, day: dt.date,
                           last: Snapshot | None | object = _UNREAD) -> uuid.UUID | None:
    """Record the file's last document if a crash kept it from reaching the database.

    Only the last document can be in that state: every writer checks this
    before appending, under the same file lock, which also means no other
    writer can change this file's rows while we look. One indexed query in the
    usual case (none when the caller passes *last*, ``_last_recorded``, which
    it reuses to choose its document's base); returns the snapshot_id it
    recorded, if any.
    """
    end = writer.documents_end
    if end == 0:
        return None
    if last is _UNREAD:
        last = _last_recorded(writer, ip=ip, day=day)
    if last is not None and last.file_offset + last.file_length == end:
        return None
    tail = writer.last_document()
    if tail is None:
        return None
    offset, document = tail
    try:
        stored = payload_schema.decode_stored(document)
    except payload_schema.PayloadError as exc:
        logger.error("day file %s ends with a document that cannot be read: %s", writer.path.name, exc.message)
        return None
    if _snapshot_by_id(stored.payload.snapshot_id) is not None:
        return None
    logger.warning(
        "recording snapshot %s found at the end of %s without a database row (a worker stopped mid-upload)",
        stored.payload.snapshot_id, writer.path.name,
    )
    prepared = _Prepared.of(stored.payload, document, ip=ip, last=last)
    with write_transaction():
        snapshot_record_stored(stored, ip=ip, day=day, writer=writer, offset=offset, document=document,
                               prepared=prepared)
    return stored.payload.snapshot_id


def snapshot_record_stored(stored: payload_schema.StoredSnapshot, *, ip: addresses.IPAddress, day: dt.date,
                           writer: store.DayFileWriter, offset: int, document: bytes,
                           prepared: _Prepared | None = None) -> None:
    """Record a document that is already in its day file at *offset* (inside the caller's transaction).

    Crash recovery (``_adopt_unrecorded_tail``) and ``day_reindex`` both
    rebuild rows from a file this way, with the time and address the
    document was stored with.
    """
    _record(payload=stored.payload, ip=ip, day=day, received_at=stored.received_at,
            appended=store.Appended(writer.path.name, offset, len(document), 0),
            prepared=prepared or _Prepared.of(stored.payload, document, ip=ip,
                                              last=_last_recorded(writer, ip=ip, day=day)))


def _snapshot_by_id(snapshot_id) -> Snapshot | None:
    """The stored snapshot with this id (only what ``_replayed`` needs), or None."""
    return rowsql.select_one(Snapshot, ["id", "snapshot_id", "host", "ip", "day", "file_name"],
                             where={"snapshot_id": snapshot_id})
