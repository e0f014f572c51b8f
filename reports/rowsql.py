"""Single-row SELECT, INSERT and UPDATE without the query compiler, for the upload hot path.

Building SQL through the ORM costs more CPU per statement than running it,
and an upload runs several, each on every upload (docs/performance.md has
the measurements). These helpers write the same statements from the models'
own metadata (table and column names, each field's ``get_db_prep_value``),
once per statement shape, so they follow the models and work on SQLite and
PostgreSQL alike; rows read back go through the converters the query
compiler would apply and ``Model.from_db``, so values come back as the ORM
gives them.

Only the upload and /query paths (``reports.services``, ``reports.auth``,
``reports.locks``, the request counter of ``reports.throttling``,
``reports.selectors.snapshots_for_ip``) use this, for fixed statements
with equality filters; everything else keeps using the ORM.

Statements run on the backend's own cursor (``_cursor``), not through
Django's cursor wrapper, whose layers cost time on every statement; on
PostgreSQL they are prepared on the server, once per connection
(``_PreparedCursor``). Errors
are still translated to ``django.db.IntegrityError`` and friends, the
connection health check and the broken-transaction guard still run, and
when queries are being recorded (``DEBUG``, ``CaptureQueriesContext``) or an
execute wrapper is installed, Django's wrapper is used so those tools see
every statement.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from typing import Any, NamedTuple, TypeVar

from django.db import DEFAULT_DB_ALIAS, connections, models

M = TypeVar("M", bound=models.Model)


class _Select(NamedTuple):
    sql: str
    param_fields: tuple[models.Field, ...]
    attnames: tuple[str, ...]
    converters: tuple


@contextlib.contextmanager
def _cursor(connection) -> Iterator[Any]:
    """A cursor for one statement: the backend's own, or Django's wrapper when queries are watched."""
    if connection.queries_logged or connection.execute_wrappers:
        with connection.cursor() as cursor:
            yield cursor
        return
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    connection.validate_no_broken_transaction()
    with connection.wrap_database_errors:
        cursor = _prepared_cursor(connection) if connection.vendor == "postgresql" else connection.create_cursor()
        try:
            yield cursor
        finally:
            cursor.close()


class _PreparedCursor:
    """A PostgreSQL cursor whose statements are bound and prepared on the server.

    Django's cursors on PostgreSQL bind parameters in the client: every
    statement is sent as text with its values quoted in (a document as hex,
    a process list as a quoted literal), and the server parses and plans it
    afresh. These statements are few and fixed, and run on every upload, so
    here they are prepared once per connection (psycopg's ``prepare=True``)
    and each execution sends only the values, in binary where psycopg can.
    A prepared statement lives as long as its connection. psycopg prepares
    only on a connection whose ``prepare_threshold`` is set (the settings
    set it; with None the statements are still bound on the server).
    """

    def __init__(self, cursor):
        self._cursor = cursor

    def execute(self, sql: str, params):
        return self._cursor.execute(sql, params, prepare=True)

    def __getattr__(self, name: str):
        return getattr(self._cursor, name)


def _prepared_cursor(connection) -> _PreparedCursor:
    """Like the backend's ``create_cursor()``, with server-side binding (PostgreSQL only)."""
    from django.db.backends.postgresql.base import TIMESTAMPTZ_OID, Format, ServerBindingCursor, register_tzloader

    cursor = ServerBindingCursor(connection.connection)
    if connection.timezone != connection.connection.adapters.get_loader(TIMESTAMPTZ_OID, Format.TEXT).timezone:
        register_tzloader(connection.timezone, cursor)
    return _PreparedCursor(cursor)


@functools.lru_cache(maxsize=64)
def _select_sql(model: type[models.Model], fields: tuple[str, ...], where: tuple[tuple[str, bool], ...],
                order_by: tuple[str, ...], for_update: bool, alias: str) -> _Select:
    connection = connections[alias]
    meta, quote = model._meta, connections[alias].ops.quote_name
    # Model.from_db() takes a partial row in the model's field order, whatever
    # order the caller named the fields in.
    wanted = {meta.get_field(name) for name in (meta.pk.name, *fields)}
    selected = [field for field in meta.concrete_fields if field in wanted]
    columns = ", ".join(quote(field.column) for field in selected)
    conditions, params = [], []
    for name, is_null in where:
        field = meta.get_field(name)
        if is_null:
            conditions.append(f"{quote(field.column)} IS NULL")
        else:
            conditions.append(f"{quote(field.column)} = %s")
            params.append(field)
    sql = f"SELECT {columns} FROM {quote(meta.db_table)} WHERE {' AND '.join(conditions)}"
    if order_by:
        terms = [f"{quote(meta.get_field(name.lstrip('-')).column)}{' DESC' if name.startswith('-') else ''}"
                 for name in order_by]
        sql += f" ORDER BY {', '.join(terms)}"
    sql += " LIMIT 1"
    if for_update and connection.features.has_select_for_update:
        sql += " FOR UPDATE"
    # The converters the query compiler would apply to each column (backend's, then the field's).
    converters = []
    for field in selected:
        column = field.get_col(meta.db_table)
        converters.append((column, [*connection.ops.get_db_converters(column), *field.get_db_converters(connection)]))
    return _Select(sql, tuple(params), tuple(field.attname for field in selected), tuple(converters))


def select_one(model: type[M], fields: list[str], *, where: dict[str, Any], order_by: str | tuple[str, ...] = (),
               for_update: bool = False) -> M | None:
    """The first row matching ``field = value`` (``IS NULL`` for None) for each entry of *where*.

    Only *fields* and the primary key are loaded; ``order_by`` is a field
    name or a tuple of them, each with ``-`` for descending.
    """
    if isinstance(order_by, str):
        order_by = (order_by,) if order_by else ()
    connection = connections[DEFAULT_DB_ALIAS]
    shape = tuple((name, value is None) for name, value in where.items())
    select = _select_sql(model, tuple(fields), shape, order_by, for_update, DEFAULT_DB_ALIAS)
    values = [value for value in where.values() if value is not None]
    params = [field.get_db_prep_value(value, connection) for field, value in zip(select.param_fields, values)]
    with _cursor(connection) as cursor:
        cursor.execute(select.sql, params)
        row = cursor.fetchone()
    if row is None:
        return None
    converted = []
    for value, (column, converters) in zip(row, select.converters):
        for converter in converters:
            value = converter(value, column, connection)
        converted.append(value)
    return model.from_db(DEFAULT_DB_ALIAS, select.attnames, converted)


@functools.lru_cache(maxsize=64)
def _insert_sql(model: type[models.Model], names: tuple[str, ...], alias: str) -> tuple[str, tuple[models.Field, ...]]:
    connection = connections[alias]
    meta, quote = model._meta, connection.ops.quote_name
    given = {meta.get_field(name) for name in names}
    # Like Model.save(): every concrete column, with the field's default where no value is given.
    fields = tuple(field for field in meta.concrete_fields if field in given or not field.primary_key)
    sql = (f"INSERT INTO {quote(meta.db_table)} ({', '.join(quote(field.column) for field in fields)}) "
           f"VALUES ({', '.join(['%s'] * len(fields))})")
    if connection.features.can_return_columns_from_insert:
        sql += f" RETURNING {quote(meta.pk.column)}"
    return sql, fields


class PreparedInsert(NamedTuple):
    """An INSERT with its values already adapted for the database (``insert_prepare``), run by ``insert_run``."""

    sql: str
    params: tuple
    late: tuple[tuple[int, models.Field], ...]  # (position, field) of each value given to insert_run


def insert_prepare(model: type[models.Model], values: dict[str, Any], *, late: tuple[str, ...] = ()) -> PreparedInsert:
    """The INSERT of one row, its values adapted now; the fields named in *late* get theirs from ``insert_run``.

    Adapting a row's values is pure CPU (dates to text on SQLite, and so on);
    ingest does it before its transaction, where it would hold the write lock.
    """
    connection = connections[DEFAULT_DB_ALIAS]
    sql, fields = _insert_sql(model, (*values, *late), DEFAULT_DB_ALIAS)
    params: list[Any] = []
    slots = []
    for position, field in enumerate(fields):
        if field.name in late:
            params.append(None)
            slots.append((position, field))
        else:
            params.append(field.get_db_prep_save(values[field.name] if field.name in values else field.get_default(),
                                                 connection))
    return PreparedInsert(sql, tuple(params), tuple(slots))


def insert_run(prepared: PreparedInsert, **late: Any) -> int:
    """Run a ``PreparedInsert`` with the values of its *late* fields; returns the new row's primary key."""
    connection = connections[DEFAULT_DB_ALIAS]
    params = list(prepared.params)
    for position, field in prepared.late:
        params[position] = field.get_db_prep_save(late[field.name], connection)
    with _cursor(connection) as cursor:
        cursor.execute(prepared.sql, params)
        if connection.features.can_return_columns_from_insert:
            return cursor.fetchone()[0]
        return cursor.lastrowid


def insert(model: type[models.Model], values: dict[str, Any]) -> int:
    """INSERT one row (fields left out get their model default); returns its primary key."""
    return insert_run(insert_prepare(model, values))


@functools.lru_cache(maxsize=16)
def _upsert_sql(model: type[models.Model], names: tuple[str, ...], alias: str) -> tuple[str, tuple[models.Field, ...]]:
    meta, quote = model._meta, connections[alias].ops.quote_name
    fields = tuple(meta.get_field(name) for name in names)
    pk = quote(meta.pk.column)
    updated = [quote(field.column) for field in fields if not field.primary_key]
    return (f"INSERT INTO {quote(meta.db_table)} ({', '.join(quote(field.column) for field in fields)}) "
            f"VALUES ({', '.join(['%s'] * len(fields))}) ON CONFLICT ({pk}) DO UPDATE SET "
            f"{', '.join(f'{column} = excluded.{column}' for column in updated)}"), fields


def upsert(model: type[models.Model], values: dict[str, Any]) -> None:
    """INSERT one row, or UPDATE the row with its primary key (which *values* must hold) to *values*."""
    connection = connections[DEFAULT_DB_ALIAS]
    sql, fields = _upsert_sql(model, tuple(values), DEFAULT_DB_ALIAS)
    params = [field.get_db_prep_save(value, connection) for field, value in zip(fields, values.values())]
    with _cursor(connection) as cursor:
        cursor.execute(sql, params)


@functools.lru_cache(maxsize=64)
def _update_sql(model: type[models.Model], names: tuple[str, ...], kept: tuple[str, ...],
                alias: str) -> tuple[str, tuple[models.Field, ...]]:
    meta, quote = model._meta, connections[alias].ops.quote_name
    fields = tuple(meta.get_field(name) for name in names)
    assignments = []
    for field in fields:
        column = quote(field.column)
        if field.name in kept:
            # The value is sent once (a CASE would need it twice): NULLIF gives
            # NULL when it equals the stored one, and COALESCE then the stored
            # value itself. Never used for None (it would keep the old value).
            assignments.append(f"{column} = COALESCE(NULLIF(%s, {column}), {column})")
        else:
            assignments.append(f"{column} = %s")
    return f"UPDATE {quote(meta.db_table)} SET {', '.join(assignments)} WHERE {quote(meta.pk.column)} = %s", fields


def update(model: type[models.Model], pk: int, values: dict[str, Any], *, keep_if_equal: tuple[str, ...] = ()) -> int:
    """UPDATE one row by primary key; returns the number of rows changed (0 or 1).

    Columns named in *keep_if_equal* are compared in the statement and keep
    their stored value when it is equal. For a large text that usually
    stays the same, this spares PostgreSQL writing it again: an UPDATE that
    sets a new value writes new TOAST chunks and their WAL even when the
    bytes are equal, while the old value assigned back keeps its TOAST
    pointer. The caller need not read the old value to compare. A None in
    such a column is written as any other value.
    """
    connection = connections[DEFAULT_DB_ALIAS]
    kept = tuple(name for name in keep_if_equal if values.get(name) is not None)
    sql, fields = _update_sql(model, tuple(values), kept, DEFAULT_DB_ALIAS)
    params = [field.get_db_prep_save(value, connection) for field, value in zip(fields, values.values())]
    with _cursor(connection) as cursor:
        cursor.execute(sql, [*params, pk])
        return cursor.rowcount


@functools.lru_cache(maxsize=16)
def _value_sql(model: type[models.Model], field: str, alias: str) -> str:
    meta, quote = model._meta, connections[alias].ops.quote_name
    return f"SELECT {quote(meta.get_field(field).column)} FROM {quote(meta.db_table)} WHERE {quote(meta.pk.column)} = %s"


def text_value(model: type[models.Model], field: str, pk: int) -> str | None:
    """One text column of one row by primary key, as the driver returns it (None: no such row).

    For a large text read on every upload (``Host.process_index``, by
    ``reports.process_history``): no model instance and no converters,
    which cost more than reading the text itself.
    """
    connection = connections[DEFAULT_DB_ALIAS]
    with _cursor(connection) as cursor:
        cursor.execute(_value_sql(model, field, DEFAULT_DB_ALIAS), [pk])
        row = cursor.fetchone()
    return None if row is None else row[0]


def scalar(sql: str, params: list[Any]) -> Any:
    """The first column of the first row of one fixed statement (None: no row), prepared on PostgreSQL.

    For the few hand-written statements an upload runs, such as taking and
    releasing the day file's advisory lock (``reports.locks``): Django's
    cursor wrapper costs more CPU than the statement itself.
    """
    connection = connections[DEFAULT_DB_ALIAS]
    with _cursor(connection) as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    return None if row is None else row[0]
