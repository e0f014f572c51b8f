"""Run every benchmark script in bench/ and print one summary table (``make bench``).

Each script runs in its own process with a time limit, its output is shown as
it comes, and every ``name: value unit  [target ..., ok|MISSED]`` line it
prints is collected into the table at the end. Scripts from other areas
(``bench/agent.py``, ``bench/pages.py``) are run when they exist.

    .venv/bin/python bench/run_all.py [--only ingest,query] [--quick]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
# (script, time limit in seconds, extra arguments for --quick), in the order they run.
SCRIPTS = [
    ("ingest.py", 240, ["--count", "1500", "--duration", "15"]),
    ("dayfile.py", 300, ["--uploads", "100", "--ips", "2"]),
    ("query.py", 600, ["--hosts", "1000", "--file-hosts", "100", "--requests", "150"]),
    ("upload_cost.py", 300, ["--uploads", "100", "--counted", "10"]),
    ("storage.py", 3600, ["--hosts", "4", "--reads", "10"]),
    ("agent.py", 300, []),
    ("pages.py", 900, ["--hosts", "1000", "--requests", "40"]),
    ("search.py", 1200, ["--hosts", "500", "--requests", "50"]),
]
OTHER_LIMIT = 300
# Modules in bench/ that are parts of benchmarks, not benchmarks.
HELPERS = {"__init__.py", "common.py", "payloads.py", "loadgen.py", "inprocess.py", "query_loader.py", "loader.py",
           "run_all.py"}
# Benchmarks run by hand only, and why: a run of everything must not do this to the machine.
BY_HAND = {"outage.py": "restarts the machine's PostgreSQL (db-restart) or mounts a tmpfs (disk-full)"}
LINE = re.compile(
    r"^(?P<name>[A-Za-z][\w.\-/ ]*?): (?P<value>-?\d+(?:\.\d+)?(?:e[-+]?\d+)?|nan)(?: (?P<unit>[^\[(,;]*?))?"
    r"\s*(?:[\[(]target (?P<target>[^\])]*?)(?:, (?P<verdict>ok|MISSED))?[\])])?\s*$"
)


def all_scripts() -> list[tuple[str, int, list[str]]]:
    """The known scripts first, then any other benchmark a later issue added to bench/."""
    known = {name for name, _, _ in SCRIPTS}
    others = sorted(path.name for path in BENCH.glob("*.py")
                    if path.name not in known | HELPERS | set(BY_HAND)
                    and "__main__" in path.read_text(errors="replace"))
    return [*SCRIPTS, *((name, OTHER_LIMIT, []) for name in others)]


def run(script: str, limit: int, extra: list[str]) -> tuple[list[dict], str]:
    """Run one script, echo its output, and return its figures and how it ended."""
    figures: list[dict] = []
    process = subprocess.Popen([sys.executable, str(BENCH / script), *extra], cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, bufsize=1)
    deadline = time.monotonic() + limit
    assert process.stdout is not None
    for line in process.stdout:
        print(f"  {line}", end="", flush=True)
        match = LINE.match(line.rstrip("\n"))
        if match:
            figures.append({**match.groupdict(), "script": script})
        if time.monotonic() > deadline:
            process.kill()
            break
    try:
        code = process.wait(timeout=max(1, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        return figures, f"stopped after {limit} s"
    if time.monotonic() > deadline:
        return figures, f"stopped after {limit} s"
    return figures, "ok" if code == 0 else f"exit {code}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="comma-separated script names (ingest,dayfile,query,upload_cost,agent,pages)")
    parser.add_argument("--quick", action="store_true", help="smaller runs, for checking the scripts work")
    args = parser.parse_args(argv)
    wanted = {name.strip().removesuffix(".py") for name in args.only.split(",") if name.strip()}
    rows: list[dict] = []
    outcomes: list[tuple[str, str, float]] = []
    for script, limit, quick in all_scripts():
        if wanted and script.removesuffix(".py") not in wanted:
            continue
        if not (BENCH / script).exists():
            outcomes.append((script, "not on this branch", 0.0))
            continue
        print(f"== bench/{script}", flush=True)
        began = time.monotonic()
        figures, outcome = run(script, limit, quick if args.quick else [])
        outcomes.append((script, outcome, time.monotonic() - began))
        rows.extend(figures)

    print("\n== summary")
    width = max([len(row["name"]) for row in rows] + [6])
    print(f"{'figure':<{width}}  {'value':>12}  {'unit':<14}  {'target':<14}  verdict")
    for row in rows:
        value = row["value"]
        shown = f"{float(value):.2f}" if value != "nan" else value
        print(f"{row['name']:<{width}}  {shown:>12}  {(row['unit'] or '').strip():<14}  "
              f"{(row['target'] or ''):<14}  {row['verdict'] or ''}")
    print()
    for script, outcome, seconds in outcomes:
        print(f"bench/{script}: {outcome}" + (f" in {seconds:.0f} s" if seconds else ""))
    for script, why in BY_HAND.items():
        print(f"bench/{script}: not run, by hand only ({why})")
    missed = sum(1 for row in rows if row["verdict"] == "MISSED")
    print(f"targets: {sum(1 for row in rows if row['verdict'] == 'ok')} met, {missed} missed")
    return 1 if any(outcome not in ("ok", "not on this branch") for _, outcome, _ in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
