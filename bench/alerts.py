"""Alerts benchmark: what ten active rules cost ingest, and how long an alert takes to reach its receiver.

Two real gunicorn servers in turn (fresh data folder each, SQLite, fsync on),
loaded by ``bench/loadgen.py`` as ``bench/ingest.py`` does: the first with no
alert rule, the second with ten (every upload kind, scoped to all hosts, one
webhook destination). Uploads/s and server CPU per upload (the gunicorn
processes' CPU time over the run divided by the uploads) are printed for
both, and the rise in CPU per upload. Then, with ``manage.py alerts_worker``
running (its default 1 s poll) and a loopback receiver, one host uploads
snapshots that each start a new matching process: the delay from the
upload's 201 to the message's arrival at the receiver, p50 and p99.

    .venv/bin/python bench/alerts.py [--connections 8] [--count 3000] [--duration 15] [--probes 40]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common  # noqa: E402
from bench.ingest import run_loadgen  # noqa: E402
from bench.payloads import collect_snapshot  # noqa: E402
from relevo_testing.factories import make_payload  # noqa: E402
from relevo_testing.webhook import WebhookReceiver  # noqa: E402

TARGET_RATE = 300.0
TARGET_CPU_RISE_PERCENT = 10.0

TEN_RULES = """
from reports.alerts import outbox
from reports.models import AlertDestination, AlertRule
hook = outbox.alert_destination_save(destination=AlertDestination(name="bench", kind="webhook", url={url!r}))
for name, kind, fields in [
    ("probe", "process_started", {{"pattern": "alert-probe"}}),
    ("nginx up", "process_started", {{"pattern": "nginx"}}),
    ("sshd down", "process_stopped", {{"pattern": "sshd"}}),
    ("cron down", "process_stopped", {{"pattern": "cron"}}),
    ("ssl new", "software_installed", {{"pattern": "ssl"}}),
    ("ssl upgraded", "software_upgraded", {{"pattern": "ssl"}}),
    ("ports", "port_opened", {{"allowed_ports": "22,80,443"}}),
    ("disk", "disk_full", {{"threshold_percent": 95}}),
    ("offline", "host_offline", {{}}),
    ("rejected", "snapshot_rejected", {{}}),
]:
    outbox.alert_rule_save(rule=AlertRule(name=name, kind=kind, group_seconds=0, **fields), destinations=[hook])
"""


def ingest_run(args, snapshot: dict, *, rules_url: str | None) -> tuple[float, float, dict]:
    """(uploads/s, server CPU ms per upload, loadgen result) of one fresh server, with the ten rules if given."""
    base = Path(tempfile.mkdtemp(prefix="relevo-bench-alerts-"))
    server = common.start_server(base, workers=args.workers, extra_env={"INVENTORY_FSYNC": "true", **common.BENCH_RATES})
    try:
        if rules_url:
            server.manage("shell", "-c", TEN_RULES.format(url=rules_url))
        run_loadgen(server, snapshot, connections=args.connections, count=20 * args.workers, duration=30)
        processes = server.processes()
        before = common.cpu_seconds(processes)
        result = run_loadgen(server, snapshot, connections=args.connections, count=args.count, duration=args.duration)
        user, system = common.cpu_used(before, common.cpu_seconds(processes))
        if rules_url:
            delays = probe_delays(server, args.probes)
        else:
            delays = []
    finally:
        server.stop()
    uploads = len(result["latencies"])
    rate = uploads / result["wall_seconds"] if result["wall_seconds"] else 0.0
    return rate, (user + system) * 1000 / max(uploads - result["errors"], 1), {**result, "delays": delays}


def probe_delays(server, probes: int) -> list[float]:
    """Seconds from each probe upload's 201 to its alert's arrival, with a worker running."""
    headers = {"Authorization": f"Token {server.agent_token}", "Content-Type": "application/json"}
    worker = subprocess.Popen([sys.executable, "manage.py", "alerts_worker"], cwd=common.ROOT, env=server.env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    acked: dict[str, float] = {}
    try:
        start = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=probes + 1)
        for i in range(probes + 1):
            payload = make_payload(host_id="probe-host", hostname="probe", collected_at=start + dt.timedelta(minutes=i))
            payload["snapshot_id"] = str(uuid.uuid4())
            if i:
                payload["processes"].append({"pid": 9000 + i, "name": f"alert-probe-{i}", "cmdline": []})
            response = requests.post(f"{server.url}/upload", data=json.dumps(payload), headers=headers, timeout=10)
            response.raise_for_status()
            if i:
                acked[f"process alert-probe-{i} started"] = time.time()
            time.sleep(0.25)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(arrivals(RECEIVER)) < probes:
            time.sleep(0.1)
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    arrived = arrivals(RECEIVER)
    return [arrived[subject] - at for subject, at in acked.items() if subject in arrived]


def arrivals(receiver: WebhookReceiver) -> dict[str, float]:
    """The first arrival time of each alert subject the receiver got."""
    found: dict[str, float] = {}
    for message in list(receiver.received):
        for alert in message.json.get("alerts", []):
            found.setdefault(alert["subject"], message.at)
    return found


RECEIVER = WebhookReceiver()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--count", type=int, default=3000, help="uploads in each measured run (upper bound)")
    parser.add_argument("--duration", type=float, default=15.0, help="seconds each measured run may last")
    parser.add_argument("--probes", type=int, default=40, help="alerts timed from upload to receiver")
    parser.add_argument("--workers", type=int, default=common.default_workers())
    args = parser.parse_args(argv)

    print(common.machine_line())
    snapshot = collect_snapshot()
    RECEIVER.start()
    try:
        none_rate, none_cpu, _ = ingest_run(args, snapshot, rules_url=None)
        ten_rate, ten_cpu, ten = ingest_run(args, snapshot, rules_url=RECEIVER.url)
    finally:
        RECEIVER.stop()
    rise = 100 * (ten_cpu - none_cpu) / none_cpu if none_cpu else float("nan")
    delays_ms = [d * 1000 for d in ten["delays"]]
    print(f"alerts: {len(snapshot['processes'])}-process snapshots, {args.connections} connections, "
          f"{args.workers} sync workers; ten rules of every upload kind; {len(delays_ms)}/{args.probes} probes arrived")
    common.report("alerts.no_rules.uploads_per_s", none_rate, "uploads/s", target=f">= {TARGET_RATE:.0f}",
                  ok=none_rate >= TARGET_RATE)
    common.report("alerts.ten_rules.uploads_per_s", ten_rate, "uploads/s", target=f">= {TARGET_RATE:.0f}",
                  ok=ten_rate >= TARGET_RATE)
    common.report("alerts.no_rules.server_cpu_per_upload", none_cpu, "ms")
    common.report("alerts.ten_rules.server_cpu_per_upload", ten_cpu, "ms")
    common.report("alerts.ten_rules.cpu_rise", rise, "%", target=f"<= {TARGET_CPU_RISE_PERCENT:.0f}",
                  ok=rise <= TARGET_CPU_RISE_PERCENT)
    common.report("alerts.delay_p50", common.percentile(delays_ms, 0.50), "ms")
    common.report("alerts.delay_p99", common.percentile(delays_ms, 0.99), "ms")
    common.report("alerts.probes_lost", args.probes - len(delays_ms), "alerts", target="0",
                  ok=len(delays_ms) == args.probes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
