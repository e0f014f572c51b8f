"""Inventory collectors: real runs on this Linux machine, fakes for what it cannot give.

Fakes stand in only for inputs this machine lacks: a Windows registry and
service manager, systemd (this container has no systemd as PID 1), DMI
(no /sys/class/dmi here), an rpm or apk database, and OS behaviour such as a
hidden socket owner. Each fake test says which.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from agent import inventory
from agent.collector import Sources, inventory_collect

from .fake_psutil import Addr, Conn, FakePsutil, FakeService, IfStats, Partition, Usage
from .fake_winreg import FakeWinreg

SOFTWARE_FIELDS = ["name", "version", "vendor", "arch", "source", "install_date"]


def _no_commands(args, timeout):
    raise AssertionError(f"unexpected command {args}")


def _root(tmp_path: Path, files: dict[str, str]) -> Path:
    for relative, text in files.items():
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return tmp_path


# ------------------------------------------------------------------ software: dpkg

DPKG_STATUS = """\
Package: openssl
Status: install ok installed
Priority: optional
Section: utils
Maintainer: Debian OpenSSL Team <pkg-openssl-devel@alioth-lists.debian.net>
Architecture: amd64
Multi-Arch: foreign
Version: 3.0.11-1~deb12u2
Depends: libc6 (>= 2.34)
Description: Secure Sockets Layer toolkit
 This package contains the openssl binary.
 Package: not-a-package-this-is-a-continuation-line

Package: libssl3
Status: install ok installed
Maintainer: Debian OpenSSL Team <pkg-openssl-devel@alioth-lists.debian.net>
Architecture: amd64
Multi-Arch: same
Version: 3.0.11-1~deb12u2

Package: removed-but-config
Status: deinstall ok config-files
Architecture: all
Version: 1.0

Package: held-pkg
Status: hold ok installed
Maintainer: Someone
Architecture: all
Version: 2:1.2.3

Package: half-installed
Status: install reinstreq half-installed
Architecture: amd64
Version: 0.1

Package: café-ünïcode
Status: install ok installed
Maintainer: Ütf Maintainer <u@example.org>
Architecture: arm64
Version: 1.0
"""


def test_dpkg_status_is_parsed_directly(tmp_path):
    root = _root(tmp_path, {"var/lib/dpkg/status": DPKG_STATUS,
                            "var/lib/dpkg/info/openssl.list": "/usr/bin/openssl\n",
                            "var/lib/dpkg/info/libssl3:amd64.list": "/usr/lib/libssl.so.3\n"})
    info = root / "var/lib/dpkg/info"
    os.utime(info / "openssl.list", (1_700_000_000, 1_700_000_000))  # 2023-11-14 UTC
    os.utime(info / "libssl3:amd64.list", (1_600_000_000, 1_600_000_000))  # 2020-09-13 UTC

    found = inventory.software_info(Sources(system="Linux", root=root, run=_no_commands))

    assert [e["name"] for e in found] == ["café-ünïcode", "held-pkg", "libssl3", "openssl"]
    by_name = {e["name"]: e for e in found}
    assert list(by_name["openssl"]) == SOFTWARE_FIELDS
    assert by_name["openssl"] == {"name": "openssl", "version": "3.0.11-1~deb12u2",
                                  "vendor": "Debian OpenSSL Team", "arch": "amd64", "source": "deb",
                                  "install_date": "2023-11-14"}
    assert by_name["libssl3"]["install_date"] == "2020-09-13"  # Multi-Arch: same -> libssl3:amd64.list
    assert by_name["held-pkg"]["version"] == "2:1.2.3"  # held packages are installed; epochs are kept
    assert by_name["held-pkg"]["install_date"] is None  # no .list file: unknown, not an error
    assert by_name["café-ünïcode"]["vendor"] == "Ütf Maintainer"


def test_no_package_database_is_null_not_empty(tmp_path):
    assert inventory.software_info(Sources(system="Linux", root=tmp_path, run=_no_commands)) is None


def test_real_dpkg_database_of_this_machine_matches_dpkg_query():
    if shutil.which("dpkg-query") is None or not Path("/var/lib/dpkg/status").is_file():
        pytest.skip("not a Debian-family machine")
    out = subprocess.run(["dpkg-query", "-W", "-f", "${db:Status-Status}\t${Package}\t${Version}\t${Architecture}\n"],
                         capture_output=True, text=True, check=True).stdout
    expected = {(p, v, a) for s, p, v, a in (line.split("\t") for line in out.splitlines()) if s == "installed"}

    found = [e for e in inventory.software_info(Sources()) if e["source"] == "deb"]

    assert {(e["name"], e["version"], e["arch"]) for e in found} == expected
    assert all(e["install_date"] for e in found)


# ------------------------------------------------------------------ software: rpm, apk


RPM_OUT = ("bash\t5.1.8-9.el9\tx86_64\tRocky Enterprise Software Foundation\t1700000000\n"
           "gpg-pubkey\t8483c65d-5ccc5b19\t(none)\t(none)\t1600000000\n"
           "openssl\t1:3.0.7-27.el9\tx86_64\tRocky Enterprise Software Foundation\t1700000000\n"
           "a truncated line\n")


def test_rpm_is_asked_once_with_a_timeout_when_its_database_exists(tmp_path):
    root = _root(tmp_path, {"var/lib/rpm/rpmdb.sqlite": "x"})
    calls = []

    def run(args, timeout):
        calls.append((args, timeout))
        return RPM_OUT

    found = inventory.software_info(Sources(system="Linux", root=root, run=run))

    assert len(calls) == 1 and calls[0][0][:2] == ["rpm", "-qa"] and 0 < calls[0][1] <= 30
    assert [(e["name"], e["version"], e["arch"], e["vendor"]) for e in found] == [
        ("bash", "5.1.8-9.el9", "x86_64", "Rocky Enterprise Software Foundation"),
        ("gpg-pubkey", "8483c65d-5ccc5b19", None, None),
        ("openssl", "1:3.0.7-27.el9", "x86_64", "Rocky Enterprise Software Foundation"),
    ]
    assert {e["source"] for e in found} == {"rpm"} and found[0]["install_date"] == "2023-11-14"


def test_rpm_that_fails_or_times_out_is_null(tmp_path):
    root = _root(tmp_path, {"var/lib/rpm/Packages": "x"})
    assert inventory.software_info(Sources(system="Linux", root=root, run=lambda args, timeout: None)) is None


def test_run_command_kills_a_hung_command():
    assert inventory.run_command([sys.executable, "-c", "import time; time.sleep(30)"], 0.5) is None
    assert inventory.run_command(["/nonexistent/rpm"], 1) is None
    assert inventory.run_command([sys.executable, "-c", "print('ok')"], 10) == "ok\n"


def test_empty_rpm_database_on_debian_is_not_queried(tmp_path):
    (tmp_path / "var/lib/rpm").mkdir(parents=True)  # what Debian's rpm package leaves
    assert inventory.software_info(Sources(system="Linux", root=tmp_path, run=_no_commands)) is None


def test_apk_database(tmp_path):
    root = _root(tmp_path, {"lib/apk/db/installed": (
        "C:Q1abc=\nP:musl\nV:1.2.4-r2\nA:x86_64\nm:Timo Teräs <timo.teras@iki.fi>\nt:1700000000\n\n"
        "C:Q1def=\nP:busybox\nV:1.36.1-r5\nA:x86_64\n\nV:no-name-entry\n")})

    found = inventory.software_info(Sources(system="Linux", root=root, run=_no_commands))

    assert found == [
        {"name": "busybox", "version": "1.36.1-r5", "vendor": None, "arch": "x86_64", "source": "apk",
         "install_date": None},
        {"name": "musl", "version": "1.2.4-r2", "vendor": "Timo Teräs", "arch": "x86_64", "source": "apk",
         "install_date": None},
    ]


# ------------------------------------------------------------------ software: Windows registry (fake winreg)

UNINSTALL = r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Uninstall"
UNINSTALL32 = r"HKLM\SOFTWARE\WOW6432Node\Microsoft\Windows\CurrentVersion\Uninstall"
USER = r"HKU\S-1-5-21-1-2-3-1001\Software\Microsoft\Windows\CurrentVersion\Uninstall"


def test_windows_uninstall_keys_in_both_views_and_per_user():
    winreg = FakeWinreg({
        UNINSTALL + r"\{7-Zip}": {"DisplayName": "7-Zip 23.01 (x64)", "DisplayVersion": "23.01",
                                   "Publisher": "Igor Pavlov", "InstallDate": "20240115"},
        UNINSTALL + r"\KB5034441": {"DisplayName": "Security Update", "SystemComponent": 1},
        UNINSTALL + r"\AsText": {"DisplayName": "Part of a suite", "SystemComponent": "1"},
        UNINSTALL + r"\NoName": {"DisplayVersion": "1.0"},
        UNINSTALL + r"\BadDate": {"DisplayName": "Bad Date App", "InstallDate": "15/01/2024"},
        UNINSTALL + r"\Locked": {"DisplayName": "never read"},
        UNINSTALL32 + r"\Notepad++": {"DisplayName": "Notepad++ (32-bit x86)", "DisplayVersion": "8.6",
                                      "Publisher": "Notepad++ Team", "InstallDate": "20231301"},
        USER + r"\Zoom": {"DisplayName": "Zoom", "DisplayVersion": "5.17.0", "Publisher": "Zoom Video"},
        r"HKU\S-1-5-21-1-2-3-1001_Classes\Software\Microsoft\Windows\CurrentVersion\Uninstall\X":
            {"DisplayName": "not a program"},
        r"HKU\S-1-5-21-9-9-9-1002\Software\Microsoft\Windows\CurrentVersion\Uninstall\Y":
            {"DisplayName": "another user's, unreadable"},
    }, denied={UNINSTALL + r"\Locked", r"HKU\S-1-5-21-9-9-9-1002\Software\Microsoft\Windows\CurrentVersion\Uninstall"})
    src = Sources(psutil=FakePsutil(), system="Windows", winreg=winreg, run=_no_commands)

    found = inventory.software_info(src)

    assert found == [
        {"name": "7-Zip 23.01 (x64)", "version": "23.01", "vendor": "Igor Pavlov", "arch": "x64",
         "source": "windows", "install_date": "2024-01-15"},
        {"name": "Bad Date App", "version": None, "vendor": None, "arch": "x64", "source": "windows",
         "install_date": None},
        {"name": "Notepad++ (32-bit x86)", "version": "8.6", "vendor": "Notepad++ Team", "arch": "x86",
         "source": "windows", "install_date": None},
        {"name": "Zoom", "version": "5.17.0", "vendor": "Zoom Video", "arch": None, "source": "windows",
         "install_date": None},
    ]


def test_windows_without_winreg_is_null():
    assert inventory.software_info(Sources(psutil=FakePsutil(), system="Windows", winreg=None)) is None


def test_software_digest_ignores_order_and_sees_every_field():
    a = {"name": "a", "version": "1", "vendor": None, "arch": "amd64", "source": "deb", "install_date": None}
    b = {"name": "b", "version": "2", "vendor": "V", "arch": None, "source": "deb", "install_date": "2024-01-01"}
    digest = inventory.software_digest([a, b])
    assert digest == inventory.software_digest([b, a])
    assert len(digest) == 64
    for name in SOFTWARE_FIELDS:
        changed = {**a, name: "x" if a[name] != "x" else "y"}
        assert inventory.software_digest([changed, b]) != digest, name


# ------------------------------------------------------------------ listening sockets


@pytest.fixture
def listeners():
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.bind(("127.0.0.1", 0))
    tcp.listen()
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    yield tcp.getsockname()[1], udp.getsockname()[1]
    tcp.close()
    udp.close()


def test_real_listening_sockets_of_this_process(listeners):
    tcp_port, udp_port = listeners

    found = inventory.listening_info(Sources())

    me = psutil.Process().name()
    assert {"protocol": "tcp", "address": "127.0.0.1", "port": tcp_port, "pid": os.getpid(), "process": me} in found
    assert {"protocol": "udp", "address": "127.0.0.1", "port": udp_port, "pid": os.getpid(), "process": me} in found
    assert all(s["protocol"] in ("tcp", "udp") for s in found)


def test_listening_hidden_owner_and_denied_name_are_null():
    listen = psutil.CONN_LISTEN
    conns = [
        Conn(3, socket.AF_INET, socket.SOCK_STREAM, ("0.0.0.0", 22), (), listen, None),  # another user's
        Conn(4, socket.AF_INET6, socket.SOCK_STREAM, ("fe80::1%eth0", 3389), (), listen, 4),
        Conn(5, socket.AF_INET, socket.SOCK_STREAM, ("10.0.0.1", 5000), ("10.0.0.2", 40000), "ESTABLISHED", 4),
        Conn(6, socket.AF_INET, socket.SOCK_DGRAM, ("0.0.0.0", 53), (), psutil.CONN_NONE, 77),
        Conn(7, socket.AF_INET, socket.SOCK_DGRAM, ("10.0.0.1", 41000), ("8.8.8.8", 53), psutil.CONN_NONE, 77),
        Conn(8, socket.AF_INET, socket.SOCK_STREAM, (), (), listen, 9),  # no local address: skipped
    ]
    from .fake_psutil import FakeProcess
    fake = FakePsutil(processes=[FakeProcess(4, name=psutil.AccessDenied(4)), FakeProcess(77, name="named")],
                      net_connections=conns)

    found = inventory.listening_info(Sources(psutil=fake))

    assert found == [
        {"protocol": "tcp", "address": "0.0.0.0", "port": 22, "pid": None, "process": None},
        {"protocol": "tcp", "address": "fe80::1", "port": 3389, "pid": 4, "process": None},
        {"protocol": "udp", "address": "0.0.0.0", "port": 53, "pid": 77, "process": "named"},
    ]


def test_listening_denied_entirely_is_null():
    fake = FakePsutil(net_connections=psutil.AccessDenied())
    assert inventory.listening_info(Sources(psutil=fake)) is None


# ------------------------------------------------------------------ disks


def test_real_disks_include_the_root_file_system():
    found = inventory.disks_info(Sources())
    root = next(d for d in found if d["mount_point"] == "/")
    usage = psutil.disk_usage("/")
    assert root["total_bytes"] == usage.total and 0 <= root["free_bytes"] <= usage.total
    assert root["fs_type"] and root["device"]


def test_disk_without_usage_keeps_its_line():
    def usage(path):
        if path == "D:\\":
            raise OSError(21, "The device is not ready")  # an empty DVD drive on Windows
        return Usage(100, 40, 60, 40.0)

    fake = FakePsutil(disk_partitions=[Partition("C:\\", "C:\\", "NTFS", "rw,fixed"),
                                       Partition("D:\\", "D:\\", "", "cdrom"),
                                       Partition("C:\\", "C:\\", "NTFS", "rw,fixed")],
                      disk_usage=usage)

    assert inventory.disks_info(Sources(psutil=fake)) == [
        {"mount_point": "C:\\", "device": "C:\\", "fs_type": "NTFS", "total_bytes": 100, "free_bytes": 60},
        {"mount_point": "D:\\", "device": "D:\\", "fs_type": None, "total_bytes": None, "free_bytes": None},
    ]


# ------------------------------------------------------------------ interfaces


def test_real_interfaces_have_loopback_with_its_prefix():
    found = {i["name"]: i for i in inventory.interfaces_info(Sources())}
    lo = found["lo"]
    assert {"address": "127.0.0.1", "prefix_length": 8} in lo["addresses"]
    assert lo["up"] is True and lo["mtu"] and lo["mac"] is None  # 00:00:00:00:00:00 is no MAC
    for interface in found.values():
        assert interface["mac"] is None or inventory.mac_normalise(interface["mac"]) == interface["mac"]


@pytest.mark.parametrize("given, expected", [
    ("02-FC-00-00-00-01", "02:fc:00:00:00:01"),  # Windows (and Wine)
    ("02:fc:00:00:00:01", "02:fc:00:00:00:01"),  # Linux
    ("02:FC:00:00:00:01", "02:fc:00:00:00:01"),
    ("00:00:00:00:00:00", None),
    ("", None),
    (None, None),
    ("not a mac", None),
    ("02:fc:0", None),
])
def test_mac_has_one_format(given, expected):
    assert inventory.mac_normalise(given) == expected


def test_windows_interfaces_through_fake_psutil():
    fake = FakePsutil(
        net_if_addrs={"Ethernet": [Addr(psutil.AF_LINK, "02-FC-00-00-00-01", None, None, None),
                                   Addr(socket.AF_INET, "10.0.1.15", "255.255.255.0", None, None),
                                   Addr(socket.AF_INET6, "fe80::1%12", "ffff:ffff:ffff:ffff::", None, None),
                                   Addr(socket.AF_INET, "garbage", "255.0.255.0", None, None)]},
        net_if_stats={"Ethernet": IfStats(True, 2, 1000, 1500, ""), "Down": IfStats(False, 0, 0, 0, "")})

    assert inventory.interfaces_info(Sources(psutil=fake)) == [
        {"name": "Down", "mac": None, "addresses": [], "up": False, "speed_mbps": None, "mtu": None},
        {"name": "Ethernet", "mac": "02:fc:00:00:00:01",
         "addresses": [{"address": "10.0.1.15", "prefix_length": 24}, {"address": "fe80::1", "prefix_length": 64}],
         "up": True, "speed_mbps": 1000, "mtu": 1500},
    ]


def test_interfaces_without_stats_keep_addresses():
    fake = FakePsutil(net_if_stats=OSError("no stats"))
    [eth, lo] = inventory.interfaces_info(Sources(psutil=fake))
    assert eth["name"] == "Ethernet" and eth["up"] is None and eth["addresses"][0]["address"] == "10.0.1.15"


# ------------------------------------------------------------------ services: systemd (fake: no systemd here)

LIST_UNITS = """\
cron.service                 loaded    active   running Regular background program processing daemon
● failed-thing.service       loaded    failed   failed  A unit that failed
ghost.service                not-found inactive dead    ghost.service
ssh.service                  loaded    active   running OpenBSD Secure Shell server
short
"""
LIST_UNIT_FILES = """\
cron.service                 enabled         enabled
failed-thing.service         disabled        enabled
getty@.service               enabled         enabled
ssh.service                  enabled         enabled
"""


def test_systemd_services_take_two_commands_whatever_the_unit_count(tmp_path):
    (tmp_path / "run/systemd/system").mkdir(parents=True)
    calls = []

    def run(args, timeout):
        calls.append(args)
        assert timeout <= 30
        many = "".join(f"unit{i}.service loaded {'active running' if i % 2 else 'inactive dead'} Unit {i}\n"
                       for i in range(500))
        files = "".join(f"unit{i}.service {'enabled' if i % 4 == 0 else 'static'} enabled\n" for i in range(500))
        return LIST_UNITS + many if args[1] == "list-units" else LIST_UNIT_FILES + files

    found = inventory.services_info(Sources(system="Linux", root=tmp_path, run=run))

    assert len(calls) == 2
    by_name = {s["name"]: s for s in found}
    # Only systemd's fields are sent: the Windows ones would be nulls in every entry.
    assert by_name["cron.service"] == {"name": "cron.service", "active_state": "active", "sub_state": "running",
                                       "enabled": "enabled"}
    assert by_name["failed-thing.service"]["active_state"] == "failed"
    assert by_name["failed-thing.service"]["enabled"] == "disabled"
    # Active units, and inactive ones that are enabled, are kept; ghost (not-found),
    # inactive static units and the unparseable line are left out.
    assert by_name["unit1.service"]["enabled"] == "static" and by_name["unit4.service"]["active_state"] == "inactive"
    assert "enabled" not in by_name["unit3.service"] or by_name["unit3.service"]["enabled"] == "static"
    assert "unit2.service" not in by_name and "ghost.service" not in by_name
    assert len(found) == 3 + 250 + 125


def test_no_systemd_or_a_hung_systemctl_is_null(tmp_path):
    assert inventory.services_info(Sources(system="Linux", root=tmp_path, run=_no_commands)) is None
    (tmp_path / "run/systemd/system").mkdir(parents=True)
    assert inventory.services_info(Sources(system="Linux", root=tmp_path, run=lambda a, t: None)) is None


def test_real_services_on_this_machine_match_its_init():
    found = inventory.services_info(Sources())
    if Path("/run/systemd/system").is_dir():
        assert found and all(s["active_state"] for s in found)
    else:
        assert found is None  # this container: PID 1 is not systemd


# ------------------------------------------------------------------ services: Windows (fake psutil)


def test_windows_services_tolerate_a_denied_field_and_a_vanished_service():
    fake = FakePsutil(win_service_iter=[
        FakeService(name="wuauserv", display_name="Windows Update", status="stopped", start_type="automatic",
                    username="LocalSystem", binpath=r"C:\Windows\system32\svchost.exe -k netsvcs"),
        FakeService(name="Fax", display_name="Fax", status="stopped", start_type="manual",
                    username="NT AUTHORITY\\NetworkService", binpath=r"C:\Windows\system32\fxssvc.exe"),
        FakeService(name="Spooler", display_name="Print Spooler", status="running", start_type="manual",
                    username="LocalSystem", binpath=r"C:\Windows\System32\spoolsv.exe"),
        FakeService(name="Locked", display_name="Locked one", status="running", start_type="automatic",
                    username=psutil.AccessDenied(), binpath=psutil.AccessDenied()),
        FakeService(name=psutil.NoSuchProcess(0)),
    ])

    found = inventory.services_info(Sources(psutil=fake, system="Windows", run=_no_commands))

    # Unreadable fields (and systemd's) are left out, which means null; a stopped
    # manual service (Fax) is left out like an inactive, disabled systemd unit.
    assert found == [
        {"name": "Locked", "display_name": "Locked one", "status": "running", "start_type": "automatic"},
        {"name": "Spooler", "display_name": "Print Spooler", "status": "running", "start_type": "manual",
         "account": "LocalSystem", "binary_path": r"C:\Windows\System32\spoolsv.exe"},
        {"name": "wuauserv", "display_name": "Windows Update", "status": "stopped", "start_type": "automatic",
         "account": "LocalSystem", "binary_path": r"C:\Windows\system32\svchost.exe -k netsvcs"},
    ]


# ------------------------------------------------------------------ hardware


def test_linux_dmi_with_placeholders_and_root_only_fields(tmp_path):
    root = _root(tmp_path, {
        "sys/class/dmi/id/sys_vendor": "QEMU\n",
        "sys/class/dmi/id/product_name": "Standard PC (Q35 + ICH9, 2009)\n",
        "sys/class/dmi/id/bios_vendor": "SeaBIOS\n",
        "sys/class/dmi/id/bios_version": "To be filled by O.E.M.\n",
        "sys/class/dmi/id/bios_date": "04/01/2014\n",
        "proc/cpuinfo": "processor\t: 0\nflags\t\t: fpu vme hypervisor sse2\n",
    })
    # As root every file is readable, so "needs root" is played by an unreadable entry.
    (root / "sys/class/dmi/id/product_serial").mkdir()
    (root / "sys/class/dmi/id/product_uuid").mkdir()

    assert inventory.hardware_info(Sources(system="Linux", root=root)) == {
        "vendor": "QEMU", "model": "Standard PC (Q35 + ICH9, 2009)", "serial": None, "uuid": None,
        "bios_vendor": "SeaBIOS", "bios_version": None, "bios_date": "2014-04-01",
        "virtual": True, "hypervisor": "kvm"}


def test_linux_physical_machine(tmp_path):
    root = _root(tmp_path, {
        "sys/class/dmi/id/sys_vendor": "Dell Inc.\n", "sys/class/dmi/id/product_name": "PowerEdge R650\n",
        "sys/class/dmi/id/product_serial": "7XK2J93\n",
        "sys/class/dmi/id/product_uuid": "4C4C4544-0058-4B10-8032-B7C04F4A3933\n",
        "proc/cpuinfo": "flags\t\t: fpu vme sse2\n"})
    found = inventory.hardware_info(Sources(system="Linux", root=root))
    assert found["serial"] == "7XK2J93" and found["uuid"] == "4c4c4544-0058-4b10-8032-b7c04f4a3933"
    assert found["virtual"] is False and found["hypervisor"] is None


def test_real_hardware_of_this_machine():
    found = inventory.hardware_info(Sources())
    dmi = Path("/sys/class/dmi/id")
    if not dmi.is_dir():
        assert found["vendor"] is None and found["serial"] is None  # no DMI in this container
    flags = [line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")]
    if flags:
        assert found["virtual"] is ("hypervisor" in flags[0].split() or found["hypervisor"] is not None)


def test_windows_bios_key_with_empty_strings_is_null():
    # What Wine's BIOS key holds: every value an empty string.
    empty = {name: "" for name in ("SystemManufacturer", "SystemProductName", "BIOSVendor", "BIOSVersion",
                                   "BIOSReleaseDate")}
    src = Sources(psutil=FakePsutil(), system="Windows", registry=lambda key, name: empty.get(name),
                  wmi=lambda: {"serial": None, "uuid": None})
    assert inventory.hardware_info(src) == {
        "vendor": None, "model": None, "serial": None, "uuid": None, "bios_vendor": None,
        "bios_version": None, "bios_date": None, "virtual": None, "hypervisor": None}


def test_windows_hyper_v_guest():
    values = {"SystemManufacturer": "Microsoft Corporation", "SystemProductName": "Virtual Machine",
              "BIOSVendor": "Microsoft Corporation", "BIOSVersion": "Hyper-V UEFI Release v4.1",
              "BIOSReleaseDate": "04/06/2022"}
    src = Sources(psutil=FakePsutil(), system="Windows", registry=lambda key, name: values.get(name),
                  wmi=lambda: {"serial": "0000-0016-5091-7745-0417-6290-91", "uuid": "A1B2C3D4-0000-0000-0000-1"})
    found = inventory.hardware_info(src)
    assert found["virtual"] is True and found["hypervisor"] == "hyper-v"
    assert found["bios_date"] == "2022-04-06" and found["serial"].startswith("0000-0016")


# ------------------------------------------------------------------ assembly


def test_one_failing_area_costs_only_that_area(tmp_path, caplog):
    class Broken(FakePsutil):
        def disk_partitions(self, all=False):  # noqa: A002
            raise RuntimeError("a bug nobody foresaw")

    src = Sources(psutil=Broken(net_connections=[], net_if_stats={}), system="Linux", root=tmp_path,
                  run=_no_commands, state_dir=tmp_path)

    found = inventory_collect(src)

    assert found["disks"] is None and "collecting disks failed" in caplog.text
    assert found["listening"] == [] and found["interfaces"]
    assert found["software"] is None and found["software_digest"] is None and found["software_count"] is None


def test_real_inventory_of_this_machine_is_accepted_by_the_server_schema(tmp_path):
    import datetime as dt
    import json

    from agent.collector import snapshot_collect
    from reports import payload

    snapshot = snapshot_collect(src=Sources(state_dir=tmp_path), sample_seconds=0.05)
    decoded = payload.decode(json.dumps(snapshot).encode(), now=dt.datetime.now(dt.timezone.utc))

    assert decoded.software_digest == snapshot["software_digest"] == payload.software_digest(decoded.software)
    assert decoded.software_count == len(snapshot["software"]) > 0
    assert snapshot["interfaces"] and snapshot["disks"] and snapshot["hardware"] is not None


def test_inventory_sources_are_the_real_machine_by_default():
    src = Sources()
    assert src.run is inventory.run_command and src.winreg is None  # no winreg module on Linux
    assert src.root == Path("/") and src.wmi is inventory.wmi_bios
