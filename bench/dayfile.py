"""Day-file benchmark: does the 500th upload to one IP and day cost what the first did?

Appends are O(1) by design (one pwrite at the end, see reports/store.py); this
measures it end to end. In one process, with Django's test client (the whole
request path: auth, parsing, validation, file append with fsync, SQLite rows),
it sends 500 real 400-process uploads to each of several IP-days, round-robin,
and compares the wall time of upload 1 with upload 500 (median over the
IP-days), and of uploads 1-10 with 491-500 (wall and CPU), after a warm-up
on another address.

    .venv/bin/python bench/dayfile.py [--uploads 500] [--ips 6]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common, inprocess  # noqa: E402
from bench.payloads import UploadTemplate, collect_snapshot  # noqa: E402

TARGET_RATIO = 1.5


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uploads", type=int, default=500, help="uploads per IP-day")
    parser.add_argument("--ips", type=int, default=6, help="IP-days measured side by side")
    args = parser.parse_args(argv)
    print(common.machine_line())
    base = Path(tempfile.mkdtemp(prefix="relevo-bench-dayfile-"))
    try:
        inprocess.setup(base / "data", common.BENCH_RATES)
        from django.test import Client

        from reports import services

        _, token = services.agent_token_create(name="bench-dayfile")
        snapshot = collect_snapshot()
        clients = [Client(REMOTE_ADDR=f"127.0.3.{i + 1}", HTTP_HOST="127.0.0.1") for i in range(args.ips)]
        templates = [UploadTemplate(snapshot, host_id=f"dayfile-host-{i}", hostname=f"dayfile-{i}")
                     for i in range(args.ips)]
        warm = Client(REMOTE_ADDR="127.0.4.1", HTTP_HOST="127.0.0.1")
        warm_template = UploadTemplate(snapshot, host_id="dayfile-warm-up")
        for _ in range(20):  # imports, caches and the first file of the folder are not what is measured
            warm.post("/upload", data=warm_template.body(), content_type="application/json",
                      HTTP_AUTHORIZATION=f"Token {token}")
        wall = [[0.0] * args.uploads for _ in range(args.ips)]
        cpu = [[0.0] * args.uploads for _ in range(args.ips)]
        for position in range(args.uploads):
            for i, client in enumerate(clients):
                body = templates[i].body()
                began, began_cpu = time.perf_counter(), time.process_time()
                response = client.post("/upload", data=body, content_type="application/json",
                                       HTTP_AUTHORIZATION=f"Token {token}")
                wall[i][position] = time.perf_counter() - began
                cpu[i][position] = time.process_time() - began_cpu
                if response.status_code != 201:
                    raise RuntimeError(f"upload failed: {response.status_code} {response.content[:300]!r}")
        day_files = sorted((base / "data").glob("127.0.3.*_*.json"))
        size_mb = max(path.stat().st_size for path in day_files) / 2**20
    finally:
        shutil.rmtree(base, ignore_errors=True)

    def ms(values):
        return common.median(values) * 1000

    first = ms([per[0] for per in wall])
    last = ms([per[-1] for per in wall])
    head = ms([x for per in wall for x in per[:10]])
    tail = ms([x for per in wall for x in per[-10:]])
    ratio = last / first if first else float("nan")
    window_ratio = tail / head if head else float("nan")
    print(f"dayfile: {args.uploads} uploads to each of {args.ips} IP-days, {size_mb:.1f} MB per day file at the end")
    common.report("dayfile.upload_1", first, "ms")
    common.report(f"dayfile.upload_{args.uploads}", last, "ms")
    common.report("dayfile.ratio_last_to_first", ratio, "x", target=f"<= {TARGET_RATIO}", ok=ratio <= TARGET_RATIO)
    common.report("dayfile.cpu_uploads_1_10", ms([x for per in cpu for x in per[:10]]), "ms")
    common.report(f"dayfile.cpu_uploads_{args.uploads - 9}_{args.uploads}", ms([x for per in cpu for x in per[-10:]]), "ms")
    common.report("dayfile.uploads_1_10", head, "ms")
    common.report(f"dayfile.uploads_{args.uploads - 9}_{args.uploads}", tail, "ms")
    common.report("dayfile.ratio_last10_to_first10", window_ratio, "x", target=f"<= {TARGET_RATIO}",
                  ok=window_ratio <= TARGET_RATIO)
    return 0


if __name__ == "__main__":
    sys.exit(main())
