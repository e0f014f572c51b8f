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

import pytest

from relevo_testing import live


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
    log_path = tmp_path / "run_demo.log"
    with open(log_path, "wb") as log:
        demo = subprocess.Popen([sys.executable, "scripts/run_demo.py", "--port", str(port), "--workers", "1"],
                                cwd=live.ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        live.wait_until_healthy(f"http://127.0.0.1:{port}", demo, log_path, timeout=60)

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
