"""Outages made on purpose: a file system that fills up, a PostgreSQL that restarts.

Shared by the outage tests and ``bench/outage.py``; both need root.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import time
from pathlib import Path


def mount_tmpfs(mount_point: Path, *, size: str = "48m") -> str:
    """Mount a tmpfs of *size* at *mount_point*; returns "" or why it could not (not root, no mount)."""
    try:
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(mount_point)],
                                 capture_output=True, text=True, timeout=30)
    except FileNotFoundError:
        return "no mount command"
    if mounted.returncode:
        return mounted.stderr.strip() or f"mount exited {mounted.returncode}"
    return ""


def unmount(mount_point: Path) -> None:
    """Lazily, so that a file still open in a stopped server cannot keep the mount."""
    subprocess.run(["umount", "--lazy", str(mount_point)], check=True)


class SmallFilesystem:
    """A sized tmpfs of its own, and a filler file to take its space away and give it back."""

    def __init__(self, path: Path):
        self.path = path
        self.filler = path / "filler"

    def fill(self, *, leave: int = 0) -> None:
        """Write the filler until the file system is full, then give *leave* bytes back."""
        chunk = b"\0" * (1 << 20)
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            for size in (1 << 20, 1 << 12):
                while True:
                    try:
                        os.write(fd, chunk[:size])
                    except OSError as exc:
                        if exc.errno != errno.ENOSPC:
                            raise
                        break
        finally:
            os.close(fd)
        if leave:
            os.truncate(self.filler, max(0, self.filler.stat().st_size - leave))

    def free(self) -> None:
        """Give all of the filler's space back."""
        self.filler.unlink(missing_ok=True)


def postgres_cluster() -> str | None:
    """The version of the machine's one PostgreSQL cluster named main (Debian's layout), or None."""
    try:
        versions = sorted(os.listdir("/etc/postgresql"))
    except OSError:
        return None
    return versions[-1] if versions and shutil.which("pg_ctlcluster") else None


def restart_postgres(version: str) -> None:
    """Restart the cluster in the default fast mode (every session is cut), and leave it answering.

    Whatever happens, PostgreSQL is started again before this returns or
    raises: other test runs on the machine use it.
    """
    try:
        subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"],
                       check=True, capture_output=True, timeout=120)
    finally:
        _ensure_postgres_running(version)


def _ensure_postgres_running(version: str) -> None:
    for _ in range(60):
        if subprocess.run(["pg_isready", "-q", "-h", "127.0.0.1", "-p", "5432"]).returncode == 0:
            return
        subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"],
                       capture_output=True, timeout=120)
        time.sleep(1)
    raise AssertionError("PostgreSQL did not come back after the restart")
