"""The database's copy of a compacted host-day: one archive of structural diffs, built once, offline.

Ingest stores each document in its own row (``reports.documents``); when a
closed day is compacted, ``services.day_compact`` replaces those rows' blobs
by one archive per host-day (``DocumentArchive``), which is several times
smaller than any per-row encoding (docs/performance.md, issue 16) because it
sees the whole day at once:

* every document is parsed (msgspec, into plain Python values) and written
  as a *diff* against the document before it: for a dict with the same keys
  in the same order, only the members that changed; for a list of processes
  (dicts with a ``pid``), which earlier process each one continues (matched
  by pid and create time), the fields that changed column by column (integers
  as differences), and the processes that are new; anything else whole;
* a document is written whole (a *key*) first, every ``KEY_EVERY`` documents
  after that, and wherever its diff does not give back its exact bytes, so a
  read applies at most ``KEY_EVERY - 1`` diffs and odd documents cost bytes,
  never correctness;
* the lines (one JSON value each) go through zstd at a high level with a
  window as long as the day, once.

Lossless to the byte: ``build`` decodes its own archive and compares every
document's bytes with the ones it was given before returning it, and
``documents`` re-checks a BLAKE2b digest of each document's bytes when
it reads, so a damaged archive raises ``ArchiveError`` instead of handing
back a wrong document.

The blob::

    "RDa1" | zstd frame of: header line, then one line per document

The header line is ``[count, [digest of each document, hex 16 bytes]...]``;
a document's line is ``[0, <its bytes>]`` for a key or ``[1, diff]``.
A row whose document lives in an archive holds a short reference
(``reference``) instead of its own blob: ``"RDr1" | index (4 bytes)``; the
archive is found by the row's address and day.
"""

from __future__ import annotations

import hashlib
import math
import struct
import threading
from collections.abc import Iterator, Sequence

import msgspec
import zstandard

from reports.documents import DocumentError

ARCHIVE_MAGIC = b"RDa1"
REFERENCE_MAGIC = b"RDr1"
# One key per 96 documents (8 hours at 5 minutes): a read applies at most 95 diffs.
KEY_EVERY = 96
LEVEL = 19
WINDOW_LOG = 27
_DIGEST_BYTES = 16

_encode = msgspec.json.encode
_decode = msgspec.json.decode
_local = threading.local()


class ArchiveError(DocumentError):
    """An archive blob that is damaged, or that does not hold what it claims (a ``DocumentError``, so every
    reader of the database's copy reports it the way it reports a damaged row)."""


def reference(index: int) -> bytes:
    """The blob a row keeps when its document is document *index* of its host-day's archive."""
    return REFERENCE_MAGIC + struct.pack(">I", index)


def reference_index(blob: bytes | memoryview) -> int | None:
    """The index a reference blob names, or None for any other blob."""
    head = bytes(blob[:8])
    if len(head) != 8 or head[:4] != REFERENCE_MAGIC or len(blob) != 8:
        return None
    return struct.unpack(">I", head[4:])[0]


def _digest(document: bytes) -> str:
    return hashlib.blake2b(document, digest_size=_DIGEST_BYTES).hexdigest()


# --- the diff ----------------------------------------------------------------------

def _same(a, b) -> bool:
    """Equal and of the same type: 1, 1.0 and True are not the same here.

    Deeper differences this misses (``[1]`` against ``[1.0]``, ``-0.0``
    against ``0.0``) make a diff that does not give back the document's
    bytes, which ``_lines`` sees and answers with a key: they cost bytes,
    never correctness.
    """
    return type(a) is type(b) and a == b


def _is_process_list(value) -> bool:
    return type(value) is list and bool(value) and all(type(p) is dict and "pid" in p for p in value)


def _process_key(process: dict):
    return process.get("pid"), str(process.get("create_time"))


def _diff(a, b):
    """A diff that turns *a* into *b*: ``{...}`` member by member, ``["p", ...]`` for processes, ``["v", b]``."""
    if type(a) is dict and type(b) is dict and list(a) == list(b):
        return {key: _diff(a[key], value) for key, value in b.items() if not _same(a[key], value)}
    if type(a) is list and _is_process_list(a) and _is_process_list(b):
        return _process_diff(a, b)
    return ["v", b]


def _process_diff(a: list, b: list) -> list:
    where = {_process_key(p): i for i, p in enumerate(a)}
    sources, new = [], []
    columns: dict[str, list] = {}
    expected = 0
    for j, process in enumerate(b):
        i = where.get(_process_key(process))
        if i is None or list(a[i]) != list(process):
            sources.append(None)
            new.append(process)
            continue
        sources.append(i - expected)
        expected = i + 1
        if a[i] == process:
            continue
        for name, value in process.items():
            before = a[i][name]
            if _same(before, value):
                continue
            column = columns.get(name)
            if column is None:
                column = columns[name] = [-1, [], [], [], True]  # last position, position steps, values, olds
            column[1].append(j - column[0])
            column[0] = j
            column[2].append(value)
            column[3].append(before)
            if type(value) is not int or type(before) is not int:
                column[4] = False
    fields = []
    for name, (_, steps, values, olds, integers) in columns.items():
        if integers:
            steps_of = [v - o for v, o in zip(values, olds)]
            unit = math.gcd(*steps_of) or 1
            fields.append([name, unit, steps, [d // unit for d in steps_of]])
        else:
            fields.append([name, 0, steps, values])
    return ["p", sources, fields, new]


def _apply(a, diff):
    if type(diff) is dict:
        if type(a) is not dict:
            raise ArchiveError("a member diff applies to something that is not an object")
        out = dict(a)
        for key, sub in diff.items():
            if key not in out:
                raise ArchiveError(f"a member diff names {key!r}, which the document before it lacks")
            out[key] = _apply(out[key], sub)
        return out
    if type(diff) is list and diff and diff[0] == "v" and len(diff) == 2:
        return diff[1]
    if type(diff) is list and diff and diff[0] == "p" and len(diff) == 4:
        return _apply_processes(a, diff)
    raise ArchiveError("a diff of an unknown form")


def _apply_processes(a, diff) -> list:
    _, sources, fields, new = diff
    if type(a) is not list:
        raise ArchiveError("a process diff applies to something that is not a list")
    out, fresh = [], iter(new)
    expected = 0
    try:
        for step in sources:
            if step is None:
                out.append(next(fresh))
            else:
                i = expected + step
                if i < 0:
                    raise IndexError(i)
                out.append(a[i])
                expected = i + 1
        copied = set()
        for name, mode, steps, values in fields:
            position = -1
            for step, value in zip(steps, values, strict=True):
                position += step
                if position < 0:
                    raise IndexError(position)
                process = out[position]
                if position not in copied:
                    process = out[position] = dict(process)
                    copied.add(position)
                process[name] = process[name] + value * mode if mode else value
    except (IndexError, KeyError, StopIteration, TypeError, ValueError) as exc:
        raise ArchiveError(f"a process diff does not fit the document before it: {exc!r}") from None
    return out


# --- building and reading ----------------------------------------------------------

def _compressor() -> zstandard.ZstdCompressor:
    compressor = getattr(_local, "compressor", None)
    if compressor is None:
        params = zstandard.ZstdCompressionParameters.from_level(
            LEVEL, window_log=WINDOW_LOG, enable_ldm=True, write_checksum=True, write_content_size=True)
        compressor = _local.compressor = zstandard.ZstdCompressor(compression_params=params)
    return compressor


def _lines(documents: Sequence[bytes]) -> Iterator[bytes]:
    """One line per document: the whole document for a key, else its diff from the one before."""
    previous = None
    for index, document in enumerate(documents):
        current = _value(document)
        line = None
        if previous is not None and current is not None and index % KEY_EVERY:
            encoded = _encode([1, _diff(previous, current)])
            if _encode(_apply(previous, _decode(encoded)[1])) == document:
                line = encoded
        yield line if line is not None else b"[0," + document + b"]"
        previous = current


def _value(document: bytes):
    """The document parsed, or None if msgspec cannot hold it (a number past a double): it is kept as a key."""
    try:
        return _decode(document)
    except (msgspec.DecodeError, RecursionError):
        return None


def build(documents: Sequence[bytes], *, max_bytes: int) -> bytes:
    """The archive of *documents* (stored documents, in day-file order), checked by decoding it in full."""
    header = _encode([len(documents), [_digest(d) for d in documents]])
    stream = b"\n".join([header, *_lines(documents)])
    blob = ARCHIVE_MAGIC + _compressor().compress(stream)
    for index, (got, want) in enumerate(zip(documents_of(blob, max_bytes=max_bytes), documents, strict=True)):
        if got != want:
            raise ArchiveError(f"document {index} does not come back from its archive byte for byte")
    return blob


def _stream_lines(blob: bytes | memoryview, *, max_bytes: int) -> list[bytes]:
    """The archive's lines; the last archive a thread read is kept, so reading several documents of one
    host-day (a page of changes, a late snapshot's rebuild) decompresses it once."""
    blob = bytes(blob)
    kept = getattr(_local, "lines", None)
    if kept is not None and kept[0] == blob:
        return kept[1]
    lines = _decompressed_lines(blob, max_bytes=max_bytes)
    _local.lines = (blob, lines)
    return lines


def _decompressed_lines(blob: bytes, *, max_bytes: int) -> list[bytes]:
    if blob[:4] != ARCHIVE_MAGIC:
        raise ArchiveError("not a document archive")
    try:
        size = zstandard.frame_content_size(blob[4:])
        if size < 0 or size > max_bytes:
            raise ArchiveError(f"the document archive claims {size} bytes, more than {max_bytes}")
        stream = zstandard.ZstdDecompressor(max_window_size=1 << WINDOW_LOG).decompress(
            blob[4:], max_output_size=max_bytes, allow_extra_data=False)
    except zstandard.ZstdError as exc:
        raise ArchiveError(f"the document archive cannot be read: {exc}") from None
    return stream.split(b"\n")


def _header(lines: list[bytes]) -> list[str]:
    try:
        count, digests = _decode(lines[0])
    except (msgspec.DecodeError, ValueError, TypeError):
        raise ArchiveError("the document archive's header is damaged") from None
    if type(count) is not int or count != len(lines) - 1 or len(digests) != count:
        raise ArchiveError("the document archive's header does not match its documents")
    return digests


def _document(line: bytes, previous):
    """(bytes, value) of the document on *line*, given the value of the one before it."""
    if line[:3] == b"[0," and line[-1:] == b"]":
        document = line[3:-1]
        return document, None
    try:
        kind, diff = _decode(line)
    except (msgspec.DecodeError, ValueError, TypeError):
        raise ArchiveError("a line of the document archive is damaged") from None
    if kind != 1 or previous is None:
        raise ArchiveError("a line of the document archive is damaged")
    value = _apply(previous, diff)
    return _encode(value), value


def _checked(document: bytes, digest: str, index: int) -> bytes:
    if _digest(document) != digest:
        raise ArchiveError(f"document {index} of the archive does not match its digest")
    return document


def documents_of(blob: bytes | memoryview, *, max_bytes: int) -> Iterator[bytes]:
    """Every document in the archive, in order, each checked against its digest."""
    lines = _stream_lines(blob, max_bytes=max_bytes)
    digests = _header(lines)
    previous = None
    for index, line in enumerate(lines[1:]):
        document, value = _document(line, previous)
        _checked(document, digests[index], index)
        previous = value if value is not None else _value(document)
        yield document


def document_at(blob: bytes | memoryview, index: int, *, max_bytes: int) -> bytes:
    """Document *index* of the archive: from the key at or before it, applying the diffs after the key."""
    lines = _stream_lines(blob, max_bytes=max_bytes)
    digests = _header(lines)
    if not 0 <= index < len(digests):
        raise ArchiveError(f"the document archive holds {len(digests)} documents, not {index + 1}")
    key = index
    while key > 0 and lines[key + 1][:3] != b"[0,":
        key -= 1
    previous = None
    for at in range(key, index + 1):
        document, value = _document(lines[at + 1], previous)
        if at == index:
            return _checked(document, digests[index], index)
        previous = value if value is not None else _value(document)
    raise AssertionError("unreachable")
