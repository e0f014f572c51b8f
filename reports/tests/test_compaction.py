"""Compaction of closed days: the ``.zst`` format, late snapshots, crash points, and every reader on it.

Store tests use real files; the crash tests SIGKILL a real child process at
each step of the protocol in ``reports.store``; the service and command tests
go through the real upload service, database and API.
"""

from __future__ import annotations

import datetime as dt
import json
import multiprocessing
import os
import signal

import pytest
import zstandard
from django.core import checks
from django.utils import timezone

from reports import addresses, services, store
from reports.models import Snapshot
from relevo_testing.factories import make_payload
from reports.tests import helpers

DAY = dt.date(2026, 11, 27)
IP = addresses.parse_ip("10.0.0.5")


def doc(n: int, size: int = 40) -> bytes:
    return json.dumps({"n": n, "pad": f"{n:x}" * size}, separators=(",", ":")).encode()


def append(document: bytes, ip=IP, day=DAY) -> store.Appended:
    with store.locked_for_append(ip, day) as writer:
        return writer.append(document)


def compact(ip=IP, day=DAY) -> int:
    with store.locked_for_append(ip, day) as writer:
        return writer.compact()


def read_day(ip=IP, day=DAY) -> list[dict] | None:
    stream = store.open_day(ip, day)
    if stream is None:
        return None
    length = len(stream)
    raw = stream.read()
    assert len(raw) == length
    return json.loads(raw)


def decompressed(path) -> bytes:
    """What ``zstdcat`` prints: every frame decompressed, skippable frames skipped."""
    with open(path, "rb") as raw:
        return zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True).read()


def numbers(items) -> list[int]:
    return [item["n"] for item in items]


# --- the format -------------------------------------------------------------------

def test_a_compacted_day_decompresses_to_the_day_file_byte_for_byte(data_dir, monkeypatch):
    monkeypatch.setattr(store, "COMPACT_FRAME_BYTES", 3000)  # several frames
    placed = [append(doc(n, 300)) for n in range(40)]
    plain = (data_dir / "10.0.0.5_2026-11-27.json").read_bytes()
    assert compact() == 40
    assert sorted(os.listdir(data_dir)) == ["10.0.0.5_2026-11-27.json.zst"]
    zst = data_dir / "10.0.0.5_2026-11-27.json.zst"
    assert decompressed(zst) == plain
    assert len(zst.read_bytes()) < len(plain) / 5
    compacted = store.CompactedDay.open(zst)
    try:
        assert len(compacted.frames) > 5 and compacted.size == len(plain)
    finally:
        compacted.close()
    assert store.open_day(IP, DAY).read() == plain
    for n, where in enumerate(placed):  # offsets recorded at append time still read, by frame
        assert store.read_document(where.file_name, where.offset, where.length) == doc(n, 300)
    assert store.read_document(placed[0].file_name, placed[0].offset + 1, placed[0].length) is None
    assert [(ip, day) for ip, day, _ in store.iter_day_files()] == [(IP, DAY)]
    assert compact() == 0  # nothing left to do: idempotent


def test_a_late_snapshot_for_a_compacted_day_is_kept_and_merged_by_the_next_compaction(data_dir):
    early = [append(doc(n)) for n in range(3)]
    compact()
    late = [append(doc(n)) for n in (3, 4)]
    assert sorted(os.listdir(data_dir)) == ["10.0.0.5_2026-11-27.json", "10.0.0.5_2026-11-27.json.zst"]
    assert numbers(read_day()) == [0, 1, 2, 3, 4]
    for n, where in enumerate(early + late):
        assert store.read_document(where.file_name, where.offset, where.length) == doc(n)
    with store.locked_for_append(IP, DAY) as writer:
        assert [o for o, _ in writer.documents()] == [w.offset for w in early + late]
        assert writer.documents_end == late[-1].offset + late[-1].length
    assert compact() == 2
    assert sorted(os.listdir(data_dir)) == ["10.0.0.5_2026-11-27.json.zst"]
    merged = decompressed(data_dir / "10.0.0.5_2026-11-27.json.zst")
    assert numbers(json.loads(merged)) == [0, 1, 2, 3, 4]
    for n, where in enumerate(early + late):  # the late offsets were the merged ones all along
        assert merged[where.offset:where.offset + where.length] == doc(n)
        assert store.read_document(where.file_name, where.offset, where.length) == doc(n)
    again = append(doc(5))
    assert numbers(read_day()) == [0, 1, 2, 3, 4, 5]
    assert store.read_document(again.file_name, again.offset, again.length) == doc(5)


def test_a_plain_file_the_zst_already_holds_is_ignored_emptied_by_a_writer_and_removed(data_dir):
    """The state a crash between rename and unlink leaves: both files, the same documents."""
    placed = [append(doc(n)) for n in range(3)]
    plain_path = data_dir / "10.0.0.5_2026-11-27.json"
    leftover = plain_path.read_bytes()
    compact()
    plain_path.write_bytes(leftover)
    assert numbers(read_day()) == [0, 1, 2]
    assert [n for n, w in enumerate(placed) if store.read_document(w.file_name, w.offset, w.length) != doc(n)] == []
    assert compact() == 0  # the next compaction finishes step 3
    assert sorted(os.listdir(data_dir)) == ["10.0.0.5_2026-11-27.json.zst"]
    plain_path.write_bytes(leftover)
    late = append(doc(3))  # a writer empties the leftover before appending
    assert json.loads(plain_path.read_bytes()) == [json.loads(doc(3))]
    assert numbers(read_day()) == [0, 1, 2, 3]
    assert store.read_document(late.file_name, late.offset, late.length) == doc(3)


def test_a_compacted_day_reads_the_same_through_a_late_plain_file_opened_before_a_merge(data_dir):
    """A plain file opened, then merged and replaced: the reader must not place offsets in it."""
    compact_first = [append(doc(n)) for n in range(2)]
    compact()
    late = append(doc(2))
    plain_fd = os.open(data_dir / late.file_name, os.O_RDONLY)
    try:
        compact()
        newer = append(doc(3, 41))
        compacted = store.CompactedDay.open(data_dir / (late.file_name + ".zst"))
        try:
            assert compacted.has_merged(plain_fd)  # what read_document checks before using a plain file
        finally:
            compacted.close()
    finally:
        os.close(plain_fd)
    for n, where in enumerate([*compact_first, late, newer]):
        assert store.read_document(where.file_name, where.offset, where.length) == doc(n, 41 if n == 3 else 40)


def test_a_linked_or_damaged_zst_is_refused_and_by_offset_reads_fall_back(data_dir, tmp_path):
    placed = append(doc(0))
    compact()
    zst = data_dir / "10.0.0.5_2026-11-27.json.zst"
    good = zst.read_bytes()
    for bad in (good[:-1], good[:20] + b"x" * 30 + good[50:]):
        zst.write_bytes(bad)
        assert store.read_document(placed.file_name, placed.offset, placed.length) is None  # the row's copy serves
        with pytest.raises(store.StoreError):
            store.open_day(IP, DAY).read()
    zst.unlink()
    (tmp_path / "elsewhere.zst").write_bytes(good)
    zst.symlink_to(tmp_path / "elsewhere.zst")
    assert store.read_document(placed.file_name, placed.offset, placed.length) is None
    with pytest.raises(store.StoreError, match="symbolic link"):
        append(doc(1))


# --- crash points: a real process killed with SIGKILL at each step ------------------------

STEPS = ["writing", "before-rename", "after-rename", "before-unlink", "after-unlink"]


def _compact_and_die_at(folder: str, step: str) -> None:
    from django.conf import settings

    settings.INVENTORY_DATA_DIR = folder
    settings.INVENTORY_FSYNC = True
    real_pwrite, real_replace, real_unlink, real_fsync_dir = (
        store._pwrite_all, os.replace, os.unlink, store._fsync_dir)
    state = {"renamed": False, "unlinked": False}

    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    def pwrite(fd, data, offset):
        if step == "writing" and offset > 0:
            real_pwrite(fd, data[: len(data) // 2], offset)
            die()
        real_pwrite(fd, data, offset)

    def replace(src, dst):
        if step == "before-rename":
            die()
        real_replace(src, dst)
        state["renamed"] = True

    def unlink(path):
        if step == "before-unlink" and str(path).endswith(".json"):
            die()
        real_unlink(path)
        state["unlinked"] = str(path).endswith(".json")

    def fsync_dir(folder):
        real_fsync_dir(folder)
        if (step == "after-rename" and state["renamed"]) or (step == "after-unlink" and state["unlinked"]):
            die()

    store._pwrite_all, store._fsync_dir = pwrite, fsync_dir
    os.replace, os.unlink = replace, unlink
    compact()
    os._exit(0)  # the step was never reached: the test fails on the exit code


@pytest.mark.parametrize("late", [False, True], ids=["first", "merge"])
@pytest.mark.parametrize("step", STEPS)
def test_compaction_killed_at_each_step_leaves_the_day_whole_and_a_rerun_finishes(data_dir, step, late):
    placed = [append(doc(n, 2000)) for n in range(30)]
    expected = list(range(30))
    if late:
        compact()
        placed += [append(doc(n, 2000)) for n in range(30, 35)]
        expected = list(range(35))
    before = sorted(os.listdir(data_dir))
    proc = multiprocessing.get_context("fork").Process(target=_compact_and_die_at, args=(str(data_dir), step))
    proc.start()
    proc.join(60)
    assert proc.exitcode == -signal.SIGKILL, f"the child did not die at {step}"

    assert numbers(read_day()) == expected  # whole, readable, nothing twice
    for n, where in enumerate(placed):
        assert store.read_document(where.file_name, where.offset, where.length) == doc(n, 2000)
    late_doc = append(doc(99))  # a writer after the crash is not lost, nor duplicated
    assert numbers(read_day()) == [*expected, 99]

    compact()
    assert sorted(os.listdir(data_dir)) == ["10.0.0.5_2026-11-27.json.zst"], before
    assert numbers(json.loads(decompressed(data_dir / "10.0.0.5_2026-11-27.json.zst"))) == [*expected, 99]
    for n, where in [*enumerate(placed), (99, late_doc)]:
        assert store.read_document(where.file_name, where.offset, where.length) == doc(n, 40 if n == 99 else 2000)


# --- services, commands and the API on compacted days ---------------------------------

NOW = timezone.now().replace(microsecond=0)
# Noon of a day five days back, so that minutes around it stay on that day in any time zone offset.
OLD_NOON = timezone.localtime(NOW).replace(hour=12, minute=0, second=0) - dt.timedelta(days=5)


def ingest(*, days_ago: float, host_id: str = "host-1", ip: str = "10.0.0.5") -> dict:
    """days_ago 0 is now; anything else is that many days after OLD_NOON's day (4.99: 5 days ago, later)."""
    collected = NOW if days_ago == 0 else OLD_NOON + dt.timedelta(days=5 - days_ago)
    body = make_payload(host_id=host_id, collected_at=collected)
    helpers.ingest(body, ip=ip, now=NOW)
    return body


def ids(items) -> list[str]:
    return [item["snapshot_id"] for item in items]


@pytest.fixture
def old_days():
    """Two hosts, each with two snapshots five days ago and one today."""
    return {ip: [ingest(days_ago=5.0, host_id=ip, ip=ip), ingest(days_ago=4.99, host_id=ip, ip=ip),
                 ingest(days_ago=0, host_id=ip, ip=ip)]
            for ip in ("10.0.0.5", "10.0.0.6")}


@pytest.mark.django_db
def test_compact_command_dry_run_default_grace_and_before(data_dir, old_days):
    before = sorted(os.listdir(data_dir))
    out = helpers.command("compact", "--dry-run")
    old_day = OLD_NOON.date()
    assert f"would compact 10.0.0.5_{old_day}.json (2 snapshots)" in out
    assert "would compact 2 day files, 4 snapshots" in out
    assert sorted(os.listdir(data_dir)) == before
    assert "compacted 2 day files, 4 snapshots" in helpers.command("compact")
    assert sorted(p for p in os.listdir(data_dir) if p.endswith(".zst")) == [
        f"10.0.0.5_{old_day}.json.zst", f"10.0.0.6_{old_day}.json.zst"]
    assert "compacted 0 day files" in helpers.command("compact")
    ingest(days_ago=4.98, host_id="10.0.0.5")  # late: only it is left to merge
    assert f"would compact 10.0.0.5_{old_day}.json (1 snapshots)" in helpers.command("compact", "--dry-run")
    assert "compacted 1 day files, 1 snapshots" in helpers.command("compact")
    tomorrow = (timezone.localdate() + dt.timedelta(days=1)).isoformat()
    assert "compacted 2 day files, 2 snapshots" in helpers.command("compact", "--before", tomorrow)
    with pytest.raises(Exception, match="not a date"):
        helpers.command("compact", "--before", "yesterday")


@pytest.mark.django_db
def test_query_download_and_by_id_reads_on_compacted_days(data_dir, old_days, reader_client, client,
                                                          django_user_model):
    old_day = OLD_NOON.date().isoformat()
    expected = ids(old_days["10.0.0.5"][:2])
    answer_before = b"".join(reader_client.get("/query", {"ip": "10.0.0.5", "date": old_day}).streaming_content)
    helpers.command("compact", "--before", timezone.localdate().isoformat())
    assert not (data_dir / f"10.0.0.5_{old_day}.json").exists()

    response = reader_client.get("/query", {"ip": "10.0.0.5", "date": old_day})
    body = b"".join(response.streaming_content)
    assert response.status_code == 200 and int(response["Content-Length"]) == len(body)
    assert body == answer_before and ids(json.loads(body)["snapshots"]) == expected

    for snapshot_id in expected:
        document = reader_client.get(f"/api/snapshots/{snapshot_id}/").json()["document"]
        assert document["snapshot_id"] == snapshot_id
        row = Snapshot.objects.get(snapshot_id=snapshot_id)
        assert store.read_document(row.file_name, row.file_offset, row.file_length) is not None  # not the row's copy

    client.force_login(django_user_model.objects.create_user("ops", password="a-long-test-password"))
    pk = Snapshot.objects.get(snapshot_id=expected[0]).host_id
    download = client.get(f"/hosts/{pk}/days/10.0.0.5/{old_day}.json")
    raw = b"".join(download.streaming_content)
    assert download.status_code == 200 and int(download["Content-Length"]) == len(raw)
    assert ids(json.loads(raw)) == expected


@pytest.mark.django_db
def test_a_late_upload_for_a_compacted_day_is_stored_read_and_merged(data_dir, old_days, reader_client):
    old_day = OLD_NOON.date()
    helpers.command("compact")
    late = ingest(days_ago=4.98, host_id="10.0.0.5")
    expected = [*ids(old_days["10.0.0.5"][:2]), late["snapshot_id"]]
    query = {"ip": "10.0.0.5", "date": old_day.isoformat()}
    assert ids(json.loads(b"".join(reader_client.get("/query", query).streaming_content))["snapshots"]) == expected
    row = Snapshot.objects.get(snapshot_id=late["snapshot_id"])
    assert store.read_document(row.file_name, row.file_offset, row.file_length) == row.document_bytes
    helpers.command("compact")
    assert not (data_dir / f"10.0.0.5_{old_day}.json").exists()
    assert store.read_document(row.file_name, row.file_offset, row.file_length) == row.document_bytes
    assert ids(json.loads(b"".join(reader_client.get("/query", query).streaming_content))["snapshots"]) == expected


@pytest.mark.django_db
def test_reindex_rebuilds_the_database_from_compacted_days(data_dir, old_days):
    old_day = OLD_NOON.date()
    helpers.command("compact")
    ingest(days_ago=4.98, host_id="10.0.0.5")  # a late one, in a plain file beside the .zst
    rows = {r.snapshot_id: (r.file_name, r.file_offset, r.file_length) for r in Snapshot.objects.all()}
    Snapshot.objects.all().delete()
    assert "reindexed 4 day files: 7 snapshots recorded" in helpers.command("reindex")
    assert {r.snapshot_id: (r.file_name, r.file_offset, r.file_length) for r in Snapshot.objects.all()} == rows
    assert "0 snapshots recorded" in helpers.command("reindex")
    assert (data_dir / f"10.0.0.5_{old_day}.json.zst").exists()


@pytest.mark.django_db
def test_export_writes_compacted_days_back_and_reindex_agrees(data_dir, old_days):
    old_day = OLD_NOON.date()
    helpers.command("compact")
    late = ingest(days_ago=4.98, host_id="10.0.0.5")
    zst, plain = data_dir / f"10.0.0.5_{old_day}.json.zst", data_dir / f"10.0.0.5_{old_day}.json"
    expected = decompressed(zst)[:-3] + b"\n," + plain.read_bytes()[2:]
    assert "exported 4 days: 4 up to date" in helpers.command("export_snapshots")  # the compacted day agrees as it is

    plain.unlink()  # the late file lost: the day is written back compacted, the late one merged
    assert f"written 10.0.0.5_{old_day}.json (3 snapshots)" in helpers.command("export_snapshots")
    assert not plain.exists() and decompressed(zst) == expected

    zst.unlink()  # everything lost: a plain file comes back, and compacts to the same bytes
    helpers.command("export_snapshots")
    assert ids(json.loads(plain.read_bytes())) == [*ids(old_days["10.0.0.5"][:2]), late["snapshot_id"]]
    helpers.command("compact")
    assert decompressed(zst) == expected
    for row in Snapshot.objects.all():
        assert store.read_document(row.file_name, row.file_offset, row.file_length) == row.document_bytes

    Snapshot.objects.all().delete()  # and the other way: the rows come back from the compacted files
    assert "7 snapshots recorded" in helpers.command("reindex")
    assert "exported 4 days: 4 up to date" in helpers.command("export_snapshots")


@pytest.mark.django_db
def test_prune_removes_compacted_days_with_their_late_files(data_dir, old_days):
    helpers.command("compact")
    ingest(days_ago=4.98, host_id="10.0.0.5")
    out = helpers.command("prune", "--older-than", "2d")
    assert "removed 2 day files, 5 snapshots" in out
    assert sorted(os.listdir(data_dir)) == sorted(
        name for name in os.listdir(data_dir) if name.endswith(".json") and "relevo" not in name)
    assert not [name for name in os.listdir(data_dir) if name.endswith(".zst")]
    assert Snapshot.objects.count() == 2


def test_the_grace_period_setting_is_checked(settings):
    from reports.checks import check_operations_settings

    settings.INVENTORY_COMPACT_AFTER_DAYS = 0
    assert "reports.E016" in [m.id for m in check_operations_settings()]
    settings.INVENTORY_COMPACT_AFTER_DAYS = 1
    assert [m.level for m in check_operations_settings() if m.id == "reports.W016"] == [checks.WARNING]
    settings.INVENTORY_COMPACT_AFTER_DAYS = 2
    assert not [m for m in check_operations_settings() if m.id in ("reports.E016", "reports.W016")]
    assert services.compact_cutoff(now=NOW) == timezone.localtime(NOW).date() - dt.timedelta(days=2)


def _compact_in_child(folder: str) -> None:
    from django.conf import settings

    settings.INVENTORY_DATA_DIR = folder
    compact()


def test_two_compactions_of_one_day_at_once_leave_one_whole_copy(data_dir):
    """Several ``compact`` runs may share the work: the one that waits finds nothing left to do."""
    placed = [append(doc(n, 3000)) for n in range(60)]
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_compact_in_child, args=(str(data_dir),)) for _ in range(3)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
        assert proc.exitcode == 0
    assert sorted(os.listdir(data_dir)) == ["10.0.0.5_2026-11-27.json.zst"]
    assert numbers(read_day()) == list(range(60))
    for n, where in enumerate(placed):
        assert store.read_document(where.file_name, where.offset, where.length) == doc(n, 3000)
