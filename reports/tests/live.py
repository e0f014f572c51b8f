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
import threading
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


# --- the server as the Docker image starts it, and slow clients against it ---

# What the Dockerfile's ENV sets that changes how the server runs (the image
# cannot be built here: no Docker engine, so its entrypoint is run as it is).
IMAGE_ENV = {"WEB_CONCURRENCY": "2", "RELEVO_FRONT": "nginx"}


def start_entrypoint(base: Path, *, extra_env: dict[str, str] | None = None, timeout: float = 120.0) -> LiveRelevo:
    """Run ``deploy/entrypoint.sh`` with the image's settings on a free loopback port.

    ``extra_env`` overrides them (``RELEVO_FRONT=none`` is the entrypoint without its front).
    """
    base.mkdir(parents=True, exist_ok=True)
    port, backend_port = free_port(), free_port()
    env, credentials = prepare(base, {
        **IMAGE_ENV, "HOST": "127.0.0.1", "PORT": str(port), "RELEVO_BACKEND_PORT": str(backend_port),
        "PYTHON": sys.executable, "PROMETHEUS_MULTIPROC_DIR": str(base / "prom"), **(extra_env or {}),
    })
    log_path = base / f"entrypoint-{port}.log"
    with open(log_path, "ab") as log:
        process = subprocess.Popen(["sh", str(ROOT / "deploy" / "entrypoint.sh")], cwd=base, env=env,
                                   stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    wait_until_healthy(url, process, log_path, timeout=timeout)
    return LiveRelevo(url=url, data_dir=Path(env["INVENTORY_DATA_DIR"]), env=env, process=process,
                      log_path=log_path, **credentials)


class SlowLoris:
    """Connections that send a request's headers one line every *interval* seconds, forever.

    Each connection starts a POST and never finishes its headers; one the
    server closes (a header timeout) is opened again at once, as an attacker
    would. Runs in a background thread until ``stop()``; bounded by the
    caller's duration.
    """

    def __init__(self, port: int, *, connections: int = 16, interval: float = 2.0) -> None:
        self.port, self.connections, self.interval = port, connections, interval
        self.reopened = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _open(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        sock.sendall(b"POST /upload HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        return sock

    def _run(self) -> None:
        sockets = [self._open() for _ in range(self.connections)]
        line = 0
        while not self._stop.wait(self.interval):
            line += 1
            for index, sock in enumerate(sockets):
                try:
                    sock.sendall(b"X-Slow-%d: %d\r\n" % (line, line))
                except OSError:
                    sock.close()
                    self.reopened += 1
                    try:
                        sockets[index] = self._open()
                    except OSError:
                        pass
        for sock in sockets:
            sock.close()

    def __enter__(self) -> "SlowLoris":
        self._thread.start()
        time.sleep(0.5)  # every connection is open before the first upload
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def __exit__(self, *exc) -> None:
        self.stop()


def agent_uploads(server: LiveRelevo, bodies: list[bytes], *, spacing: float) -> list[str]:
    """Send each body with the agent's own sender (its timeouts, one attempt), *spacing* s apart, in parallel.

    Returns what each delivery came to: ``"acknowledged"`` (a 2xx within the agent's timeout) or the
    agent's error.
    """
    import gzip

    from agent.sender import DeliveryError, RetryPolicy, Sender

    outcomes = ["not sent"] * len(bodies)

    def deliver(index: int) -> None:
        sender = Sender(server=server.url, token=server.agent_token, policy=RetryPolicy(attempts=1))
        try:
            sender.send(gzip.compress(bodies[index]))
            outcomes[index] = "acknowledged"
        except DeliveryError as exc:
            outcomes[index] = f"{type(exc).__name__}: {exc}"[:200]
        finally:
            sender.close()

    threads = []
    for index in range(len(bodies)):
        if index:
            time.sleep(spacing)
        thread = threading.Thread(target=deliver, args=(index,))
        thread.start()
        threads.append(thread)
    for thread in threads:
        thread.join()
    return outcomes
