"""What uploading clients see through a full disk and a PostgreSQL restart, and what is kept.

    .venv/bin/python bench/outage.py disk-full    # root: mounts a 48 MB tmpfs as the data folder
    .venv/bin/python bench/outage.py db-restart   # root: RESTARTS the machine's PostgreSQL once

Four clients upload real snapshots of this machine (``bench.payloads``) to a
real gunicorn, resending what was refused as the agent's spool does. In the
middle, the data folder's file system fills up (then is freed again), or
PostgreSQL is restarted (``pg_ctlcluster ... restart``). The lines count the
answers by kind and check the data folder and the database afterwards:
every acknowledged snapshot must be in a day file and in the database
exactly once. It is not a speed benchmark and is not part of
``bench/run_all.py``: the second scenario disturbs whatever else uses that
PostgreSQL, so it is run by hand.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
import uuid
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.payloads import UploadTemplate, collect_snapshot  # noqa: E402
from relevo_testing import live, outages  # noqa: E402

def line(name: str, value, unit: str, target: str | None = None, ok: bool | None = None) -> None:
    suffix = f" [target {target}, {'ok' if ok else 'MISSED'}]" if target is not None else ""
    print(f"outage.{name}: {value} {unit}{suffix}", flush=True)


def bodies(processes_by_client: dict[int, int]):
    """``make_body`` for live.UploadClients: client n uploads a real snapshot with the given process count."""
    templates = {n: UploadTemplate(collect_snapshot(count), host_id=f"outage-bench-{n}", hostname=f"outage-{n}")
                 for n, count in processes_by_client.items()}

    def make_body(number: int) -> tuple[str, bytes]:
        snapshot_id = uuid.uuid4()
        return str(snapshot_id), templates[number].body(snapshot_id=snapshot_id)

    return make_body


_NO_ANSWER = re.compile(r": [A-Za-z]\w* after \d")  # how live.UploadClients notes a request that got no answer


def not_accepted(clients: live.UploadClients) -> int:
    statuses, problems = dict(clients.statuses), list(clients.problems)
    return sum(n for status, n in statuses.items() if status not in (200, 201)) + \
        sum(1 for problem in problems if _NO_ANSWER.search(problem))


def report(scenario: str, clients: live.UploadClients, left: int, data_dir: Path, database_url: str | None,
           refusal: int, resumed: bool) -> None:
    statuses = dict(sorted(clients.statuses.items()))
    other_5xx = sum(n for status, n in statuses.items() if status >= 500 and status != refusal)
    hangs = sum(1 for problem in clients.problems if _NO_ANSWER.search(problem))
    line(f"{scenario}.answers", sum(statuses.values()), f"answers {statuses}")
    line(f"{scenario}.refused_{refusal}", statuses.get(refusal, 0), "answers (with Retry-After and a JSON code)")
    line(f"{scenario}.refused_other_5xx", other_5xx, "answers", "0", other_5xx == 0)
    line(f"{scenario}.failed_requests", hangs, "requests (no answer within 30 s)", "0", hangs == 0)
    try:
        in_files, rows = live.stored_snapshots(data_dir, database_url)
        lost = [s for s in clients.acknowledged if in_files.get(s) != 1 or s not in rows]
        disagree = len(set(in_files) ^ set(rows))
        line(f"{scenario}.acknowledged", len(clients.acknowledged), "snapshots")
        line(f"{scenario}.acknowledged_lost", len(lost), "snapshots", "0", not lost)
        line(f"{scenario}.files_and_database_disagree", disagree, "snapshots", "0", disagree == 0)
        line(f"{scenario}.files_and_database_whole", "yes", "", "yes", True)
    except AssertionError as exc:
        line(f"{scenario}.files_and_database_whole", f"no ({exc})", "", "yes", False)
    line(f"{scenario}.resumed_by_itself", "yes" if resumed else "no", "", "yes", resumed)
    line(f"{scenario}.refused_never_accepted", left, "snapshots", "0", left == 0)


def run_through_outage(scenario: str, server: live.LiveRelevo, make_body, *, uploads: int, outage,
                       refusal: int, data_dir: Path, database_url: str | None) -> None:
    """Four clients upload through one outage; prints what they saw and what was kept.

    *uploads* snapshots are acknowledged first, then ``outage(clients)``
    makes the outage and ends it (printing what it measures meanwhile); the
    clients must then get *uploads* more acknowledged without help. The
    server is stopped before the data folder and database are checked.
    """
    clients = live.UploadClients(server.url, server.agent_token, make_body)
    resumed = False
    try:
        clients.wait_for(lambda: clients.acknowledged_count() >= uploads, timeout=120, what="uploads")
        outage(clients)
        back_from = clients.acknowledged_count()
        try:
            clients.wait_for(lambda: clients.acknowledged_count() >= back_from + uploads, timeout=60, what="resume")
            resumed = True
        except AssertionError:
            pass
    finally:
        left = clients.stop(drain_timeout=30)
        live.stop_process(server.process, timeout=server.stop_timeout)
    report(scenario, clients, left, data_dir, database_url, refusal, resumed)


def disk_full(base: Path) -> None:
    mount_point = base / "small"
    mount_point.mkdir()
    problem = outages.mount_tmpfs(mount_point)
    if problem:
        raise SystemExit(f"cannot mount a tmpfs: {problem}")
    small = outages.SmallFilesystem(mount_point)
    try:
        data_dir = mount_point / "data"
        server = live.start(base / "server", extra_env={
            "DATABASE_URL": "", "INVENTORY_DATA_DIR": str(data_dir), "INVENTORY_THROTTLE_UPLOAD": "off",
            "INVENTORY_MIN_FREE_BYTES": str(8 * 1024 * 1024)})

        def fill_then_free(clients: live.UploadClients) -> None:
            small.fill(leave=2 * 1024 * 1024)
            clients.wait_for(lambda: not_accepted(clients) >= 20, timeout=120, what="refusals")
            ready = requests.get(f"{server.url}/readyz", timeout=10)
            line("disk_full.readyz_while_full", ready.status_code, "status", "503", ready.status_code == 503)
            metrics = requests.get(f"{server.url}/metrics", timeout=10).text
            gauge = [m for m in metrics.splitlines() if m.startswith("relevo_data_dir_free_bytes ")]
            line("disk_full.free_bytes_gauge", gauge[0].split()[1] if gauge else "absent", "bytes")
            small.free()

        try:
            run_through_outage("disk_full", server, bodies({0: 400, 1: 1, 2: 400, 3: 1}), uploads=20,
                               outage=fill_then_free, refusal=507, data_dir=data_dir, database_url=None)
        finally:
            server.stop()
        log = server.log()
        line("disk_full.refused_by_the_day_file_append", log.count("507 storage_full: StorageFull"), "answers")
        line("disk_full.refused_by_sqlite", log.count("507 storage_full: OperationalError"), "answers")
    finally:
        outages.unmount(mount_point)


def db_restart(base: Path) -> None:
    version = outages.postgres_cluster()
    if version is None:
        raise SystemExit("needs Debian's pg_ctlcluster and a cluster in /etc/postgresql")
    database_url = live.create_database(live.PG_URL)

    def restart(clients: live.UploadClients) -> None:
        started = time.monotonic()
        outages.restart_postgres(version)
        line("db_restart.restart_seconds", f"{time.monotonic() - started:.1f}", "s")

    try:
        server = live.start(base / "server",
                            extra_env={"DATABASE_URL": database_url, "INVENTORY_THROTTLE_UPLOAD": "off"})
        run_through_outage("db_restart", server, bodies({n: 400 for n in range(4)}), uploads=30, outage=restart,
                           refusal=503, data_dir=server.data_dir, database_url=database_url)
    finally:
        live.drop_database(database_url)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenario", choices=["disk-full", "db-restart"])
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        parser.error("needs root (it mounts a tmpfs or restarts PostgreSQL)")
    with tempfile.TemporaryDirectory(prefix="relevo-outage-") as tmp:
        (disk_full if args.scenario == "disk-full" else db_restart)(Path(tmp))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
