"""The on-disk queue of snapshots that could not be delivered yet.

The only module that touches the spool folder. One gzip file per snapshot,
written atomically (temp file + fsync + ``os.replace``), named so that a plain
sort gives the oldest first. The queue is bounded in count and bytes: when
full, the oldest snapshots are dropped with a warning rather than filling the
host's disk. Snapshots the server refused as malformed (HTTP 400) are set
aside in ``rejected/`` with the server's answer, so a schema bug never loops.
"""

from __future__ import annotations

import logging
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

from .state import write_atomic

log = logging.getLogger(__name__)

DEFAULT_MAX_COUNT = 500
DEFAULT_MAX_BYTES = 50 * 1024 * 1024
REJECTED_MAX_COUNT = 20
SUFFIX = ".json.gz"

_SAFE_ID = re.compile(r"[^A-Za-z0-9\-]")


@dataclass(frozen=True)
class SpoolEntry:
    """One spooled snapshot: its file and its gzip-compressed JSON body."""

    path: Path

    @property
    def snapshot_id(self) -> str:
        """The snapshot id embedded in the file name."""
        return self.path.name[: -len(SUFFIX)].split("-", 1)[1]

    def read(self) -> bytes:
        """The gzip body, ready to POST as is."""
        return self.path.read_bytes()


class Spool:
    """A bounded, crash-safe folder of undelivered snapshots (oldest first)."""

    def __init__(
        self, directory: Path, *, max_count: int = DEFAULT_MAX_COUNT, max_bytes: int = DEFAULT_MAX_BYTES
    ) -> None:
        self.directory = Path(directory)
        self.rejected_dir = self.directory / "rejected"
        self.max_count = max_count
        self.max_bytes = max_bytes

    def put(self, *, snapshot_id: str, body_gz: bytes) -> SpoolEntry:
        """Keep a snapshot for a later run, then trim the spool to its bounds."""
        # Nanoseconds first so that lexical order is arrival order.
        name = f"{time.time_ns():020d}-{_SAFE_ID.sub('', snapshot_id)}{SUFFIX}"
        path = self.directory / name
        write_atomic(path, body_gz)
        self._enforce_bounds(keep=path)
        return SpoolEntry(path)

    def pending(self) -> list[SpoolEntry]:
        """Spooled snapshots, oldest first."""
        if not self.directory.is_dir():
            return []
        return [SpoolEntry(p) for p in sorted(self.directory.glob("*" + SUFFIX)) if p.is_file()]

    def remove(self, entry: SpoolEntry) -> None:
        """Forget a delivered snapshot; another run may already have done so."""
        try:
            entry.path.unlink()
        except FileNotFoundError:
            log.debug("spool entry %s already gone", entry.path.name)

    def set_aside(self, *, snapshot_id: str, body_gz: bytes, error: str, entry: SpoolEntry | None = None) -> Path:
        """Move a refused snapshot out of the queue, next to the server's error text."""
        safe_id = _SAFE_ID.sub("", snapshot_id)
        target = self.rejected_dir / f"{time.time_ns():020d}-{safe_id}{SUFFIX}"
        write_atomic(target, body_gz)
        write_atomic(target.with_name(target.name[: -len(SUFFIX)] + ".error.txt"), error.encode("utf-8", "replace"))
        if entry is not None:
            self.remove(entry)
        self._trim_rejected()
        return target

    def rejected(self) -> list[Path]:
        """Set-aside snapshots, oldest first (for operators and tests)."""
        if not self.rejected_dir.is_dir():
            return []
        return sorted(self.rejected_dir.glob("*" + SUFFIX))

    def _enforce_bounds(self, *, keep: Path) -> None:
        entries = self.pending()
        sizes = {}
        for e in entries:
            try:
                sizes[e.path] = e.path.stat().st_size
            except FileNotFoundError:
                sizes[e.path] = 0
        total = sum(sizes.values())
        count = len(entries)
        for entry in entries:
            if count <= self.max_count and total <= self.max_bytes:
                break
            if entry.path == keep:
                continue
            log.warning("spool full (%d snapshots, %d bytes): dropping the oldest, %s",
                        count, total, entry.path.name)
            self.remove(entry)
            count -= 1
            total -= sizes[entry.path]

    def _trim_rejected(self) -> None:
        rejected = self.rejected()
        for path in rejected[: max(0, len(rejected) - REJECTED_MAX_COUNT)]:
            for victim in (path, path.with_name(path.name[: -len(SUFFIX)] + ".error.txt")):
                try:
                    os.unlink(victim)
                except FileNotFoundError:
                    log.debug("rejected file %s already gone", victim.name)
