"""``make run``: serve Relevo on this machine and send it one snapshot from this machine.

Starts gunicorn in the foreground, waits until it answers, runs the agent
once (with the demo token kept in ``.env``), and prints where to look.
Ctrl-C stops everything, and so does SIGTERM (``kill``, ``timeout``, an
IDE's stop button): without that, the server would outlive this script and
keep the port, and the next ``make run`` could not start.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from inventory_site import envfile  # noqa: E402


def wait_until_up(url: str, process: subprocess.Popen, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=1) as response:
                if response.status == 200:
                    return True
        except OSError:
            time.sleep(0.2)
    return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=int(os.environ.get("WEB_CONCURRENCY", "2")))
    args = parser.parse_args(argv)

    signal.signal(signal.SIGTERM, signal.default_int_handler)  # SIGTERM takes the Ctrl-C path below
    # Started in the background by a shell without job control (`make run &` in a script), a
    # process inherits SIGINT ignored and Python leaves it so: `kill -INT` would then do nothing.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    envfile.load(ROOT / ".env")
    url = f"http://{args.host}:{args.port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "inventory_site.wsgi", "--bind", f"{args.host}:{args.port}",
         "--workers", str(args.workers), "--no-control-socket"],
        cwd=ROOT,
    )
    try:
        if not wait_until_up(url, server):
            print(f"The server did not start on {url}; see the messages above.", file=sys.stderr)
            return 1
        token = os.environ.get("INVENTORY_TOKEN", "")
        if (ROOT / "agent" / "__main__.py").exists() and token:
            print("Sending one snapshot of this machine with the agent ...", flush=True)
            subprocess.run(
                [sys.executable, "-m", "agent", "--server", url, "--once", "--spool-dir", str(ROOT / "data" / "agent-spool")],
                cwd=ROOT, env={**os.environ, "INVENTORY_TOKEN": token}, check=False,
            )
        password = os.environ.get("RELEVO_DEMO_ADMIN_PASSWORD")
        print(
            "\nRelevo is running.\n"
            f"  Dashboard:  {url}/\n"
            f"  Admin:      {url}/admin/\n"
            f"  Query API:  {url}/query?ip=127.0.0.1   (API docs: {url}/api/docs/)\n"
            f"  Sign in as: admin / {password or '(the password you set)'}\n"
            f"  Agent token (INVENTORY_TOKEN in .env): {token[:10] + '...' if token else 'none'}\n"
            "This machine sent one snapshot, so it shows offline after 30 minutes. To keep it reporting,\n"
            "run in another terminal (every 5 minutes):\n"
            f"  INVENTORY_TOKEN=$(grep INVENTORY_TOKEN .env | cut -d= -f2) {sys.executable} -m agent \\\n"
            f"      --server {url} --interval 300 --spool-dir data/agent-spool\n"
            "Press Ctrl-C to stop.\n",
            flush=True,
        )
        return server.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()


if __name__ == "__main__":
    sys.exit(main())
