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
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import fcntl
import ipaddress
import os
import re
import shutil
import stat
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import msgspec
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


def _open_locked(path: Path, *, create: bool, exclusive: bool) -> int | None:
    """Open and lock *path*, retrying if it was replaced or removed while we waited."""
    flags = (os.O_RDWR | (os.O_CREAT if create else 0)) if exclusive else os.O_RDONLY
    while True:
        try:
            fd = _open(path, flags)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise StoreError(f"{path.name} is a symbolic link") from None
            raise
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


# --- writing ----------------------------------------------------------------

class DayFileWriter:
    """An open day file held under the exclusive lock; see ``locked_for_append``."""

    def __init__(self, path: Path, fd: int):
        self.path = path
        self._fd = fd
        size = os.fstat(fd).st_size
        if size and not _is_whole(fd, size):
            size = _repair(fd, size)
        self._size = size

    @property
    def size(self) -> int:
        return self._size

    @property
    def documents_end(self) -> int:
        """Offset just past the last document (0 when there is none)."""
        return self._size - len(CLOSE_TAIL) if self._size else 0

    def last_document(self) -> tuple[int, bytes] | None:
        """The last document and its offset: what a crash may have left unrecorded."""
        if not self._size:
            return None
        end = self.documents_end
        line_start = _rfind_newline(self._fd, end) + 1
        line = _pread_exact(self._fd, end - line_start, line_start)
        if line.startswith(b","):
            return line_start + 1, line[1:]
        return line_start, line

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
            data = OPEN_TAIL + document + CLOSE_TAIL
            offset, write_at = len(OPEN_TAIL), 0
        else:
            data = b"," + document + CLOSE_TAIL
            write_at = previous - 2  # over the closing "]\n"
            offset = write_at + 1
        appended = Appended(self.path.name, offset, len(document), previous)
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
        """Every document with its offset, in file order, read through the locked descriptor.

        ``open_day`` cannot be used here: it takes the shared lock on a second
        descriptor, which would wait forever for our own exclusive lock.
        """
        if not self._size:
            return
        content = _pread_exact(self._fd, self._size, 0)
        yield from _split_documents(content)

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
        """Delete the day file (retention); the lock is held until the caller is done."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        _fsync_dir(self.path.parent)
        self._size = 0


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
            if writer.size == 0 and os.path.lexists(path):
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
    The descriptor is closed at the end of the iteration or by ``close()``
    (Django calls it when the response is done, sent or not).
    """

    def __init__(self, fd: int | None, size: int, *, prefix: bytes = b"", suffix: bytes = b""):
        self._fd = fd
        self._size = size
        self.prefix = prefix
        self.suffix = suffix

    @classmethod
    def of_bytes(cls, data: bytes) -> DayFileStream:
        """A stream of bytes already in memory (one document read by offset)."""
        return cls(None, 0, prefix=data)

    def framed(self, prefix: bytes, suffix: bytes) -> DayFileStream:
        """The same content between *prefix* and *suffix*; this stream hands its file over."""
        framed = DayFileStream(self._fd, self._size, prefix=prefix + self.prefix, suffix=self.suffix + suffix)
        self._fd, self._size = None, 0
        return framed

    def __len__(self) -> int:
        return len(self.prefix) + self._size + len(self.suffix)

    def __iter__(self) -> Iterator[bytes]:
        try:
            if self.prefix:
                yield self.prefix
            if self._fd is not None:
                offset, end = 0, self._size - len(CLOSE_TAIL)
                while offset < end:
                    chunk = os.pread(self._fd, min(STREAM_CHUNK, end - offset), offset)
                    if not chunk:
                        raise StoreError("a day file got shorter while it was read")
                    offset += len(chunk)
                    yield chunk
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


def open_day(ip: IPAddress, day: dt.date) -> DayFileStream | None:
    """The day file of *ip* and *day* as a stream (a JSON array), or None when there is none.

    A torn file is repaired first, under the exclusive lock.
    """
    path = day_path(ip, day)
    for _ in range(3):
        fd = _open_locked(path, create=False, exclusive=False)
        if fd is None:
            return None
        try:
            size = os.fstat(fd).st_size
            if _is_whole(fd, size):
                fcntl.flock(fd, fcntl.LOCK_UN)
                return DayFileStream(fd, size)
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)
        _repair_path(path)
    raise StoreError(f"{path.name} could not be repaired")


def read_document(file: str, offset: int, length: int) -> bytes | None:
    """One document by its position, as recorded at append time; None if it is not there."""
    if parse_file_name(file) is None:
        return None
    path = data_dir() / file
    try:
        fd = _open(path, os.O_RDONLY)
    except (FileNotFoundError, StoreError):
        return None
    try:
        data = _pread_exact(fd, length, offset)
    finally:
        os.close(fd)
    if len(data) != length or not data.startswith(b"{") or not data.endswith(b"}"):
        return None
    return data


def iter_day_files() -> Iterator[tuple[IPAddress, dt.date, Path]]:
    """Every day file in the data folder, in name order; other files are ignored."""
    folder = data_dir()
    if not folder.is_dir():
        return
    for name in sorted(os.listdir(folder)):
        parsed = parse_file_name(name)
        if parsed is not None:
            yield parsed[0], parsed[1], folder / name


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
