"""prune, reindex and export_snapshots: the day files and the database rebuild each other.

In-process tests cover the rules (what is removed, what is never
overwritten); the system tests go through a real gunicorn and compare
``/query`` answers byte for byte before and after losing one of the stores.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import uuid

import psycopg
import pytest
import requests
from django.core.management import call_command
from django.core.management.base import CommandError
from psycopg import sql

from relevo_testing import live
from relevo_testing.factories import encode, make_payload
from reports import addresses, services, store
from reports.models import Host, Snapshot
from reports.tests import helpers

NOW = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
IP = addresses.parse_ip("10.0.0.5")


def ingest(*, days_ago: int, host_id: str = "host-1", ip=IP):
    """Store a snapshot collected *days_ago* days before NOW, on a server whose clock reads NOW."""
    return helpers.ingest(host_id=host_id, collected_at=NOW - dt.timedelta(days=days_ago), ip=ip, now=NOW)


def day_files(data_dir) -> list[str]:
    return sorted(p.name for p in data_dir.iterdir() if store.parse_file_name(p.name))


# --- prune ----------------------------------------------------------------------

@pytest.mark.django_db
def test_prune_dry_run_lists_old_days_and_changes_nothing(data_dir):
    old = ingest(days_ago=100, host_id="gone")
    ingest(days_ago=1)
    before = {name: (data_dir / name).read_bytes() for name in day_files(data_dir)}
    out = helpers.command("prune", "--older-than", "90d", "--dry-run")
    assert f"would remove {old.file} (1 snapshots)" in out
    assert "would remove 1 day files, 1 snapshots" in out
    assert {name: (data_dir / name).read_bytes() for name in day_files(data_dir)} == before
    assert Snapshot.objects.count() == 2 and Host.objects.count() == 2


@pytest.mark.django_db
def test_prune_removes_old_files_rows_and_hosts_left_empty(data_dir):
    old = ingest(days_ago=100, host_id="gone")
    ingest(days_ago=95, host_id="kept")
    recent = ingest(days_ago=1, host_id="kept")
    out = helpers.command("prune", "--older-than", "90d")
    assert f"removed {old.file}" in out
    assert day_files(data_dir) == [recent.file]
    assert list(Snapshot.objects.values_list("snapshot_id", flat=True)) == [uuid.UUID(recent.snapshot_id)]
    assert list(Host.objects.values_list("host_id", flat=True)) == ["kept"]
    assert Host.objects.get().latest_snapshot.snapshot_id == uuid.UUID(recent.snapshot_id)


@pytest.mark.django_db
def test_prune_removes_a_day_that_only_one_store_still_has(data_dir):
    only_rows = ingest(days_ago=120, ip=addresses.parse_ip("10.0.0.6"))
    (data_dir / only_rows.file).unlink()
    only_file = ingest(days_ago=110, ip=addresses.parse_ip("10.0.0.7"), host_id="h7")
    Snapshot.objects.filter(snapshot_id=only_file.snapshot_id).delete()
    helpers.command("prune", "--older-than", "90d")
    assert day_files(data_dir) == [] and Snapshot.objects.count() == 0


@pytest.mark.django_db
def test_prune_uses_the_retention_setting_and_refuses_to_guess(data_dir, settings):
    settings.INVENTORY_RETENTION_DAYS = 0
    with pytest.raises(CommandError, match="older-than"):
        helpers.command("prune")
    with pytest.raises(CommandError, match="not a duration"):
        helpers.command("prune", "--older-than", "ninety days")
    ingest(days_ago=40)
    settings.INVENTORY_RETENTION_DAYS = 30
    assert "removed 1 day files, 1 snapshots" in helpers.command("prune")
    assert Snapshot.objects.count() == 0


# --- reindex / export in-process -------------------------------------------------

@pytest.mark.django_db
def test_reindex_is_idempotent_and_export_rebuilds_identical_files(data_dir):
    results = [ingest(days_ago=d, host_id=f"h{d % 2}") for d in (0, 0, 1, 1, 1)]
    files = {name: (data_dir / name).read_bytes() for name in day_files(data_dir)}
    assert "reindexed 2 day files: 0 snapshots recorded" in helpers.command("reindex")
    rows = {s.snapshot_id: (s.file_offset, s.file_length) for s in Snapshot.objects.all()}
    Snapshot.objects.all().delete()
    Host.objects.all().delete()
    assert "reindexed 2 day files: 5 snapshots recorded" in helpers.command("reindex")
    assert {s.snapshot_id: (s.file_offset, s.file_length) for s in Snapshot.objects.all()} == rows
    assert Host.objects.count() == 2
    for name in files:
        (data_dir / name).unlink()
    assert "2 written" in helpers.command("export_snapshots")
    assert {name: (data_dir / name).read_bytes() for name in day_files(data_dir)} == files
    assert "2 up to date" in helpers.command("export_snapshots")
    assert len(results) == Snapshot.objects.count()


@pytest.mark.django_db
def test_export_never_overwrites_a_file_with_snapshots_the_database_lacks(data_dir):
    kept = ingest(days_ago=0)
    ingest(days_ago=0)
    Snapshot.objects.filter(snapshot_id=kept.snapshot_id).delete()
    before = (data_dir / kept.file).read_bytes()
    err = io.StringIO()
    with pytest.raises(CommandError, match="run reindex"):
        call_command("export_snapshots", stdout=io.StringIO(), stderr=err)
    assert "1 snapshots are not in the database" in err.getvalue()
    assert (data_dir / kept.file).read_bytes() == before
    change = services.day_export(ip=addresses.parse_ip(kept.ip), day=dt.date.fromisoformat(kept.date))
    assert (change.action, change.snapshots) == (services.DayAction.NOT_IN_DATABASE, 1)


@pytest.mark.django_db
def test_export_dry_run_writes_nothing(data_dir):
    result = ingest(days_ago=0)
    (data_dir / result.file).unlink()
    assert f"would write {result.file}" in helpers.command("export_snapshots", "--dry-run")
    assert day_files(data_dir) == []


# --- system tests: a real server loses one store and gets it back ------------------

ADDRESSES = ["10.20.0.1", "10.20.0.2", "2001:db8::7"]


def _upload_fleet(server) -> None:
    """Two days of snapshots from three addresses (behind a trusted proxy: 127.0.0.1)."""
    for index in range(12):
        address = ADDRESSES[index % 3]
        payload = make_payload(host_id=f"host-{address}", hostname=f"web-{index % 3}",
                               collected_at=helpers.same_day_start() - dt.timedelta(days=index % 2, minutes=index))
        response = requests.post(f"{server.url}/upload", data=encode(payload), timeout=30, headers={
            "Authorization": f"Token {server.agent_token}", "Content-Type": "application/json",
            "X-Forwarded-For": address})
        assert response.status_code == 201, response.text


def _answers(server) -> dict[str, bytes]:
    """Every /query answer of the fleet: each address by day, its default day and its latest."""
    headers = {"Authorization": f"Token {server.reader_token}"}
    answers = {}
    for address in ADDRESSES:
        default = requests.get(f"{server.url}/query", params={"ip": address}, headers=headers, timeout=30)
        assert default.status_code == 200, default.text
        answers[f"{address} default"] = default.content
        for day in default.json()["available_dates"]:
            answers[f"{address} {day}"] = requests.get(
                f"{server.url}/query", params={"ip": address, "date": day}, headers=headers, timeout=30).content
        answers[f"{address} latest"] = requests.get(
            f"{server.url}/query", params={"ip": address, "latest": "true"}, headers=headers, timeout=30).content
    assert len(answers) == 12
    return answers


def _empty_the_database(env: dict[str, str]) -> None:
    """Lose the database: drop and recreate PostgreSQL's, or delete SQLite's files."""
    url = env.get("DATABASE_URL", "")
    if url:
        admin = url.rsplit("/", 1)[0] + "/postgres"
        name = url.rsplit("/", 1)[1]
        with psycopg.connect(admin, autocommit=True, connect_timeout=10) as conn:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return
    data = env["INVENTORY_DATA_DIR"]
    names = [n for n in os.listdir(data) if n.startswith("relevo.sqlite3")]
    assert names, "the server's SQLite database was not where expected"
    for name in names:
        os.unlink(os.path.join(data, name))


def _restart(server, tmp_path_factory, *, new_credentials: bool):
    credentials = {"agent_token": server.agent_token, "reader_token": server.reader_token,
                   "admin_password": server.admin_password}
    if new_credentials:
        credentials["reader_token"] = live.manage(server.env, "create_api_token", "admin").strip().splitlines()[-1]
    return live.start(tmp_path_factory.mktemp("restart"), prepared=(server.env, credentials))


@pytest.mark.slow
def test_reindex_after_losing_the_database_answers_queries_byte_for_byte(tmp_path_factory):
    base = tmp_path_factory.mktemp("reindex")
    server = live.start(base, extra_env={"INVENTORY_TRUSTED_PROXIES": "127.0.0.1"})
    try:
        _upload_fleet(server)
        before = _answers(server)
        server.process.terminate()
        server.process.wait(timeout=15)
        _empty_the_database(server.env)
        live.manage(server.env, "migrate", "--noinput", "-v", "0")
        out = live.manage(server.env, "reindex")
        assert "reindexed 6 day files: 12 snapshots recorded" in out
        assert "0 snapshots recorded" in live.manage(server.env, "reindex")
        live.manage({**server.env, "DJANGO_SUPERUSER_PASSWORD": "pw-for-tests-2"}, "createsuperuser",
                    "--noinput", "--username", "admin", "--email", "admin@example.invalid")
        restarted = _restart(server, tmp_path_factory, new_credentials=True)
        try:
            assert _answers(restarted) == before
        finally:
            restarted.process.terminate()
            restarted.process.wait(timeout=15)
    finally:
        server.stop()


@pytest.mark.slow
def test_export_after_losing_the_day_files_answers_queries_byte_for_byte(tmp_path_factory):
    base = tmp_path_factory.mktemp("export")
    server = live.start(base, extra_env={"INVENTORY_TRUSTED_PROXIES": "127.0.0.1"})
    try:
        _upload_fleet(server)
        before = _answers(server)
        files = {p.name: p.read_bytes() for p in server.data_dir.iterdir() if store.parse_file_name(p.name)}
        assert len(files) == 6
        server.process.terminate()
        server.process.wait(timeout=15)
        for name in files:
            (server.data_dir / name).unlink()
        assert "6 written" in live.manage(server.env, "export_snapshots")
        assert {p.name: p.read_bytes() for p in server.data_dir.iterdir() if store.parse_file_name(p.name)} == files
        restarted = _restart(server, tmp_path_factory, new_credentials=False)
        try:
            assert _answers(restarted) == before
            assert json.loads(before[f"{ADDRESSES[0]} latest"])["snapshots"]
        finally:
            restarted.process.terminate()
            restarted.process.wait(timeout=15)
    finally:
        server.stop()


@pytest.mark.django_db
def test_reindex_reports_progress_on_long_runs(data_dir, monkeypatch):
    from reports.management.commands import reindex

    for days_ago in (0, 1, 2):
        ingest(days_ago=days_ago)
    monkeypatch.setattr(reindex, "PROGRESS_EVERY_SECONDS", 0)
    out = helpers.command("reindex")
    assert "1/3 day files" in out and "3/3 day files" in out
