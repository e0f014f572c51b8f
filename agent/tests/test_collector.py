"""Collector tests: the real psutil on this Linux machine, and fakes for other platforms."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from datetime import datetime
from types import SimpleNamespace

import psutil
import pytest

from agent import collector
from agent.collector import Sources, snapshot_collect

from .fake_psutil import FakeProcess, FakePsutil, User

TOP_LEVEL = ["schema_version", "snapshot_id", "collected_at", "agent", "host", "os", "cpu",
             "memory", "users", "users_source", "processes", "software", "software_digest", "software_count",
             "listening", "disks", "interfaces", "services", "hardware"]
PROCESS_FIELDS = ["pid", "ppid", "name", "username", "status", "create_time", "cpu_percent",
                  "memory_rss_bytes", "memory_percent", "num_threads", "exe", "cmdline"]


def _is_utc_time(value: str | None) -> bool:
    if value is None:
        return True
    return datetime.fromisoformat(value).utcoffset() is not None


def _windows_uname():
    return SimpleNamespace(system="Windows", node="WIN-01", release="10", version="10.0.19045", machine="AMD64")


def _registry(values: dict[tuple[str, str], object]):
    return lambda key, name: values.get((key, name))


# ------------------------------------------------------------------ real psutil, this machine


@pytest.fixture
def secret_child():
    """A real process whose command line carries secrets, to see them redacted."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)",
                             "--password=hunter2", "--token", "tok-123",
                             "DB_URL=postgres://admin:s3cret@db/x"])
    yield proc
    proc.kill()
    proc.wait()


def test_real_snapshot_follows_schema_v1(tmp_path, secret_child):
    snapshot = snapshot_collect(src=Sources(state_dir=tmp_path), sample_seconds=0.1)

    assert list(snapshot) == TOP_LEVEL
    assert snapshot["schema_version"] == 1
    uuid.UUID(snapshot["snapshot_id"])
    assert _is_utc_time(snapshot["collected_at"])
    assert snapshot["os"]["name"] == "Linux"
    assert snapshot["os"]["kernel"] == os.uname().release
    assert snapshot["host"]["id"] and snapshot["host"]["hostname"]
    assert all(not ip.startswith("127.") and ip != "::1" for ip in snapshot["host"]["ips"])
    assert snapshot["cpu"]["logical_cores"] == psutil.cpu_count()
    assert 0 <= snapshot["cpu"]["usage_percent"] <= 100
    assert snapshot["memory"]["total_bytes"] == psutil.virtual_memory().total
    assert snapshot["users_source"] in ("utmp", "logind", None)

    by_pid = {p["pid"]: p for p in snapshot["processes"]}
    me = by_pid[os.getpid()]
    assert list(me) == PROCESS_FIELDS
    assert me["name"] and me["exe"] and me["memory_rss_bytes"] > 0
    assert me["cmdline"][0] == sys.argv[0] or me["cmdline"]
    assert all(_is_utc_time(p["create_time"]) for p in snapshot["processes"])

    child = by_pid[secret_child.pid]["cmdline"]
    assert child[-4:] == ["--password=***", "--token", "***", "DB_URL=postgres://***@db/x"]
    assert "hunter2" not in str(snapshot) and "s3cret" not in str(snapshot)


def test_no_cmdline_drops_command_lines(tmp_path):
    snapshot = snapshot_collect(src=Sources(state_dir=tmp_path), include_cmdline=False, sample_seconds=0)
    assert snapshot["processes"]
    assert all(p["cmdline"] is None for p in snapshot["processes"])


def test_cpu_percent_uses_one_window_for_all_processes(tmp_path):
    sleeps = []
    snapshot_collect(src=Sources(state_dir=tmp_path), sample_seconds=0.05, sleep=sleeps.append)
    assert sleeps == [0.05]


# ------------------------------------------------------------------ per-field tolerance (fake psutil:
# a real process cannot be made to raise on one chosen field)


def test_one_bad_field_leaves_only_that_field_null(tmp_path):
    ps = FakePsutil([
        FakeProcess(10, username=RuntimeError("boom"), exe="/usr/bin/ok"),
        FakeProcess(11, num_threads=OSError(13, "denied"), memory_info=psutil.AccessDenied(11)),
        FakeProcess(12, name=psutil.NoSuchProcess(12)),
        FakeProcess(13, status="zombie", cmdline=psutil.ZombieProcess(13)),
    ])
    src = Sources(psutil=ps, system="Linux", root=tmp_path, state_dir=tmp_path,
                  uname=SimpleNamespace(system="Linux", release="6.1", version="#1", machine="x86_64"))
    procs = {p["pid"]: p for p in snapshot_collect(src=src, sample_seconds=0)["processes"]}

    assert sorted(procs) == [10, 11, 13]  # 12 ended during the collection
    assert procs[10]["username"] is None and procs[10]["name"] == "proc10" and procs[10]["exe"] == "/usr/bin/ok"
    assert procs[11]["num_threads"] is None and procs[11]["memory_rss_bytes"] is None
    assert procs[11]["username"] == "root"
    assert procs[13]["cmdline"] is None and procs[13]["status"] == "zombie"


def test_strings_and_cmdline_are_kept_within_schema_limits(tmp_path):
    ps = FakePsutil([FakeProcess(20, name="a\x00b" + "x" * 5000, cmdline=["y" * 5000] * 2000)])
    src = Sources(psutil=ps, system="Linux", root=tmp_path, state_dir=tmp_path)
    proc = snapshot_collect(src=src, sample_seconds=0)["processes"][0]
    assert "\x00" not in proc["name"] and len(proc["name"]) == 4096
    assert len(proc["cmdline"]) <= 1024 and sum(map(len, proc["cmdline"])) <= 8192


# ------------------------------------------------------------------ Linux branches on a fake root


def test_arm_cpuinfo_gives_hardware_and_implementer(tmp_path):
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc" / "cpuinfo").write_text(
        "processor\t: 0\nBogoMIPS\t: 108.00\nCPU implementer\t: 0x41\nCPU part\t: 0xd08\n\n"
        "Hardware\t: BCM2835\nRevision\t: c03111\n")
    src = Sources(psutil=FakePsutil(), system="Linux", root=tmp_path,
                  uname=SimpleNamespace(system="Linux", release="6.1", version="#1", machine="aarch64"))
    cpu = collector.cpu_info(src, usage_percent=3.0)
    assert cpu["model"] == "BCM2835" and cpu["vendor"] == "ARM" and cpu["arch"] == "aarch64"
    assert cpu["frequency_mhz"] == 2400.0  # current 0 falls back to max


def test_old_arm_processor_line(tmp_path):
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc" / "cpuinfo").write_text("Processor\t: ARMv7 Processor rev 4 (v7l)\n")
    src = Sources(psutil=FakePsutil(), system="Linux", root=tmp_path)
    assert collector.cpu_info(src, usage_percent=None)["model"] == "ARMv7 Processor rev 4 (v7l)"


def test_os_release_and_machine_id(tmp_path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "os-release").write_text('NAME="Debian GNU/Linux"\nVERSION_ID="13"\nID=debian\n')
    (tmp_path / "etc" / "machine-id").write_text("4f1c2e8a9b7d4e6fa1b2c3d4e5f60718\n")
    src = Sources(psutil=FakePsutil(), system="Linux", root=tmp_path,
                  uname=SimpleNamespace(system="Linux", release="6.12.0-1-amd64", version="#1 SMP", machine="x86_64"))
    os_ = collector.os_info(src)
    assert os_ == {"name": "Linux", "version": "#1 SMP", "release": "6.12.0-1-amd64", "build": None,
                   "distribution": "Debian GNU/Linux", "distribution_version": "13",
                   "kernel": "6.12.0-1-amd64", "arch": "x86_64"}
    assert collector.host_info(src)["id"] == "4f1c2e8a9b7d4e6fa1b2c3d4e5f60718"


def test_generated_host_id_is_kept_in_state_dir(tmp_path):
    src = Sources(psutil=FakePsutil(), system="Linux", root=tmp_path / "empty-root", state_dir=tmp_path / "state")
    first = collector.host_info(src)["id"]
    assert collector.host_info(src)["id"] == first
    assert (tmp_path / "state" / "host-id").read_text().strip() == first


def test_host_ips_skip_loopback_and_link_local(tmp_path):
    src = Sources(psutil=FakePsutil(), system="Linux", root=tmp_path, state_dir=tmp_path,
                  hostname=lambda: "web-01.example.internal", fqdn=lambda: "web-01.example.internal")
    host = collector.host_info(src)
    assert host["ips"] == ["10.0.1.15"]
    assert host["hostname"] == "web-01" and host["fqdn"] == "web-01.example.internal"
    assert host["boot_time"] == "2026-09-21T14:13:20+00:00"


def test_users_from_utmp_when_it_answers(tmp_path):
    # Faked: whether this machine's utmp has entries depends on who is logged in.
    ps = FakePsutil(users=[User("alice", "pts/0", "10.0.0.7", 1_790_000_000.0, 42)])
    users, source = collector.users_info(Sources(psutil=ps, system="Linux", root=tmp_path))
    assert source == "utmp"
    assert users == [{"name": "alice", "terminal": "pts/0", "host": "10.0.0.7", "started": "2026-09-21T14:13:20+00:00"}]


def test_users_fall_back_to_logind_when_utmp_is_empty(tmp_path):
    # Faked: an empty utmp (Debian 13 no longer writes it) with logind sessions present.
    sessions = tmp_path / "run" / "systemd" / "sessions"
    sessions.mkdir(parents=True)
    (sessions / "3").write_text("UID=1000\nUSER=alice\nACTIVE=1\nSTATE=active\nTTY=pts/1\n"
                                "REMOTE_HOST=10.0.0.9\nCLASS=user\nREALTIME=1790000000000000\n")
    (sessions / "4").write_text("UID=0\nUSER=gdm\nCLASS=greeter\nSTATE=online\n")
    (sessions / "5").write_text("UID=1001\nUSER=bob\nCLASS=user\nSTATE=closing\n")
    (sessions / "3.ref").write_text("")
    users, source = collector.users_info(Sources(psutil=FakePsutil(users=[]), system="Linux", root=tmp_path))
    assert source == "logind"
    assert users == [{"name": "alice", "terminal": "pts/1", "host": "10.0.0.9", "started": "2026-09-21T14:13:20+00:00"}]


def test_users_source_null_when_nothing_answers(tmp_path):
    ps = FakePsutil(users=OSError("utmp unreadable"))
    assert collector.users_info(Sources(psutil=ps, system="Linux", root=tmp_path)) == ([], None)


# ------------------------------------------------------------------ Windows branches (fake psutil + registry:
# this machine is Linux; the real Windows run is test_windows.py under Wine)

WIN_REGISTRY = {
    (collector._REG_CPU, "ProcessorNameString"): "Intel(R) Core(TM) i7-8650U CPU @ 1.90GHz  ",
    (collector._REG_CPU, "VendorIdentifier"): "GenuineIntel",
    (collector._REG_NT, "ProductName"): "Windows 10 Pro",
    (collector._REG_NT, "DisplayVersion"): "22H2",
    (collector._REG_CRYPTO, "MachineGuid"): "eb8be734-7042-430c-b444-22d849618549",
}


def _wine_like_processes():
    # As under Wine: name() and exe() raise WinError 87 for every process.
    bad = OSError(22, "Invalid parameter")
    return [
        FakeProcess(4, name=bad, exe=bad, cmdline=[], username="NT AUTHORITY\\SYSTEM"),
        FakeProcess(112, name=bad, exe=bad, cmdline=["C:\\Windows\\explorer.exe", "/desktop"], username="WIN-01\\alice",
                    create_time=1_790_000_100.0),
        FakeProcess(300, name=bad, exe="C:\\Program Files\\App\\app.exe", cmdline=bad, username="WIN-01\\alice"),
        FakeProcess(301, name=bad, exe=bad, cmdline=["C:\\Tools\\tool.exe", "/password:hunter2", "--api-key", "abc"]),
    ]


def test_windows_snapshot_with_failing_names(tmp_path):
    src = Sources(psutil=FakePsutil(_wine_like_processes(), users=[]), system="Windows",
                  uname=_windows_uname(), registry=_registry(WIN_REGISTRY), root=tmp_path, state_dir=tmp_path)
    snapshot = snapshot_collect(src=src, sample_seconds=0)

    names = {p["pid"]: p["name"] for p in snapshot["processes"]}
    assert names == {4: None, 112: "explorer.exe", 300: "app.exe", 301: "tool.exe"}
    assert snapshot["processes"][3]["cmdline"] == ["C:\\Tools\\tool.exe", "/password:***", "--api-key", "***"]
    assert snapshot["os"] == {"name": "Windows", "version": "10.0.19045", "release": "10", "build": "19045",
                              "distribution": "Windows 10 Pro", "distribution_version": "22H2",
                              "kernel": "10.0.19045", "arch": "AMD64"}
    assert snapshot["cpu"]["model"] == "Intel(R) Core(TM) i7-8650U CPU @ 1.90GHz"
    assert snapshot["cpu"]["vendor"] == "GenuineIntel"
    assert snapshot["host"]["id"] == "eb8be734-7042-430c-b444-22d849618549"
    # WTS answered nothing: the owners of explorer.exe are the logged-on users.
    assert snapshot["users_source"] == "explorer"
    assert snapshot["users"] == [{"name": "alice", "terminal": "console", "host": None,
                                  "started": "2026-09-21T14:15:00+00:00"}]


def test_windows_users_from_wts(tmp_path):
    ps = FakePsutil(users=[User("alice", "rdp-tcp#0", "10.0.0.7", 1_790_000_000.0, None)])
    users, source = collector.users_info(Sources(psutil=ps, system="Windows", root=tmp_path))
    assert source == "wts" and users[0]["terminal"] == "rdp-tcp#0"


def test_windows_11_is_told_apart_by_build(tmp_path):
    registry = dict(WIN_REGISTRY)
    uname = SimpleNamespace(system="Windows", node="w", release="10", version="10.0.22631", machine="AMD64")
    src = Sources(psutil=FakePsutil(), system="Windows", uname=uname, registry=_registry(registry), root=tmp_path)
    assert collector.os_info(src)["distribution"] == "Windows 11 Pro"


def test_windows_without_machine_guid_generates_an_id(tmp_path):
    src = Sources(psutil=FakePsutil(), system="Windows", uname=_windows_uname(), registry=_registry({}),
                  root=tmp_path, state_dir=tmp_path / "Relevo")
    assert collector.host_info(src)["id"] == (tmp_path / "Relevo" / "host-id").read_text().strip()


def test_registry_value_is_none_off_windows():
    assert collector.registry_value(collector._REG_CPU, "ProcessorNameString") is None
