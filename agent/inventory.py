"""Inventory breadth: installed software, listening sockets, disks, interfaces, services, hardware.

One function per area, each reading only through a :class:`~agent.collector.Sources`
(psutil, the root folder, ``winreg``, external commands), so every platform
branch runs on Linux with fakes. Like the core collectors they tolerate gaps:
a field that cannot be read is ``None``, one bad entry is skipped (logged at
debug) and never costs the list, and an area whose whole source is missing is
``None`` rather than an empty list, so "none installed" and "could not tell"
stay distinct. Field meanings and bounds: ``docs/payload.md``; the privilege
each area needs: ``docs/agent.md``.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import json
import logging
import os
import re
import socket
import subprocess
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence

from .limits import (
    MAX_ADDRESSES,
    MAX_DISKS,
    MAX_INTERFACES,
    MAX_NAME,
    MAX_SERVICES,
    MAX_SHORT,
    MAX_SOCKETS,
    MAX_SOFTWARE,
    MAX_STRING,
    MAX_WORD,
)
from .sysfiles import read_text

if TYPE_CHECKING:
    from .collector import Sources

log = logging.getLogger(__name__)

COMMAND_TIMEOUT = 10.0

_UNINSTALL = r"SOFTWARE\Microsoft\Windows\CurrentVersion\Uninstall"
_USER_UNINSTALL = r"Software\Microsoft\Windows\CurrentVersion\Uninstall"
_REG_BIOS = r"HARDWARE\DESCRIPTION\System\BIOS"
_EMAIL = re.compile(r"\s*<[^>]*>\s*$")
_HEX = re.compile(r"[0-9a-fA-F]+")


def _text(value: Any, limit: int = MAX_SHORT) -> str | None:
    """A schema-safe string (no NUL, bounded), or ``None`` for empty or missing values."""
    if value is None:
        return None
    text = str(value).replace("\x00", "").strip()
    return text[:limit] or None


def _int(value: Any) -> int | None:
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if number >= 0 else None


def run_command(args: Sequence[str], timeout: float) -> str | None:
    """Run one command with a timeout; its stdout, or ``None`` when it is missing, fails or hangs."""
    try:
        done = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout,
                              encoding="utf-8", errors="replace", stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError) as exc:
        log.debug("%s failed: %s", args[0], exc)
        return None
    if done.returncode != 0:
        log.debug("%s exited %d: %s", args[0], done.returncode, done.stderr[:200])
        return None
    return done.stdout


# ---------------------------------------------------------------- software


def software_digest(entries: list[dict[str, Any]]) -> str:
    """The sha256 of a software list in its canonical form (docs/payload.md, "software_digest").

    Each entry becomes the JSON array ``[name, version, vendor, arch, source,
    install_date]``; the arrays are sorted by their own JSON text and joined as
    one compact JSON array (UTF-8, no ASCII escaping). The server computes the
    same from what it received (``reports.payload.software_digest``), so the
    order in which the agent lists them does not matter.
    """
    rows = sorted(json.dumps([e["name"], e["version"], e["vendor"], e["arch"], e["source"], e["install_date"]],
                             ensure_ascii=False, separators=(",", ":")) for e in entries)
    return hashlib.sha256(("[" + ",".join(rows) + "]").encode("utf-8")).hexdigest()


def _entry(name: Any, version: Any, vendor: Any, arch: Any, source: str, installed: str | None) -> dict[str, Any] | None:
    name = _text(name, MAX_NAME)
    if name is None:
        return None
    return {"name": name, "version": _text(version), "vendor": _text(vendor, MAX_NAME),
            "arch": _text(arch, MAX_WORD), "source": source, "install_date": installed}


def _vendor_from_maintainer(value: str | None) -> str | None:
    # "Debian OpenSSL Team <pkg-openssl-devel@...>": the name says who; the address adds nothing.
    return _EMAIL.sub("", value) if value else None


def _stanzas(text: str) -> Iterator[dict[str, str]]:
    """Blocks of ``Key: value`` lines separated by blank lines; continuation lines are skipped."""
    fields: dict[str, str] = {}
    for line in text.split("\n"):
        if not line:
            if fields:
                yield fields
                fields = {}
            continue
        if line[0] in " \t":
            continue  # a multi-line field's continuation (Description, Conffiles)
        key, found, value = line.partition(":")
        if found:
            fields[key] = value.strip()
    if fields:
        yield fields


_DPKG_FIELDS = frozenset({"Package", "Status", "Version", "Architecture", "Maintainer", "Multi-Arch"})


@functools.lru_cache(maxsize=4096)
def _utc_day(day_number: int) -> str | None:
    try:
        return (date(1970, 1, 1) + timedelta(days=day_number)).isoformat()
    except OverflowError:
        return None


def _mtime_date(path: str) -> str | None:
    # Packages are installed in batches on a few days: the date text is cached per day.
    try:
        return _utc_day(int(os.stat(path).st_mtime // 86400))
    except (OSError, ValueError):
        return None


def _dpkg(root: Path) -> list[dict[str, Any]] | None:
    status = root / "var" / "lib" / "dpkg" / "status"
    info = str(root / "var" / "lib" / "dpkg" / "info") + os.sep
    found = []
    # dpkg writes "Package" first in every stanza, so a new one starts there.
    # Lines are streamed (the file is ~2 MB for 2,000 packages; read whole and
    # split it held 60,000 strings at once) and only lines that can start a
    # wanted field are split.
    stanzas: list[dict[str, str]] = []
    try:
        with open(status, encoding="utf-8", errors="replace") as lines:
            for line in lines:
                if line[:1] not in "PSVAM":
                    continue
                key, _sep, value = line.partition(":")
                if key not in _DPKG_FIELDS:
                    continue
                if key == "Package":
                    stanzas.append({})
                if stanzas:
                    stanzas[-1][key] = value.strip()
    except OSError as exc:
        log.debug("no dpkg database: %s", exc)
        return None
    for fields in stanzas:
        # "want ok status": held or to-be-removed packages are still installed.
        words = fields.get("Status", "").split()
        if len(words) != 3 or words[1] != "ok" or words[2] != "installed":
            continue
        name, arch = fields.get("Package"), fields.get("Architecture")
        if not name:
            continue
        # The .list file is rewritten when dpkg unpacks the package: the install
        # or last upgrade day. "Multi-Arch: same" packages name it pkg:arch.list.
        list_name = f"{name}:{arch}" if fields.get("Multi-Arch") == "same" else name
        installed = _mtime_date(f"{info}{list_name}.list")
        entry = _entry(name, fields.get("Version"), _vendor_from_maintainer(fields.get("Maintainer")),
                       arch, "deb", installed)
        if entry is not None:
            found.append(entry)
    return found


_RPM_FORMAT = "%{NAME}\t%|EPOCH?{%{EPOCH}:}:{}|%{VERSION}-%{RELEASE}\t%{ARCH}\t%{VENDOR}\t%{INSTALLTIME}\n"


def _rpm(src: Sources) -> list[dict[str, Any]] | None:
    # Debian can carry the rpm tool with an empty database: only ask when a database exists.
    if not any((src.root / d).is_dir() and any((src.root / d).iterdir())
               for d in ("var/lib/rpm", "usr/lib/sysimage/rpm")):
        return None
    out = src.run(["rpm", "-qa", "--queryformat", _RPM_FORMAT], COMMAND_TIMEOUT)
    if out is None:
        return None
    found = []
    for line in out.splitlines():
        parts = line.split("\t")
        if len(parts) != 5:
            log.debug("rpm line skipped: %r", line[:200])
            continue
        name, version, arch, vendor, installed = (None if p == "(none)" else p for p in parts)
        when = None
        if installed and installed.isdigit():
            when = datetime.fromtimestamp(int(installed), tz=timezone.utc).date().isoformat()
        entry = _entry(name, version, vendor, arch, "rpm", when)
        if entry is not None:
            found.append(entry)
    return found


def _apk(root: Path) -> list[dict[str, Any]] | None:
    try:
        text = (root / "lib" / "apk" / "db" / "installed").read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        log.debug("no apk database: %s", exc)
        return None
    found = []
    for fields in _stanzas(text):
        # apk keeps no install time (t: is the build time), so install_date stays null.
        entry = _entry(fields.get("P"), fields.get("V"), _vendor_from_maintainer(fields.get("m")),
                       fields.get("A"), "apk", None)
        if entry is not None:
            found.append(entry)
    return found


def _install_date(value: Any) -> str | None:
    # The Uninstall key's InstallDate is "YYYYMMDD" by convention; installers write anything.
    text = str(value).strip() if value is not None else ""
    if len(text) == 8 and text.isdigit():
        try:
            return date(int(text[:4]), int(text[4:6]), int(text[6:])).isoformat()
        except ValueError:
            return None
    return None


def _reg_values(winreg: Any, handle: Any, names: Sequence[str]) -> dict[str, Any]:
    values = {}
    for name in names:
        try:
            values[name], _kind = winreg.QueryValueEx(handle, name)
        except OSError:
            values[name] = None
    return values


def _reg_subkeys(winreg: Any, handle: Any) -> Iterator[str]:
    index = 0
    while True:
        try:
            yield winreg.EnumKey(handle, index)
        except OSError:
            return  # ERROR_NO_MORE_ITEMS
        index += 1


def _uninstall_key(winreg: Any, root: Any, path: str, access: int, arch: str | None) -> list[dict[str, Any]]:
    """The programs under one Uninstall key, as Fleet's ``programs`` table reads them."""
    try:
        parent = winreg.OpenKey(root, path, 0, access)
    except OSError as exc:
        log.debug("uninstall key %s unreadable: %s", path, exc)
        return []
    found = []
    with parent:
        for sub in list(_reg_subkeys(winreg, parent)):
            try:
                with winreg.OpenKey(parent, sub, 0, access) as handle:
                    values = _reg_values(winreg, handle, ("DisplayName", "DisplayVersion", "Publisher",
                                                          "InstallDate", "SystemComponent"))
            except OSError as exc:
                log.debug("uninstall entry %s unreadable: %s", sub, exc)
                continue
            # Updates and parts of a larger product hide themselves from "Programs and Features".
            if str(values["SystemComponent"]) == "1" or not _text(values["DisplayName"]):
                continue
            entry = _entry(values["DisplayName"], values["DisplayVersion"], values["Publisher"], arch,
                           "windows", _install_date(values["InstallDate"]))
            if entry is not None:
                found.append(entry)
    return found


def _windows_software(winreg: Any) -> list[dict[str, Any]] | None:
    if winreg is None:
        return None
    read = winreg.KEY_READ
    found = _uninstall_key(winreg, winreg.HKEY_LOCAL_MACHINE, _UNINSTALL, read | winreg.KEY_WOW64_64KEY, "x64")
    found += _uninstall_key(winreg, winreg.HKEY_LOCAL_MACHINE, _UNINSTALL, read | winreg.KEY_WOW64_32KEY, "x86")
    try:
        users = winreg.OpenKey(winreg.HKEY_USERS, "", 0, read)
    except OSError as exc:
        log.debug("HKEY_USERS unreadable: %s", exc)
    else:
        with users:
            # One hive per loaded profile; "<sid>_Classes" hives hold file associations only.
            for sid in list(_reg_subkeys(winreg, users)):
                if not sid.lower().endswith("_classes"):
                    found += _uninstall_key(winreg, users, sid + "\\" + _USER_UNINSTALL, read, None)
    return found


def software_info(src: Sources) -> list[dict[str, Any]] | None:
    """Installed packages or programs, sorted and without duplicates; ``None`` when no database was found.

    Linux reads every package database present (dpkg, rpm, apk); Windows the
    Uninstall keys in the 64- and 32-bit views of HKLM and each loaded user's
    hive. A 32-bit Windows shows the same key in both views: duplicates are dropped.
    """
    if src.system == "Windows":
        lists = [_windows_software(src.winreg)]
    else:
        lists = [_dpkg(src.root), _rpm(src), _apk(src.root)]
    if all(found is None for found in lists):
        return None
    seen: dict[tuple, dict[str, Any]] = {}
    for found in lists:
        for entry in found or ():
            seen.setdefault(tuple(entry.values()), entry)
    entries = sorted(seen.values(), key=lambda e: (e["name"].lower(), e["version"] or "", e["arch"] or ""))
    return entries[:MAX_SOFTWARE]


# ---------------------------------------------------------------- listening sockets


def listening_info(src: Sources) -> list[dict[str, Any]] | None:
    """Listening TCP and bound, unconnected UDP sockets with their process; ``None`` if unreadable."""
    ps = src.psutil
    try:
        connections = ps.net_connections("inet")
    except (ps.Error, OSError) as exc:
        log.debug("net_connections unavailable: %s", exc)
        return None
    names: dict[int, str | None] = {}
    found: dict[tuple, dict[str, Any]] = {}
    for conn in connections:
        try:
            if conn.type == socket.SOCK_STREAM:
                if conn.status != ps.CONN_LISTEN:
                    continue
                protocol = "tcp"
            elif conn.type == socket.SOCK_DGRAM:
                if conn.raddr:
                    continue  # a connected UDP socket is a client, not a service
                protocol = "udp"
            else:
                continue
            address, port = conn.laddr[0], conn.laddr[1]
        except (AttributeError, IndexError, TypeError) as exc:
            log.debug("socket entry skipped: %s", exc)
            continue
        pid = conn.pid or None  # 0 or None: the OS hid another user's socket owner
        if pid is not None and pid not in names:
            try:
                names[pid] = _text(ps.Process(pid).name())
            except (ps.Error, OSError) as exc:
                log.debug("pid %s name unreadable: %s", pid, exc)
                names[pid] = None
        address = _text(str(address).split("%", 1)[0], MAX_WORD)
        key = (protocol, address, port, pid)
        found.setdefault(key, {"protocol": protocol, "address": address, "port": _int(port), "pid": pid,
                               "process": names.get(pid) if pid else None})
    return sorted(found.values(), key=lambda s: (s["protocol"], s["port"] or 0, s["address"] or ""))[:MAX_SOCKETS]


# ---------------------------------------------------------------- disks


def disks_info(src: Sources) -> list[dict[str, Any]] | None:
    """Mounted file systems backed by a device (psutil's ``all=False``) with their size and free space."""
    ps = src.psutil
    try:
        partitions = ps.disk_partitions(all=False)
    except (ps.Error, OSError) as exc:
        log.debug("disk_partitions unavailable: %s", exc)
        return None
    found, seen = [], set()
    for part in partitions:
        mount = _text(getattr(part, "mountpoint", None), MAX_NAME)
        if mount is None or mount in seen:
            continue  # bind mounts repeat a mount point's device; one line per mount point
        seen.add(mount)
        total = free = None
        try:
            usage = ps.disk_usage(part.mountpoint)
            total, free = int(usage.total), int(usage.free)
        except (ps.Error, OSError) as exc:
            # An empty DVD drive, a dead network share, a mount this user may not stat.
            log.debug("disk_usage(%s) failed: %s", mount, exc)
        found.append({"mount_point": mount, "device": _text(part.device, MAX_NAME),
                      "fs_type": _text(part.fstype, MAX_WORD), "total_bytes": total, "free_bytes": free})
    return found[:MAX_DISKS]


# ---------------------------------------------------------------- interfaces


def mac_normalise(value: Any) -> str | None:
    """One MAC format on every platform: lower-case hex pairs joined by ``:``; ``None`` if not a MAC.

    Windows reports ``02-FC-00-00-00-01``, Linux ``02:fc:00:00:00:01``; an
    all-zero address (loopback, tunnels) is no hardware address.
    """
    if not isinstance(value, str):
        return None
    digits = "".join(_HEX.findall(value))
    separators = set(re.sub(r"[0-9a-fA-F]", "", value))
    if not digits or len(digits) % 2 or len(digits) > 40 or not separators <= {":", "-", "."}:
        return None
    if set(digits) == {"0"}:
        return None
    return ":".join(digits[i:i + 2] for i in range(0, len(digits), 2)).lower()


def _prefix_length(netmask: Any) -> int | None:
    # psutil gives masks as addresses ("255.255.255.0", "ffff:ffff::"); the prefix is their leading ones.
    if not netmask:
        return None
    try:
        mask = ipaddress.ip_address(str(netmask).split("%", 1)[0])
    except ValueError:
        return None
    bits = mask.max_prefixlen
    ones = bin(int(mask)).count("1")
    if int(mask) != ((1 << bits) - 1) ^ ((1 << (bits - ones)) - 1):
        return None  # not contiguous: no prefix length describes it
    return ones


def interfaces_info(src: Sources) -> list[dict[str, Any]] | None:
    """Network interfaces: MAC, IP addresses with prefix length, up, speed and MTU."""
    ps = src.psutil
    try:
        addrs = ps.net_if_addrs()
    except (ps.Error, OSError) as exc:
        log.debug("net_if_addrs unavailable: %s", exc)
        return None
    try:
        stats = ps.net_if_stats()
    except (ps.Error, OSError) as exc:
        log.debug("net_if_stats unavailable: %s", exc)
        stats = {}
    found = []
    for name in sorted(set(addrs) | set(stats)):
        mac, addresses = None, []
        for entry in addrs.get(name, ()):
            if entry.family == ps.AF_LINK:
                mac = mac or mac_normalise(entry.address)
            elif entry.family in (socket.AF_INET, socket.AF_INET6) and len(addresses) < MAX_ADDRESSES:
                address = str(entry.address).split("%", 1)[0]
                try:
                    ipaddress.ip_address(address)
                except ValueError:
                    continue
                addresses.append({"address": address, "prefix_length": _prefix_length(entry.netmask)})
        stat = stats.get(name)
        found.append({
            "name": _text(name),
            "mac": mac,
            "addresses": addresses,
            "up": bool(stat.isup) if stat is not None else None,
            # psutil says 0 when the driver does not know (virtual NICs, Wi-Fi on some drivers).
            "speed_mbps": (_int(stat.speed) or None) if stat is not None else None,
            "mtu": (_int(stat.mtu) or None) if stat is not None else None,
        })
    return [i for i in found if i["name"]][:MAX_INTERFACES]


# ---------------------------------------------------------------- services


def _systemd_services(src: Sources) -> list[dict[str, Any]] | None:
    # Two calls in all, whatever the number of units: a per-unit query would cost
    # a D-Bus round trip each (500 units, seconds).
    if not (src.root / "run" / "systemd" / "system").is_dir():
        return None
    units = src.run(["systemctl", "list-units", "--type=service", "--all", "--no-legend", "--plain",
                     "--no-pager"], COMMAND_TIMEOUT)
    if units is None:
        return None
    files = src.run(["systemctl", "list-unit-files", "--type=service", "--no-legend", "--plain", "--no-pager"],
                    COMMAND_TIMEOUT) or ""
    enabled = {}
    for line in files.splitlines():
        parts = line.split()
        if len(parts) >= 2:
            enabled[parts[0]] = parts[1]
    found = []
    for line in units.splitlines():
        parts = line.split(None, 4)
        # A leading "●" marks a failed or not-found unit in some systemd versions.
        if parts and parts[0] in ("●", "*"):
            parts = parts[1:]
        if len(parts) < 4:
            log.debug("systemctl line skipped: %r", line[:200])
            continue
        unit, load, active, sub = parts[:4]
        if load == "not-found":
            continue  # a unit something refers to that is not installed: no service
        state = enabled.get(unit)
        # "--all" lists a hundred static helpers that never ran; a unit that is
        # neither active (running, failed, starting ...) nor enabled says nothing
        # about the host and would triple the size of every snapshot.
        if active == "inactive" and not (state or "").startswith("enabled"):
            continue
        # The description (display_name) is left out for the same reason: it is
        # the unit file's text, not the host's state.
        found.append({"name": _text(unit), "active_state": _text(active, MAX_WORD), "sub_state": _text(sub, MAX_WORD),
                      "enabled": _text(state, MAX_WORD)})
    return found


_WIN_SERVICE_FIELDS = ("display_name", "status", "start_type", "username", "binpath")


def _windows_services(ps: Any) -> list[dict[str, Any]] | None:
    try:
        services = list(ps.win_service_iter())
    except (ps.Error, OSError) as exc:
        log.debug("win_service_iter unavailable: %s", exc)
        return None
    found = []
    for service in services:
        try:
            name = service.name()
        except (ps.Error, OSError) as exc:
            log.debug("service name unreadable: %s", exc)
            continue
        values = {}
        for field in _WIN_SERVICE_FIELDS:
            try:
                values[field] = getattr(service, field)()
            except (ps.Error, OSError) as exc:
                # A service removed meanwhile, or one whose config this account may not query.
                log.debug("service %s %s unreadable: %s", name, field, exc)
                values[field] = None
        # As on Linux: a service neither running nor set to start automatically
        # (most of Windows' 250 are manual and stopped) is left out.
        if values["status"] == "stopped" and values["start_type"] != "automatic":
            continue
        found.append({"name": _text(name), "display_name": _text(values["display_name"]),
                      "status": _text(values["status"], MAX_WORD), "start_type": _text(values["start_type"], MAX_WORD),
                      "account": _text(values["username"]), "binary_path": _text(values["binpath"], MAX_STRING)})
    return found


def services_info(src: Sources) -> list[dict[str, Any]] | None:
    """systemd services on Linux, the Service Control Manager's on Windows; ``None`` without either."""
    found = _windows_services(src.psutil) if src.system == "Windows" else _systemd_services(src)
    if found is None:
        return None
    # Fields of the other platform, and unreadable ones, are left out rather
    # than sent as null: a host has hundreds of services and each null costs
    # ~15 bytes in every snapshot. The server reads a missing field as null.
    compact = [{k: v for k, v in s.items() if v is not None} for s in found if s["name"]]
    return sorted(compact, key=lambda s: s["name"].lower())[:MAX_SERVICES]


# ---------------------------------------------------------------- hardware

# Values firmware vendors leave in unset DMI fields: no information.
_PLACEHOLDERS = {
    "", "none", "n/a", "na", "0", "00000000", "not specified", "not applicable", "not available", "unknown",
    "default string", "to be filled by o.e.m.", "to be filled by oem", "system serial number",
    "system product name", "system manufacturer", "o.e.m.", "oem", "123456789", "chassis serial number",
    "03000200-0400-0500-0006-000700080009", "00000000-0000-0000-0000-000000000000",
}

# (substring of "vendor model", lower-case) -> hypervisor, first match wins.
_HYPERVISORS = (
    ("vmware", "vmware"), ("virtualbox", "virtualbox"), ("innotek", "virtualbox"), ("qemu", "kvm"),
    ("kvm", "kvm"), ("bochs", "kvm"), ("amazon ec2", "aws"), ("google compute engine", "gce"),
    ("xen", "xen"), ("parallels", "parallels"), ("bhyve", "bhyve"), ("openstack", "kvm"),
    ("microsoft corporation virtual machine", "hyper-v"), ("virtual machine", "hyper-v"),
)


def _dmi(value: Any, limit: int = MAX_SHORT) -> str | None:
    text = _text(value, limit)
    return None if text is None or text.lower() in _PLACEHOLDERS else text


def _bios_date(value: Any) -> str | None:
    # SMBIOS says MM/DD/YYYY; some firmware writes MM/DD/YY.
    text = _text(value, 32)
    for fmt in ("%m/%d/%Y", "%m/%d/%y", "%Y-%m-%d", "%Y%m%d"):
        try:
            return datetime.strptime(text or "", fmt).date().isoformat()
        except ValueError:
            continue
    return None


def _hypervisor(vendor: str | None, model: str | None) -> str | None:
    text = f"{vendor or ''} {model or ''}".lower()
    for needle, name in _HYPERVISORS:
        if needle in text:
            return name
    return None


def _wmi_value(query: str, key: str) -> str | None:
    """One value from WMI through CPython's own ``_wmi`` (3.12+); ``None`` where it is missing (Wine)."""
    try:
        import _wmi  # type: ignore[import-not-found]
    except ImportError:
        return None
    try:
        answer = _wmi.exec_query(query)
    except OSError as exc:
        log.debug("WMI %r failed: %s", query, exc)
        return None
    for item in str(answer).split("\0"):
        name, found, value = item.partition("=")
        if found and name == key:
            return value
    return None


def wmi_bios() -> dict[str, str | None]:
    """Serial number and hardware UUID, which the registry does not hold, from WMI."""
    return {"serial": _wmi_value("SELECT SerialNumber FROM Win32_BIOS", "SerialNumber"),
            "uuid": _wmi_value("SELECT UUID FROM Win32_ComputerSystemProduct", "UUID")}


def hardware_info(src: Sources) -> dict[str, Any]:
    """System vendor and model, serial, hardware UUID, BIOS, and whether this is a virtual machine."""
    if src.system == "Windows":
        def reg(name: str) -> Any:
            return src.registry(_REG_BIOS, name)

        vendor, model = _dmi(reg("SystemManufacturer")), _dmi(reg("SystemProductName"))
        extra = src.wmi() if src.wmi is not None else {}
        found = {
            "vendor": vendor, "model": model,
            "serial": _dmi(extra.get("serial")), "uuid": _dmi(extra.get("uuid"), MAX_WORD),
            "bios_vendor": _dmi(reg("BIOSVendor")), "bios_version": _dmi(reg("BIOSVersion")),
            "bios_date": _bios_date(reg("BIOSReleaseDate")),
        }
        hypervisor = _hypervisor(vendor, model)
        # Without cpuinfo's flag only a recognised name says "virtual"; a named vendor says "physical".
        virtual = True if hypervisor else (False if vendor else None)
    else:
        dmi = src.root / "sys" / "class" / "dmi" / "id"

        def read(name: str, limit: int = MAX_SHORT) -> str | None:
            return _dmi(read_text(dmi / name), limit)

        vendor, model = read("sys_vendor"), read("product_name")
        found = {
            "vendor": vendor, "model": model, "serial": read("product_serial"),
            "uuid": (read("product_uuid", MAX_WORD) or "").lower() or None,
            "bios_vendor": read("bios_vendor"), "bios_version": read("bios_version"),
            "bios_date": _bios_date(read_text(dmi / "bios_date")),
        }
        hypervisor = _hypervisor(vendor, model) or _text(read_text(src.root / "sys" / "hypervisor" / "type"), MAX_WORD)
        flags = None
        for line in (read_text(src.root / "proc" / "cpuinfo") or "").splitlines():
            if line.startswith("flags"):
                flags = line.partition(":")[2].split()
                break
        # x86 CPUs announce a hypervisor in their flags; ARM kernels have no flags line.
        if hypervisor or (flags is not None and "hypervisor" in flags):
            virtual = True
        else:
            virtual = False if flags is not None else None
    return {**found, "virtual": virtual, "hypervisor": hypervisor}
