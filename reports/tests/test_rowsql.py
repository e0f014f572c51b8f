"""reports.rowsql against the real SQLite database: the same rows and values the ORM gives."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from reports import rowsql
from reports.models import AgentToken, Host, Snapshot

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2026, 11, 27, 8, 0, 0, 123456, tzinfo=dt.timezone.utc)


def make_host(**overrides) -> Host:
    values = dict(host_id="h-1", hostname="web-01", last_ip="10.0.0.5", first_seen=T0, last_seen=T0)
    values.update(overrides)
    return Host.objects.create(**values)


def snapshot_values(host: Host, **overrides) -> dict:
    values = {
        "snapshot_id": uuid.uuid4(), "host": host.pk, "ip": "10.0.0.5", "day": T0.date(), "collected_at": T0,
        "received_at": T0, "file_name": "10.0.0.5_2026-11-27.json", "file_offset": 2, "file_length": 10,
        "document_compressed": b"\x78\x01zz", "process_count": 400, "memory_total_bytes": 2**40,
    }
    values.update(overrides)
    return values


def test_insert_stores_what_the_orm_reads_back():
    host = make_host()
    values = snapshot_values(host)
    pk = rowsql.insert(Snapshot, values)
    row = Snapshot.objects.get(pk=pk)
    assert row.snapshot_id == values["snapshot_id"] and row.host_id == host.pk
    assert row.collected_at == T0 and row.day == T0.date() and row.ip == "10.0.0.5"
    assert bytes(row.document_compressed) == values["document_compressed"] and row.memory_total_bytes == 2**40


def test_a_prepared_insert_takes_its_late_value_when_run_and_can_run_once_per_value():
    first, second = make_host(), make_host(host_id="h-2")
    values = snapshot_values(first)
    del values["host"]
    prepared = rowsql.insert_prepare(Snapshot, values, late=("host",))
    pk = rowsql.insert_run(prepared, host=second.pk)
    row = Snapshot.objects.get(pk=pk)
    assert row.host_id == second.pk and row.snapshot_id == values["snapshot_id"] and row.collected_at == T0
    assert bytes(row.document_compressed) == values["document_compressed"] and row.process_count == 400
    assert prepared.params.count(None) >= 1  # the prepared values are not changed by running them
    with pytest.raises(KeyError):
        rowsql.insert_run(prepared)


def test_select_one_converts_values_like_the_orm_and_loads_only_what_was_asked():
    host = make_host()
    found = rowsql.select_one(Host, ["last_seen", "first_seen"], where={"host_id": "h-1"})
    assert found.pk == host.pk and found.last_seen == T0 and found.last_seen.tzinfo is not None
    assert found.get_deferred_fields() >= {"hostname", "process_index"}
    assert rowsql.select_one(Host, ["last_seen"], where={"host_id": "nobody"}) is None


def test_select_one_gives_each_field_its_own_value_whatever_order_they_are_named_in():
    make_host(first_seen=T0 - dt.timedelta(days=9), last_seen=T0, hostname="web-01", last_ip="10.0.0.9")
    host = rowsql.select_one(Host, ["last_ip", "last_seen", "hostname", "first_seen"], where={"host_id": "h-1"})
    assert host.first_seen == T0 - dt.timedelta(days=9) and host.last_seen == T0
    assert host.hostname == "web-01" and host.last_ip == "10.0.0.9"


def test_select_one_filters_on_uuid_and_null_and_orders():
    host = make_host()
    first = snapshot_values(host, file_offset=2)
    second = snapshot_values(host, file_offset=500)
    rowsql.insert(Snapshot, first)
    rowsql.insert(Snapshot, second)
    by_id = rowsql.select_one(Snapshot, ["snapshot_id", "file_offset"], where={"snapshot_id": second["snapshot_id"]})
    assert by_id.file_offset == 500 and by_id.snapshot_id == second["snapshot_id"]
    newest = rowsql.select_one(Snapshot, ["file_offset"], where={"ip": "10.0.0.5", "day": T0.date()},
                               order_by="-file_offset")
    oldest = rowsql.select_one(Snapshot, ["file_offset"], where={"ip": "10.0.0.5", "day": T0.date()},
                               order_by="file_offset")
    assert (newest.file_offset, oldest.file_offset) == (500, 2)

    token = AgentToken.objects.create(name="a", key_prefix="rlv_a_x", key_hash="h" * 64)
    assert rowsql.select_one(AgentToken, ["name"], where={"key_hash": "h" * 64, "revoked_at": None}).pk == token.pk
    AgentToken.objects.filter(pk=token.pk).update(revoked_at=T0)
    assert rowsql.select_one(AgentToken, ["name"], where={"key_hash": "h" * 64, "revoked_at": None}) is None


def test_update_changes_one_row_and_says_so():
    host = make_host()
    other = make_host(host_id="h-2", hostname="db-01")
    later = T0 + dt.timedelta(hours=1)
    assert rowsql.update(Host, host.pk, {"hostname": "web-02", "last_seen": later, "process_count": 7}) == 1
    host.refresh_from_db()
    other.refresh_from_db()
    assert (host.hostname, host.last_seen, host.process_count) == ("web-02", later, 7)
    assert (other.hostname, other.last_seen) == ("db-01", T0)
    assert rowsql.update(Host, 10**9, {"hostname": "ghost"}) == 0


def test_update_keeps_an_equal_value_and_writes_a_different_one():
    host = make_host()
    Host.objects.filter(pk=host.pk).update(process_index="sshd\nnginx")
    for index, count in [("sshd\nnginx", 3), ("sshd\npostgres", 4)]:
        assert rowsql.update(Host, host.pk, {"process_index": index, "process_count": count},
                             keep_if_equal=("process_index", "fqdn")) == 1
        assert Host.objects.values_list("process_index", "process_count").get(pk=host.pk) == (index, count)


def test_update_writes_none_to_a_column_it_would_keep_when_equal():
    host = make_host()
    Host.objects.filter(pk=host.pk).update(memory_total_bytes=8 << 30)
    assert rowsql.update(Host, host.pk, {"memory_total_bytes": None},
                         keep_if_equal=("memory_total_bytes",)) == 1
    assert Host.objects.values_list("memory_total_bytes", flat=True).get(pk=host.pk) is None


def test_a_duplicate_insert_raises_djangos_integrity_error():
    from django.db import IntegrityError, transaction

    host = make_host()
    values = snapshot_values(host)
    rowsql.insert(Snapshot, values)
    with pytest.raises(IntegrityError), transaction.atomic():
        rowsql.insert(Snapshot, {**values, "file_offset": 99})
    assert Snapshot.objects.count() == 1


def test_recorded_queries_still_see_every_statement():
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    host = make_host()
    with CaptureQueriesContext(connection) as queries:
        pk = rowsql.insert(Snapshot, snapshot_values(host))
        rowsql.update(Snapshot, pk, {"file_length": 11})
        rowsql.select_one(Snapshot, ["file_length"], where={"id": pk})
    assert [query["sql"].split()[0] for query in queries.captured_queries] == ["INSERT", "UPDATE", "SELECT"]
