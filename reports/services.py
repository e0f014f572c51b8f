"""Writes: everything that changes stored state goes through these functions.

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

import msgspec
from django.conf import settings
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.utils import timezone

from reports import payload as payload_schema
from reports import documents, inventory_index, locks, rowsql, store
from reports.dbwrite import write_transaction
from reports.models import AgentToken, ApiToken, Host, Snapshot

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
    ip: store.IPAddress,
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
    prepared = _Prepared.of(payload, document)

    with store.locked_for_append(ip, day) as writer, locks.day_file_lock(ip, day):
        if _adopt_unrecorded_tail(writer, ip=ip, day=day) == payload.snapshot_id:
            existing = _snapshot_by_id(payload.snapshot_id)
            if existing is not None:
                return _replayed(existing, host_binding=host_binding)
        if writer.size_after(document) > settings.INVENTORY_DAY_FILE_MAX_BYTES:
            raise DayFileFull(file_name=writer.path.name, limit_bytes=settings.INVENTORY_DAY_FILE_MAX_BYTES)
        # The fsync happens before the database write lock is taken, so other
        # day files' writers are not held up by this one's disk flush. A crash
        # between here and the commit leaves a tail that the next writer of
        # this file adopts (above); a failure we see is undone below.
        appended = writer.append(document)  # a full disk raises store.StorageFull, with nothing appended
        committing = False
        try:
            with write_transaction():
                software_wanted = _record(
                    payload=payload, ip=ip, day=day, received_at=received_at,
                    appended=appended, prepared=prepared,
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
class _Prepared:
    """What a snapshot's rows need from its document, computed before any lock is taken.

    Compressing the document and building the process index are the CPU work
    of ``_record``; done inside the transaction they would lengthen the hold
    of SQLite's one write lock, which every other upload queues on.
    """

    packed_document: bytes
    process_index: str

    @classmethod
    def of(cls, payload: payload_schema.SnapshotPayload, document: bytes) -> _Prepared:
        return cls(documents.pack(document), process_index(payload.processes))


def _record(
    *,
    payload: payload_schema.SnapshotPayload,
    ip: store.IPAddress,
    day: dt.date,
    received_at: dt.datetime,
    appended: store.Appended,
    prepared: _Prepared,
) -> bool:
    """Insert the Snapshot row and bring its Host up to date (inside the caller's transaction).

    Returns whether the host's software list is wanted (see
    :func:`_software_update`). Runs on every upload, so its statements go
    through ``reports.rowsql`` instead of the query compiler (see there why).
    """
    memory = payload.memory
    os_version = payload.os.distribution_version or payload.os.version or payload.os.release or ""
    if payload.os.distribution:
        os_version = f"{payload.os.distribution} {payload.os.distribution_version or ''}".strip()
    summary = {
        "os_name": payload.os.name[:64],
        "os_version": os_version[:255],
        "cpu_model": (payload.cpu.model or "")[:255],
        "process_count": len(payload.processes),
        "user_count": len(payload.users),
        "memory_total_bytes": memory.total_bytes if memory else None,
    }
    host = _host_for_update(payload.host.id)
    if host is None:
        try:
            # A savepoint: the first uploads of a new host through two day
            # files (two addresses) can race here on PostgreSQL; the loser
            # takes the winner's row instead of failing.
            with transaction.atomic():
                host = Host.objects.create(
                    host_id=payload.host.id,
                    hostname=payload.host.hostname[:255],
                    fqdn=(payload.host.fqdn or "")[:255],
                    last_ip=str(ip),
                    first_seen=payload.collected_at,
                    last_seen=payload.collected_at,
                    **summary,
                )
        except IntegrityError:
            host = _host_for_update(payload.host.id)
            if host is None:
                raise
    snapshot_pk = rowsql.insert(Snapshot, {
        "snapshot_id": payload.snapshot_id,
        "host": host.pk,
        "ip": str(ip),
        "day": day,
        "collected_at": payload.collected_at,
        "received_at": received_at,
        "memory_available_bytes": memory.available_bytes if memory else None,
        "file_name": appended.file_name,
        "file_offset": appended.offset,
        "file_length": appended.length,
        "document_compressed": prepared.packed_document,
        **summary,
    })
    changes: dict[str, object] = {}
    if payload.collected_at >= host.last_seen:
        newest = {
            "hostname": payload.host.hostname[:255],
            "fqdn": (payload.host.fqdn or "")[:255],
            "last_ip": str(ip),
            **summary,
        }
        # Only what differs is written: every indexed column in the SET list
        # costs SQLite an index page in the WAL even when its value is the
        # same, and a host's name, address and OS rarely change between
        # uploads. The process index is not read back to compare (16 KB);
        # SQLite leaves its overflow pages alone when their bytes are equal.
        changes.update({name: value for name, value in newest.items() if getattr(host, name) != value})
        changes.update(latest_snapshot=snapshot_pk, last_seen=payload.collected_at,
                       process_index=prepared.process_index)
    if payload.collected_at < host.first_seen:
        changes["first_seen"] = payload.collected_at
    wanted = _software_update(payload, host, snapshot_pk=snapshot_pk, changes=changes)
    inventory_index.host_rows_update(host=host, payload=payload, changes=changes)
    if changes:
        rowsql.update(Host, host.pk, changes)
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


# What _record compares before writing a host: its times and every column it would overwrite.
_HOST_UPDATE_FIELDS = [
    "last_seen", "first_seen", "hostname", "fqdn", "last_ip",
    "os_name", "os_version", "cpu_model", "process_count", "user_count", "memory_total_bytes",
    "software_digest", "software_snapshot",
]


def _host_for_update(host_id: str) -> Host | None:
    return rowsql.select_one(Host, _HOST_UPDATE_FIELDS, where={"host_id": host_id}, for_update=True)


PROCESS_INDEX_CMDLINE_CHARS = 200


def process_index(processes: list[payload_schema.Process]) -> str:
    """The searchable text of a process list: one lower-cased ``name<TAB>cmdline`` line each.

    One text column on Host answers "which hosts run X now" with a single
    LIKE scan over the newest snapshot of every host, without a row per process.
    """
    limit = PROCESS_INDEX_CMDLINE_CHARS
    # Lines are joined with a separator no name can hold (the payload refuses NUL), so
    # newlines inside names and command lines are blanked and the text lower-cased in
    # three passes over the whole string instead of three calls per process.
    text = "\0".join([f"{p.name or ''}\t{' '.join(p.cmdline)[:limit] if p.cmdline else ''}" for p in processes])
    return text.replace("\n", " ").replace("\0", "\n").lower()


def _adopt_unrecorded_tail(writer: store.DayFileWriter, *, ip: store.IPAddress, day: dt.date) -> uuid.UUID | None:
    """Record the file's last document if a crash kept it from reaching the database.

    Only the last document can be in that state: every writer checks this
    before appending, under the same file lock, which also means no other
    writer can change this file's rows while we look. One indexed query in the
    usual case; returns the snapshot_id it recorded, if any.
    """
    end = writer.documents_end
    if end == 0:
        return None
    last = rowsql.select_one(Snapshot, ["file_offset", "file_length"], where={"ip": str(ip), "day": day},
                             order_by="-file_offset")
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
    prepared = _Prepared.of(stored.payload, document)
    with write_transaction():
        _record(
            payload=stored.payload,
            ip=ip,
            day=day,
            received_at=stored.received_at,
            appended=store.Appended(writer.path.name, offset, len(document), 0),
            prepared=prepared,
        )
    return stored.payload.snapshot_id


def _snapshot_by_id(snapshot_id) -> Snapshot | None:
    """The stored snapshot with this id (only what ``_replayed`` needs), or None."""
    return rowsql.select_one(Snapshot, ["id", "snapshot_id", "host", "ip", "day", "file_name"],
                             where={"snapshot_id": snapshot_id})


# --- credentials --------------------------------------------------------------

def agent_token_create(*, name: str) -> tuple[AgentToken, str]:
    """A new agent token; the raw value is returned once and never stored."""
    raw, prefix, digest = AgentToken.generate()
    token = AgentToken.objects.create(name=name, key_prefix=prefix, key_hash=digest)
    return token, raw


def agent_token_revoke(*, token: AgentToken) -> None:
    if token.revoked_at is None:
        AgentToken.objects.filter(pk=token.pk).update(revoked_at=timezone.now())
        token.refresh_from_db(fields=["revoked_at"])


def agent_token_enroll(*, host_id: str, hostname: str = "") -> tuple[AgentToken, str]:
    """A new token bound to *host_id*; the host's earlier enrolled tokens stop working.

    One live enrolled token per host: an agent that lost its state folder
    re-enrolls, and the token it lost cannot be used by whoever finds it.
    Fleet tokens (no host binding) are left alone.
    """
    raw, prefix, digest = AgentToken.generate()
    with transaction.atomic():
        AgentToken.objects.filter(host_id=host_id, revoked_at__isnull=True).update(revoked_at=timezone.now())
        name = f"enrolled: {hostname or host_id}"[:100]
        token = AgentToken.objects.create(name=name, key_prefix=prefix, key_hash=digest, host_id=host_id)
    return token, raw


def agent_tokens_revoke_for_host(*, host_id: str) -> int:
    """Revoke every live token bound to *host_id*; returns how many were revoked."""
    return AgentToken.objects.filter(host_id=host_id, revoked_at__isnull=True).update(revoked_at=timezone.now())


def api_token_create(*, user, name: str = "api") -> tuple[ApiToken, str]:
    """A new read token for *user*; the raw value is returned once and never stored."""
    raw, prefix, digest = ApiToken.generate()
    token = ApiToken.objects.create(user=user, name=name, key_prefix=prefix, key_hash=digest)
    return token, raw


def api_token_revoke(*, token: ApiToken) -> None:
    """Stop a read token at once (every request looks its token up; nothing caches it)."""
    if token.revoked_at is None:
        ApiToken.objects.filter(pk=token.pk).update(revoked_at=timezone.now())
        token.refresh_from_db(fields=["revoked_at"])


def token_touch(*, token: AgentToken | ApiToken) -> None:
    """Note when a token was last used, at most hourly, so auth stays read-only on the hot path."""
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at > dt.timedelta(hours=1):
        type(token).objects.filter(pk=token.pk).update(last_used_at=now)


# --- data lifecycle: prune, reindex, export -------------------------------------
# Each works on one day file at a time, holding the same locks as an upload of
# that file (flock, then the cross-node lock), so it can run beside live traffic.


@dataclass(frozen=True)
class DayChange:
    """What a lifecycle service did (or, with ``dry_run``, would do) to one day."""

    file: str
    snapshots: int
    action: str


def day_prune(*, ip: store.IPAddress, day: dt.date, dry_run: bool = False) -> DayChange:
    """Remove one day: its file and its rows, together; hosts left with no snapshot go too.

    The file is unlinked inside the transaction, just before the commit: if
    the unlink fails nothing is deleted; if the commit fails the rows outlive
    the file, and the next prune (which also looks at days known only to the
    database) removes them.
    """
    with store.locked_for_append(ip, day) as writer, locks.day_file_lock(ip, day):
        rows = Snapshot.objects.filter(ip=str(ip), day=day)
        count = max(rows.count(), sum(1 for _ in writer.documents()))
        if dry_run:
            return DayChange(writer.path.name, count, "would remove")
        with transaction.atomic():
            host_ids = set(rows.values_list("host_id", flat=True))
            rows.delete()
            gone = Host.objects.filter(pk__in=host_ids, snapshots__isnull=True)
            inventory_index.hosts_forget(host_pks=gone.values_list("pk", flat=True))
            gone.delete()
            writer.remove()
    return DayChange(writer.path.name, count, "removed")


def day_reindex(*, ip: store.IPAddress, day: dt.date) -> DayChange:
    """Record every document of a day file that has no row yet (disaster recovery; idempotent)."""
    with store.locked_for_append(ip, day) as writer, locks.day_file_lock(ip, day), transaction.atomic():
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
            _record(payload=stored.payload, ip=ip, day=day, received_at=stored.received_at,
                    appended=store.Appended(writer.path.name, offset, len(document), 0),
                    prepared=_Prepared.of(stored.payload, document))
            known.add(stored.payload.snapshot_id)
            added += 1
    return DayChange(writer.path.name, added, "recorded" if added else "up to date")


class _DocumentId(msgspec.Struct):
    """Only the id of a stored document; msgspec skips the rest without building it."""

    snapshot_id: uuid.UUID


def day_export(*, ip: store.IPAddress, day: dt.date, dry_run: bool = False) -> DayChange:
    """Write a day file back from the database rows (their compressed documents), in file order.

    A file that holds a snapshot the database does not know is left alone:
    rewriting it would lose that snapshot (run ``reindex`` first). The rows'
    offsets are updated to the written file, so ``latest`` reads stay direct.
    """
    with store.locked_for_append(ip, day) as writer, locks.day_file_lock(ip, day):
        rows = list(
            Snapshot.objects.filter(ip=str(ip), day=day).order_by("file_offset", "received_at", "pk")
            .only("snapshot_id", "file_name", "file_offset", "file_length", "document_compressed")
        )
        in_file = {msgspec.json.decode(document, type=_DocumentId).snapshot_id for _, document in writer.documents()}
        unknown = in_file - {row.snapshot_id for row in rows}
        if unknown:
            return DayChange(writer.path.name, len(unknown), "skipped: not in the database, run reindex first")
        documents = [row.document_bytes for row in rows]
        current = [document for _, document in writer.documents()]
        if current == documents:
            return DayChange(writer.path.name, len(rows), "up to date")
        if dry_run:
            return DayChange(writer.path.name, len(rows), "would write")
        with transaction.atomic():
            positions = writer.replace_all(documents)
            for row, (offset, length) in zip(rows, positions, strict=True):
                row.file_name, row.file_offset, row.file_length = writer.path.name, offset, length
            Snapshot.objects.bulk_update(rows, ["file_name", "file_offset", "file_length"], batch_size=500)
    return DayChange(writer.path.name, len(rows), "written")

