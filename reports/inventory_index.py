"""Derive and write the search rows: each host's current software, listening sockets and disks.

The stored documents are the record; these rows (``Software``,
``HostSoftware``, ``HostListeningSocket``, ``HostDisk``) only answer "which
hosts have openssl 3.0.11 / listen on 3389 / have a full disk" from indexes.
``host_rows_update`` runs inside the upload's transaction (called by
``reports.services.ingest._record``), so a row is written exactly when its snapshot
is, and a failed upload rolls both back; the payload's digests (``Digests``)
are computed before it, outside the database's write lock.

Which snapshot an area follows:

- software: the host's current list, the one ``Host.software_snapshot``
  names. A snapshot without a list (``software`` absent: the agent sent only
  its digest) leaves the rows alone; it never means "all removed".
- listening and disks: the host's newest snapshot that carries the area.

Cost, since this runs on every upload: one indexed SELECT of the host's
``HostIndexState``; an area is rewritten only when its digest differs from
the one its rows were derived from (disks change with every upload's free
bytes, a few rows; sockets and software rarely). Rows are written with one
``executemany`` per statement shape, never a query per row. A software list
is applied as a difference (pairs removed, added, re-dated), so an upgrade of
three packages touches three pairs and three ``host_count`` values, in
ascending id order so that two hosts' uploads cannot deadlock on PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import msgspec
from django.db import DEFAULT_DB_ALIAS, connections

from reports import payload as payload_schema
from reports import rowsql
from reports.models import Host, HostDisk, HostIndexState, HostListeningSocket, HostSoftware, Software

# Parameters per IN (...) list: under SQLite's oldest limit of 999 variables.
CHUNK = 900


def software_key(entry: payload_schema.Software) -> str:
    """The catalog key of one package: sha256 of its five fields (NUL-separated; the payload refuses NUL)."""
    text = "\0".join((entry.name, entry.version or "", entry.vendor or "", entry.arch or "", entry.source))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def area_digest(entries: Sequence[msgspec.Struct]) -> str:
    """The digest of a list as it was sent: equal lists are not written again."""
    return hashlib.sha256(msgspec.json.encode(entries)).hexdigest()


def used_percent(disk: payload_schema.Disk) -> float | None:
    """Share of the file system not free, in percent (reserved blocks count as used, as ``df`` shows them)."""
    if disk.total_bytes is None or disk.free_bytes is None or disk.total_bytes <= 0:
        return None
    return round(100.0 * max(disk.total_bytes - disk.free_bytes, 0) / disk.total_bytes, 3)


@dataclass(frozen=True)
class Digests:
    """The digests of a payload's areas (None: the area is absent), computed before the upload's transaction.

    Pure and a few hundred microseconds for a long software list, so ingest
    computes them before it takes the database's write lock; inside, they
    are only compared with the stored ones (``HostIndexState``).
    """

    software: str | None
    listening: str | None
    disks: str | None

    @classmethod
    def of(cls, payload: payload_schema.SnapshotPayload) -> Digests:
        return cls(
            software=None if payload.software is None else payload_schema.software_digest(payload.software),
            listening=None if payload.listening is None else area_digest(payload.listening),
            disks=None if payload.disks is None else area_digest(payload.disks),
        )


def host_rows_update(*, host: Host, payload: payload_schema.SnapshotPayload, changes: dict[str, object],
                     digests: Digests | None = None) -> None:
    """Bring the host's search rows up to date with *payload* (inside the upload's transaction).

    *changes* is what ``_record`` is about to write to the host: the payload
    is the host's newest snapshot when it sets ``latest_snapshot``, and its
    software list becomes the current one when it sets ``software_snapshot``.
    *digests* are the payload's (``Digests.of``), when the caller computed
    them before its transaction.
    """
    newest = "latest_snapshot" in changes
    software = payload.software if "software_snapshot" in changes else None
    listening = payload.listening if newest else None
    disks = payload.disks if newest else None
    if software is None and listening is None and disks is None:
        return
    host_rows_write(host_pk=host.pk, software=software, listening=listening, disks=disks, digests=digests)


def host_rows_write(*, host_pk: int, software: list[payload_schema.Software] | None,
                    listening: list[payload_schema.ListeningSocket] | None,
                    disks: list[payload_schema.Disk] | None, force: bool = False,
                    digests: Digests | None = None) -> list[str]:
    """Replace each given area's rows (None: leave it) unless its digest is unchanged; returns the areas written.

    ``force`` rewrites the given areas whatever their digests (``reindex_inventory``).
    *digests*, when given, are those of the given areas (``Digests.of`` their payload).
    """
    state = rowsql.select_one(HostIndexState, ["software_digest", "listening_digest", "disks_digest"],
                              where={"host": host_pk})
    old = {"software": state.software_digest, "listening": state.listening_digest,
           "disks": state.disks_digest} if state else {}
    new: dict[str, str] = {}
    connection = connections[DEFAULT_DB_ALIAS]
    with connection.cursor() as cursor:
        if software is not None:
            digest = digests.software if digests is not None else payload_schema.software_digest(software)
            if force or old.get("software") != digest:
                _software_replace(cursor, host_pk, software)
                new["software"] = digest
        if listening is not None:
            digest = digests.listening if digests is not None else area_digest(listening)
            if force or old.get("listening") != digest:
                _rows_replace(cursor, HostListeningSocket, host_pk,
                              ["protocol", "address", "port", "pid", "process"],
                              [(s.protocol, s.address, s.port, s.pid, s.process) for s in listening])
                new["listening"] = digest
        if disks is not None:
            digest = digests.disks if digests is not None else area_digest(disks)
            if force or old.get("disks") != digest:
                _rows_replace(cursor, HostDisk, host_pk,
                              ["mount_point", "device", "fs_type", "total_bytes", "free_bytes", "used_percent"],
                              [(d.mount_point, d.device, d.fs_type, d.total_bytes, d.free_bytes, used_percent(d))
                               for d in disks])
                new["disks"] = digest
    if new:
        values = {f"{area}_digest": digest for area, digest in new.items()}
        if state is None:
            rowsql.insert(HostIndexState, {"host": host_pk, **values})
        else:
            rowsql.update(HostIndexState, host_pk, values)
    return list(new)


def hosts_forget(*, host_pks: Iterable[int]) -> None:
    """Take hosts about to be deleted out of the software host counts (their rows go by cascade)."""
    pks = sorted(set(host_pks))
    if not pks:
        return
    table, column = _table(HostSoftware), _column(HostSoftware, "host")
    counts: dict[int, int] = {}
    with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
        for chunk in _chunks(pks):
            cursor.execute(f"SELECT {_column(HostSoftware, 'software')} FROM {table} "
                           f"WHERE {column} IN ({', '.join(['%s'] * len(chunk))})", chunk)
            for (software_id,) in cursor.fetchall():
                counts[software_id] = counts.get(software_id, 0) + 1
        _counts_add(cursor, {software_id: -count for software_id, count in counts.items()})


def software_counts_rebuild() -> int:
    """Set every ``host_count`` from the pairs (after a bulk load or a repair); returns the rows changed."""
    software, pairs = _table(Software), _table(HostSoftware)
    pair_software = _column(HostSoftware, "software")
    with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
        cursor.execute(
            f"UPDATE {software} SET host_count = COALESCE((SELECT COUNT(*) FROM {pairs} "
            f"WHERE {pairs}.{pair_software} = {software}.id), 0)"
        )
        return cursor.rowcount


# --- the statements -------------------------------------------------------------

def _table(model) -> str:
    return connections[DEFAULT_DB_ALIAS].ops.quote_name(model._meta.db_table)


def _column(model, name: str) -> str:
    return connections[DEFAULT_DB_ALIAS].ops.quote_name(model._meta.get_field(name).column)


def _chunks(values: Sequence, size: int = CHUNK) -> Iterable[Sequence]:
    for start in range(0, len(values), size):
        yield values[start:start + size]


def _insert_sql(model, names: Sequence[str], *, on_conflict: str = "") -> str:
    columns = ", ".join(_column(model, name) for name in names)
    placeholders = ", ".join(["%s"] * len(names))
    return f"INSERT INTO {_table(model)} ({columns}) VALUES ({placeholders}){on_conflict}"


def _rows_replace(cursor, model, host_pk: int, names: list[str], rows: list[tuple]) -> None:
    cursor.execute(f"DELETE FROM {_table(model)} WHERE {_column(model, 'host')} = %s", [host_pk])
    if rows:
        cursor.executemany(_insert_sql(model, ["host", *names]), [(host_pk, *row) for row in rows])


def _date_text(value: dt.date | str | None) -> str | None:
    """A date as ISO text, whichever type the backend returned it as (SQLite: text)."""
    return value.isoformat() if isinstance(value, dt.date) else value


def _software_replace(cursor, host_pk: int, entries: list[payload_schema.Software]) -> None:
    """Make the host's pairs those of *entries*, writing only the difference."""
    by_key: dict[str, payload_schema.Software] = {}
    for entry in entries:
        by_key.setdefault(software_key(entry), entry)  # the same package listed twice is one pair
    ids = _catalog_ids(cursor, by_key)
    wanted = {ids[key]: _date_text(entry.install_date) for key, entry in by_key.items()}
    pairs, host_column = _table(HostSoftware), _column(HostSoftware, "host")
    software_column, date_column = _column(HostSoftware, "software"), _column(HostSoftware, "install_date")
    cursor.execute(f"SELECT {software_column}, {date_column} FROM {pairs} WHERE {host_column} = %s", [host_pk])
    held = {software_id: _date_text(day) for software_id, day in cursor.fetchall()}
    removed = sorted(held.keys() - wanted.keys())
    added = sorted(wanted.keys() - held.keys())
    redated = sorted(sid for sid in wanted.keys() & held.keys() if wanted[sid] != held[sid])
    for chunk in _chunks(removed):
        cursor.execute(f"DELETE FROM {pairs} WHERE {host_column} = %s AND {software_column} "
                       f"IN ({', '.join(['%s'] * len(chunk))})", [host_pk, *chunk])
    if added:
        cursor.executemany(_insert_sql(HostSoftware, ["host", "software", "install_date"]),
                           [(host_pk, sid, wanted[sid]) for sid in added])
    if redated:
        cursor.executemany(f"UPDATE {pairs} SET {date_column} = %s WHERE {host_column} = %s "
                           f"AND {software_column} = %s", [(wanted[sid], host_pk, sid) for sid in redated])
    _counts_add(cursor, {**{sid: -1 for sid in removed}, **{sid: 1 for sid in added}})


def _counts_add(cursor, deltas: dict[int, int]) -> None:
    """Add each delta to its package's host_count, in ascending id order (a fixed lock order)."""
    if deltas:
        cursor.executemany(f"UPDATE {_table(Software)} SET host_count = host_count + %s WHERE id = %s",
                           [(deltas[sid], sid) for sid in sorted(deltas) if deltas[sid]])


def _catalog_ids(cursor, by_key: dict[str, payload_schema.Software]) -> dict[str, int]:
    """The Software id of every key, adding the packages the catalog does not have yet."""
    table, key_column = _table(Software), _column(Software, "key")

    def known(keys: Sequence[str]) -> dict[str, int]:
        found: dict[str, int] = {}
        for chunk in _chunks(keys):
            cursor.execute(f"SELECT {key_column}, id FROM {table} WHERE {key_column} "
                           f"IN ({', '.join(['%s'] * len(chunk))})", list(chunk))
            found.update(cursor.fetchall())
        return found

    ids = known(sorted(by_key))
    missing = sorted(by_key.keys() - ids.keys())
    if missing:
        # ON CONFLICT: another host's upload may add the same package meanwhile (PostgreSQL).
        sql = _insert_sql(Software, ["key", "name", "version", "vendor", "arch", "source", "host_count"],
                          on_conflict=f" ON CONFLICT ({key_column}) DO NOTHING")
        cursor.executemany(sql, [(key, e.name, e.version or "", e.vendor or "", e.arch or "", e.source, 0)
                                 for key in missing for e in (by_key[key],)])
        ids.update(known(missing))
    return ids
