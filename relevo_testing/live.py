"""A real Relevo server for system tests: gunicorn on a free loopback port.

Each server gets its own data folder and SQLite database (or the PostgreSQL
database named by ``DATABASE_URL`` in ``extra_env``; when the test run itself
is on PostgreSQL, a fresh database of its own, dropped afterwards), runs the real
migrations, and gets a real agent token, admin user and reader token through
the management commands, exactly as an operator would make them.
"""

from __future__ import annotations

import atexit
import json
import os
import secrets
import signal
import socket
import subprocess
import sqlite3
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import psycopg
import requests
from psycopg import sql

from relevo_testing.ports import free_port

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class LiveRelevo:
    """A running server (gunicorn, or the image's entrypoint) and what a client needs to use it."""

    url: str
    data_dir: Path
    agent_token: str
    reader_token: str
    admin_password: str
    env: dict[str, str]
    process: subprocess.Popen
    log_path: Path
    extra: dict = field(default_factory=dict)
    stop_timeout: float = 15.0  # longer than gunicorn's graceful timeout, so SIGKILL is the exception

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def manage(self, *args: str) -> str:
        """Run a management command against this server's database; returns stdout."""
        return manage(self.env, *args)

    def worker_pids(self) -> list[int]:
        """The master's own children: gunicorn's workers (never another test's processes)."""
        return [child.pid for child in psutil.Process(self.process.pid).children()]

    def processes(self) -> list[psutil.Process]:
        """The master and every process below it, for CPU and memory readings."""
        master = psutil.Process(self.process.pid)
        return [master, *master.children(recursive=True)]

    def workers(self) -> list[psutil.Process]:
        """Every process below the master (the entrypoint's gunicorn and nginx too)."""
        return psutil.Process(self.process.pid).children(recursive=True)

    def stop(self) -> None:
        stop_process(self.process, timeout=self.stop_timeout)
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


# The PostgreSQL the system tests and benchmarks make their databases on: RELEVO_PG_URL, else the run's own.
PG_URL = os.environ.get("RELEVO_PG_URL") or run_on_postgres() or "postgres://postgres@127.0.0.1:5432/test"


def postgres_reachable(url: str = PG_URL) -> bool:
    """True when a PostgreSQL answers at *url* within five seconds."""
    try:
        psycopg.connect(url, connect_timeout=5).close()
    except psycopg.OperationalError:
        return False
    return True


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


# gunicorn flags of the test servers: a short graceful stop keeps the suite quick.
TEST_GUNICORN_ARGS = ("--graceful-timeout", "5", "--timeout", "60", "--no-control-socket")
# The project's own gunicorn settings (Docker image, EC2 unit), which benchmarks measure.
DEPLOY_GUNICORN_ARGS = ("--config", str(ROOT / "deploy" / "gunicorn.conf.py"))


def start(base: Path, *, workers: int = 2, extra_env: dict[str, str] | None = None,
          prepared: tuple[dict[str, str], dict[str, str]] | None = None, timeout: float = 30.0,
          deploy_config: bool = False) -> LiveRelevo:
    """Start gunicorn for a prepared (or new) database and wait until /healthz answers.

    ``deploy_config`` runs it with ``deploy/gunicorn.conf.py`` (its hooks,
    its 20 s graceful stop) instead of the test flags.
    """
    base.mkdir(parents=True, exist_ok=True)
    env, credentials = prepared or prepare(base, extra_env)
    if env.get("PROMETHEUS_MULTIPROC_DIR"):  # the launcher makes it, as deploy/entrypoint.sh does
        Path(env["PROMETHEUS_MULTIPROC_DIR"]).mkdir(parents=True, exist_ok=True)
    port = free_port()
    log_path = base / f"gunicorn-{port}.log"
    flags = DEPLOY_GUNICORN_ARGS if deploy_config else TEST_GUNICORN_ARGS
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "inventory_site.wsgi", *flags,
             "--bind", f"127.0.0.1:{port}", "--workers", str(workers)],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    wait_until_healthy(url, process, log_path, timeout=timeout)
    return LiveRelevo(url=url, data_dir=Path(env["INVENTORY_DATA_DIR"]), env=env, process=process,
                      log_path=log_path, stop_timeout=25.0 if deploy_config else 15.0, **credentials)


# --- signing in like a browser, from a chosen loopback address --------------------

class _SourceAddressAdapter(requests.adapters.HTTPAdapter):
    def __init__(self, address: str):
        self._address = address
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):
        kwargs["source_address"] = (self._address, 0)
        super().init_poolmanager(*args, **kwargs)


class BrowserSession:
    """A cookie-keeping client whose connections come from *source_address* (any 127.x.y.z on Linux).

    Lets one test be several clients at different addresses, as the sign-in
    lockout needs; signs in through the real form, CSRF token and all.
    """

    def __init__(self, url: str, *, source_address: str = "127.0.0.1"):
        self.url = url
        self.session = requests.Session()
        self.session.mount("http://", _SourceAddressAdapter(source_address))

    def sign_in(self, username: str, password: str, *, path: str = "/accounts/login/") -> requests.Response:
        """POST the sign-in form; a 302 is success (not followed), 200 the form again, 429 locked out."""
        page = self.session.get(f"{self.url}{path}", timeout=10)
        token = page.cookies.get("csrftoken") or self.session.cookies.get("csrftoken")
        return self.session.post(f"{self.url}{path}", timeout=30, allow_redirects=False,
                                 data={"username": username, "password": password, "csrfmiddlewaretoken": token},
                                 headers={"Referer": f"{self.url}{path}"})


# --- many uploading clients, and what ended up stored (outage tests and bench/outage.py) ---

RETRY_LATER = frozenset({503, 507})


@dataclass
class UploadClients:
    """*count* clients posting snapshots to ``/upload`` like agents, every answer recorded.

    Each client sends its oldest refused snapshot again before making a new
    one, as the agent's spool does, honouring ``Retry-After`` up to
    *max_wait* seconds (the agent waits longer; tests compress that).
    ``problems`` collects what must never happen: a 5xx that is not
    503/507 with ``Retry-After``, a request that failed or took longer than
    the agent's read timeout, or any other unexpected answer.
    """

    url: str
    token: str
    make_body: object  # (client number) -> (snapshot_id, body bytes)
    count: int = 4
    timeout: float = 30.0  # agent/sender.py's read timeout
    max_wait: float = 0.5
    acknowledged: dict[str, int] = field(default_factory=dict)  # snapshot_id -> status (200/201)
    statuses: dict[int, int] = field(default_factory=dict)
    refusals: list[tuple[float, int, str]] = field(default_factory=list)  # (time, status, error code)
    problems: list[str] = field(default_factory=list)

    def __post_init__(self):
        self._lock = threading.Lock()
        self._making = threading.Event()
        self._making.set()
        self._stopping = threading.Event()
        self._pending: list[list[tuple[str, bytes]]] = [[] for _ in range(self.count)]
        self._threads = [threading.Thread(target=self._client, args=(n,), daemon=True) for n in range(self.count)]
        for thread in self._threads:
            thread.start()

    def acknowledged_count(self) -> int:
        with self._lock:
            return len(self.acknowledged)

    def refused_count(self) -> int:
        with self._lock:
            return len(self.refusals)

    def wait_for(self, condition, *, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; statuses {self.statuses}, "
                                     f"problems {self.problems[:5]}")
            time.sleep(0.05)

    def stop(self, *, drain_timeout: float = 60.0) -> int:
        """Stop making snapshots, deliver the refused ones still waiting; returns how many are left."""
        self._making.clear()
        deadline = time.monotonic() + drain_timeout
        while any(self._pending) and time.monotonic() < deadline:
            time.sleep(0.05)
        self._stopping.set()
        for thread in self._threads:
            thread.join(timeout=self.timeout + 5)
        return sum(len(pending) for pending in self._pending)

    def _client(self, number: int) -> None:
        session = requests.Session()
        headers = {"Authorization": f"Token {self.token}", "Content-Type": "application/json"}
        pending = self._pending[number]
        while not self._stopping.is_set():
            if pending:
                snapshot_id, body = pending[0]
            elif self._making.is_set():
                snapshot_id, body = self.make_body(number)
                pending.append((snapshot_id, body))
            else:
                time.sleep(0.02)
                continue
            wait = self._post(session, headers, snapshot_id, body)
            if wait is None:
                pending.pop(0)
            else:
                time.sleep(wait)

    def _post(self, session, headers, snapshot_id: str, body: bytes) -> float | None:
        """One attempt; None when the snapshot is acknowledged, else seconds to wait before trying again."""
        began = time.monotonic()
        try:
            response = session.post(f"{self.url}/upload", data=body, headers=headers, timeout=self.timeout)
        except requests.RequestException as exc:
            with self._lock:
                self.problems.append(f"{snapshot_id}: {type(exc).__name__} after {time.monotonic() - began:.1f}s")
            return self.max_wait
        status = response.status_code
        with self._lock:
            self.statuses[status] = self.statuses.get(status, 0) + 1
            if status in (200, 201):
                self.acknowledged[snapshot_id] = status
                return None
            try:
                code = response.json().get("error")
            except ValueError:
                code = None
            retry_after = response.headers.get("Retry-After", "")
            if status in RETRY_LATER and retry_after.isdigit() and code:
                self.refusals.append((time.monotonic(), status, code))
                return min(float(retry_after), self.max_wait)
            self.problems.append(f"{snapshot_id}: {status} Retry-After={retry_after!r} {response.text[:200]}")
            return self.max_wait


def stored_snapshots(data_dir: Path, database_url: str | None) -> tuple[dict[str, int], dict[str, tuple]]:
    """What the data folder and the database hold, read with a stopped server.

    Returns ``(in_files, rows)``: how many times each snapshot_id is in a day
    file, and each row's ``(file_name, offset, length)``. Every day file must
    parse as a whole JSON array as it is on disk (no repair), every row must
    point at its own document, and SQLite must pass ``PRAGMA integrity_check``;
    an AssertionError says which did not.
    """
    in_files: dict[str, int] = {}
    contents: dict[str, bytes] = {}
    for path in sorted(data_dir.glob("*_????-??-??.json")):
        contents[path.name] = path.read_bytes()
        try:
            documents = json.loads(contents[path.name])
        except ValueError as exc:
            raise AssertionError(f"{path.name} is not a whole JSON array: {exc}") from None
        for document in documents:
            in_files[document["snapshot_id"]] = in_files.get(document["snapshot_id"], 0) + 1
    query = "SELECT snapshot_id, file_name, file_offset, file_length FROM reports_snapshot"
    if database_url:
        with psycopg.connect(database_url, connect_timeout=10) as conn:
            fetched = conn.execute(query).fetchall()
    else:
        conn = sqlite3.connect(data_dir / "relevo.sqlite3")
        try:
            integrity = conn.execute("PRAGMA integrity_check").fetchall()
            if integrity != [("ok",)]:
                raise AssertionError(f"relevo.sqlite3 failed its integrity check: {integrity[:5]}")
            fetched = conn.execute(query).fetchall()
        finally:
            conn.close()
    rows: dict[str, tuple] = {}
    for snapshot_id, file_name, offset, length in fetched:
        snapshot_id = str(uuid.UUID(str(snapshot_id)))
        if snapshot_id in rows:
            raise AssertionError(f"snapshot {snapshot_id} has two rows")
        rows[snapshot_id] = (file_name, offset, length)
        document = contents.get(file_name, b"")[offset:offset + length]
        try:
            pointed = json.loads(document)["snapshot_id"]
        except (ValueError, KeyError):
            pointed = None
        if pointed != snapshot_id:
            raise AssertionError(f"the row of {snapshot_id} points at {file_name}:{offset}, which holds {pointed}")
    return in_files, rows


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
