"""The compressed copy of a stored document kept in its Snapshot row: the one place that knows its format.

``pack`` writes a zstd frame at level 1: several times faster than zlib at
its fastest level on every upload, and smaller (docs/performance.md, item 5
of the ingest work, has the figures). The frame carries a checksum: without
one a damaged row can unpack to a different, valid-looking document, which
zlib's Adler-32 used to catch, and ``export_snapshots`` writes day files
from these rows. ``unpack`` also reads the zlib blobs that rows written
before the switch still hold, so no rewrite of old rows is needed.

zstandard's compressor and decompressor objects must not be used by two
threads at once (``runserver`` and threaded servers run requests side by
side), so each thread keeps its own rather than building one per call,
which would cost a noticeable share of the compression itself.

Deltas. Consecutive snapshots of one host are nearly the same, so most rows
hold a *delta*: a zstd frame compressed with a recent full document of the
same host's day file (its *base*) as the dictionary, about a third of the
size of a full frame (docs/performance.md, issue 16). A base is an ordinary
full row (``pack``); ingest writes one every ``DELTA_RUN`` snapshots of a
day file, so every delta names a full row and reading one decodes two
frames, never a chain. A delta's blob starts with its own tag, then the
base's snapshot_id and the delta's distance from it::

    "RDd1" | base snapshot_id (16 bytes) | distance (1 byte) | zstd frame

A base is always a row of the same day file (address and day), so pruning,
reindexing or exporting a day takes or keeps a base with its deltas, and
compaction, which replaces the blobs of the whole day at once by references
into the day's archive (``reports.archive``), never leaves a delta without
its base. ``unpack`` asks its caller for the base's blob
(``Snapshot.document_bytes`` looks it up by snapshot_id).
"""

from __future__ import annotations

import collections
import threading
import uuid
import zlib
from collections.abc import Callable

import zstandard
from django.conf import settings

LEVEL = 1
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
DELTA_MAGIC = b"RDd1"
# Against a base, level 1 is both slower and larger than level 2; 3 saves 6% more bytes for 25% more time.
DELTA_LEVEL = 2
# Snapshots of a day file per base: 12 is an hour at 5 minutes. Longer runs drift
# further from their base and shorter ones write more full frames; both cost bytes.
DELTA_RUN = 12
_DELTA_HEADER = len(DELTA_MAGIC) + 16 + 1
# Bases a thread keeps (each is its document, ~150 KB for 400 processes; digesting it into
# zstd's tables once would keep ~700 KB and saves no time).
_BASES_KEPT = 32
# Room for what re-encoding adds to an upload: every optional field a process
# left out comes back as null (about 190 bytes for {"pid":0}, so up to 4 MB for
# 20,000 processes), and "1e6" is stored as "1000000.0".
_ENCODING_ALLOWANCE = 16 * 1024 * 1024

_local = threading.local()


class DocumentError(ValueError):
    """A blob that is not a complete document this module wrote, or that would unpack too large."""


def _compressor() -> zstandard.ZstdCompressor:
    compressor = getattr(_local, "compressor", None)
    if compressor is None:
        compressor = _local.compressor = zstandard.ZstdCompressor(
            level=LEVEL, write_content_size=True, write_checksum=True,
        )
    return compressor


def _decompressor() -> zstandard.ZstdDecompressor:
    decompressor = getattr(_local, "decompressor", None)
    if decompressor is None:
        decompressor = _local.decompressor = zstandard.ZstdDecompressor()
    return decompressor


class Base(collections.namedtuple("Base", "snapshot_id distance")):
    """What a delta's header says: its base's snapshot_id and how many snapshots after it the delta is."""


def delta_header(blob: bytes | memoryview) -> Base | None:
    """The base a delta blob names, or None for a full document (zstd or zlib)."""
    head = bytes(blob[:_DELTA_HEADER])
    if head[:4] != DELTA_MAGIC or len(head) < _DELTA_HEADER:
        return None
    return Base(uuid.UUID(bytes=head[4:20]), head[20])


def _dictionaries() -> collections.OrderedDict:
    kept = getattr(_local, "dictionaries", None)
    if kept is None:
        kept = _local.dictionaries = collections.OrderedDict()
    return kept


def _delta_compressor(base_id: uuid.UUID, base_document: Callable[[], bytes]) -> zstandard.ZstdCompressor:
    """A compressor with the base's document as its dictionary, kept per thread.

    The least recently used base is dropped first; a dropped one is read
    back from its row by the next delta that names it.
    """
    kept = _dictionaries()
    compressor = kept.get(base_id)
    if compressor is None:
        dictionary = zstandard.ZstdCompressionDict(base_document(), dict_type=zstandard.DICT_TYPE_RAWCONTENT)
        compressor = kept[base_id] = zstandard.ZstdCompressor(
            level=DELTA_LEVEL, dict_data=dictionary, write_content_size=True, write_checksum=True,
            write_dict_id=False,
        )
        while len(kept) > _BASES_KEPT:
            kept.popitem(last=False)
    else:
        kept.move_to_end(base_id)
    return compressor


def pack_delta(document: bytes, *, base: Base, base_document: Callable[[], bytes]) -> bytes:
    """The delta blob for *document* against *base* (whose document ``base_document()`` returns if not kept)."""
    compressor = _delta_compressor(base.snapshot_id, base_document)
    return DELTA_MAGIC + base.snapshot_id.bytes + bytes([base.distance]) + compressor.compress(document)


def max_document_bytes() -> int:
    """The largest document ``unpack`` hands back, so a damaged blob cannot claim gigabytes of memory.

    A stored document is the upload (at most ``INVENTORY_MAX_UPLOAD_BYTES``
    of JSON) decoded and encoded again, which can make it bigger: numbers
    written short grow up to three times, and omitted fields come back.
    """
    return 4 * settings.INVENTORY_MAX_UPLOAD_BYTES + _ENCODING_ALLOWANCE


def pack(document: bytes) -> bytes:
    """The blob to store for *document*: one zstd frame that records its content size."""
    return _compressor().compress(document)


def unpack(blob: bytes | memoryview, *, base_blob: Callable[[uuid.UUID], bytes | memoryview | None] | None = None
           ) -> bytes:
    """The document in *blob*: a delta (``pack_delta``), zstd (``pack``) or zlib (rows written before zstd).

    The three cannot be confused: a zlib stream starts with 0x78 for the
    default window, a zstd frame with its magic number 28 B5 2F FD, a delta
    with "RDd1". A delta needs *base_blob*, which gives the blob of the row
    with a snapshot_id (None if there is none); that blob must be a full one.
    """
    blob = bytes(blob)
    limit = max_document_bytes()
    base = delta_header(blob)
    if base is not None:
        found = base_blob(base.snapshot_id) if base_blob is not None else None
        if found is None:
            raise DocumentError(f"the stored document is a delta of snapshot {base.snapshot_id}, which is gone")
        found = bytes(found)
        if delta_header(found) is not None:
            raise DocumentError(f"the stored document's base {base.snapshot_id} is itself a delta")
        dictionary = zstandard.ZstdCompressionDict(unpack(found), dict_type=zstandard.DICT_TYPE_RAWCONTENT)
        return _unpack_zstd(blob[_DELTA_HEADER:], limit, zstandard.ZstdDecompressor(dict_data=dictionary))
    if blob[:4] == ZSTD_MAGIC:
        return _unpack_zstd(blob, limit, _decompressor())
    return _unpack_zlib(blob, limit)


def _unpack_zstd(blob: bytes, limit: int, decompressor: zstandard.ZstdDecompressor) -> bytes:
    try:
        size = zstandard.frame_content_size(blob)
        if size > limit:
            raise DocumentError(f"the stored document claims {size} bytes, more than {limit}")
        # Frames from pack() carry their size, so max_output_size only matters for one that does not.
        return decompressor.decompress(blob, max_output_size=limit, allow_extra_data=False)
    except zstandard.ZstdError as exc:
        raise DocumentError(f"the stored document cannot be read: {exc}") from None


def _unpack_zlib(blob: bytes, limit: int) -> bytes:
    inflater = zlib.decompressobj()
    try:
        document = inflater.decompress(blob, limit + 1)
    except zlib.error as exc:
        raise DocumentError(f"the stored document cannot be read: {exc}") from None
    if len(document) > limit or inflater.unconsumed_tail:
        raise DocumentError(f"the stored document is larger than {limit} bytes")
    if not inflater.eof or inflater.unused_data:
        raise DocumentError("the stored document is truncated or has trailing data")
    return document
