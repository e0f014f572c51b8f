"""Slow clients against the server as the Docker image starts it: how many agent uploads get through.

Runs ``deploy/entrypoint.sh`` with the image's settings (``WEB_CONCURRENCY=2``,
``RELEVO_FRONT=nginx``; ``--front none`` for gunicorn reached directly, as
before the front existed), opens 16 connections that send their headers one
line every 2 s, and meanwhile sends 8 agent uploads (the agent's sender, its
timeouts, one attempt each) spread over 40 s. The figure that counts is how
many the server acknowledged (2xx within the agent's timeout): an upload the
server stores only after the agent gave up on it is, for the agent, a failed
delivery. The rows stored in the end are printed beside it.

    .venv/bin/python bench/slowloris.py [--front nginx|none] [--duration 40] [--uploads 8]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common  # noqa: E402  (puts the project on sys.path)
from relevo_testing import live  # noqa: E402
from relevo_testing.factories import encode, make_payload  # noqa: E402

TARGET_STORED = 0.95


def stored_count(server: live.LiveRelevo, snapshot_ids: list[str]) -> int:
    headers = {"Authorization": f"Token {server.reader_token}"}
    return sum(requests.get(f"{server.url}/api/snapshots/{sid}/", headers=headers, timeout=30).status_code == 200
               for sid in snapshot_ids)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--front", choices=["nginx", "none"], default=live.IMAGE_ENV["RELEVO_FRONT"])
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between two header lines")
    parser.add_argument("--uploads", type=int, default=8)
    parser.add_argument("--duration", type=float, default=40.0, help="seconds the uploads are spread over")
    args = parser.parse_args(argv)

    print(common.machine_line())
    base = Path(tempfile.mkdtemp(prefix="relevo-bench-slowloris-"))
    server = live.start_entrypoint(base, extra_env={"RELEVO_FRONT": args.front, **common.BENCH_RATES})
    try:
        payloads = [make_payload(host_id=f"slow-{i}", processes=400) for i in range(args.uploads)]
        began = time.monotonic()
        with live.SlowLoris(int(server.url.rsplit(":", 1)[1]),
                            connections=args.connections, interval=args.interval) as attack:
            outcomes = live.agent_uploads(server, [encode(p) for p in payloads],
                                          spacing=args.duration / max(args.uploads, 1))
            remaining = args.duration - (time.monotonic() - began)
            if remaining > 0:
                time.sleep(remaining)
        elapsed = time.monotonic() - began
        stored = stored_count(server, [p["snapshot_id"] for p in payloads])
    finally:
        server.stop()
    print(f"slowloris: RELEVO_FRONT={args.front}, {args.connections} connections sending a header line every "
          f"{args.interval:g} s for {elapsed:.0f} s ({attack.reopened} reopened after the server closed them), "
          f"{args.uploads} agent uploads")
    for index, outcome in enumerate(outcomes):
        if outcome != "acknowledged":
            print(f"  upload {index}: {outcome}")
    acknowledged = outcomes.count("acknowledged")
    common.report("slowloris.uploads_acknowledged", acknowledged, f"of {args.uploads}",
                  target=f">= {TARGET_STORED:.0%}", ok=acknowledged >= TARGET_STORED * args.uploads)
    common.report("slowloris.uploads_stored_in_the_end", stored, f"of {args.uploads}")
    shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
