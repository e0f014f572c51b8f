"""PostgreSQL specifics: settings that must not leak from SQLite, and the cross-node lock.

These run in both legs of ``make test`` against a database of their own, so
the PostgreSQL code paths are proven even on the SQLite leg.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys

import psycopg
import pytest

from relevo_testing import live
from relevo_testing.live import PG_URL, postgres_reachable
from relevo_testing.prerequisites import require
from reports import addresses, locks

pytestmark = pytest.mark.slow


@pytest.fixture
def pg_database(tmp_path):
    require(postgres_reachable(), f"PostgreSQL must answer at {PG_URL} (set RELEVO_PG_URL)")
    url = live.create_database(PG_URL)
    yield url
    live.drop_database(url)


def _python(env: dict[str, str], code: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code], cwd=live.ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)


def test_database_url_gives_postgres_without_sqlite_options(pg_database, tmp_path):
    env = live.server_env(tmp_path, {"DATABASE_URL": pg_database})
    process = _python(env, "import django, json; django.setup(); from django.conf import settings; "
                           "print(json.dumps(settings.DATABASES['default'], default=str))")
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    database = json.loads(out)
    assert database["ENGINE"] == "django.db.backends.postgresql"
    assert database["NAME"] == pg_database.rsplit("/", 1)[1]
    assert "transaction_mode" not in database.get("OPTIONS", {})
    assert "init_command" not in database.get("OPTIONS", {})


def test_lock_keys_are_stable_and_differ_per_day_file():
    ip, other = addresses.parse_ip("10.0.0.5"), addresses.parse_ip("10.0.0.6")
    day = dt.date(2026, 11, 27)
    assert locks.lock_key(ip, day) == locks.lock_key(addresses.parse_ip("::ffff:10.0.0.5"), day)
    keys = {locks.lock_key(ip, day), locks.lock_key(other, day), locks.lock_key(ip, day + dt.timedelta(days=1))}
    assert len(keys) == 3 and all(-2**63 <= key < 2**63 for key in keys)


def test_the_day_file_lock_is_held_in_postgres_until_released(pg_database, tmp_path):
    """Another connection (another node) cannot take the lock while a writer holds it."""
    env = live.server_env(tmp_path, {"DATABASE_URL": pg_database})
    holder = _python(env, (
        "import django, sys, datetime as dt; django.setup()\n"
        "from reports import addresses, locks\n"
        "with locks.day_file_lock(addresses.parse_ip('10.0.0.5'), dt.date(2026, 11, 27)):\n"
        "    print('held', flush=True); sys.stdin.readline()\n"
        "print('released', flush=True); sys.stdin.readline()\n"
    ), stdin=subprocess.PIPE)
    key = locks.lock_key(addresses.parse_ip("10.0.0.5"), dt.date(2026, 11, 27))
    try:
        assert holder.stdout.readline().strip() == "held"
        with psycopg.connect(pg_database, autocommit=True) as other_node:
            assert other_node.execute("SELECT pg_try_advisory_lock(%s)", [key]).fetchone()[0] is False
            holder.stdin.write("\n")
            holder.stdin.flush()
            assert holder.stdout.readline().strip() == "released"
            assert other_node.execute("SELECT pg_try_advisory_lock(%s)", [key]).fetchone()[0] is True
            other_node.execute("SELECT pg_advisory_unlock(%s)", [key])
    finally:
        holder.kill()
        holder.wait(timeout=10)


def test_the_full_upload_path_runs_on_postgres(pg_database, relevo_server_factory):
    """A live server on PostgreSQL stores and answers (the whole suite also runs on it: make test-postgres)."""
    import requests

    from relevo_testing.factories import encode, make_payload

    server = relevo_server_factory(extra_env={"DATABASE_URL": pg_database})
    payload = make_payload()
    response = requests.post(f"{server.url}/upload", data=encode(payload), timeout=30, headers={
        "Authorization": f"Token {server.agent_token}", "Content-Type": "application/json"})
    assert response.status_code == 201, response.text
    with psycopg.connect(pg_database) as conn:
        assert conn.execute("SELECT count(*) FROM reports_snapshot WHERE snapshot_id = %s",
                            [payload["snapshot_id"]]).fetchone()[0] == 1
