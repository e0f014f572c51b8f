"""The process history: which process texts each host ran, and from when to when, written only on change.

A *run* (``ProcessRun``) is one stretch of time in which a host's newest
snapshots had one process text (a ``Host.process_index`` line, lower-cased
``name<TAB>cmdline``, ``reports.processes``): ``started_at`` is the
collected_at of the first snapshot that had it, ``stopped_at`` that of the
last one, and NULL while the newest snapshot still has it. Texts are stored
once for the fleet (``ProcessText``); a run names its text by id.

Ingest calls ``upload_record`` once per upload, inside its transaction and
before the host row is written. The host's previous text set is its stored
``process_index`` (sorted unique lines, so an unchanged set is an equal
string): when it equals the new one, the usual upload, nothing else is read
or written. Otherwise only the difference is written: one INSERT of the new
texts, one of the started runs, one UPDATE that closes the stopped ones at
the host's previous ``last_seen`` (the last time they were seen).

The rules that keep the runs true:

- Only a snapshot that becomes the host's newest touches the history. A late
  one (older than ``last_seen``, delivered from a spool) changes nothing:
  the runs follow the upload order of the newest snapshots, like
  ``process_index`` itself. ``manage.py reindex`` rebuilds the history from
  all snapshots in collected_at order (``host_rebuild``), late ones included.
- A process that stops and starts again (same text) gets a second run; a
  reboot that brings the same programs back keeps their runs open: a run is
  a text's presence in the snapshots, not a pid.
- A host that stops reporting keeps its open runs open; searches bound an
  open run by the host's ``last_seen`` (``reports.selectors.process_search``).
- Retention (``history_prune``, run by ``manage.py prune``) deletes the
  closed runs that stopped before the first kept day and then the texts no
  run names; an open run is never old. Deleting a host deletes its runs
  (``on_delete=CASCADE``), and its texts go with the next prune.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence

from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.models import Exists, OuterRef, Q

import logging

from reports import documents, store
from reports import payload as payload_schema
from reports import rowsql
from reports.digests import text_digest  # the key of a process text
from reports import processes as process_rule
from reports.models import Host, ProcessRun, ProcessText, Snapshot

logger = logging.getLogger(__name__)

# Parameters per IN (...) list: under SQLite's oldest limit of 999 variables.
CHUNK = 900
# Rows a prune deletes per transaction, so a large prune never holds the write lock for long.
PRUNE_BATCH = 500


def index_lines(index: str) -> set[str]:
    """The texts of a ``process_index`` (any order; the empty index has none)."""
    return set(index.split("\n")) if index else set()


def upload_record(*, host: Host, payload: payload_schema.SnapshotPayload, changes: dict[str, object]) -> None:
    """Write the runs this upload starts and stops (inside the upload's transaction, before the host is written).

    *host* holds the columns as they were before this upload; *changes* is
    what ingest is about to write: a ``process_index`` there means this
    snapshot becomes the host's newest with a process list whose digest
    differs from the stored one's (or the stored digest is not known). A late
    snapshot, or an unchanged list, has none, and changes nothing here.
    """
    after = changes.get("process_index")
    if after is None:
        return
    before = rowsql.text_value(Host, "process_index", host.pk) or ""
    if before == after:
        return
    old, new = index_lines(before), index_lines(str(after))
    runs_apply(host_pk=host.pk, started=new - old, stopped=old - new,
               started_at=payload.collected_at, stopped_at=host.last_seen)


def runs_apply(*, host_pk: int, started: Iterable[str], stopped: Iterable[str],
               started_at: dt.datetime, stopped_at: dt.datetime) -> None:
    """Open a run for each text of *started*, close the open run of each text of *stopped*."""
    connection = connections[DEFAULT_DB_ALIAS]
    # Sorted: two uploads adding the same new texts insert them in one order,
    # so on PostgreSQL neither waits on a text the other holds (no deadlock).
    started, stopped = sorted(started), sorted(stopped)
    if not started and not stopped:
        return
    runs, texts = _table(ProcessRun), _table(ProcessText)
    run_host, run_text, run_stop = _column(ProcessRun, "host"), _column(ProcessRun, "text"), \
        _column(ProcessRun, "stopped_at")
    with connection.cursor() as cursor:
        for chunk in _chunks([text_digest(text) for text in stopped]):
            cursor.execute(
                f"UPDATE {runs} SET {run_stop} = %s WHERE {run_host} = %s AND {run_stop} IS NULL AND {run_text} IN "
                f"(SELECT id FROM {texts} WHERE {_column(ProcessText, 'digest')} IN ({_marks(chunk)}))",
                [_when(stopped_at), host_pk, *chunk])
        if started:
            _texts_ensure(cursor, started)
            for chunk in _chunks([text_digest(text) for text in started]):
                # A text with an open run already (a run kept open by an older index) keeps that run.
                cursor.execute(
                    f"INSERT INTO {runs} ({run_host}, {run_text}, {_column(ProcessRun, 'started_at')}, {run_stop}) "
                    f"SELECT %s, id, %s, NULL FROM {texts} WHERE {_column(ProcessText, 'digest')} IN ({_marks(chunk)}) "
                    f"ON CONFLICT DO NOTHING",
                    [host_pk, _when(started_at), *chunk])


def _texts_ensure(cursor, texts: Sequence[str]) -> None:
    """Insert the texts the catalog does not have yet, and lock every one of *texts* until the commit.

    The lock is what keeps ``history_prune`` from deleting a text between
    this and the INSERT of the runs that name it (it skips locked texts): a
    known text is "updated" to itself, which on PostgreSQL locks its row
    until the upload commits, and a text that a prune has just deleted is
    inserted anew. On SQLite the upload holds the database's write lock anyway.
    """
    names = ", ".join(_column(ProcessText, name) for name in ("digest", "text", "name"))
    digest = _column(ProcessText, "digest")
    cursor.executemany(
        f"INSERT INTO {_table(ProcessText)} ({names}) VALUES (%s, %s, %s) "
        f"ON CONFLICT ({digest}) DO UPDATE SET {digest} = EXCLUDED.{digest}",
        [(text_digest(text), text, text.split("\t", 1)[0]) for text in texts])


def history_prune(*, before: dt.datetime, dry_run: bool = False) -> tuple[int, int]:
    """Delete the runs that stopped before *before*, then the texts no run names; returns (runs, texts).

    With *dry_run*, count them instead. Both walk their table in primary key
    order, ``PRUNE_BATCH`` rows a transaction, so a prune of a year of
    history holds the write lock for one batch at a time and the walk reads
    each row once. A text is deleted only in the transaction that locked it
    (``FOR UPDATE SKIP LOCKED`` on PostgreSQL; SQLite's write transaction):
    an upload that is about to name it holds its lock (``_texts_ensure``),
    so the prune skips it, and an upload that comes after waits one batch
    and inserts it again.
    """
    old = ProcessRun.objects.filter(stopped_at__lt=before)
    if dry_run:
        kept = ProcessRun.objects.filter(Q(stopped_at__isnull=True) | Q(stopped_at__gte=before), text=OuterRef("pk"))
        return old.count(), ProcessText.objects.exclude(Exists(kept)).count()
    runs = texts = 0
    last = 0
    while ids := list(old.filter(pk__gt=last).order_by("pk").values_list("pk", flat=True)[:PRUNE_BATCH]):
        last = ids[-1]
        with transaction.atomic():
            runs += ProcessRun.objects.filter(pk__in=ids).delete()[0]
    last = 0
    text_table, text_id = _table(ProcessText), _column(ProcessText, "id")
    while True:
        with transaction.atomic():
            ids = list(ProcessText.objects.filter(pk__gt=last).order_by("pk")
                       .select_for_update(skip_locked=True).values_list("pk", flat=True)[:PRUNE_BATCH])
            if not ids:
                break
            last = ids[-1]
            with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
                cursor.execute(
                    f"DELETE FROM {text_table} WHERE {text_id} IN ({_marks(ids)}) AND NOT EXISTS "
                    f"(SELECT 1 FROM {_table(ProcessRun)} WHERE {_column(ProcessRun, 'text')} = {text_table}.{text_id})",
                    ids)
                texts += cursor.rowcount
    return runs, texts


def host_rebuild(*, host_pk: int) -> int:
    """Rebuild one host's runs from all its snapshots, in collected_at order; returns how many runs it has.

    For ``manage.py reindex``: the day files are read by address and day, so
    a host's snapshots reach the database in no useful order; this walks them
    by time, so a late snapshot takes its place too. The host row is the
    caller's to lock. The newest snapshot's set is the host's
    ``process_index`` afterwards (ingest wrote it), so the next upload
    continues from here.
    """
    snapshots = (Snapshot.objects.filter(host_id=host_pk).order_by("collected_at", "pk")
                 .only("collected_at", "ip", "day", "file_name", "file_offset", "file_length", "document_compressed"))
    open_runs: dict[str, dt.datetime] = {}
    closed: list[tuple[str, dt.datetime, dt.datetime]] = []
    previous_at = None
    for snapshot in snapshots.iterator(chunk_size=200):
        # The day file first (by offset, as every reader does): the row's copy of a compacted day is in its
        # day's archive, which may be the very thing reindex is rebuilding after a loss.
        document = store.read_document(snapshot.file_name, snapshot.file_offset, snapshot.file_length)
        try:
            processes = payload_schema.decode_stored(
                document if document is not None else snapshot.document_bytes).payload.processes
        except documents.DocumentError as exc:
            logger.error("process history of host %s skips snapshot %s: %s", host_pk, snapshot.pk, exc)
            continue
        current = index_lines(process_rule.process_index(processes))
        for text in [text for text in open_runs if text not in current]:
            closed.append((text, open_runs.pop(text), previous_at))
        for text in current:
            open_runs.setdefault(text, snapshot.collected_at)
        previous_at = snapshot.collected_at
    ProcessRun.objects.filter(host_id=host_pk).delete()
    rows = [(text, start, stop) for text, start, stop in closed] + [(t, s, None) for t, s in open_runs.items()]
    if not rows:
        return 0
    connection = connections[DEFAULT_DB_ALIAS]
    with connection.cursor() as cursor:
        _texts_ensure(cursor, sorted({text for text, _, _ in rows}))
    ids = text_ids({text for text, _, _ in rows})
    ProcessRun.objects.bulk_create(
        [ProcessRun(host_id=host_pk, text_id=ids[text], started_at=start, stopped_at=stop) for text, start, stop in rows],
        batch_size=500)
    return len(rows)


def text_ids(texts: Iterable[str]) -> dict[str, int]:
    """The catalog ids of *texts* (those it has)."""
    by_digest = {text_digest(text): text for text in texts}
    found: dict[str, int] = {}
    digests = list(by_digest)
    for chunk in _chunks(digests):
        for digest, pk in ProcessText.objects.filter(digest__in=chunk).values_list("digest", "id"):
            found[by_digest[digest]] = pk
    return found


def _when(value: dt.datetime):
    return ProcessRun._meta.get_field("started_at").get_db_prep_value(value, connections[DEFAULT_DB_ALIAS])


def _table(model) -> str:
    return connections[DEFAULT_DB_ALIAS].ops.quote_name(model._meta.db_table)


def _column(model, name: str) -> str:
    return connections[DEFAULT_DB_ALIAS].ops.quote_name(model._meta.get_field(name).column)


def _marks(values: Sequence) -> str:
    return ", ".join(["%s"] * len(values))


def _chunks(values: Sequence, size: int = CHUNK) -> Iterable[Sequence]:
    for start in range(0, len(values), size):
        yield values[start:start + size]
