"""Fixtures shared by the server's and the agent's tests.

Every test gets its own data folder, so no test can see or damage another's
day files. ``live_relevo`` starts a real gunicorn (see relevo_testing/live.py).
"""

from __future__ import annotations

import os

import pytest

# Settings need a secret key; `make test` writes one into .env, this covers a bare `pytest`.
os.environ.setdefault("DJANGO_SECRET_KEY", "test-only-not-a-secret")

from relevo_testing import live, outages
from relevo_testing.prerequisites import require


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


@pytest.fixture
def small_filesystem(tmp_path):
    """A 48 MB tmpfs mounted for this test (root only; fails under CI if it cannot be mounted)."""
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    problem = outages.mount_tmpfs(mount_point)
    require(not problem, f"a tmpfs must be mountable for the full-disk tests (run as root): {problem}")
    try:
        yield outages.SmallFilesystem(mount_point)
    finally:
        outages.unmount(mount_point)
