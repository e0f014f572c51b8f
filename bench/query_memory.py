"""Worker memory while /query sends a big day file: does a worker's RSS grow with the file?

Starts a real gunicorn (the project's config, one sync worker so every
request lands on the measured process), uploads one real 400-process
snapshot, then grows its day file to ``--megabytes`` by appending that stored
document again through the store's own append API (no fsync: it is a fixture,
not the measured part). Then one ``GET /query`` of the day, read by the
client in 1 MiB pieces and checked against Content-Length, while the worker's
RSS is sampled every 50 ms. The figure is its peak growth over the RSS it had
just before the query (after a warm-up query).

    .venv/bin/python bench/query_memory.py [--megabytes 400]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common  # noqa: E402
from bench.payloads import UploadTemplate, collect_snapshot  # noqa: E402

TARGET_GROWTH_MB = 128.0


def grow_day_file(env: dict[str, str], path: Path, megabytes: int) -> None:
    """Append the file's own first document until it is *megabytes* big (in this process, via reports.store)."""
    os.environ.update({k: v for k, v in env.items() if k.startswith(("DJANGO_", "INVENTORY_", "DATABASE_URL"))})
    os.environ["INVENTORY_FSYNC"] = "false"
    os.environ["DJANGO_SETTINGS_MODULE"] = "inventory_site.settings"
    import django

    django.setup()
    from reports import store

    document = path.read_bytes()[2:-3]
    with store.locked_for_append(*store.parse_file_name(path.name)) as writer:
        while writer.size < megabytes * 2**20:
            writer.append(document)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=400, help="size of the day file queried")
    args = parser.parse_args(argv)
    print(common.machine_line())
    base = Path(tempfile.mkdtemp(prefix="relevo-bench-query-memory-"))
    server = common.start_server(base, workers=1, extra_env=common.BENCH_RATES)
    try:
        body = UploadTemplate(collect_snapshot()).body()
        answer = requests.post(f"{server.url}/upload", data=body, timeout=60, headers={
            "Content-Type": "application/json", "Authorization": f"Token {server.agent_token}"})
        answer.raise_for_status()
        day = answer.json()["date"]
        [path] = server.data_dir.glob("127.0.0.1_*.json")
        started = time.perf_counter()
        grow_day_file(server.env, path, args.megabytes)
        size = path.stat().st_size
        print(f"query_memory: day file of {size / 2**20:.0f} MiB built in {time.perf_counter() - started:.1f} s")

        reader = {"Authorization": f"Token {server.reader_token}"}
        params = {"ip": "127.0.0.1", "date": day}
        requests.get(f"{server.url}/query", params={**params, "latest": "true"}, headers=reader,
                     timeout=60).raise_for_status()
        [worker] = server.workers()
        rss_before = worker.memory_info().rss
        with common.RssSampler(server, interval=0.05) as sampler:
            began = time.perf_counter()
            with requests.get(f"{server.url}/query", params=params, headers=reader, stream=True,
                              timeout=600) as response:
                response.raise_for_status()
                received, first, last = 0, b"", b""
                for piece in response.iter_content(2**20):
                    first = first or piece[:64]
                    last = (last + piece)[-64:]
                    received += len(piece)
            seconds = time.perf_counter() - began
        declared = int(response.headers.get("Content-Length", received))
    finally:
        server.stop()
    framed = first.startswith(b'{"ip": "127.0.0.1"') and last.endswith(b"\n]\n}") and received == declared
    growth = (sampler.max_rss - rss_before) / 2**20
    print(f"query_memory: /query answered {received / 2**20:.0f} MiB in {seconds:.1f} s "
          f"({'a whole JSON object of the declared length' if framed else 'NOT the expected answer'}); "
          f"worker RSS {rss_before / 2**20:.0f} MB before, {sampler.max_rss / 2**20:.0f} MB at its peak")
    common.report("query_memory.day_file_size", size / 2**20, "MiB")
    common.report("query_memory.worker_rss_growth", growth, "MB",
                  target=f"<= {TARGET_GROWTH_MB:.0f}", ok=framed and growth <= TARGET_GROWTH_MB)
    shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
