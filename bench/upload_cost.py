"""What one upload costs the server in one process: CPU time, and instructions counted by callgrind.

The ingest benchmark's CPU figure is taken on a loaded machine: both cores
busy, five workers and the load generator taking turns. On a shared virtual
machine that figure moves by tens of percent from one run to the next, and a
core gets slower when the other one is busy (``ingest.machine_core_contention``).
This script measures the same request path (Django's WSGI handler, token auth,
validation, day file append with fsync, SQLite rows) in one process with
nothing else running, eight hosts uploading in turn, each from its own
address (as ``bench/loadgen.py``'s connections do), two ways:

* ``upload_cost.cpu_per_upload``: thread CPU time per upload.
* ``upload_cost.write_transaction_p50``: wall time from asking for the
  database write lock to the end of the COMMIT (``reports.dbwrite``'s
  ``write_transaction`` around ingest's rows), the median over the timed
  uploads. On SQLite every upload's transaction holds the one write lock,
  so this is the section that all workers queue on; nothing else runs here,
  so no time is spent waiting for the lock. A wall time: it is printed with
  the load average. ``upload_cost.write_transaction_cpu_p50`` is the thread
  CPU time of the same section (the rest of its wall time is mostly the
  COMMIT's fsync of the WAL).
* ``upload_cost.instructions_per_upload``: user-space instructions per upload,
  counted by valgrind's callgrind around the measured uploads only. The count
  repeats to within a fraction of a percent whatever else the machine is
  doing, so it tells whether a code change made uploads cheaper when timings
  cannot. It leaves out the kernel's share (fsync, writes: about 15%), and
  callgrind counts each byte of a large ``memcpy`` as an instruction.

``--database-url URL`` measures the same on a fresh database of that
PostgreSQL server (dropped afterwards), its lines named
``upload_cost.postgresql.*``, with two more: the database backend's own CPU
per upload (``backend_cpu_per_upload``, from ``/proc`` of the backend serving
the upload's connection, so the server must run on this machine) and the WAL
it wrote (``wal_per_upload``). Callgrind counts the worker only.

    .venv/bin/python bench/upload_cost.py [--uploads 500] [--counted 40] [--snapshot file.json] [--database-url URL]

``--snapshot`` fixes the payload (a JSON snapshot, for instance one saved by
``bench/payloads.py --save``) so that two commits are compared on the same
bytes; by default this machine's own snapshot is collected.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common, inprocess  # noqa: E402
from bench.payloads import UploadTemplate, collect_snapshot  # noqa: E402

WARM_UPLOADS = 30
HOSTS = 8


def _uploader(data_dir: Path, snapshot: dict, database_url: str = ""):
    """Set Django up on *data_dir* (and *database_url*, if any); returns a function that sends upload i through the WSGI handler."""
    inprocess.setup(data_dir, {**common.BENCH_RATES, **({"DATABASE_URL": database_url} if database_url else {})})
    import gc

    from django.core.handlers.wsgi import WSGIHandler
    from django.urls import get_resolver

    from reports import services
    from reports.services import ingest

    transaction_seconds: list[tuple[float, float]] = []
    write_transaction = ingest.write_transaction

    @contextlib.contextmanager
    def timed_write_transaction():
        started, cpu_started = time.perf_counter(), time.thread_time()
        try:
            with write_transaction():
                yield
        finally:
            transaction_seconds.append((time.perf_counter() - started, time.thread_time() - cpu_started))

    ingest.write_transaction = timed_write_transaction

    _, token = services.agent_token_create(name="bench-upload-cost")
    # Eight hosts, each uploading from its own address, as bench/loadgen.py's connections do: a
    # host's address, and so its search text, stays the same from one upload to the next.
    templates = [UploadTemplate(snapshot, host_id=f"cost-host-{n}", hostname=f"cost-{n}") for n in range(HOSTS)]
    handler = WSGIHandler()
    get_resolver().url_patterns
    gc.freeze()  # as deploy/gunicorn.conf.py does in each worker

    def upload(i: int) -> int:
        body = templates[i % HOSTS].body()
        environ = {
            "REQUEST_METHOD": "POST", "PATH_INFO": "/upload", "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "80",
            "HTTP_HOST": "127.0.0.1", "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "http",
            "CONTENT_TYPE": "application/json", "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr, "HTTP_AUTHORIZATION": f"Token {token}", "REMOTE_ADDR": f"127.0.5.{i % HOSTS + 1}",
        }
        statuses = []
        response = handler(environ, lambda status, headers: statuses.append(status))
        b"".join(response)
        response.close()
        return int(statuses[0].split()[0])

    return upload, len(templates[0]), transaction_seconds


def _run(upload, first: int, count: int) -> None:
    for i in range(first, first + count):
        status = upload(i)
        if status != 201:
            raise RuntimeError(f"upload {i} answered {status}")


def _callgrind(command: str, pid: int) -> None:
    subprocess.run(["callgrind_control", "--instr=" + command, str(pid)], check=True, capture_output=True, timeout=60)


def child(args) -> int:
    """Runs under callgrind: warm up uninstrumented, then count only the measured uploads."""
    snapshot = json.loads(Path(args.snapshot).read_text())
    upload, _, _ = _uploader(Path(args.data), snapshot, args.database_url or "")
    _run(upload, 0, WARM_UPLOADS)
    _callgrind("on", os.getpid())
    _run(upload, WARM_UPLOADS, args.counted)
    _callgrind("off", os.getpid())
    return 0


def count_instructions(snapshot_path: Path, base: Path, counted: int, database_url: str = "") -> float:
    """User-space instructions per upload over *counted* uploads, from callgrind's totals."""
    out = base / "callgrind.out"
    command = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}",
               sys.executable, __file__, "--child", "--snapshot", str(snapshot_path), "--data", str(base / "counted"),
               "--counted", str(counted), *(["--database-url", database_url] if database_url else [])]
    # String hashing is randomised per process; a fixed seed keeps dict layouts, and the count, repeatable.
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    if result.returncode != 0:
        raise RuntimeError(f"the counted run failed:\n{result.stderr[-3000:]}")
    total = 0
    for line in out.read_text().splitlines():
        if line.startswith(("summary:", "totals:")):
            total = max(total, int(line.split()[1]))
    if total == 0:
        raise RuntimeError(f"callgrind counted nothing; its output:\n{result.stderr[-3000:]}")
    return total / counted


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uploads", type=int, default=500, help="uploads timed for the CPU figure")
    parser.add_argument("--counted", type=int, default=40, help="uploads counted under callgrind (0: skip)")
    parser.add_argument("--snapshot", help="a JSON snapshot to send instead of this machine's")
    parser.add_argument("--database-url", default="",
                        help="measure on a fresh database of this PostgreSQL server instead of SQLite")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args)

    print(common.machine_line())
    prefix = "upload_cost.postgresql" if args.database_url else "upload_cost"
    base = Path(tempfile.mkdtemp(prefix="relevo-bench-upload-cost-"))
    try:
        snapshot_path = base / "snapshot.json"
        if args.snapshot:
            shutil.copyfile(args.snapshot, snapshot_path)
        else:
            snapshot_path.write_text(json.dumps(collect_snapshot()))
        snapshot = json.loads(snapshot_path.read_text())
        # The counted run first, in its own process: this one then sets Django up for the timed run.
        instructions = None
        if args.counted > 0:
            if shutil.which("valgrind") and shutil.which("callgrind_control"):
                counted_url = common.live.create_database(args.database_url) if args.database_url else ""
                try:
                    instructions = count_instructions(snapshot_path, base, args.counted, counted_url)
                finally:
                    common.live.drop_database(counted_url)
            else:
                print("upload_cost: valgrind is not installed, no instruction count (apt-get install valgrind)")
        timed_url = common.live.create_database(args.database_url) if args.database_url else ""
        upload, body_bytes, transaction_seconds = _uploader(base / "timed", snapshot, timed_url)
        _run(upload, 0, WARM_UPLOADS)
        transaction_seconds.clear()
        backend = _Backend() if timed_url else None
        started = time.thread_time()
        _run(upload, WARM_UPLOADS, args.uploads)
        cpu_ms = (time.thread_time() - started) * 1000 / args.uploads
        backend_ms, wal_bytes = backend.used() if backend else (None, None)
    finally:
        shutil.rmtree(base, ignore_errors=True)

    counted = f", {args.counted} counted by callgrind (user space)" if instructions is not None else ""
    database = "PostgreSQL on this machine" if args.database_url else "SQLite"
    print(f"upload_cost: uploads of {body_bytes} bytes ({len(snapshot['processes'])} processes) through Django's "
          f"WSGI handler in one process ({database}, fsync on, token auth, full validation): "
          f"{args.uploads} timed (thread CPU){counted}")
    common.report(f"{prefix}.cpu_per_upload", cpu_ms, "ms")
    if backend_ms is not None:
        common.report(f"{prefix}.backend_cpu_per_upload", backend_ms / args.uploads, "ms")
        common.report(f"{prefix}.wal_per_upload", wal_bytes / args.uploads / 1024, "KB")
    common.report(f"{prefix}.write_transaction_p50", statistics.median(t for t, _ in transaction_seconds) * 1000,
                  "ms")
    common.report(f"{prefix}.write_transaction_cpu_p50",
                  statistics.median(cpu for _, cpu in transaction_seconds) * 1000, "ms")
    common.report(f"{prefix}.write_transactions", len(transaction_seconds), "per timed run")
    print(f"upload_cost: load average {', '.join(f'{x:.2f}' for x in os.getloadavg())} (1, 5, 15 min)")
    if instructions is not None:
        common.report(f"{prefix}.instructions_per_upload", instructions / 1e6, "M instructions")
    return 0


class _Backend:
    """The PostgreSQL backend serving Django's connection in this process: its CPU and the server's WAL since now.

    The backend is one process of the local server for as long as the
    connection lives (Django keeps it open here), so its CPU is read from
    ``/proc``; the WAL position is the whole server's, read before and after.
    """

    def __init__(self):
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid(), pg_current_wal_insert_lsn()")
            pid, self._lsn = cursor.fetchone()
        self._process = psutil.Process(pid)
        self._cpu = common.cpu_seconds([self._process])

    def used(self) -> tuple[float, int]:
        """(backend CPU ms, WAL bytes) since this object was made."""
        from django.db import connection

        cpu_ms = sum(common.cpu_used(self._cpu, common.cpu_seconds([self._process]))) * 1000
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), %s)", [self._lsn])
            wal = int(cursor.fetchone()[0])
        return cpu_ms, wal


if __name__ == "__main__":
    sys.exit(main())
