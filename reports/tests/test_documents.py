"""The row's document blob: zstd and deltas written, zlib read too, damage and size bombs refused.

Deltas through ingest: runs bounded by ``DELTA_RUN``, every base a full row
of the same day file, and every row readable after old-format bases,
pruning, compaction, reindex and export.
"""

from __future__ import annotations

import datetime as dt
import json
import zlib

import pytest
import zstandard

import uuid

from relevo_testing.factories import encode, make_payload, rewrite_as_zlib
from reports import addresses, documents, services, store
from reports import payload as payload_schema
from reports.models import Snapshot
from reports.tests.helpers import ingest, same_day_start

DOCUMENT = encode(make_payload(processes=300))


def test_pack_writes_a_zstd_frame_that_unpacks_to_the_document():
    blob = documents.pack(DOCUMENT)
    assert blob[:4] == documents.ZSTD_MAGIC
    assert zstandard.frame_content_size(blob) == len(DOCUMENT)
    assert len(blob) < len(zlib.compress(DOCUMENT, 1))
    assert documents.unpack(blob) == DOCUMENT
    # PostgreSQL hands a BinaryField back as a memoryview.
    assert documents.unpack(memoryview(blob)) == DOCUMENT


def test_a_zlib_blob_from_before_zstd_still_unpacks():
    assert documents.unpack(zlib.compress(DOCUMENT, 1)) == DOCUMENT
    assert documents.unpack(memoryview(zlib.compress(DOCUMENT, 6))) == DOCUMENT


@pytest.mark.parametrize("damage", [
    pytest.param(lambda blob: blob[:-7], id="truncated"),
    pytest.param(lambda blob: blob + b"\0", id="trailing data"),
    pytest.param(lambda blob: blob[:200] + bytes([blob[200] ^ 1]) + blob[201:], id="one bit flipped"),
    pytest.param(lambda blob: b"", id="empty"),
])
@pytest.mark.parametrize("compress", [documents.pack, lambda document: zlib.compress(document, 1)],
                         ids=["zstd", "zlib"])
def test_a_damaged_blob_is_refused_not_misread(compress, damage):
    with pytest.raises(documents.DocumentError):
        documents.unpack(damage(compress(DOCUMENT)))


@pytest.mark.parametrize("compress", [
    pytest.param(documents.pack, id="zstd"),
    pytest.param(lambda document: zstandard.ZstdCompressor(write_content_size=False).compress(document),
                 id="zstd without content size"),
    pytest.param(lambda document: zlib.compress(document, 1), id="zlib"),
])
def test_unpack_stops_at_the_size_limit(settings, compress):
    settings.INVENTORY_MAX_UPLOAD_BYTES = 1024
    limit = documents.max_document_bytes()
    assert documents.unpack(compress(b" " * limit)) == b" " * limit
    with pytest.raises(documents.DocumentError):
        documents.unpack(compress(b" " * (limit + 1)))


def test_the_limit_leaves_room_for_what_re_encoding_adds(settings):
    """The largest stored document an upload can become still unpacks.

    Processes sent as bare pids come back with every optional field as null,
    so the stored document is many times the upload.
    """
    body = make_payload(processes=0)
    body["processes"] = [{"pid": pid} for pid in range(payload_schema.MAX_PROCESSES)]
    upload = encode(body)
    settings.INVENTORY_MAX_UPLOAD_BYTES = len(upload)
    payload = payload_schema.decode(upload, now=dt.datetime.now(dt.timezone.utc))
    stored = payload_schema.encode_stored(payload, received_at=dt.datetime.now(dt.timezone.utc), ip="10.0.0.5")
    assert len(stored) > 10 * len(upload)
    assert json.loads(documents.unpack(documents.pack(stored)))["processes"][-1]["cmdline"] is None


def _delta_of(document: bytes, base_document: bytes = DOCUMENT, *, base_id: uuid.UUID | None = None) -> bytes:
    base = documents.Base(base_id or uuid.uuid4(), 1)
    return documents.pack_delta(document, base=base, base_document=lambda: base_document)


def test_a_delta_is_small_names_its_base_and_unpacks_only_with_it():
    base_id = uuid.uuid4()
    body = json.loads(DOCUMENT)
    for process in body["processes"][::3]:
        process["cpu_percent"] = 7.25
    changed = encode(body)
    assert changed != DOCUMENT
    blob = _delta_of(changed, base_id=base_id)
    assert documents.delta_header(blob) == (base_id, 1)
    assert documents.delta_header(documents.pack(DOCUMENT)) is None
    assert len(blob) < len(documents.pack(changed))
    full = documents.pack(DOCUMENT)
    assert documents.unpack(blob, base_blob={base_id: full}.get) == changed
    assert documents.unpack(memoryview(blob), base_blob=lambda _: memoryview(zlib.compress(DOCUMENT))) == changed
    with pytest.raises(documents.DocumentError, match="gone"):
        documents.unpack(blob, base_blob=lambda _: None)
    with pytest.raises(documents.DocumentError, match="gone"):
        documents.unpack(blob)
    with pytest.raises(documents.DocumentError, match="itself a delta"):
        documents.unpack(blob, base_blob=lambda _: blob)
    with pytest.raises(documents.DocumentError):  # a different base does not pass its checksum
        documents.unpack(blob, base_blob=lambda _: documents.pack(encode(make_payload(processes=300))))
    with pytest.raises(documents.DocumentError):
        documents.unpack(blob[:-5], base_blob=lambda _: full)


def _series(count: int, *, start: dt.datetime | None = None, host_id: str = "host-1") -> list[str]:
    start = start or same_day_start()
    return [ingest(processes=40, host_id=host_id, collected_at=start + dt.timedelta(minutes=2 * i)).snapshot_id
            for i in range(count)]


def _rows_read_back() -> None:
    """Every row's document is the one its day file holds, and every delta's base is a full row of its file."""
    rows = {row.snapshot_id: row for row in Snapshot.objects.all()}
    assert rows
    for row in rows.values():
        assert row.document_bytes == store.read_document(row.file_name, row.file_offset, row.file_length)
        header = documents.delta_header(row.document_compressed)
        if header is not None:
            base = rows[header.snapshot_id]
            assert documents.delta_header(base.document_compressed) is None
            assert (base.ip, base.day) == (row.ip, row.day)
            assert 1 <= header.distance < documents.DELTA_RUN


@pytest.mark.django_db
def test_ingest_writes_runs_of_deltas_each_against_a_full_row_of_its_file(data_dir):
    ids = _series(2 * documents.DELTA_RUN + 1)
    kinds = []
    for snapshot_id in ids:
        header = documents.delta_header(Snapshot.objects.get(snapshot_id=snapshot_id).document_compressed)
        kinds.append(0 if header is None else header.distance)
    run = list(range(documents.DELTA_RUN))
    assert kinds == [*run, *run, 0]
    _rows_read_back()


@pytest.mark.django_db
def test_a_base_in_the_format_before_deltas_still_serves_its_deltas(data_dir):
    ids = _series(3)
    rewrite_as_zlib(ids[0])  # an upgraded database: the base is an old zlib row
    _rows_read_back()
    rewrite_as_zlib(ids[2])  # the newest row is an old one: the next upload is a delta against it
    later = _series(1, start=same_day_start() + dt.timedelta(minutes=30))
    assert documents.delta_header(Snapshot.objects.get(snapshot_id=later[0]).document_compressed) == (
        uuid.UUID(ids[2]), 1)
    _rows_read_back()


@pytest.mark.django_db
def test_pruning_or_compacting_a_day_leaves_every_other_snapshot_readable(data_dir):
    today = same_day_start()
    yesterday = today - dt.timedelta(days=1)
    _series(5, start=yesterday)
    _series(5, start=yesterday, host_id="host-2")  # same address, same file: bases shared by no one else
    kept = _series(5, start=today)
    ip = addresses.parse_ip("10.0.0.5")
    services.day_compact(ip=ip, day=today.date())
    _rows_read_back()
    services.day_prune(ip=ip, day=yesterday.date())
    assert sorted(map(str, Snapshot.objects.values_list("snapshot_id", flat=True))) == sorted(map(str, kept))
    _rows_read_back()


@pytest.mark.django_db
def test_reindex_and_export_rebuild_either_store_with_deltas(data_dir):
    start = same_day_start()
    _series(documents.DELTA_RUN + 3, start=start)
    ip, day = addresses.parse_ip("10.0.0.5"), start.date()
    file = data_dir / f"10.0.0.5_{day}.json"
    written = file.read_bytes()
    Snapshot.objects.all().delete()
    assert services.day_reindex(ip=ip, day=day).snapshots == documents.DELTA_RUN + 3
    assert sum(documents.delta_header(b) is not None
               for b in Snapshot.objects.values_list("document_compressed", flat=True)) == documents.DELTA_RUN + 1
    _rows_read_back()
    file.unlink()
    assert services.day_export(ip=ip, day=day).action == services.DayAction.WRITTEN
    assert file.read_bytes() == written
    _rows_read_back()
