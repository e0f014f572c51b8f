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
* the process columns (which positions changed, and to what) are taken out
  of the diffs and stored column by column for the whole day, the lines go
  through zstd at a high level with a window as long as the stream, once.

Lossless to the byte: ``build`` decodes its own archive and compares every
document's bytes with the ones it was given before returning it, and every
read re-checks a BLAKE2b digest of each document's bytes, so a damaged
archive raises ``ArchiveError`` (a ``DocumentError``) instead of handing
back a wrong document.

The blob is ``"RDa1"`` then one zstd frame of lines:

* the header, ``[count, [BLAKE2b-64 of each document, hex], [column names]]``;
* one line per document: ``[0,<the document's bytes>]`` for a key, or
  ``[1, diff]``, whose process field entries are ``[name, mode]`` (mode 0:
  values; n > 0: integer differences in units of n);
* per column name, ``count`` lines of its position steps, then ``count``
  lines of its values: line *i* holds document *i*'s (a JSON list, one item
  per process list in the diff) or is empty.

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
_DIGEST_BYTES = 8

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


def _split(diff, columns: dict[str, tuple[list, list]]) -> None:
    """Move the position steps and values of every process column out of *diff*, in ``_apply``'s order.

    Each field entry keeps its name and mode; the archive stores the steps
    and the values of one column for the whole day together, where zstd
    finds far more in common than between the fields of one document.
    """
    if type(diff) is dict:
        for sub in diff.values():
            _split(sub, columns)
    elif type(diff) is list and diff and diff[0] == "p" and len(diff) == 4:
        for entry in diff[2]:
            steps, values = columns.setdefault(entry[0], ([], []))
            steps.append(entry[2])
            values.append(entry[3])
            del entry[2:]


def _apply(a, diff, columns: dict | None = None):
    if type(diff) is dict:
        if type(a) is not dict:
            raise ArchiveError("a member diff applies to something that is not an object")
        out = dict(a)
        for key, sub in diff.items():
            if key not in out:
                raise ArchiveError(f"a member diff names {key!r}, which the document before it lacks")
            out[key] = _apply(out[key], sub, columns)
        return out
    if type(diff) is list and diff and diff[0] == "v" and len(diff) == 2:
        return diff[1]
    if type(diff) is list and diff and diff[0] == "p" and len(diff) == 4:
        return _apply_processes(a, diff, columns)
    raise ArchiveError("a diff of an unknown form")


def _apply_processes(a, diff, columns: dict | None) -> list:
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
        for entry in fields:
            if len(entry) == 2:  # the steps and values are in the archive's columns
                name, mode = entry
                steps, values = next(columns[name][0]), next(columns[name][1])
            else:
                name, mode, steps, values = entry
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


def _lines(documents: Sequence[bytes]) -> tuple[list[bytes], list[dict[str, tuple[list, list]]]]:
    """One line per document (the whole document for a key, else its diff from the one before, without
    its process columns), and each document's process columns."""
    previous = None
    lines, columns = [], []
    for index, document in enumerate(documents):
        current = _value(document)
        line, split = None, {}
        if previous is not None and current is not None and index % KEY_EVERY:
            diff = _diff(previous, current)
            if _encode(_apply(previous, _decode(_encode(diff)))) == document:
                _split(diff, split)
                line = _encode([1, diff])
        lines.append(line if line is not None else b"[0," + document + b"]")
        columns.append(split)
        previous = current
    return lines, columns


def _value(document: bytes):
    """The document parsed, or None if msgspec cannot hold it (a number past a double): it is kept as a key."""
    try:
        return _decode(document)
    except (msgspec.DecodeError, RecursionError):
        return None


def build(documents: Sequence[bytes], *, max_bytes: int) -> bytes:
    """The archive of *documents* (stored documents, in day-file order), checked by decoding it in full."""
    lines, columns = _lines(documents)
    names = list(dict.fromkeys(name for split in columns for name in split))
    header = _encode([len(documents), [_digest(d) for d in documents], names])
    sections = []
    for name in names:
        for part in (0, 1):  # the column's position steps, then its values
            sections.extend(_encode(split[name][part]) if name in split else b"" for split in columns)
    stream = b"\n".join([header, *lines, *sections])
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


class _Layout(msgspec.Struct, array_like=True):
    count: int
    digests: list[str]
    columns: list[str]


def _header(lines: list[bytes]) -> _Layout:
    try:
        layout = msgspec.json.decode(lines[0], type=_Layout)
    except (msgspec.DecodeError, msgspec.ValidationError):
        raise ArchiveError("the document archive's header is damaged") from None
    if layout.count != len(layout.digests) or len(lines) != 1 + layout.count * (1 + 2 * len(layout.columns)):
        raise ArchiveError("the document archive's header does not match its documents")
    return layout


def _document(lines: list[bytes], layout: _Layout, index: int, previous):
    """(bytes, None) of a key, (None, value) of a diff: document *index*, given the value of the one before."""
    line = lines[1 + index]
    if line[:3] == b"[0," and line[-1:] == b"]":
        return line[3:-1], None
    count = layout.count
    columns = {}
    try:
        for at, name in enumerate(layout.columns):
            steps = lines[1 + count * (1 + 2 * at) + index]
            values = lines[1 + count * (2 + 2 * at) + index]
            if steps:
                columns[name] = (iter(_decode(steps)), iter(_decode(values)))
        kind, diff = _decode(line)
    except (msgspec.DecodeError, ValueError, TypeError):
        raise ArchiveError("a line of the document archive is damaged") from None
    if kind != 1 or previous is None:
        raise ArchiveError("a line of the document archive is damaged")
    return None, _apply(previous, diff, columns)


def _checked(document: bytes, digest: str, index: int) -> bytes:
    if _digest(document) != digest:
        raise ArchiveError(f"document {index} of the archive does not match its digest")
    return document


def documents_of(blob: bytes | memoryview, *, max_bytes: int) -> Iterator[bytes]:
    """Every document in the archive, in order, each checked against its digest."""
    lines = _stream_lines(blob, max_bytes=max_bytes)
    layout = _header(lines)
    previous = None
    for index in range(layout.count):
        document, value = _document(lines, layout, index, previous)
        document = document if document is not None else _encode(value)
        _checked(document, layout.digests[index], index)
        previous = value if value is not None else _value(document)
        yield document


def document_at(blob: bytes | memoryview, index: int, *, max_bytes: int) -> bytes:
    """Document *index* of the archive: from the key at or before it, applying the diffs after the key."""
    lines = _stream_lines(blob, max_bytes=max_bytes)
    layout = _header(lines)
    if not 0 <= index < layout.count:
        raise ArchiveError(f"the document archive holds {layout.count} documents, not {index + 1}")
    key = index
    while key > 0 and lines[key + 1][:3] != b"[0,":
        key -= 1
    previous = None
    for at in range(key, index + 1):
        document, value = _document(lines, layout, at, previous)
        if at == index:
            return _checked(document if document is not None else _encode(value), layout.digests[index], index)
        previous = value if value is not None else _value(document)
    raise AssertionError("unreachable")
