"""The day files: ``<INVENTORY_DATA_DIR>/<ip>_<YYYY-MM-DD>.json``.

This is the ONLY module that opens day files. A day file is a JSON array with
one stored snapshot document per line::

    [
    {"schema_version":1,...}
    ,{"schema_version":1,...}
    ]

Appending costs O(one snapshot): under an exclusive ``flock`` on the file, one
``pwrite`` at ``size - 2`` replaces the closing ``]\\n`` with
``,<document>\\n]\\n``, then the file is fsynced. Nothing else is rewritten, so
the 500th upload of a day costs what the first did, and a reader that takes
the shared lock only ever sees whole arrays.

If a process dies in the middle of a write (or the machine loses power), the
tail may be torn. The next access to the file (read or append) notices that it
does not end in ``\\n]\\n`` and repairs it under the exclusive lock: it walks
back to the last line that is a complete JSON document, cuts the rest, and
closes the array. Every document acknowledged before the crash was fsynced, so
it survives; a torn one was never acknowledged.

A full file system (``ENOSPC``, or ``EDQUOT`` for a quota) is the one write
failure a client can wait out. An append that meets it is cut back at once,
exactly as ``undo`` would (the file ends where it did, with its ``]\n``), and
``StorageFull`` is raised: the document was never acknowledged, and the space
its partial write took is given back. If the cut itself fails, the torn tail
is what the repair above handles on the next access.

Paths are built only from a parsed, canonical IP address and a ``date``, and
opened with ``O_NOFOLLOW`` and a regular-file check, so no input can reach
outside the data folder or through a link.

Compacted days: ``<ip>_<YYYY-MM-DD>.json.zst``
-----------------------------------------------

A closed day is compacted (``DayFileWriter.compact``, run by ``manage.py
compact``) into a zstd file whose decompressed bytes are exactly the day file
above, so ``zstdcat 10.0.0.5_2026-11-27.json.zst | jq length`` works. It is a
run of zstd frames, each holding whole lines of at most ``COMPACT_FRAME_BYTES``
(the last one only the closing ``\n]\n``), then a skippable frame of
metadata, then a seek table in zstd's seekable format (a skippable frame
``zstdcat`` ignores). A document keeps the offset it was appended at: offsets
count in the decompressed day, so the rows need no rewrite, and reading one
document by offset decompresses only the frames that hold it.

A snapshot that arrives for a compacted day (an agent's spool outlived the
grace period) is appended to a new plain ``.json`` file beside the ``.zst``,
with the usual protocol. The day is then the ``.zst``'s documents followed by
the plain file's: its documents are recorded at offsets counted on from the
``.zst``'s last document (``base`` = its decompressed size minus 3), which
are exactly the offsets they get when the next compaction merges them, so
nothing is renumbered then. The merge copies the old frames as they are,
compresses the late lines into new ones, and writes a new closing frame.

Compaction, under the day's exclusive lock (``reports.locks``), in order:

1. Write the new ``.zst`` to ``.<name>.zst.<pid>.tmp`` and fsync it.
2. Rename it over ``<name>.zst`` and fsync the folder.
3. Unlink the plain file and fsync the folder.

A crash before 2 leaves the old state and a temp file (removed by the next
compaction). A crash between 2 and 3 leaves both files holding the same
documents, which would show them twice, so **the rule for which file wins**
is: the ``.zst``'s metadata records the size and BLAKE2b digest of the plain
file it merged; a plain file that matches them is a leftover already inside
the ``.zst`` and every reader ignores it, a writer that finds it empties it
before appending, and the next compaction removes it. A plain file that does
not match holds late documents the ``.zst`` lacks. Readers that find both
take the shared lock of the plain file before opening the ``.zst``, so no
compaction can run between the two looks.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import bisect
import fcntl
import hashlib
import ipaddress
import os
import re
import shutil
import stat
import struct
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import msgspec
import zstandard
from django.conf import settings

from reports import metrics
from reports.addresses import IPAddress, parse_ip

OPEN_TAIL = b"[\n"
CLOSE_TAIL = b"\n]\n"
_FILE_RE = re.compile(r"^(?P<ip>[0-9a-f.\-]{2,45})_(?P<day>\d{4}-\d{2}-\d{2})\.json$")
_SCAN_CHUNK = 64 * 1024
# What a DayFileStream reads at a time: a worker holds about this much of a day file being sent.
STREAM_CHUNK = 256 * 1024


class StoreError(Exception):
    """A day file cannot be used (not a regular file, unreadable, or outside the folder)."""


class StorageFull(Exception):
    """The data folder's file system has no room left (or the quota is used up); nothing was kept."""


_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


@contextlib.contextmanager
def _enospc_as_storage_full(what: str) -> Iterator[None]:
    """Turn ENOSPC/EDQUOT into ``StorageFull``; every other OSError stays what it is."""
    try:
        yield
    except OSError as exc:
        if exc.errno in _FULL_ERRNOS:
            raise StorageFull(f"no space left in the data folder to {what}") from exc
        raise


@dataclass(frozen=True)
class Appended:
    """Where one document landed: enough to read it back or to undo the append."""

    file_name: str
    offset: int
    length: int
    previous_size: int


def data_dir() -> Path:
    return Path(settings.INVENTORY_DATA_DIR)


def file_name(ip: IPAddress, day: dt.date) -> str:
    """``10.0.0.5_2026-11-27.json``; in IPv6 names ``:`` becomes ``-`` (``2001-db8--1_...``)."""
    if not isinstance(ip, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        raise TypeError("file_name needs a parsed address")
    return f"{ip.compressed.replace(':', '-')}_{day.isoformat()}.json"


def parse_file_name(name: str) -> tuple[IPAddress, dt.date] | None:
    """The address and day a day file's name stands for, or None for any other file."""
    match = _FILE_RE.match(name)
    if not match:
        return None
    text = match["ip"].replace("-", ":")
    try:
        ip = parse_ip(text)
        day = dt.date.fromisoformat(match["day"])
    except ValueError:
        return None
    return (ip, day) if file_name(ip, day) == name else None


def day_path(ip: IPAddress, day: dt.date) -> Path:
    folder = data_dir()
    path = folder / file_name(ip, day)
    if path.parent != folder:  # defensive: the name has no separators by construction
        raise StoreError("day file path escapes the data folder")
    return path


# --- low-level helpers ------------------------------------------------------

def _open(path: Path, flags: int) -> int:
    fd = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, 0o600)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise StoreError(f"{path.name} is not a regular file")
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _open_if_there(path: Path, flags: int) -> int | None:
    """``_open``, or None when *path* does not exist; a symbolic link is a StoreError."""
    try:
        return _open(path, flags)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise StoreError(f"{path.name} is a symbolic link") from None
        raise


def _open_locked(path: Path, *, create: bool, exclusive: bool) -> int | None:
    """Open and lock *path*, retrying if it was replaced or removed while we waited."""
    flags = (os.O_RDWR | (os.O_CREAT if create else 0)) if exclusive else os.O_RDONLY
    while True:
        fd = _open_if_there(path, flags)
        if fd is None:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            try:
                current = os.stat(path, follow_symlinks=False)
            except FileNotFoundError:
                current = None
            if current is not None and current.st_ino == os.fstat(fd).st_ino:
                return fd
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)  # pruned or replaced while we waited for the lock: start again


def _pwrite_all(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view = view[written:]
        offset += written


def _pread_exact(fd: int, length: int, offset: int) -> bytes:
    chunks = []
    while length > 0:
        chunk = os.pread(fd, length, offset)
        if not chunk:
            break
        chunks.append(chunk)
        length -= len(chunk)
        offset += len(chunk)
    return b"".join(chunks)


def _fsync(fd: int) -> None:
    if settings.INVENTORY_FSYNC:
        os.fsync(fd)


def _fsync_dir(folder: Path) -> None:
    if not settings.INVENTORY_FSYNC:
        return
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _rfind_newline(fd: int, end: int) -> int:
    """Position of the last ``\\n`` before *end*, or -1."""
    pos = end
    while pos > 0:
        start = max(0, pos - _SCAN_CHUNK)
        chunk = os.pread(fd, pos - start, start)
        index = chunk.rfind(b"\n")
        if index >= 0:
            return start + index
        pos = start
    return -1


def _is_whole(fd: int, size: int) -> bool:
    return size >= 5 and os.pread(fd, 2, 0) == OPEN_TAIL and os.pread(fd, 3, size - 3) == CLOSE_TAIL


def _repair(fd: int, size: int) -> int:
    """Cut a torn tail back to the last complete document and close the array.

    Runs under the exclusive lock. Returns the new size; 0 means the file holds
    no complete document and should be removed.
    """
    if size < 2 or os.pread(fd, 2, 0) != OPEN_TAIL:
        os.ftruncate(fd, 0)
        return 0
    end = size
    while end > 2:
        newline = _rfind_newline(fd, end)
        line_start = newline + 1
        line = _pread_exact(fd, end - line_start, line_start)
        candidate = line[1:] if line.startswith(b",") else line
        first = line_start == 2
        if candidate.startswith(b"{") and (first != line.startswith(b",")):
            try:
                msgspec.json.decode(candidate)
            except msgspec.DecodeError:
                pass
            else:
                new_end = line_start + len(line)
                _pwrite_all(fd, CLOSE_TAIL, new_end)
                os.ftruncate(fd, new_end + len(CLOSE_TAIL))
                _fsync(fd)
                return new_end + len(CLOSE_TAIL)
        end = newline if newline >= 2 else 2
    os.ftruncate(fd, 0)
    return 0


def _repair_path(path: Path) -> None:
    fd = _open_locked(path, create=False, exclusive=True)
    if fd is None:
        return
    try:
        size = os.fstat(fd).st_size
        if not _is_whole(fd, size) and _repair(fd, size) == 0:
            os.unlink(path)
            _fsync_dir(path.parent)
    finally:
        os.close(fd)


# --- compacted days -----------------------------------------------------------

COMPACTED_SUFFIX = ".zst"
# Uncompressed bytes per zstd frame: a read by offset decompresses up to this much (a few ms), and each
# frame starts its window afresh, which costs about one lone document's compression per frame.
COMPACT_FRAME_BYTES = 16 * 1024 * 1024
# A window as long as a frame, so every document finds the same host's earlier ones; zstdcat reads
# up to 2**27. The strategy is zstd's "btopt" (its levels 16-17) with a short search: 11% fewer bytes
# than level 9 for about 2 s of one core per host-day (docs/performance.md has the table).
COMPACT_WINDOW_LOG = 24
_SKIPPABLE_META = 0x184D2A50
_SKIPPABLE_SEEK_TABLE = 0x184D2A5E
_SEEKABLE_MAGIC = 0x8F92EAB1
_SEEK_FOOTER = struct.Struct("<IBI")  # Number_Of_Frames, Seek_Table_Descriptor, Seekable_Magic_Number
_SEEK_ENTRY = struct.Struct("<II")  # Compressed_Size, Decompressed_Size
_SKIPPABLE_HEADER = struct.Struct("<II")  # magic, frame size


def compacted_path(ip: IPAddress, day: dt.date) -> Path:
    """Where the compacted copy of a day lives: the day file's path plus ``.zst``."""
    return _compacted_sibling(day_path(ip, day))


def _compacted_sibling(path: Path) -> Path:
    return path.with_name(path.name + COMPACTED_SUFFIX)


def _fingerprint(content: bytes) -> _Fingerprint:
    return _Fingerprint(len(content), hashlib.blake2b(content, digest_size=16).hexdigest())


class _Fingerprint(msgspec.Struct):
    size: int
    blake2b: str


class _Metadata(msgspec.Struct):
    """The metadata frame: which plain file (size and digest) the ``.zst`` merged last, if any."""

    format: str
    merged: _Fingerprint | None = None


@dataclass(frozen=True)
class _Frame:
    compressed_offset: int
    compressed_size: int
    offset: int  # in the decompressed day
    size: int


class CompactedDay:
    """An open ``.json.zst``: its frames from the seek table, and the plain file it merged last."""

    def __init__(self, fd: int, name: str):
        self.fd = fd
        self.name = name
        file_size = os.fstat(fd).st_size
        footer = _pread_exact(fd, _SEEK_FOOTER.size, file_size - _SEEK_FOOTER.size) if file_size > 9 else b""
        if len(footer) != _SEEK_FOOTER.size:
            raise StoreError(f"{name} has no seek table")
        count, descriptor, magic = _SEEK_FOOTER.unpack(footer)
        table_size = _SKIPPABLE_HEADER.size + count * _SEEK_ENTRY.size + _SEEK_FOOTER.size
        if magic != _SEEKABLE_MAGIC or descriptor & 0x80 or table_size > file_size:
            raise StoreError(f"{name} has no seek table this store wrote")
        table = _pread_exact(fd, table_size - _SEEK_FOOTER.size, file_size - table_size)
        frames, compressed, offset = [], 0, 0
        for index in range(count):
            size_c, size_d = _SEEK_ENTRY.unpack_from(table, _SKIPPABLE_HEADER.size + index * _SEEK_ENTRY.size)
            frames.append(_Frame(compressed, size_c, offset, size_d))
            compressed += size_c
            offset += size_d
        self.frames = frames
        self._starts = [frame.offset for frame in frames]
        self.size = offset
        meta_size = file_size - table_size - compressed
        header = _pread_exact(fd, _SKIPPABLE_HEADER.size, compressed)
        if meta_size < _SKIPPABLE_HEADER.size or _SKIPPABLE_HEADER.unpack(header) != (
                _SKIPPABLE_META, meta_size - _SKIPPABLE_HEADER.size):
            raise StoreError(f"{name} has no metadata frame where its seek table says")
        try:
            meta = msgspec.json.decode(_pread_exact(fd, meta_size - _SKIPPABLE_HEADER.size,
                                                    compressed + _SKIPPABLE_HEADER.size), type=_Metadata)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise StoreError(f"{name} has unreadable metadata: {exc}") from None
        self.merged = meta.merged
        if self.size < len(OPEN_TAIL) + len(CLOSE_TAIL) or not frames or frames[-1].size != len(CLOSE_TAIL):
            raise StoreError(f"{name} does not end with a closing frame")

    @classmethod
    def open(cls, path: Path) -> CompactedDay | None:
        fd = _open_if_there(path, os.O_RDONLY)
        if fd is None:
            return None
        try:
            return cls(fd, path.name)
        except BaseException:
            os.close(fd)
            raise

    @property
    def documents_end(self) -> int:
        """Offset just past the last document: the ``base`` a late plain file's offsets count on from."""
        return self.size - len(CLOSE_TAIL)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def _frame_chunks(self, frame: _Frame, start: int, end: int) -> Iterator[bytes]:
        """Bytes *start* to *end* of one frame's content, decompressed ``STREAM_CHUNK`` at a time.

        Only the compressed frame and one chunk are held in memory, and the
        decompression stops once *end* is reached.
        """
        end = min(end, frame.size)
        data = _pread_exact(self.fd, frame.compressed_size, frame.compressed_offset)
        position = 0
        try:
            for chunk in zstandard.ZstdDecompressor().read_to_iter(data, write_size=STREAM_CHUNK):
                chunk_end = position + len(chunk)
                if chunk_end > start:
                    yield chunk[max(0, start - position):end - position]
                position = chunk_end
                if position >= end:
                    return
        except zstandard.ZstdError as exc:
            raise StoreError(f"{self.name} has a damaged frame: {exc}") from None
        raise StoreError(f"{self.name} has a frame shorter than its seek table says")

    def read(self, offset: int, length: int) -> bytes:
        """*length* bytes of the decompressed day from *offset*, decompressing only the frames that hold them."""
        end = min(offset + length, self.size)
        index = max(0, bisect.bisect_right(self._starts, offset) - 1)
        parts = []
        while index < len(self.frames) and self.frames[index].offset < end:
            frame = self.frames[index]
            parts.extend(self._frame_chunks(frame, max(0, offset - frame.offset), end - frame.offset))
            index += 1
        return b"".join(parts)

    def chunks(self, end: int) -> Iterator[bytes]:
        """The decompressed day up to *end*, ``STREAM_CHUNK`` at a time."""
        for frame in self.frames:
            if frame.offset >= end:
                return
            yield from self._frame_chunks(frame, 0, end - frame.offset)

    def content(self) -> bytes:
        return b"".join(self.chunks(self.size))

    def has_merged(self, fd: int) -> bool:
        """Whether the plain file open at *fd* is the one this file already holds (a leftover of step 3)."""
        if not self.merged:
            return False
        size = os.fstat(fd).st_size
        return size == self.merged.size and _fingerprint(_pread_exact(fd, size, 0)) == self.merged


def _compress_lines(content: bytes, compressor: zstandard.ZstdCompressor) -> Iterator[tuple[bytes, int]]:
    """(frame, its decompressed size) for *content*, cut after a newline every ``COMPACT_FRAME_BYTES``."""
    start = 0
    while start < len(content):
        end = start + COMPACT_FRAME_BYTES
        if end < len(content):
            newline = content.rfind(b"\n", start, end)
            end = newline + 1 if newline >= start else content.find(b"\n", end) + 1 or len(content)
        else:
            end = len(content)
        yield compressor.compress(content[start:end]), end - start
        start = end


def _compact_compressor() -> zstandard.ZstdCompressor:
    return zstandard.ZstdCompressor(compression_params=zstandard.ZstdCompressionParameters(
        window_log=COMPACT_WINDOW_LOG, chain_log=22, hash_log=22, search_log=2, min_match=5, target_length=32,
        strategy=zstandard.STRATEGY_BTOPT, write_checksum=1, write_content_size=1))


def _write_compacted(path: Path, frames: list[tuple[bytes, int]], merged: _Fingerprint | None) -> None:
    """Steps 1 and 2 of compaction: the frames, metadata and seek table to a temp file, then renamed in place."""
    meta = msgspec.json.encode(_Metadata("relevo-day-file/1", merged))
    table = b"".join(_SEEK_ENTRY.pack(len(frame), size) for frame, size in frames)
    table += _SEEK_FOOTER.pack(len(frames), 0, _SEEKABLE_MAGIC)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        with _enospc_as_storage_full(f"write {path.name}"):
            offset = 0
            for part in (*(frame for frame, _ in frames), _SKIPPABLE_HEADER.pack(_SKIPPABLE_META, len(meta)), meta,
                         _SKIPPABLE_HEADER.pack(_SKIPPABLE_SEEK_TABLE, len(table)), table):
                _pwrite_all(fd, part, offset)
                offset += len(part)
            _fsync(fd)
            os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    finally:
        os.close(fd)
    _fsync_dir(path.parent)


def _remove_temp_files(path: Path) -> None:
    """Temp files an interrupted compaction of this day left (the lock is held, so none is in use)."""
    prefix = f".{path.name}{COMPACTED_SUFFIX}."
    for name in os.listdir(path.parent):
        if name.startswith(prefix) and name.endswith(".tmp"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path.parent / name)


# --- writing ----------------------------------------------------------------

class DayFileWriter:
    """An open day file held under the exclusive lock; see ``locked_for_append``."""

    def __init__(self, path: Path, fd: int):
        self.path = path
        self._fd = fd
        self._compacted_path = _compacted_sibling(path)
        self.removed = False
        size = os.fstat(fd).st_size
        if size and not _is_whole(fd, size):
            size = _repair(fd, size)
        self._size = size
        # Offsets of a late plain file count on from the compacted documents (module docstring).
        self._base = 0
        compacted = CompactedDay.open(self._compacted_path)
        if compacted is not None:
            try:
                self._base = compacted.documents_end
                if size and compacted.has_merged(fd):
                    # A compaction stopped before its step 3: these documents are in the .zst already.
                    os.ftruncate(fd, 0)
                    _fsync(fd)
                    self._size = 0
            finally:
                compacted.close()

    @property
    def size(self) -> int:
        return self._size

    @property
    def documents_end(self) -> int:
        """Offset just past the plain file's last document, counted in the whole day (0 when it has none)."""
        return self._base + self._size - len(CLOSE_TAIL) if self._size else 0

    def last_document(self) -> tuple[int, bytes] | None:
        """The last document and its offset: what a crash may have left unrecorded."""
        if not self._size:
            return None
        end = self.documents_end
        line_start = _rfind_newline(self._fd, end) + 1
        line = _pread_exact(self._fd, end - line_start, line_start)
        if line.startswith(b","):
            return self._base + line_start + 1, line[1:]
        return self._base + line_start, line

    def size_after(self, document: bytes) -> int:
        """The file's size once *document* is appended (for the size cap, checked before writing)."""
        if not self._size:
            return len(OPEN_TAIL) + len(document) + len(CLOSE_TAIL)
        return self._size - 2 + len(b",") + len(document) + len(CLOSE_TAIL)  # as append() writes it

    def append(self, document: bytes) -> Appended:
        """Write one document (a compact JSON object with no raw newline) and fsync it."""
        if b"\n" in document or not document.startswith(b"{"):
            raise ValueError("a stored document is one JSON object on one line")
        started = time.perf_counter()
        previous = self._size
        if previous == 0:
            data = b"".join((OPEN_TAIL, document, CLOSE_TAIL))
            offset, write_at = len(OPEN_TAIL), 0
        else:
            data = b"".join((b",", document, CLOSE_TAIL))  # one copy of the document, not two
            write_at = previous - 2  # over the closing "]\n"
            offset = write_at + 1
        appended = Appended(self.path.name, self._base + offset, len(document), previous)
        try:
            _pwrite_all(self._fd, data, write_at)
            self._size = write_at + len(data)
            _fsync(self._fd)
            if previous == 0:
                _fsync_dir(self.path.parent)
        except OSError as exc:
            self._cut_back_failed(appended)
            if exc.errno in _FULL_ERRNOS:
                raise StorageFull(f"no space left in the data folder to append to {self.path.name}") from exc
            raise
        metrics.DAY_FILE_APPEND_SECONDS.observe(time.perf_counter() - started)
        return appended

    def _cut_back_failed(self, appended: Appended) -> None:
        """Undo an append that failed part way; a failure here leaves a tail that repair cuts."""
        self._size = appended.previous_size
        try:
            self.undo(appended)
        except OSError:
            pass  # the file may end torn; _is_whole/_repair fix it under the lock on the next access

    def undo(self, appended: Appended) -> None:
        """Take back the last append (its database row could not be committed)."""
        if appended.previous_size == 0:
            os.ftruncate(self._fd, 0)
            os.unlink(self.path)
            _fsync_dir(self.path.parent)
            self._size = 0
            return
        _pwrite_all(self._fd, b"]\n", appended.previous_size - 2)
        os.ftruncate(self._fd, appended.previous_size)
        _fsync(self._fd)
        self._size = appended.previous_size


    # --- whole-file operations, for prune, reindex and export (still under the lock) ---

    def documents(self) -> Iterator[tuple[int, bytes]]:
        """Every document of the day with its offset, in order: the compacted ones, then the plain file's.

        ``open_day`` cannot be used here: it takes the shared lock on a second
        descriptor, which would wait forever for our own exclusive lock.
        """
        compacted = CompactedDay.open(self._compacted_path)
        if compacted is not None:
            try:
                content = compacted.content()
            finally:
                compacted.close()
            yield from _split_documents(content)
        if not self._size:
            return
        content = _pread_exact(self._fd, self._size, 0)
        for offset, document in _split_documents(content):
            yield self._base + offset, document

    def plain_document_count(self) -> int:
        """How many documents the plain file holds: what ``compact`` would merge."""
        return _document_count(_pread_exact(self._fd, self._size, 0)) if self._size else 0

    def compact(self) -> int:
        """Merge the plain file's documents into the day's ``.zst`` (module docstring); returns how many.

        The offsets of every document stay what they were, so no row changes.
        """
        _remove_temp_files(self.path)
        if not self._size:
            return 0
        plain = _pread_exact(self._fd, self._size, 0)
        compressor = _compact_compressor()
        frames: list[tuple[bytes, int]] = []
        compacted = CompactedDay.open(self._compacted_path)
        if compacted is None:
            lines = plain[:-len(CLOSE_TAIL)]
        else:
            try:
                frames.extend((_pread_exact(compacted.fd, frame.compressed_size, frame.compressed_offset), frame.size)
                              for frame in compacted.frames[:-1])  # all but the closing frame, as they are
            finally:
                compacted.close()
            lines = b"\n," + plain[len(OPEN_TAIL):-len(CLOSE_TAIL)]
        frames.extend(_compress_lines(lines, compressor))
        frames.append((compressor.compress(CLOSE_TAIL), len(CLOSE_TAIL)))
        _write_compacted(self._compacted_path, frames, _fingerprint(plain))
        self._base = sum(size for _, size in frames) - len(CLOSE_TAIL)
        self._drop_plain()
        return _document_count(plain)

    def _drop_plain(self) -> None:
        """Step 3: the plain file goes; a writer that comes now creates a new one (see ``_open_locked``)."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        _fsync_dir(self.path.parent)
        self._size = 0
        self.removed = True

    def replace_all(self, documents: Iterable[bytes]) -> list[tuple[int, int]]:
        """Write the file anew from *documents* (temp file, fsync, rename); returns (offset, length) each.

        Writers waiting for the lock of the old file notice the rename when
        they get it (``_open_locked`` compares inodes) and start again on the
        new one, so nothing is appended to the replaced file.
        """
        parts, positions, offset = [OPEN_TAIL], [], len(OPEN_TAIL)
        for index, document in enumerate(documents):
            if b"\n" in document or not document.startswith(b"{"):
                raise ValueError("a stored document is one JSON object on one line")
            if index:
                parts.append(b"\n,")
                offset += 2
            parts.append(document)
            positions.append((offset, len(document)))
            offset += len(document)
        if not positions:
            self.remove()
            return []
        parts.append(CLOSE_TAIL)
        data = b"".join(parts)
        if os.path.lexists(self._compacted_path):
            # A compacted day stays compacted; the plain file (if any) is recorded as merged, then dropped.
            compressor = _compact_compressor()
            frames = [*_compress_lines(data[:-len(CLOSE_TAIL)], compressor),
                      (compressor.compress(CLOSE_TAIL), len(CLOSE_TAIL))]
            merged = _fingerprint(_pread_exact(self._fd, self._size, 0)) if self._size else None
            _write_compacted(self._compacted_path, frames, merged)
            self._base = len(data) - len(CLOSE_TAIL)
            self._drop_plain()
            return positions
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            _pwrite_all(fd, data, 0)
            _fsync(fd)
        finally:
            os.close(fd)
        try:
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        _fsync_dir(self.path.parent)
        self._size = len(data)
        return positions

    def remove(self) -> None:
        """Delete the day, compacted copy first (retention); the lock is held until the caller is done.

        A crash between the two unlinks leaves only late documents, which the next prune removes.
        """
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._compacted_path)
        self._drop_plain()


def _document_count(content: bytes) -> int:
    return content.count(b"\n") - 2  # a whole file has "[", one line a document, then "]"


def _split_documents(content: bytes) -> Iterator[tuple[int, bytes]]:
    offset = len(OPEN_TAIL)
    for line in content[len(OPEN_TAIL):-len(CLOSE_TAIL)].split(b"\n"):
        if line.startswith(b","):
            yield offset + 1, line[1:]
        else:
            yield offset, line
        offset += len(line) + 1


@contextlib.contextmanager
def locked_for_append(ip: IPAddress, day: dt.date) -> Iterator[DayFileWriter]:
    """Hold the day file of *ip* and *day* exclusively (created if missing).

    Writers of the same file queue here, across worker processes; a file left
    empty (a crash before its first document) is removed on the way out.
    """
    folder = data_dir()
    path = day_path(ip, day)
    with _enospc_as_storage_full(f"create {path.name}"):
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = _open_locked(path, create=True, exclusive=True)
    assert fd is not None  # O_CREAT
    try:
        writer = DayFileWriter(path, fd)
        try:
            yield writer
        finally:
            # Not after remove() or compact(): the path may be another writer's new file by now.
            if writer.size == 0 and not writer.removed and os.path.lexists(path):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
    finally:
        os.close(fd)


# --- reading ----------------------------------------------------------------

class DayFileStream:
    """A day file's bytes as they were when it was opened, read from disk in chunks.

    For ``/query`` and the download: memory stays at one chunk whatever the
    file's size. The file is checked whole under the shared lock, then the
    lock is let go, so a slow reader never holds up the writers, and only the
    bytes before the closing ``\n]\n`` are read from the file (the array is
    closed by the stream itself). Those bytes never change in place: an append
    writes from ``size - 2`` on, an undo or a repair only at or past the end
    of the last whole document, and prune and reindex replace or unlink the
    file, which leaves this open descriptor on the old, unchanged one. So the
    stream is one consistent array even if writers come and go meanwhile.
    ``prefix`` and ``suffix`` frame it (the JSON object around the array).
    A compacted day is streamed from its ``.zst`` a frame at a time, followed
    by the documents of a late plain file if there is one (module docstring);
    a ``.zst`` is never changed in place either, only renamed over or unlinked.
    The descriptors are closed at the end of the iteration or by ``close()``
    (Django calls it when the response is done, sent or not).
    """

    def __init__(self, fd: int | None, size: int, *, prefix: bytes = b"", suffix: bytes = b"",
                 compacted: CompactedDay | None = None):
        self._fd = fd
        self._size = size
        self._compacted = compacted
        self.prefix = prefix
        self.suffix = suffix

    @classmethod
    def of_bytes(cls, data: bytes) -> DayFileStream:
        """A stream of bytes already in memory (one document read by offset)."""
        return cls(None, 0, prefix=data)

    def framed(self, prefix: bytes, suffix: bytes) -> DayFileStream:
        """The same content between *prefix* and *suffix*; this stream hands its file over."""
        framed = DayFileStream(self._fd, self._size, prefix=prefix + self.prefix, suffix=self.suffix + suffix,
                               compacted=self._compacted)
        self._fd, self._size, self._compacted = None, 0, None
        return framed

    def __len__(self) -> int:
        size = self._size
        if self._compacted is not None:
            size = self._compacted.size + (size - len(CLOSE_TAIL) if size else 0)
        return len(self.prefix) + size + len(self.suffix)

    def __iter__(self) -> Iterator[bytes]:
        try:
            if self.prefix:
                yield self.prefix
            offset = 0
            if self._compacted is not None:
                yield from self._compacted.chunks(self._compacted.documents_end)
                if self._fd is not None:
                    yield b"\n,"  # the late documents go on from the compacted ones
                    offset = len(OPEN_TAIL)
            if self._fd is not None:
                end = self._size - len(CLOSE_TAIL)
                while offset < end:
                    chunk = os.pread(self._fd, min(STREAM_CHUNK, end - offset), offset)
                    if not chunk:
                        raise StoreError("a day file got shorter while it was read")
                    offset += len(chunk)
                    yield chunk
            if self._fd is not None or self._compacted is not None:
                yield CLOSE_TAIL
            if self.suffix:
                yield self.suffix
        finally:
            self.close()

    def read(self) -> bytes:
        """Everything at once, for a caller that needs the whole file in memory."""
        return b"".join(self)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._compacted is not None:
            self._compacted.close()
            self._compacted = None


def open_day(ip: IPAddress, day: dt.date) -> DayFileStream | None:
    """The day of *ip* and *day* as a stream (a JSON array), compacted or not, or None when there is none.

    A torn file is repaired first, under the exclusive lock. Which of a
    ``.zst`` and a plain file count is the rule in the module docstring; the
    ``.zst`` is opened under the plain file's shared lock, so a compaction
    cannot slip between the two looks.
    """
    path = day_path(ip, day)
    compacted_path = _compacted_sibling(path)
    for _ in range(3):
        fd = _open_locked(path, create=False, exclusive=False)
        if fd is None:
            compacted = CompactedDay.open(compacted_path)
            return None if compacted is None else DayFileStream(None, 0, compacted=compacted)
        compacted = None
        try:
            size = os.fstat(fd).st_size
            if _is_whole(fd, size):
                compacted = CompactedDay.open(compacted_path)
                fcntl.flock(fd, fcntl.LOCK_UN)
                if compacted is not None and compacted.has_merged(fd):
                    os.close(fd)
                    return DayFileStream(None, 0, compacted=compacted)
                return DayFileStream(fd, size, compacted=compacted)
        except BaseException:
            os.close(fd)
            if compacted is not None:
                compacted.close()
            raise
        os.close(fd)
        _repair_path(path)
    raise StoreError(f"{path.name} could not be repaired")


def read_document(file: str, offset: int, length: int) -> bytes | None:
    """One document by its position, as recorded at append time; None if it is not there.

    On a compacted day only the frames that hold it are decompressed. The
    plain file is opened before the ``.zst``: if a compaction merged it in
    between, the ``.zst`` records it as merged and holds the document at the
    same offset; a plain file we cannot place gives None (the caller falls
    back to the database's copy) rather than another document's bytes.
    """
    if parse_file_name(file) is None:
        return None
    path = data_dir() / file
    fd = compacted = None
    try:
        fd = _open_if_there(path, os.O_RDONLY)
        compacted = CompactedDay.open(_compacted_sibling(path))
        if compacted is not None and offset + length <= compacted.documents_end:
            data = compacted.read(offset, length)
        elif compacted is not None:
            base = compacted.documents_end
            if fd is None or offset < base or compacted.has_merged(fd):
                return None
            data = _pread_exact(fd, length, offset - base)
        elif fd is not None:
            data = _pread_exact(fd, length, offset)
        else:
            return None
    except StoreError:
        return None
    finally:
        if fd is not None:
            os.close(fd)
        if compacted is not None:
            compacted.close()
    if len(data) != length or not data.startswith(b"{") or not data.endswith(b"}"):
        return None
    return data


def iter_day_files() -> Iterator[tuple[IPAddress, dt.date, Path]]:
    """Every day in the data folder once, compacted or not, in name order; other files are ignored.

    The path is the day's plain name (``day_path``), which a compacted day may not have on disk.
    """
    folder = data_dir()
    if not folder.is_dir():
        return
    seen = set()
    for name in sorted(os.listdir(folder)):
        parsed = parse_file_name(name.removesuffix(COMPACTED_SUFFIX))
        if parsed is not None and parsed not in seen:
            seen.add(parsed)
            yield parsed[0], parsed[1], folder / file_name(*parsed)


def uncompacted_days(*, before: dt.date) -> list[tuple[IPAddress, dt.date]]:
    """Days before *before* that have a plain day file: what ``manage.py compact`` has to do."""
    folder = data_dir()
    if not folder.is_dir():
        return []
    days = (parse_file_name(name) for name in sorted(os.listdir(folder)))
    return [day for day in days if day is not None and day[1] < before]


def is_writable() -> bool:
    """Whether a file can be created in the data folder now (for /readyz)."""
    folder = data_dir()
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(folder / ".readyz", os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        os.close(fd)
        os.unlink(folder / ".readyz")
    except OSError:
        return False
    return True


def free_bytes() -> int | None:
    """Bytes an unprivileged writer can still use in the data folder's file system (None if unknown)."""
    try:
        return shutil.disk_usage(data_dir()).free
    except OSError:
        return None
