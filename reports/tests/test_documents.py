"""The row's document blob: zstd written, zstd and the older zlib read, damage and size bombs refused."""

from __future__ import annotations

import datetime as dt
import json
import zlib

import pytest
import zstandard

from relevo_testing.factories import encode, make_payload
from reports import documents
from reports import payload as payload_schema

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
