"""Pure collection of one schema-v1 snapshot (see docs/payload.md).

One function per area (cpu, os, users, processes, host, memory here; software,
listening sockets, disks, interfaces, services and hardware in
:mod:`agent.inventory`); none of them sends or writes anything. Every platform-specific input (psutil, the Windows
registry, the root of the file system, ``platform.uname()``) comes in through
a :class:`Sources` object, so the Windows and ARM branches can be tested on
Linux with fakes, and so the real agent is the same code with the defaults.

Collectors tolerate gaps: a field that cannot be read is ``None`` and the rest
of the snapshot is kept; one process never aborts the process list.
"""

from __future__ import annotations

import ipaddress
import logging
import platform
import socket
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Sequence

import psutil

from . import __version__
from . import inventory
from .limits import MAX_CMDLINE_ARGS, MAX_CMDLINE_CHARS, MAX_IPS, MAX_PROCESSES, MAX_SHORT, MAX_STRING, MAX_USERS
from .redact import cmdline_redact
from .state import host_id_load_or_create
from .sysfiles import read_text

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
DEFAULT_SAMPLE_SECONDS = 0.5

_REG_CPU = r"HARDWARE\DESCRIPTION\System\CentralProcessor\0"
_REG_NT = r"SOFTWARE\Microsoft\Windows NT\CurrentVersion"
_REG_CRYPTO = r"SOFTWARE\Microsoft\Cryptography"

# /proc/cpuinfo "CPU implementer" on ARM is a number, not a name.
_ARM_IMPLEMENTERS = {
    0x41: "ARM", 0x42: "Broadcom", 0x43: "Cavium", 0x46: "Fujitsu", 0x48: "HiSilicon",
    0x4E: "NVIDIA", 0x50: "APM", 0x51: "Qualcomm", 0x53: "Samsung", 0x56: "Marvell",
    0x61: "Apple", 0x69: "Intel", 0xC0: "Ampere",
}


def _winreg_module() -> Any:
    try:
        import winreg
    except ImportError:
        return None
    return winreg


def registry_value(key: str, name: str) -> Any:
    """Read one value under ``HKEY_LOCAL_MACHINE``; ``None`` when absent or not on Windows."""
    try:
        import winreg
    except ImportError:
        return None
    try:
        with winreg.OpenKey(winreg.HKEY_LOCAL_MACHINE, key) as handle:
            value, _kind = winreg.QueryValueEx(handle, name)
    except OSError as exc:
        log.debug("registry %s\\%s unreadable: %s", key, name, exc)
        return None
    return value


@dataclass
class Sources:
    """Where the collectors read from; the defaults are the real machine.

    Tests replace ``psutil`` (only for what Linux cannot give: a Windows
    process table, an empty utmp), ``registry`` and ``root`` (a folder laid
    out like ``/`` with its own ``proc/cpuinfo``, ``etc/os-release`` ...),
    ``winreg`` (the module, for the Uninstall keys), ``run`` (external
    commands: ``rpm``, ``systemctl``) and ``wmi`` (serial and UUID on Windows).
    """

    psutil: Any = psutil
    system: str = field(default_factory=platform.system)
    uname: Any = field(default_factory=platform.uname)
    registry: Callable[[str, str], Any] = registry_value
    root: Path = Path("/")
    state_dir: Path | None = None
    hostname: Callable[[], str] = socket.gethostname
    fqdn: Callable[[], str] = socket.getfqdn
    winreg: Any = field(default_factory=_winreg_module)
    run: Callable[[Sequence[str], float], str | None] = inventory.run_command
    wmi: Callable[[], dict[str, Any]] | None = inventory.wmi_bios


# ---------------------------------------------------------------- helpers


def iso_time(timestamp: float | None) -> str | None:
    """Turn a POSIX timestamp into the ISO 8601 UTC string the schema requires."""
    if timestamp is None:
        return None
    try:
        return datetime.fromtimestamp(timestamp, tz=timezone.utc).isoformat(timespec="seconds")
    except (OverflowError, OSError, ValueError):
        return None


def clean_string(value: Any) -> str | None:
    """Make a value schema-safe: a string without NULs, at most 4,096 characters."""
    if value is None:
        return None
    text = str(value).replace("\x00", "")
    return text[:MAX_STRING]


def _key_values(text: str, sep: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for line in text.splitlines():
        key, found, value = line.partition(sep)
        if found and key.strip() and key.strip() not in pairs:
            pairs[key.strip()] = value.strip()
    return pairs


def _call(what: str, func: Callable[[], Any]) -> Any:
    # Machine-wide facts: one unreadable value must not cost the snapshot.
    try:
        return func()
    except Exception as exc:  # noqa: BLE001 - psutil and platform raise many kinds
        log.debug("%s unavailable: %s", what, exc)
        return None


# ---------------------------------------------------------------- cpu


def _cpu_model_linux(root: Path) -> tuple[str | None, str | None]:
    text = read_text(root / "proc" / "cpuinfo") or ""
    info = _key_values(text, ":")
    # x86 has "model name"; ARM kernels give "Hardware" (SoC) or the old "Processor".
    model = info.get("model name") or info.get("Hardware") or info.get("Processor")
    vendor = info.get("vendor_id")
    if vendor is None and "CPU implementer" in info:
        try:
            vendor = _ARM_IMPLEMENTERS.get(int(info["CPU implementer"], 0))
        except ValueError:
            vendor = None
    return model or None, vendor or None


def cpu_info(src: Sources, *, usage_percent: float | None) -> dict[str, Any]:
    """CPU model, vendor, cores and frequency; usage comes from the shared sampling window."""
    ps = src.psutil
    if src.system == "Windows":
        model = src.registry(_REG_CPU, "ProcessorNameString")
        vendor = src.registry(_REG_CPU, "VendorIdentifier")
    else:
        model, vendor = _cpu_model_linux(src.root)
    frequency = None
    freq = _call("cpu_freq", ps.cpu_freq)
    if freq is not None:
        frequency = freq.current or freq.max or None
    if frequency is None and src.system == "Windows":
        frequency = src.registry(_REG_CPU, "~MHz")
    physical = _call("physical cores", lambda: ps.cpu_count(logical=False))
    logical = _call("logical cores", lambda: ps.cpu_count(logical=True))
    return {
        "model": clean_string(model.strip() if isinstance(model, str) else model),
        "vendor": clean_string(vendor),
        "arch": clean_string(src.uname.machine) or None,
        "physical_cores": physical or None,
        "logical_cores": logical or None,
        "frequency_mhz": float(frequency) if frequency else None,
        "usage_percent": None if usage_percent is None else min(max(float(usage_percent), 0.0), 100.0),
    }


# ---------------------------------------------------------------- os


def os_info(src: Sources) -> dict[str, Any]:
    """Operating system name, versions, distribution (os-release or Windows edition), kernel, arch."""
    uname = src.uname
    build = distribution = distribution_version = None
    if src.system == "Windows":
        parts = (uname.version or "").split(".")
        build = parts[2] if len(parts) >= 3 else src.registry(_REG_NT, "CurrentBuildNumber")
        distribution = src.registry(_REG_NT, "ProductName")
        # Windows 11 kept "Windows 10" in ProductName; the build number tells them apart.
        is_11 = str(build).isdigit() and int(build) >= 22000
        if isinstance(distribution, str) and distribution.startswith("Windows 10") and is_11:
            distribution = "Windows 11" + distribution[len("Windows 10"):]
        distribution_version = src.registry(_REG_NT, "DisplayVersion") or src.registry(_REG_NT, "ReleaseId")
        kernel = uname.version
    else:
        release_text = (read_text(src.root / "etc" / "os-release")
                        or read_text(src.root / "usr" / "lib" / "os-release"))
        if release_text:
            fields = {k: v.strip("\"'") for k, v in _key_values(release_text, "=").items()}
            distribution = fields.get("NAME")
            distribution_version = fields.get("VERSION_ID")
        kernel = uname.release
    return {
        "name": clean_string(uname.system or src.system) or src.system,
        "version": clean_string(uname.version) or None,
        "release": clean_string(uname.release) or None,
        "build": clean_string(build) or None,
        "distribution": clean_string(distribution) or None,
        "distribution_version": clean_string(distribution_version) or None,
        "kernel": clean_string(kernel) or None,
        "arch": clean_string(uname.machine) or None,
    }


# ---------------------------------------------------------------- memory and host


def memory_info(src: Sources) -> dict[str, Any] | None:
    """Physical memory totals, or ``None`` when psutil cannot read them."""
    vm = _call("virtual_memory", src.psutil.virtual_memory)
    if vm is None:
        return None
    return {"total_bytes": int(vm.total), "available_bytes": int(vm.available)}


def _host_id(src: Sources) -> str:
    if src.system == "Windows":
        found = src.registry(_REG_CRYPTO, "MachineGuid")
    else:
        found = None
        for candidate in ("etc/machine-id", "var/lib/dbus/machine-id"):
            found = (read_text(src.root / candidate) or "").strip()
            if found:
                break
    if found:
        return clean_string(found.strip())[:MAX_SHORT]
    if src.state_dir is None:
        # Nowhere to keep a generated id: better a per-run id than no snapshot.
        log.warning("no machine id and no state folder; using a one-off host id")
        return uuid.uuid4().hex
    return host_id_load_or_create(src.state_dir)


def _ips(src: Sources) -> list[str]:
    addrs = _call("net_if_addrs", src.psutil.net_if_addrs) or {}
    found: list[str] = []
    for entries in addrs.values():
        for entry in entries:
            if entry.family not in (socket.AF_INET, socket.AF_INET6):
                continue
            try:
                ip = ipaddress.ip_address(entry.address.split("%", 1)[0])
            except ValueError:
                continue
            # Link-local addresses are the same shape on every host and not routable.
            if ip.is_loopback or ip.is_link_local or ip.is_unspecified:
                continue
            if str(ip) not in found:
                found.append(str(ip))
    return found[:MAX_IPS]


def host_info(src: Sources) -> dict[str, Any]:
    """Stable host id, names, addresses and boot time."""
    hostname = _call("hostname", src.hostname) or "unknown"
    fqdn = _call("fqdn", src.fqdn)
    return {
        "id": _host_id(src),
        "hostname": clean_string(hostname.split(".", 1)[0]) or "unknown",
        # getfqdn() falls back to the bare name or "localhost"; that is no FQDN.
        "fqdn": clean_string(fqdn) if fqdn and "." in fqdn and not fqdn.startswith("localhost") else None,
        "ips": _ips(src),
        "boot_time": iso_time(_call("boot_time", src.psutil.boot_time)),
    }


# ---------------------------------------------------------------- users


def _logind_users(root: Path) -> list[dict[str, Any]] | None:
    # systemd-logind keeps one key=value file per session here; reading it
    # needs no D-Bus library, which the agent may not depend on.
    folder = root / "run" / "systemd" / "sessions"
    if not folder.is_dir():
        return None
    users = []
    for path in sorted(folder.iterdir()):
        if path.suffix == ".ref" or not path.is_file():
            continue
        info = _key_values(read_text(path) or "", "=")
        if not info.get("USER") or info.get("CLASS", "user") not in ("user", "user-early"):
            continue
        if info.get("STATE") == "closing":
            continue
        started = None
        if info.get("REALTIME", "").isdigit():
            started = iso_time(int(info["REALTIME"]) / 1_000_000)
        users.append({
            "name": clean_string(info["USER"]),
            "terminal": clean_string(info.get("TTY") or info.get("DISPLAY") or info.get("SERVICE")) or None,
            "host": clean_string(info.get("REMOTE_HOST")) or None,
            "started": started,
        })
    return users


def _explorer_users(processes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # Without WTS answers, whoever owns a shell (explorer.exe) is logged on;
    # the process list is already collected, with names derived where needed.
    owners: dict[str, dict[str, Any]] = {}
    for proc in processes:
        if (proc["name"] or "").lower() != "explorer.exe" or not proc["username"]:
            continue
        short = proc["username"].rsplit("\\", 1)[-1]
        started = proc["create_time"]
        known = owners.get(short)
        if known is None or (started and known["started"] and started < known["started"]):
            owners[short] = {"name": short, "terminal": "console", "host": None, "started": started}
    return list(owners.values())


def users_info(
    src: Sources, *, processes: list[dict[str, Any]] | None = None
) -> tuple[list[dict[str, Any]], str | None]:
    """Users with an open session and which source listed them (``users_source``).

    ``processes`` (the collected list) feeds the Windows fallback to the
    owners of ``explorer.exe``.
    """
    ps = src.psutil
    primary = "wts" if src.system == "Windows" else "utmp"
    try:
        entries = ps.users()
    except Exception as exc:  # noqa: BLE001 - utmp/WTS failures vary by platform
        log.debug("psutil.users() failed: %s", exc)
        entries = None
    if entries:
        users = [{
            "name": clean_string(u.name) or "unknown",
            "terminal": clean_string(u.terminal) or None,
            "host": clean_string(u.host) or None,
            "started": iso_time(u.started),
        } for u in entries]
        return users[:MAX_USERS], primary
    if src.system == "Windows":
        if processes is not None:
            return _explorer_users(processes)[:MAX_USERS], "explorer"
    else:
        logind = _logind_users(src.root)
        if logind is not None:
            return logind[:MAX_USERS], "logind"
    return [], (primary if entries is not None else None)


# ---------------------------------------------------------------- processes

_FIELDS = ("ppid", "name", "username", "status", "create_time", "num_threads", "exe", "cmdline", "memory_info")


def _field(proc: Any, name: str, ps: Any) -> Any:
    """Read one field of one process; any failure means ``None`` for that field only."""
    try:
        return getattr(proc, name)()
    except ps.NoSuchProcess as exc:
        if not isinstance(exc, ps.ZombieProcess):
            raise
        log.debug("pid %s zombie, %s unreadable", getattr(proc, "pid", "?"), name)
    except Exception as exc:  # noqa: BLE001 - the issue asks for "anything": OSError, WinError 87 ...
        log.debug("pid %s %s unreadable: %s", getattr(proc, "pid", "?"), name, exc)
    return None


def _name_from(exe: str | None, cmdline: list[str] | None) -> str | None:
    # Windows paths use "\", so split on both separators whatever the host OS.
    for candidate in (exe, cmdline[0] if cmdline else None):
        if candidate:
            base = candidate.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
            if base:
                return base
    return None


def _cmdline_clean(args: list[str]) -> list[str]:
    kept: list[str] = []
    budget = MAX_CMDLINE_CHARS
    for arg in args[:MAX_CMDLINE_ARGS]:
        arg = arg.replace("\x00", "")[:budget]
        kept.append(arg)
        budget -= len(arg)
        if budget <= 0:
            break
    return kept


class ProcessSampler:
    """Samples CPU use of every process over one shared window.

    ``start()`` primes psutil's per-process counters, the caller waits once,
    and ``collect()`` reads every process, so the agent sleeps once per
    snapshot rather than once per process.
    """

    def __init__(self, src: Sources) -> None:
        self.src = src
        self.primed: dict[int, Any] = {}

    def start(self) -> None:
        """Prime the whole-machine and per-process CPU counters."""
        ps = self.src.psutil
        _call("cpu_percent", lambda: ps.cpu_percent(interval=None))
        for proc in ps.process_iter():
            try:
                proc.cpu_percent(interval=None)
            except ps.NoSuchProcess:
                continue
            except Exception as exc:  # noqa: BLE001 - keep the process; its cpu_percent stays null
                log.debug("pid %s cpu_percent prime failed: %s", proc.pid, exc)
            self.primed[proc.pid] = proc

    def machine_usage(self) -> float | None:
        """Whole-machine CPU use since ``start()``."""
        return _call("cpu_percent", lambda: self.src.psutil.cpu_percent(interval=None))

    def collect(
        self, *, include_cmdline: bool, logical_cores: int | None, memory_total: int | None
    ) -> list[dict[str, Any]]:
        """Read every process; processes that appeared during the window get a null cpu_percent."""
        ps = self.src.psutil
        procs = dict(self.primed)
        fresh: set[int] = set()
        # pids() rather than process_iter(): the latter re-reads every known
        # process's stat file to check it is still the same process, and a
        # gone or recycled pid is caught per process below anyway.
        for pid in _call("pids", ps.pids) or []:
            if pid in procs:
                continue
            try:
                procs[pid] = ps.Process(pid)
            except ps.NoSuchProcess:
                continue
            except Exception as exc:  # noqa: BLE001 - one unreadable newcomer must not cost the list
                log.debug("pid %s unreadable: %s", pid, exc)
                continue
            fresh.add(pid)
        cpu_cap = 100.0 * (logical_cores or 1)
        result = []
        for pid in sorted(procs):
            try:
                entry = self._one(procs[pid], ps, include_cmdline=include_cmdline,
                                  sample_cpu=pid not in fresh, cpu_cap=cpu_cap, memory_total=memory_total)
            except ps.NoSuchProcess:
                continue  # it ended during the collection: nothing left to describe
            result.append(entry)
            if len(result) >= MAX_PROCESSES:
                break
        return result

    @staticmethod
    def _one(
        proc: Any, ps: Any, *, include_cmdline: bool, sample_cpu: bool, cpu_cap: float, memory_total: int | None
    ) -> dict[str, Any]:
        with proc.oneshot():
            values = {name: _field(proc, name, ps) for name in _FIELDS}
            cpu = _field(proc, "cpu_percent", ps) if sample_cpu else None
        cmdline = values["cmdline"]
        if cmdline is not None:
            # Trim first: redaction then only ever sees what the schema lets through.
            cmdline = cmdline_redact(_cmdline_clean([str(a) for a in cmdline]))
        name = values["name"] or _name_from(values["exe"], cmdline)
        rss = getattr(values["memory_info"], "rss", None)
        memory_percent = None
        if rss is not None and memory_total:
            # Same formula as psutil's memory_percent(), without re-reading meminfo per process.
            memory_percent = round(min(100.0, rss * 100.0 / memory_total), 3)
        return {
            "pid": proc.pid,
            "ppid": values["ppid"],
            "name": clean_string(name) or None,
            "username": clean_string(values["username"]) or None,
            "status": clean_string(values["status"]) or None,
            "create_time": iso_time(values["create_time"]),
            "cpu_percent": None if cpu is None else round(min(max(cpu, 0.0), cpu_cap), 2),
            "memory_rss_bytes": rss,
            "memory_percent": memory_percent,
            "num_threads": values["num_threads"],
            "exe": clean_string(values["exe"]) or None,
            "cmdline": cmdline if include_cmdline else None,
        }


# ---------------------------------------------------------------- snapshot


def _area(name: str, func: Callable[[], Any]) -> Any:
    # Each inventory collector already catches what its sources raise per
    # field and per entry; this guard is for the unforeseen, so that a new
    # area can never cost the snapshot the CPU, OS, users and processes.
    try:
        return func()
    except Exception:  # noqa: BLE001 - see above; logged with its traceback
        log.warning("collecting %s failed; sent as null", name, exc_info=True)
        return None


INVENTORY_FIELDS = ("software", "software_digest", "software_count", "listening", "disks", "interfaces",
                    "services", "hardware")


def inventory_collect(src: Sources) -> dict[str, Any]:
    """The inventory areas of a snapshot, in their stored order (docs/payload.md).

    ``software`` is always collected in full here; whether a run sends it or
    only its digest is the delivery's decision (``agent.run_agent``).
    """
    software = _area("software", lambda: inventory.software_info(src))
    return {
        "software": software,
        "software_digest": None if software is None else inventory.software_digest(software),
        "software_count": None if software is None else len(software),
        "listening": _area("listening", lambda: inventory.listening_info(src)),
        "disks": _area("disks", lambda: inventory.disks_info(src)),
        "interfaces": _area("interfaces", lambda: inventory.interfaces_info(src)),
        "services": _area("services", lambda: inventory.services_info(src)),
        "hardware": _area("hardware", lambda: inventory.hardware_info(src)),
    }


def snapshot_collect(
    *,
    src: Sources | None = None,
    include_cmdline: bool = True,
    sample_seconds: float = DEFAULT_SAMPLE_SECONDS,
    sleep: Callable[[float], Any] = time.sleep,
) -> dict[str, Any]:
    """Collect one complete schema-v1 snapshot of this host.

    The CPU window (``sample_seconds``) is shared by the machine-wide usage and
    every process's ``cpu_percent``.
    """
    src = src or Sources()
    collected_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    sampler = ProcessSampler(src)
    sampler.start()
    sleep(sample_seconds)
    usage = sampler.machine_usage()
    cpu = cpu_info(src, usage_percent=usage)
    memory = memory_info(src)
    processes = sampler.collect(
        include_cmdline=include_cmdline,
        logical_cores=cpu["logical_cores"],
        memory_total=memory["total_bytes"] if memory else None,
    )
    users, users_source = users_info(src, processes=processes)
    return {
        "schema_version": SCHEMA_VERSION,
        "snapshot_id": str(uuid.uuid4()),
        "collected_at": collected_at,
        "agent": {"version": __version__},
        "host": host_info(src),
        "os": os_info(src),
        "cpu": cpu,
        "memory": memory,
        "users": users,
        "users_source": users_source,
        "processes": processes,
        **inventory_collect(src),
    }

