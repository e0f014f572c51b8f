"""The hot path's hand-built SQL (reports.rowsql) on PostgreSQL, not only SQLite.

Runs this folder's rowsql and service tests in a subprocess whose
DATABASE_URL points at the local PostgreSQL (``RELEVO_TEST_POSTGRES_URL``,
default ``postgres://postgres@127.0.0.1:5432/...``), under a database name of
its own so parallel runs do not collide.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from conftest import require
from reports.tests import live

pytestmark = pytest.mark.slow


def postgres_url() -> str:
    return os.environ.get("RELEVO_TEST_POSTGRES_URL") or f"postgres://postgres@127.0.0.1:5432/relevo_rowsql_{os.getpid()}"


def postgres_answers(url: str) -> bool:
    import psycopg

    try:
        with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", connect_timeout=3):
            return True
    except psycopg.Error:
        return False


def test_rowsql_and_snapshot_ingest_pass_on_postgresql():
    url = postgres_url()
    require(postgres_answers(url), f"PostgreSQL is not reachable at {url.rsplit('/', 1)[0]} "
                                   "(start it, or set RELEVO_TEST_POSTGRES_URL)")
    env = {**os.environ, "DATABASE_URL": url}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--create-db",
         "reports/tests/test_rowsql.py", "reports/tests/test_services.py"],
        cwd=live.ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and "failed" not in result.stdout
