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
"""

from __future__ import annotations

import threading
import zlib

import zstandard
from django.conf import settings

LEVEL = 1
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
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


def unpack(blob: bytes | memoryview) -> bytes:
    """The document in *blob*, zstd (``pack``) or zlib (rows written before zstd).

    The two cannot be confused: a zlib stream starts with 0x78 for the
    default window, a zstd frame with its magic number 28 B5 2F FD.
    """
    blob = bytes(blob)
    limit = max_document_bytes()
    if blob[:4] == ZSTD_MAGIC:
        return _unpack_zstd(blob, limit)
    return _unpack_zlib(blob, limit)


def _unpack_zstd(blob: bytes, limit: int) -> bytes:
    try:
        size = zstandard.frame_content_size(blob)
        if size > limit:
            raise DocumentError(f"the stored document claims {size} bytes, more than {limit}")
        # Frames from pack() carry their size, so max_output_size only matters for one that does not.
        return _decompressor().decompress(blob, max_output_size=limit, allow_extra_data=False)
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
