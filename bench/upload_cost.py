"""What one upload costs the server in one process: CPU time, and instructions counted by callgrind.

The ingest benchmark's CPU figure is taken on a loaded machine: both cores
busy, five workers and the load generator taking turns. On a shared virtual
machine that figure moves by tens of percent from one run to the next, and a
core gets slower when the other one is busy (``ingest.machine_core_contention``).
This script measures the same request path (Django's WSGI handler, token auth,
validation, day file append with fsync, SQLite rows) in one process with
nothing else running, two ways:

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

    .venv/bin/python bench/upload_cost.py [--uploads 500] [--counted 40] [--snapshot file.json]

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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common, inprocess  # noqa: E402
from bench.payloads import UploadTemplate, collect_snapshot  # noqa: E402

WARM_UPLOADS = 30


def _uploader(data_dir: Path, snapshot: dict):
    """Set Django up on *data_dir*; returns a function that sends upload number i through the WSGI handler."""
    inprocess.setup(data_dir, common.BENCH_RATES)
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
    template = UploadTemplate(snapshot)
    handler = WSGIHandler()
    get_resolver().url_patterns
    gc.freeze()  # as deploy/gunicorn.conf.py does in each worker

    def upload(i: int) -> int:
        body = template.body()
        environ = {
            "REQUEST_METHOD": "POST", "PATH_INFO": "/upload", "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "80",
            "HTTP_HOST": "127.0.0.1", "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "http",
            "CONTENT_TYPE": "application/json", "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr, "HTTP_AUTHORIZATION": f"Token {token}", "REMOTE_ADDR": f"127.0.5.{i % 8 + 1}",
        }
        statuses = []
        response = handler(environ, lambda status, headers: statuses.append(status))
        b"".join(response)
        response.close()
        return int(statuses[0].split()[0])

    return upload, len(template), transaction_seconds


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
    upload, _, _ = _uploader(Path(args.data), snapshot)
    _run(upload, 0, WARM_UPLOADS)
    _callgrind("on", os.getpid())
    _run(upload, WARM_UPLOADS, args.counted)
    _callgrind("off", os.getpid())
    return 0


def count_instructions(snapshot_path: Path, base: Path, counted: int) -> float:
    """User-space instructions per upload over *counted* uploads, from callgrind's totals."""
    out = base / "callgrind.out"
    command = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}",
               sys.executable, __file__, "--child", "--snapshot", str(snapshot_path), "--data", str(base / "counted"),
               "--counted", str(counted)]
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
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args)

    print(common.machine_line())
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
                instructions = count_instructions(snapshot_path, base, args.counted)
            else:
                print("upload_cost: valgrind is not installed, no instruction count (apt-get install valgrind)")
        upload, body_bytes, transaction_seconds = _uploader(base / "timed", snapshot)
        _run(upload, 0, WARM_UPLOADS)
        transaction_seconds.clear()
        started = time.thread_time()
        _run(upload, WARM_UPLOADS, args.uploads)
        cpu_ms = (time.thread_time() - started) * 1000 / args.uploads
    finally:
        shutil.rmtree(base, ignore_errors=True)

    counted = f", {args.counted} counted by callgrind (user space)" if instructions is not None else ""
    print(f"upload_cost: uploads of {body_bytes} bytes ({len(snapshot['processes'])} processes) through Django's "
          f"WSGI handler in one process (SQLite, fsync on, token auth, full validation): "
          f"{args.uploads} timed (thread CPU){counted}")
    common.report("upload_cost.cpu_per_upload", cpu_ms, "ms")
    common.report("upload_cost.write_transaction_p50", statistics.median(t for t, _ in transaction_seconds) * 1000,
                  "ms")
    common.report("upload_cost.write_transaction_cpu_p50",
                  statistics.median(cpu for _, cpu in transaction_seconds) * 1000, "ms")
    common.report("upload_cost.write_transactions", len(transaction_seconds), "per timed run")
    print(f"upload_cost: load average {', '.join(f'{x:.2f}' for x in os.getloadavg())} (1, 5, 15 min)")
    if instructions is not None:
        common.report("upload_cost.instructions_per_upload", instructions / 1e6, "M instructions")
    return 0


if __name__ == "__main__":
    sys.exit(main())
