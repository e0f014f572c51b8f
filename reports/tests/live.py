"""A real Relevo server for system tests: gunicorn on a free loopback port.

Each server gets its own data folder and SQLite database (or the PostgreSQL
database named by ``DATABASE_URL`` in ``extra_env``; when the test run itself
is on PostgreSQL, a fresh database of its own, dropped afterwards), runs the real
migrations, and gets a real agent token, admin user and reader token through
the management commands, exactly as an operator would make them.
"""

from __future__ import annotations

import atexit
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import requests
from psycopg import sql

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class LiveRelevo:
    url: str
    data_dir: Path
    agent_token: str
    reader_token: str
    admin_password: str
    env: dict[str, str]
    process: subprocess.Popen
    log_path: Path
    extra: dict = field(default_factory=dict)

    def manage(self, *args: str) -> str:
        """Run a management command against this server's database; returns stdout."""
        return manage(self.env, *args)

    def worker_pids(self) -> list[int]:
        out = subprocess.run(["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True).stdout
        return [int(pid) for pid in out.split()]

    def stop(self) -> None:
        stop_process(self.process, timeout=15)
        self.drop_database()

    def drop_database(self) -> None:
        """Drop the PostgreSQL database made for this server, if any (after stop)."""
        drop_database(self.env.get("DATABASE_URL", ""))

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def stop_process(process: subprocess.Popen, *, timeout: float) -> None:
    """SIGTERM (gunicorn's graceful stop), then SIGKILL if it has not exited within *timeout*."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def wait_until_healthy(url: str, process: subprocess.Popen, log_path: Path, *, timeout: float = 30.0) -> None:
    """Wait for ``/healthz`` to answer 200; kill *process* and raise with its log if it never does."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if requests.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"the server did not start:\n{log_path.read_text(errors='replace')}")
        time.sleep(0.1)


def manage(env: dict[str, str], *args: str) -> str:
    """Run a management command; like the deploy scripts, without the server's metrics folder."""
    env = {k: v for k, v in env.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    result = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    if result.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


# --- a fresh PostgreSQL database per server, when the test run is on PostgreSQL ---

LIVE_DB_PREFIX = "relevo_live_"
_created_databases: set[str] = set()


def _admin_url(url: str) -> str:
    """The same server's maintenance database, for CREATE/DROP DATABASE."""
    return url.rsplit("/", 1)[0] + "/postgres"


def run_on_postgres() -> str | None:
    """The test run's PostgreSQL URL (``make test-postgres`` sets DATABASE_URL), or None."""
    url = os.environ.get("DATABASE_URL", "")
    return url if url.startswith(("postgres://", "postgresql://")) else None


def create_database(url: str) -> str:
    """Create an empty database on *url*'s server; returns its URL (dropped at exit at the latest)."""
    name = f"{LIVE_DB_PREFIX}{os.getpid()}_{secrets.token_hex(4)}"
    with psycopg.connect(_admin_url(url), autocommit=True, connect_timeout=10) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    _created_databases.add(url.rsplit("/", 1)[0] + "/" + name)
    return url.rsplit("/", 1)[0] + "/" + name


def drop_database(url: str) -> None:
    """Drop a database that ``create_database`` made; any other URL is left alone."""
    if url not in _created_databases:
        return
    with psycopg.connect(_admin_url(url), autocommit=True, connect_timeout=10) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            sql.Identifier(url.rsplit("/", 1)[1])))
    _created_databases.discard(url)


@atexit.register
def _drop_created_databases() -> None:
    for url in list(_created_databases):
        drop_database(url)


def server_env(base: Path, extra_env: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "INVENTORY_", "DATABASE_URL"))}
    env.update({
        "DJANGO_SETTINGS_MODULE": "inventory_site.settings",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(40),
        "DJANGO_DEBUG": "false",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "INVENTORY_DATA_DIR": str(base / "data"),
        "PYTHONUNBUFFERED": "1",
        "RELEVO_ENV_FILE": str(base / "no-dotenv"),  # the developer's .env must not leak in
    })
    env.update(extra_env or {})
    if "DATABASE_URL" not in env and run_on_postgres():
        env["DATABASE_URL"] = create_database(run_on_postgres())
    return env


def prepare(base: Path, extra_env: dict[str, str] | None = None) -> tuple[dict[str, str], dict[str, str]]:
    """Migrate a fresh database and make the credentials; returns (env, credentials)."""
    env = server_env(base, extra_env)
    manage(env, "migrate", "--noinput", "-v", "0")
    password = secrets.token_urlsafe(12)
    manage({**env, "DJANGO_SUPERUSER_PASSWORD": password}, "createsuperuser", "--noinput",
           "--username", "admin", "--email", "admin@example.invalid")
    credentials = {
        "agent_token": manage(env, "create_agent_token", "live-test").strip().splitlines()[-1],
        "reader_token": manage(env, "create_api_token", "admin").strip().splitlines()[-1],
        "admin_password": password,
    }
    return env, credentials


def start(base: Path, *, workers: int = 2, extra_env: dict[str, str] | None = None,
          prepared: tuple[dict[str, str], dict[str, str]] | None = None, timeout: float = 30.0) -> LiveRelevo:
    """Start gunicorn for a prepared (or new) database and wait until /healthz answers."""
    base.mkdir(parents=True, exist_ok=True)
    env, credentials = prepared or prepare(base, extra_env)
    if env.get("PROMETHEUS_MULTIPROC_DIR"):  # the launcher makes it, as deploy/entrypoint.sh does
        Path(env["PROMETHEUS_MULTIPROC_DIR"]).mkdir(parents=True, exist_ok=True)
    port = free_port()
    log_path = base / f"gunicorn-{port}.log"
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "inventory_site.wsgi", "--bind", f"127.0.0.1:{port}",
             "--workers", str(workers), "--graceful-timeout", "5", "--timeout", "60",
             "--no-control-socket"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    wait_until_healthy(url, process, log_path, timeout=timeout)
    return LiveRelevo(url=url, data_dir=Path(env["INVENTORY_DATA_DIR"]), env=env, process=process,
                      log_path=log_path, **credentials)
