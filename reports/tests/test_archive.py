"""The database's copy of a compacted host-day (``reports.archive``): byte-exact, checked, crash-safe, rebuildable.

The format tests run on real stored documents (the upload path's canonical
encoding of a changing series) and on odd ones; the service tests go
through the real upload service, compaction, ``reindex`` and
``export_snapshots`` on the test database (SQLite, or PostgreSQL under
``make test-postgres``); the crash test SIGKILLs a real ``manage.py`` process
at each step of the archive's write, on a database of its own.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import random
import subprocess
import sys
import uuid

import msgspec
import pytest
import zstandard
from django.utils import timezone

from relevo_testing import live
from relevo_testing.factories import make_payload
from reports import addresses, archive, documents, payload as payload_schema, selectors, store
from reports.models import DocumentArchive, Host, Snapshot
from reports.tests import helpers

NOW = timezone.now().replace(microsecond=0)
OLD_NOON = timezone.localtime(NOW).replace(hour=12, minute=0, second=0) - dt.timedelta(days=5)
OLD_DAY = OLD_NOON.date()
LIMIT = 1 << 30


def series(count: int, *, processes: int = 30, seed: int = 1) -> list[dict]:
    """A host's snapshots five minutes apart: CPU and memory figures change, processes come and go."""
    rng = random.Random(seed)
    body = make_payload(processes=processes, collected_at=OLD_NOON)
    next_pid = 5000
    out = []
    for step in range(count):
        body = json.loads(json.dumps(body))
        body["snapshot_id"] = str(uuid.uuid4())  # unique across tests: workers keep bases by snapshot_id
        body["collected_at"] = (OLD_NOON + dt.timedelta(minutes=5 * step)).isoformat()
        for process in rng.sample(body["processes"], len(body["processes"]) // 3):
            process["cpu_percent"] = round(rng.expovariate(1 / 3), 2)
        for process in rng.sample(body["processes"], len(body["processes"]) // 2):
            process["memory_rss_bytes"] = rng.randrange(1, 4000) * 4096
        if step % 3 == 2:  # one process replaced
            index = rng.randrange(len(body["processes"]))
            body["processes"][index] = {**body["processes"][index], "pid": next_pid,
                                        "create_time": body["collected_at"]}
            next_pid += 1
        body["memory"]["available_bytes"] = rng.randrange(1 << 30, 8 << 30)
        out.append(body)
    return out


def stored(body: dict) -> bytes:
    """The canonical stored document of an upload, as ingest writes it."""
    decoded = payload_schema.decode(json.dumps(body).encode(), now=timezone.now())
    return payload_schema.encode_stored(decoded, received_at=timezone.now(), ip="10.0.0.5")


def odd_documents() -> list[bytes]:
    """Documents a structural diff could get wrong; each must come back byte for byte."""
    base = {"a": 1, "name": "caf\u00e9 \U0001f600", "n": None, "processes": [
        {"pid": 7, "create_time": "t1", "cpu": 1.5, "rss": 4096, "cmd": ["x"]},
        {"pid": 7, "create_time": "t1", "cpu": 2.5, "rss": 8192, "cmd": ["y"]},  # the same key twice
        {"pid": 8, "create_time": None, "cpu": 0.0, "rss": 0, "cmd": []}]}
    docs = [base]

    def then(**changes):
        doc = json.loads(json.dumps(docs[-1]))
        for path, value in changes.items():
            *parents, last = path.split("__")
            target = doc
            for part in parents:
                target = target[int(part)] if part.isdigit() else target[part]
            target[int(last) if last.isdigit() else last] = value
        docs.append(doc)

    then(a=1.0)  # int to float: equal in Python, written apart
    then(a=True)
    then(processes__0__cpu=-0.0)  # equal to 0.0, written apart
    then(processes__0__cpu=0.0)
    then(processes__1__rss=2 ** 70)  # huge integers, and their differences
    then(processes__1__rss=-(2 ** 70) + 3)
    then(processes__2__cmd=[1])
    then(processes__2__cmd=[1.0])
    then(processes__0__pid=9, processes__0__create_time="t2")  # the pid reused by a new process
    then(processes__0__pid=7, processes__0__create_time="t1")
    then(n={"deep": [None, {"x": "\u0000\n\"\\"}]})
    then(n=None, name="\u65e5\u672c")
    then(processes=[])
    then(processes=[{"pid": 1}, {"pid": 1}, {"pid": 2, "extra": 1e300}])
    then(processes=[{"pid": 2, "extra": 1e-300}, {"pid": 1}])
    docs.append({"b": 1, "a": 2})  # other keys, other order
    docs.append({"a": 2, "b": 1})
    docs.append([1, 2, 3])  # not even an object
    return [msgspec.json.encode(d) for d in docs] + [
        b'{"spaced": 1 ,"kept":  "as is"}', b'{"a":1.50}', b'{"a":1e400}', b'{"a":1}', b'{"a":2}', b'{"a":1E5}']


def test_an_archive_gives_back_a_real_series_byte_for_byte_and_costs_less_than_the_rows():
    docs = [stored(body) for body in series(120)]
    blob = archive.build(docs, max_bytes=LIMIT)
    assert list(archive.documents_of(blob, max_bytes=LIMIT)) == docs
    for index in [0, 1, archive.KEY_EVERY - 1, archive.KEY_EVERY, archive.KEY_EVERY + 1, len(docs) - 1]:
        assert archive.document_at(blob, index, max_bytes=LIMIT) == docs[index]
    lines = zstandard.ZstdDecompressor().decompress(blob[4:]).split(b"\n")[1:]
    assert sum(line.startswith(b"[1,") for line in lines) == len(docs) - 2  # keys at 0 and KEY_EVERY only
    assert len(blob) < sum(len(documents.pack(d)) for d in docs) / 5


def test_odd_documents_come_back_byte_for_byte():
    docs = odd_documents()
    blob = archive.build(docs, max_bytes=LIMIT)
    assert list(archive.documents_of(blob, max_bytes=LIMIT)) == docs
    assert [archive.document_at(blob, i, max_bytes=LIMIT) for i in range(len(docs))] == docs


def test_a_damaged_archive_is_refused_never_read_wrong():
    docs = [stored(body) for body in series(20)]
    blob = archive.build(docs, max_bytes=LIMIT)
    flipped = bytearray(blob)
    flipped[len(blob) // 2] ^= 0x40
    with pytest.raises(documents.DocumentError):
        archive.document_at(bytes(flipped), 5, max_bytes=LIMIT)
    # A change that zstd's checksum cannot see (the stream recompressed): a figure in a diff.
    stream = zstandard.ZstdDecompressor().decompress(blob[4:])
    lines = stream.split(b"\n")
    diff = json.loads(lines[6])
    diff[1]["memory"]["available_bytes"][1] += 1
    lines[6] = json.dumps(diff, separators=(",", ":")).encode()
    forged = archive.ARCHIVE_MAGIC + zstandard.ZstdCompressor().compress(b"\n".join(lines))
    assert archive.document_at(forged, 4, max_bytes=LIMIT) == docs[4]  # before the damage: still right
    for read in (lambda: archive.document_at(forged, 5, max_bytes=LIMIT),
                 lambda: list(archive.documents_of(forged, max_bytes=LIMIT))):
        with pytest.raises(archive.ArchiveError, match="document 5 of the archive does not match its digest"):
            read()
    with pytest.raises(archive.ArchiveError, match="not a document archive"):
        archive.document_at(documents.pack(docs[0]), 0, max_bytes=LIMIT)
    with pytest.raises(archive.ArchiveError, match="more than"):
        archive.document_at(blob, 0, max_bytes=1000)
    with pytest.raises(archive.ArchiveError, match="holds 20 documents"):
        archive.document_at(blob, 20, max_bytes=LIMIT)
    assert archive.reference_index(archive.reference(7)) == 7
    assert archive.reference_index(documents.pack(docs[0])) is None


# --- on the database: compaction, late snapshots, reindex and export ------------------

def ingest_series(count: int, *, ip: str = "10.0.0.5", host_id: str = "host-1", seed: int = 1) -> list[dict]:
    bodies = series(count, seed=seed)
    for body in bodies:
        body["host"]["id"] = host_id
        helpers.ingest(body, ip=ip, now=NOW)
    return bodies


def day_documents(ip: str = "10.0.0.5") -> dict[str, bytes]:
    """snapshot_id -> the document as the day file holds it."""
    stream = store.open_day(addresses.parse_ip(ip), OLD_DAY)
    return {json.loads(d)["snapshot_id"]: d for d in
            (msgspec.json.encode(item) for item in json.loads(stream.read()))} if stream else {}


def assert_rows_match_files() -> None:
    for row in Snapshot.objects.all():
        from_file = store.read_document(row.file_name, row.file_offset, row.file_length)
        assert from_file is not None and row.document_bytes == from_file, row.snapshot_id


@pytest.mark.django_db
def test_compaction_archives_the_day_and_every_reader_gets_the_same_documents(data_dir, reader_client):
    bodies = ingest_series(30)
    ingest_series(3, ip="10.0.0.6", host_id="host-2", seed=2)
    before = {row.snapshot_id: row.document_bytes for row in Snapshot.objects.all()}
    assert "compacted 2 day files, 33 snapshots" in helpers.command("compact")

    assert DocumentArchive.objects.count() == 2
    assert DocumentArchive.objects.get(ip="10.0.0.5").count == 30
    rows = list(Snapshot.objects.order_by("file_offset"))
    assert all(row.is_archived and len(row.document_compressed) == 8 for row in rows)
    assert {row.snapshot_id: row.document_bytes for row in rows} == before
    assert_rows_match_files()
    one = bodies[17]["snapshot_id"]
    answer = reader_client.get(f"/api/snapshots/{one}/")
    assert answer.status_code == 200 and answer.json()["document"]["snapshot_id"] == one
    row = Snapshot.objects.get(snapshot_id=one)
    assert selectors.snapshot_document(snapshot=row) == payload_schema.decode_stored(before[row.snapshot_id])
    assert "compacted 0 day files" in helpers.command("compact")  # nothing left, and the archive is left as it is


@pytest.mark.django_db
def test_deleting_a_host_deletes_the_archives_no_row_points_into_any_more(data_dir):
    """Archives are keyed by address and day: one goes when its last host's rows do, however the host goes."""
    ingest_series(6, host_id="host-1")
    ingest_series(4, host_id="host-3", seed=3)  # the same address and day: one archive holds both hosts
    ingest_series(3, ip="10.0.0.6", host_id="host-2", seed=2)
    helpers.command("compact")
    assert set(DocumentArchive.objects.values_list("ip", "count")) == {("10.0.0.5", 10), ("10.0.0.6", 3)}

    Host.objects.get(host_id="host-2").delete()
    assert list(DocumentArchive.objects.values_list("ip", flat=True)) == ["10.0.0.5"]

    Host.objects.filter(host_id="host-1").delete()  # a queryset, as a cascade deletes
    assert DocumentArchive.objects.get().count == 10  # host-3's rows still point into it
    rows = list(Snapshot.objects.all())
    assert len(rows) == 4 and all(row.is_archived for row in rows)
    assert_rows_match_files()

    Host.objects.all().delete()
    assert not DocumentArchive.objects.exists() and not Snapshot.objects.exists()


@pytest.mark.django_db
def test_a_late_snapshot_keeps_its_own_blob_until_the_next_compaction_rebuilds_the_archive(data_dir):
    ingest_series(10)
    helpers.command("compact")
    late = make_payload(collected_at=OLD_NOON + dt.timedelta(hours=3))
    helpers.ingest(late, ip="10.0.0.5", now=NOW)
    row = Snapshot.objects.get(snapshot_id=late["snapshot_id"])
    assert not row.is_archived and row.document_compressed[:4] == documents.ZSTD_MAGIC  # a full frame
    assert_rows_match_files()
    assert "compacted 1 day files, 1 snapshots" in helpers.command("compact")
    assert DocumentArchive.objects.get().count == 11
    assert all(row.is_archived for row in Snapshot.objects.all())
    assert_rows_match_files()


@pytest.mark.django_db
def test_reindex_and_export_rebuild_each_store_from_the_other_on_archived_days(data_dir):
    ingest_series(12)
    helpers.command("compact")
    documents_before = {row.snapshot_id: row.document_bytes for row in Snapshot.objects.all()}
    zst = data_dir / f"10.0.0.5_{OLD_DAY}.json.zst"
    file_before = zst.read_bytes()
    content_before = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(file_before),
                                                              read_across_frames=True).read()

    zst.unlink()  # the files lost: written back from the archive
    assert f"written 10.0.0.5_{OLD_DAY}.json (12 snapshots)" in helpers.command("export_snapshots")
    helpers.command("compact")
    content = zstandard.ZstdDecompressor().stream_reader(zst.open("rb"), read_across_frames=True).read()
    assert content == content_before
    assert_rows_match_files()

    Snapshot.objects.all().delete()  # the database lost: the rows come back, and archived at once
    DocumentArchive.objects.all().delete()
    assert "12 snapshots recorded" in helpers.command("reindex")
    assert DocumentArchive.objects.get().count == 12
    assert all(row.is_archived for row in Snapshot.objects.all())
    assert {row.snapshot_id: row.document_bytes for row in Snapshot.objects.all()} == documents_before
    assert "exported 1 days: 1 up to date" in helpers.command("export_snapshots")


@pytest.mark.django_db
def test_a_damaged_or_missing_archive_is_reported_and_a_failed_build_keeps_the_rows(data_dir, monkeypatch, caplog):
    ingest_series(8)
    blobs = dict(Snapshot.objects.values_list("pk", "document_compressed"))

    def refuse(*args, **kwargs):
        raise archive.ArchiveError("document 3 does not come back from its archive byte for byte")
    monkeypatch.setattr(archive, "build", refuse)
    assert "compacted 1 day files, 8 snapshots" in helpers.command("compact")
    assert "was not archived: document 3 does not come back" in caplog.text
    assert {pk: bytes(b) for pk, b in Snapshot.objects.values_list("pk", "document_compressed")} == {
        pk: bytes(b) for pk, b in blobs.items()}
    assert not DocumentArchive.objects.exists()
    monkeypatch.undo()
    assert f"archived 10.0.0.5_{OLD_DAY}.json (8 snapshots)" in helpers.command("compact")  # the next run finishes it
    assert DocumentArchive.objects.get().count == 8

    kept = DocumentArchive.objects.get()
    damaged = bytearray(kept.archive)
    damaged[len(damaged) // 2] ^= 1
    DocumentArchive.objects.filter(pk=kept.pk).update(archive=bytes(damaged))
    row = Snapshot.objects.order_by("file_offset")[3]
    with pytest.raises(documents.DocumentError, match="cannot be read|does not match"):
        row.document_bytes
    DocumentArchive.objects.all().delete()
    with pytest.raises(documents.DocumentError, match="which is gone"):
        Snapshot.objects.get(pk=row.pk).document_bytes

    # reindex still records what it can: the archive cannot be rebuilt without the lost one, and says so
    Snapshot.objects.filter(pk=row.pk).delete()
    assert "1 snapshots recorded" in helpers.command("reindex")
    assert "name an archive that is gone" in caplog.text
    back = Snapshot.objects.get(snapshot_id=row.snapshot_id)
    assert not back.is_archived
    assert back.document_bytes == store.read_document(back.file_name, back.file_offset, back.file_length)


# --- a real compaction killed with SIGKILL at each step of the archive's write ----------

SEED = """
import datetime as dt, json
from django.utils import timezone
from reports.tests import test_archive as t, helpers
for body in t.series(25):
    helpers.ingest(body, ip="10.0.0.5", now=timezone.now())
"""

CRASH = """
import os, signal
from django.db.models.query import QuerySet
from reports import addresses, archive, services
from reports.services import lifecycle
from reports.tests import test_archive as t
step = {step!r}
def die():
    os.kill(os.getpid(), signal.SIGKILL)
def after(real):
    def wrapped(*args, **kwargs):
        result = real(*args, **kwargs)
        die()
    return wrapped
if step == "archive-built":
    archive.build = after(archive.build)
elif step == "rows-rewritten":
    lifecycle._rewrite_rows_packed = after(lifecycle._rewrite_rows_packed)
    QuerySet.bulk_update = after(QuerySet.bulk_update)
elif step == "committed":
    lifecycle._archive_day = after(lifecycle._archive_day)
services.day_compact(ip=addresses.parse_ip("10.0.0.5"), day=t.OLD_DAY)
"""

CHECK = """
import json
from reports import store
from reports.models import DocumentArchive, Snapshot
rows = list(Snapshot.objects.order_by("file_offset"))
same = [row.document_bytes == store.read_document(row.file_name, row.file_offset, row.file_length) for row in rows]
print(json.dumps({{"rows": len(rows), "same": all(same), "archived": sum(row.is_archived for row in rows),
                  "archives": list(DocumentArchive.objects.values_list("count", flat=True))}}))
"""


def shell(env: dict, script: str) -> str:
    result = subprocess.run([sys.executable, "manage.py", "shell", "-c", script], cwd=live.ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    return result.returncode, result.stdout + result.stderr


@pytest.mark.parametrize("step", ["archive-built", "rows-rewritten", "committed"])
def test_compaction_killed_at_each_step_of_the_archive_leaves_every_document_readable(tmp_path, step):
    env, _ = live.prepare(tmp_path / "server")
    code, out = shell(env, SEED)
    assert code == 0, out
    code, out = shell(env, CRASH.format(step=step))
    assert code == -9, f"the child did not die at {step}: {out}"

    state = json.loads(live.manage(env, "shell", "-c", CHECK.format()).strip().splitlines()[-1])
    assert state["rows"] == 25 and state["same"]
    if step == "committed":
        assert state["archived"] == 25 and state["archives"] == [25]
    else:
        assert state["archived"] == 0 and state["archives"] == []  # the transaction never committed

    out = live.manage(env, "compact")  # the next run archives what the crash left
    assert ("archived" in out) == (step != "committed"), out
    state = json.loads(live.manage(env, "shell", "-c", CHECK.format()).strip().splitlines()[-1])
    assert state == {"rows": 25, "same": True, "archived": 25, "archives": [25]}
