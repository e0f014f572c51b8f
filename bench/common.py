"""Shared parts of the benchmark scripts: a real gunicorn, CPU and memory readings, output lines.

Every figure is printed as one ``name: value unit`` line, followed by the
target it is compared with, so ``bench/run_all.py`` (and a person) can read
them back without knowing the script.
"""

from __future__ import annotations

import os
import statistics
import sys
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from relevo_testing import live  # noqa: E402  (needs ROOT on sys.path)


# The throttles stay on (their counting is part of the cost per request) but
# with limits no benchmark reaches: each simulated host sends hundreds of
# uploads a minute, where a real agent sends one every few minutes.
BENCH_RATES = {"INVENTORY_THROTTLE_UPLOAD": "100000000/min", "INVENTORY_THROTTLE_READ": "100000000/min"}


def default_workers() -> int:
    """gunicorn's advice for sync workers: 2 x cores + 1."""
    return 2 * (os.cpu_count() or 1) + 1


def start_server(base: Path, *, workers: int | None = None, extra_env: dict[str, str] | None = None,
                 prepared=None, timeout: float = 60.0) -> live.LiveRelevo:
    """Migrate a fresh database, make tokens and start gunicorn with the project's config (relevo_testing.live)."""
    return live.start(base, workers=workers or default_workers(), extra_env=extra_env, prepared=prepared,
                      timeout=timeout, deploy_config=True)


def start_image_server(base: Path, *, extra_env: dict[str, str] | None = None,
                       timeout: float = 60.0) -> live.LiveRelevo:
    """The server as the Docker image starts it: deploy/entrypoint.sh, 2 sync workers behind its nginx."""
    return live.start_entrypoint(base, extra_env=extra_env, timeout=timeout)


def cpu_seconds(processes: list[psutil.Process]) -> dict[int, tuple[float, float]]:
    """(user, system) CPU seconds of each process that is still there."""
    seconds = {}
    for proc in processes:
        try:
            times = proc.cpu_times()
        except psutil.Error:
            continue
        seconds[proc.pid] = (times.user, times.system)
    return seconds


def cpu_used(before: dict[int, tuple[float, float]], after: dict[int, tuple[float, float]]) -> tuple[float, float]:
    """(user, system) CPU seconds spent between two readings, over the processes in both."""
    user = sum(after[pid][0] - before[pid][0] for pid in after if pid in before)
    system = sum(after[pid][1] - before[pid][1] for pid in after if pid in before)
    return user, system


class RssSampler:
    """Samples the largest RSS of any gunicorn worker in a background thread."""

    def __init__(self, server: live.LiveRelevo, interval: float = 0.1):
        self._server = server
        self._interval = interval
        self._stop = threading.Event()
        self.max_rss = 0
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for proc in self._server.workers():
                try:
                    self.max_rss = max(self.max_rss, proc.memory_info().rss)
                except psutil.Error:
                    continue
            self._stop.wait(self._interval)

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile (p99 of 1,000 samples is the 990th smallest)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(fraction * len(ordered) + 0.5)))
    return ordered[rank - 1]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def report(name: str, value: float, unit: str, *, target: str = "", ok: bool | None = None) -> None:
    """Print one figure: ``name: value unit  [target ..., ok|MISSED]``."""
    text = f"{name}: {value:.3f} {unit}".rstrip() if isinstance(value, float) else f"{name}: {value} {unit}".rstrip()
    if target:
        verdict = "" if ok is None else (", ok" if ok else ", MISSED")
        text += f"  [target {target}{verdict}]"
    print(text, flush=True)


# The floor the performance targets were set against: on the machine of the
# issue, json.loads of a 400-process snapshot took 0.46 ms per 100 KB.
REFERENCE_JSON_LOADS_MS_PER_100KB = 0.46


def json_loads_ms(body: bytes, *, repeat: int = 7, number: int = 40) -> float:
    """Best-of CPU milliseconds of ``json.loads(body)``: how fast this machine is right now.

    Shared virtual machines differ (and drift) by 2x or more in plain CPU
    speed, so every CPU figure is printed beside this one, measured in the
    same run, to tell a slower machine from slower code.
    """
    import json

    best = float("inf")
    for _ in range(repeat):
        started = time.process_time()
        for _ in range(number):
            json.loads(body)
        best = min(best, (time.process_time() - started) / number)
    return best * 1000


def machine_line() -> str:
    """Cores, memory and CPU model, printed at the top of every run."""
    model = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            model = next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), "")
    except OSError:
        pass
    memory = psutil.virtual_memory().total / 2**30
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"machine: {os.cpu_count()} cores, {memory:.0f} GiB, {model or 'unknown CPU'}; load average {load}"
