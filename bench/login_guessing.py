"""Password guessing against a real gunicorn, with the sign-in lockout off and on (issue 13, item 1).

    .venv/bin/python bench/login_guessing.py [--guesses 120] [--threads 8] [--seconds 15]

One database is prepared; gunicorn (the project's config, 2 x cores + 1
workers) is started on it twice: first with ``INVENTORY_LOGIN_FAILURE_LIMIT=0``
(no lockout: what the server did before), then with the defaults. Each time:

1. ``--guesses`` wrong passwords for ``admin`` in a row from one address,
   through the real form (CSRF and all): how many were refused (429) and the
   CPU seconds the server spent on them;
2. the median time of a small agent upload, alone and while ``--threads``
   guessing clients post wrong passwords, all from one fresh address (one
   attacker's machine, as in the issue). The timing starts once the
   guessers have had 10 answers (with the lockout, it is then locked out)
   and lasts ``--seconds``: the steady state of an attack.

Lines are ``login.lockout_off|lockout_on.<figure>: value unit [target ...]``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import BENCH_RATES, cpu_seconds, cpu_used, machine_line, median, report, start_server  # noqa: E402
from bench.payloads import UploadTemplate, collect_snapshot  # noqa: E402
from relevo_testing import live  # noqa: E402

SMALL_PROCESSES = 5


def small_upload_ms(url: str, token: str, template: UploadTemplate, *, stop: threading.Event | None = None,
                    count: int = 30, interval: float = 0.1) -> list[float]:
    """Upload *count* small snapshots one after the other (or until *stop*); milliseconds each."""
    headers = {"Content-Type": "application/json", "Authorization": f"Token {token}"}
    timings = []
    with requests.Session() as session:
        while len(timings) < count and not (stop is not None and stop.is_set()):
            began = time.perf_counter()
            response = session.post(f"{url}/upload", data=template.body(), headers=headers, timeout=60)
            timings.append((time.perf_counter() - began) * 1000)
            if response.status_code not in (200, 201):
                raise RuntimeError(f"upload answered {response.status_code}: {response.text[:300]}")
            time.sleep(interval)
    return timings


def guess_in_a_row(url: str, count: int, address: str) -> list[int]:
    attacker = live.BrowserSession(url, source_address=address)
    return [attacker.sign_in("admin", f"wrong-{i}").status_code for i in range(count)]


def guess_for(url: str, address: str, stop: threading.Event, statuses: list[int]) -> None:
    attacker = live.BrowserSession(url, source_address=address)
    i = 0
    while not stop.is_set():
        try:
            statuses.append(attacker.sign_in("admin", f"wrong-{address}-{i}").status_code)
        except requests.RequestException:
            statuses.append(0)
        i += 1


def run_phase(label: str, base: Path, prepared, template: UploadTemplate, args) -> None:
    env, credentials = prepared
    server = start_server(base / label, prepared=(env | args.env[label], credentials), timeout=180)
    try:
        small_upload_ms(server.url, server.agent_token, template, count=5)  # warm every worker up
        before = cpu_seconds(server.processes())
        statuses = guess_in_a_row(server.url, args.guesses, "127.0.9.1")
        user, system = cpu_used(before, cpu_seconds(server.processes()))
        refused = statuses.count(429)
        expected = args.guesses - args.limit + 1 if label == "lockout_on" else None
        report(f"login.{label}.wrong_passwords_refused", refused, f"of {args.guesses}",
               target=f">= {expected}" if expected is not None else "", ok=None if expected is None else refused >= expected)
        report(f"login.{label}.server_cpu_for_guesses", user + system, "s")

        idle = small_upload_ms(server.url, server.agent_token, template, count=args.uploads)
        report(f"login.{label}.small_upload_median_idle", median(idle), "ms")

        stop = threading.Event()
        guesses: list[int] = []
        threads = [threading.Thread(target=guess_for, args=(server.url, "127.0.9.2", stop, guesses))
                   for _ in range(args.threads)]
        for thread in threads:
            thread.start()
        try:
            # Time the uploads once the attacker has made LIMIT guesses (and so, with the lockout, been
            # locked out): the steady state of an attack, measured the same way with the lockout off.
            began = time.monotonic()
            while len(guesses) < args.limit and time.monotonic() - began < args.warmup_limit:
                time.sleep(0.05)
            report(f"login.{label}.seconds_until_{args.limit}_guesses_answered", time.monotonic() - began, "s")
            first = len(guesses)
            before = cpu_seconds(server.processes())
            timer = threading.Timer(args.seconds, stop.set)
            timer.start()
            loaded = small_upload_ms(server.url, server.agent_token, template, stop=stop, count=10**9)
            user, system = cpu_used(before, cpu_seconds(server.processes()))
            during = guesses[first:]
        finally:
            stop.set()
            for thread in threads:
                thread.join()
        target = "<= 50 ms" if label == "lockout_on" else ""
        report(f"login.{label}.small_upload_median_under_{args.threads}_guessers", median(loaded), "ms",
               target=target, ok=None if not target else median(loaded) <= 50)
        report(f"login.{label}.guesses_answered_in_window", len(during),
               f"in {args.seconds:.0f} s, {during.count(429)} refused with 429")
        report(f"login.{label}.server_cpu_under_guessing", user + system, f"s in {args.seconds:.0f} s")
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--guesses", type=int, default=120, help="wrong passwords in a row from one address")
    parser.add_argument("--threads", type=int, default=8, help="guessing clients during the upload timing")
    parser.add_argument("--seconds", type=float, default=15.0, help="how long the guessing clients run")
    parser.add_argument("--uploads", type=int, default=30, help="small uploads timed without guessing")
    parser.add_argument("--warmup-limit", type=float, default=120.0,
                        help="longest wait for the guessers' first LIMIT answers before timing uploads")
    args = parser.parse_args(argv)
    args.limit = 10  # the default INVENTORY_LOGIN_FAILURE_LIMIT, used by the "lockout_on" run
    args.env = {"lockout_off": {"INVENTORY_LOGIN_FAILURE_LIMIT": "0"}, "lockout_on": {}}
    print(machine_line(), flush=True)
    template = UploadTemplate(collect_snapshot(SMALL_PROCESSES), host_id="bench-login-host")
    print(f"small upload: {len(template)} bytes, {SMALL_PROCESSES} processes", flush=True)
    base = Path(tempfile.mkdtemp(prefix="relevo-bench-login-"))
    try:
        prepared = live.prepare(base, {**BENCH_RATES, "INVENTORY_REQUEST_LOG": "false"})
        for label in ("lockout_off", "lockout_on"):
            run_phase(label, base, prepared, template, args)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
