"""Reading an upload body within the size limit, gzip included.

The limit (``INVENTORY_MAX_UPLOAD_BYTES``) applies to the bytes on the wire
and again to the inflated JSON. Inflation is bounded by ``max_length``, so a
gzip bomb costs at most the limit in memory before it is refused with 413.
"""

from __future__ import annotations

import zlib

from django.conf import settings
from rest_framework import exceptions
from rest_framework.parsers import BaseParser

from reports.api.errors import PayloadTooLarge


def inflate_gzip(raw: bytes, limit: int) -> bytes:
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        body = inflater.decompress(raw, limit + 1)
    except zlib.error as exc:
        raise exceptions.ParseError(f"The gzip body is corrupt: {exc}") from None
    if len(body) > limit or inflater.unconsumed_tail:
        raise PayloadTooLarge(f"The decompressed body is larger than {limit} bytes.")
    if not inflater.eof:
        raise exceptions.ParseError("The gzip body is truncated.")
    if inflater.unused_data:
        raise exceptions.ParseError("The gzip body has trailing data.")
    return body


class SnapshotParser(BaseParser):
    """Returns the JSON body as bytes; decoding and validation happen in ``reports.payload``."""

    media_type = "application/json"

    def parse(self, stream, media_type=None, parser_context=None) -> bytes:
        request = parser_context["request"]
        limit = settings.INVENTORY_MAX_UPLOAD_BYTES
        try:
            declared = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            raise exceptions.ParseError("Content-Length is not a number.") from None
        if declared > limit:
            raise PayloadTooLarge(f"The body is larger than {limit} bytes.")
        raw = stream.read(limit + 1) if stream is not None else b""
        if len(raw) > limit:
            raise PayloadTooLarge(f"The body is larger than {limit} bytes.")
        encoding = request.META.get("HTTP_CONTENT_ENCODING", "").strip().lower()
        if encoding in ("", "identity"):
            return raw
        if encoding in ("gzip", "x-gzip"):
            return inflate_gzip(raw, limit)
        raise exceptions.UnsupportedMediaType(
            encoding, detail=f"Content-Encoding {encoding!r} is not supported; use gzip or none."
        )
