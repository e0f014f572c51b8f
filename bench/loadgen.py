"""Closed-loop upload load, run in its own process beside the server.

``python bench/loadgen.py < config.json`` prints one JSON object of results.
Each of the N connections is a thread with its own loopback source address
(127.0.1.1, 127.0.1.2, ...), host id and upload template, so the server sees
N hosts and writes N day files. A connection sends its next upload as soon as
the previous answer arrived; the run stops after ``count`` uploads or
``duration`` seconds, whichever comes first.
"""

from __future__ import annotations

import http.client
import json
import os
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.payloads import UploadTemplate  # noqa: E402


def source_address(index: int) -> str:
    """127.0.1.1, 127.0.1.2, ... 127.0.1.250, 127.0.2.1, ...: one loopback address per connection."""
    return f"127.0.{1 + index // 250}.{1 + index % 250}"


def run_load(*, port: int, token: str, snapshot: dict, connections: int, count: int, duration: float,
             path: str = "/upload") -> dict:
    templates = [UploadTemplate(snapshot, host_id=f"bench-host-{i:04d}", hostname=f"bench-{i:04d}")
                 for i in range(connections)]
    lock = threading.Lock()
    state = {"started": 0}
    latencies: list[list[float]] = [[] for _ in range(connections)]
    statuses: list[dict[str, int]] = [{} for _ in range(connections)]
    errors: list[list[str]] = [[] for _ in range(connections)]
    headers = {"Content-Type": "application/json", "Authorization": f"Token {token}"}
    deadline = time.monotonic() + duration

    def claim() -> bool:
        with lock:
            if state["started"] >= count or time.monotonic() >= deadline:
                return False
            state["started"] += 1
            return True

    def worker(index: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30, source_address=(source_address(index), 0))
        template = templates[index]
        while claim():
            body = template.body()
            began = time.perf_counter()
            try:
                conn.request("POST", path, body=body, headers=headers)
                response = conn.getresponse()
                response.read()
                elapsed = time.perf_counter() - began
                key = str(response.status)
                if response.status not in (200, 201):
                    errors[index].append(key)
                if response.will_close:
                    conn.close()
            except (OSError, http.client.HTTPException) as exc:
                elapsed = time.perf_counter() - began
                key = type(exc).__name__
                errors[index].append(key)
                conn.close()
            latencies[index].append(elapsed)
            statuses[index][key] = statuses[index].get(key, 0) + 1
        conn.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(connections)]
    cpu_before = os.times()
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - began
    cpu_after = os.times()
    merged: dict[str, int] = {}
    for per in statuses:
        for key, value in per.items():
            merged[key] = merged.get(key, 0) + value
    return {
        "wall_seconds": wall,
        "latencies": [x for per in latencies for x in per],
        "statuses": merged,
        "errors": sum(len(per) for per in errors),
        "client_cpu_seconds": (cpu_after.user - cpu_before.user) + (cpu_after.system - cpu_before.system),
        "body_bytes": len(templates[0]) if templates else 0,
    }


if __name__ == "__main__":
    config = json.load(sys.stdin)
    json.dump(run_load(**config), sys.stdout)
