"""Fixtures shared by the server's and the agent's tests.

Every test gets its own data folder, so no test can see or damage another's
day files. ``live_relevo`` starts a real gunicorn (see relevo_testing/live.py).
"""

from __future__ import annotations

import errno
import os
import subprocess
from pathlib import Path

import pytest

# Settings need a secret key; `make test` writes one into .env, this covers a bare `pytest`.
os.environ.setdefault("DJANGO_SECRET_KEY", "test-only-not-a-secret")

from relevo_testing import live


def require(condition: bool, reason: str) -> None:
    """Skip outside CI, fail under CI=true: a skipped prerequisite in CI is a failure."""
    if condition:
        return
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        pytest.fail(f"prerequisite missing under CI: {reason}")
    pytest.skip(reason)


def pytest_collection_modifyitems(config, items):
    """Deselect ``postgres_only`` tests unless the run is on PostgreSQL.

    Deselected, not skipped: on the SQLite leg they have nothing to prove,
    and a skip under CI counts as a failure.
    """
    if live.run_on_postgres():
        return
    deselected = [item for item in items if item.get_closest_marker("postgres_only")]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if not item.get_closest_marker("postgres_only")]


@pytest.fixture(autouse=True)
def _data_dir(tmp_path, settings):
    settings.INVENTORY_DATA_DIR = tmp_path / "data"
    settings.INVENTORY_DATA_DIR.mkdir(mode=0o700)  # as the server makes it (reports.private)
    return settings.INVENTORY_DATA_DIR


@pytest.fixture
def data_dir(_data_dir):
    return _data_dir


@pytest.fixture
def relevo_server_factory(tmp_path_factory):
    """Start as many live servers as a test needs; all are stopped at the end."""
    servers: list[live.LiveRelevo] = []

    def factory(**kwargs) -> live.LiveRelevo:
        base = tmp_path_factory.mktemp("relevo")
        server = live.start(base, **kwargs)
        servers.append(server)
        return server

    yield factory
    for server in servers:
        server.stop()


@pytest.fixture
def live_relevo(relevo_server_factory) -> live.LiveRelevo:
    """A real gunicorn serving Relevo on 127.0.0.1 with a fresh database and data folder."""
    return relevo_server_factory()


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


@pytest.fixture
def small_filesystem(tmp_path):
    """A 48 MB tmpfs mounted for this test (root only; fails under CI if it cannot be mounted)."""
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    try:
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m,mode=0755", "tmpfs", str(mount_point)],
                                 capture_output=True, text=True, timeout=30)
        problem = mounted.stderr.strip() if mounted.returncode else ""
    except FileNotFoundError:
        problem = "no mount command"
    require(not problem, f"a tmpfs must be mountable for the full-disk tests (run as root): {problem}")
    try:
        yield SmallFilesystem(mount_point)
    finally:
        subprocess.run(["umount", "--lazy", str(mount_point)], check=True)
