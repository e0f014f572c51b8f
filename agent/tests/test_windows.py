"""The real agent on Windows CPython 3.13 (embeddable, amd64) under Wine.

Run with ``make test-windows`` (``pytest -m windows``). Needs Wine
(``apt-get install -y wine64``) and the package registries the first time;
``agent/tests/windows/build_env.py`` caches everything under ``build/windows``.
Under CI=true a missing Wine fails these tests instead of skipping them.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import uuid

import pytest
import requests

from .prerequisites import live_server, require
from .windows.build_env import WindowsEnv, build_env, find_wine, to_windows_path

pytestmark = [pytest.mark.windows, pytest.mark.backend_free]

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


UNINSTALL = r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Uninstall"
USER_UNINSTALL = r"HKCU\Software\Microsoft\Windows\CurrentVersion\Uninstall"


def _reg(env: WindowsEnv, *args: str) -> None:
    """Run Wine's ``reg``; done when it says so.

    Wine 8's loader now and then aborts while the finished process unloads
    its libraries ("Inconsistency detected by ld.so: dl-fini.c"), exit 127,
    after reg has written the key and printed its success line. That line is
    what says the registry holds the change.
    """
    result = subprocess.run([env.wine, "reg", *args, "/f"], env=env.env(), capture_output=True, text=True,
                            timeout=RUN_TIMEOUT)
    done = "The operation completed successfully" in result.stdout
    assert result.returncode == 0 or (done and "dl-fini" in result.stderr), result.stdout + result.stderr


@pytest.fixture
def uninstall_entries(windows_env):
    """Programs written with `reg add` into both views of HKLM and into the user's hive, removed afterwards."""
    tag = uuid.uuid4().hex[:8]
    entries = [
        (UNINSTALL + rf"\Relevo64-{tag}", "/reg:64", {"DisplayName": f"Relevo Test 64 {tag}",
                                                      "DisplayVersion": "1.2.3", "Publisher": "Relevo QA",
                                                      "InstallDate": "20260115"}),
        (UNINSTALL + rf"\Relevo32-{tag}", "/reg:32", {"DisplayName": f"Relevo Test 32 {tag}",
                                                      "DisplayVersion": "4.5", "Publisher": "Relevo QA"}),
        (UNINSTALL + rf"\RelevoHidden-{tag}", "/reg:64", {"DisplayName": f"Relevo Hidden {tag}"}),
        (USER_UNINSTALL + rf"\RelevoUser-{tag}", None, {"DisplayName": f"Relevo User {tag}"}),
    ]
    for key, view, values in entries:
        for name, value in values.items():
            _reg(windows_env, "add", key, "/v", name, "/t", "REG_SZ", "/d", value, *([view] if view else []))
    _reg(windows_env, "add", entries[2][0], "/v", "SystemComponent", "/t", "REG_DWORD", "/d", "1", "/reg:64")
    yield tag
    for key, view, _values in entries:
        _reg(windows_env, "delete", key, *([view] if view else []))


def test_inventory_under_wine(windows_env, tmp_path, uninstall_entries):
    tag = uninstall_entries
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        result = _agent(windows_env, "--dry-run", "--state-dir", to_windows_path(tmp_path))
    assert result.returncode == 0, result.stderr
    snapshot = json.loads(result.stdout)

    mine = {e["name"]: e for e in snapshot["software"] if tag in e["name"]}
    assert mine == {
        f"Relevo Test 64 {tag}": {"name": f"Relevo Test 64 {tag}", "version": "1.2.3", "vendor": "Relevo QA",
                                  "arch": "x64", "source": "windows", "install_date": "2026-01-15"},
        f"Relevo Test 32 {tag}": {"name": f"Relevo Test 32 {tag}", "version": "4.5", "vendor": "Relevo QA",
                                  "arch": "x86", "source": "windows", "install_date": None},
        f"Relevo User {tag}": {"name": f"Relevo User {tag}", "version": None, "vendor": None, "arch": None,
                               "source": "windows", "install_date": None},
    }  # the SystemComponent=1 entry is left out, as "Programs and Features" does
    assert snapshot["software_count"] == len(snapshot["software"])

    assert {"C:\\", "Z:\\"} <= {d["mount_point"] for d in snapshot["disks"]}
    assert all(d["total_bytes"] and d["free_bytes"] is not None for d in snapshot["disks"])

    # Wine reports MACs as 02-FC-00-00-00-01; the snapshot has the one colon form.
    macs = [i["mac"] for i in snapshot["interfaces"] if i["mac"]]
    assert macs and all(re.fullmatch(r"[0-9a-f]{2}(:[0-9a-f]{2})+", mac) for mac in macs)
    assert any(a["address"] == "127.0.0.1" and a["prefix_length"] == 8
               for i in snapshot["interfaces"] for a in i["addresses"])

    # Wine reads the host's socket table; a Linux pid means nothing to it, so pid and process are null.
    [found] = [s for s in snapshot["listening"] if s["protocol"] == "tcp" and s["port"] == port]
    assert found["address"] == "127.0.0.1" and found["pid"] is None and found["process"] is None

    services = {s["name"]: s for s in snapshot["services"]}
    assert services["Eventlog"]["status"] == "running" and services["Eventlog"]["start_type"] == "automatic"
    assert services["Eventlog"]["account"] == "LocalSystem" and services["Eventlog"]["binary_path"]
    assert not any("active_state" in s for s in services.values())  # systemd's fields are left out on Windows

    # Wine's BIOS key holds empty strings and it has no WMI here (_wmi removed): every field degrades to null.
    assert snapshot["hardware"] == {"vendor": None, "model": None, "serial": None, "uuid": None,
                                    "bios_vendor": None, "bios_version": None, "bios_date": None,
                                    "virtual": None, "hypervisor": None}


def test_wine_inventory_is_accepted_by_a_live_server(windows_env, tmp_path, uninstall_entries, request):
    relevo = live_server(request)
    state = to_windows_path(tmp_path / "state")
    first = _agent(windows_env, "--once", "--server", relevo.url, "--token", relevo.agent_token,
                   "--state-dir", state)
    assert first.returncode == 0, first.stderr
    second = _agent(windows_env, "--once", "--server", relevo.url, "--token", relevo.agent_token,
                    "--state-dir", state)
    assert second.returncode == 0, second.stderr

    headers = {"Authorization": f"Token {relevo.reader_token}"}
    day = requests.get(f"{relevo.url}/query", params={"ip": "127.0.0.1"}, headers=headers, timeout=10)
    snapshots = sorted(day.json()["snapshots"], key=lambda s: s["collected_at"])
    full, digest_only = snapshots[-2:]
    assert any(uninstall_entries in e["name"] for e in full["software"])
    # The second run sent the digest only: the list had not changed and the server held it.
    assert digest_only["software"] is None
    assert digest_only["software_digest"] == full["software_digest"]
