"""Migrations that touch stored rows, run forward over rows written by the schema before them."""

from __future__ import annotations

import datetime as dt
import uuid
import zlib

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from relevo_testing.factories import encode, make_payload
from reports.models import Snapshot

BEFORE_RENAME = ("reports", "0004_throttle_counter_unlogged")


def migrate_back(target: tuple[str, str]):
    """Take the reports app back to *target* and return the models as they were there."""
    executor = MigrationExecutor(connection)
    executor.migrate([target])
    return executor.loader.project_state([target]).apps


def migrate_to_latest() -> None:
    """Forward again, so the tests after this one find the schema they expect."""
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())


@pytest.mark.django_db(transaction=True)
def test_document_rename_keeps_zlib_blobs_readable():
    """Rows written while the column was document_zlib keep their blob and read through the model."""
    document = encode(make_payload(processes=5))
    try:
        old = migrate_back(BEFORE_RENAME)
        now = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.timezone.utc)
        host = old.get_model("reports", "Host").objects.create(
            host_id="pre-zstd", hostname="pre-zstd", last_ip="10.0.0.5", first_seen=now, last_seen=now)
        snapshot_id = uuid.uuid4()
        old.get_model("reports", "Snapshot").objects.create(
            snapshot_id=snapshot_id, host=host, ip="10.0.0.5", day=now.date(), collected_at=now, received_at=now,
            file_name="10.0.0.5_2026-11-27.json", file_offset=2, file_length=len(document),
            document_zlib=zlib.compress(document, 1))
    finally:
        migrate_to_latest()
    assert Snapshot.objects.get(snapshot_id=snapshot_id).document_bytes == document


def _indexes_on(columns: list[str]) -> list[str]:
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, Snapshot._meta.db_table)
    return [name for name, info in constraints.items()
            if info["index"] and not info["primary_key"] and info["columns"][: len(columns)] == columns]


@pytest.mark.django_db(transaction=True)
def test_the_host_column_keeps_one_index_and_gets_its_own_back_on_the_way_down():
    assert _indexes_on(["host_id"]) == ["snapshot_host_time"]
    try:
        migrate_back(("reports", "0005_snapshot_document_compressed"))
        assert len(_indexes_on(["host_id"])) == 2
    finally:
        migrate_to_latest()
    assert _indexes_on(["host_id"]) == ["snapshot_host_time"]


@pytest.mark.django_db(transaction=True)
def test_the_search_text_moves_to_its_own_table_and_back():
    """0018 copies each host's text into HostSearch (digest left "not known"); going back copies it home."""
    from reports import selectors
    from reports.models import Host, HostSearch

    now = dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.timezone.utc)
    try:
        old = migrate_back(("reports", "0017_alert_rule_os_version"))
        old.get_model("reports", "Host").objects.create(
            host_id="moved", hostname="moved", last_ip="10.0.0.5", first_seen=now, last_seen=now,
            search_text="moved\n10.0.0.5\ndebian gnu/linux 12")
    finally:
        migrate_to_latest()
    host = Host.objects.get(host_id="moved")
    assert HostSearch.objects.get(host=host).text == "moved\n10.0.0.5\ndebian gnu/linux 12"
    assert host.search_digest == ""
    assert list(selectors.host_list(search="GNU/Linux 12")) == [host]
    try:
        back = migrate_back(("reports", "0017_alert_rule_os_version"))
        assert back.get_model("reports", "Host").objects.get(host_id="moved").search_text.startswith("moved\n")
    finally:
        migrate_to_latest()
