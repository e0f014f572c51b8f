"""``make run``'s script: the server it starts must not outlive it.

A server left behind keeps the port, and the next ``make run`` fails with
"address already in use" while nothing on screen says why.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from reports.tests import live


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


@pytest.mark.slow
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_stopping_run_demo_stops_the_server_it_started(tmp_path, stop):
    env, _ = live.prepare(tmp_path)
    # No agent run: it would spool under the checkout's data/ folder.
    env = {**env, "INVENTORY_TOKEN": ""}
    port = live.free_port()
    demo = subprocess.Popen([sys.executable, "scripts/run_demo.py", "--port", str(port), "--workers", "1"],
                            cwd=live.ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            assert demo.poll() is None and time.monotonic() < deadline, "the demo server did not start"
            time.sleep(0.2)

        demo.send_signal(stop)
        assert demo.wait(timeout=30) == 0
        deadline = time.monotonic() + 15
        while _listening(port) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _listening(port), "gunicorn outlived run_demo.py and still holds the port"
    finally:
        # Whatever the outcome, leave nothing behind: gunicorn is in run_demo's process group.
        try:
            os.killpg(demo.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        demo.wait()
