"""Benchmark payloads: a real snapshot of this machine, padded to 400 processes.

The agent's collector (issue 3, ``agent/collector.py``) is not on main yet, so
this module collects the snapshot itself with ``psutil`` the way the agent
will: every field comes from this machine, nothing is invented. A 2-core test
box runs far fewer than 400 processes, so the real list is repeated (with
fresh pids) until it holds 400, the size of a busy server's list and about
100 KB of JSON. When the agent lands, ``collect_snapshot`` should call its
collector instead.

``UploadTemplate`` turns one snapshot into many distinct uploads cheaply: the
snapshot_id and collected_at are fixed-width fields, replaced by byte slicing,
so the load generator spends its CPU on sending, not on encoding JSON.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import socket
import uuid

import psutil

TARGET_PROCESSES = 400
_ATTRS = ["pid", "ppid", "name", "username", "status", "create_time", "cpu_percent",
          "memory_info", "memory_percent", "num_threads", "exe", "cmdline"]


def _iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return dt.datetime.fromtimestamp(timestamp, dt.timezone.utc).isoformat()


def _process(info: dict) -> dict:
    memory = info.get("memory_info")
    cmdline = info.get("cmdline")
    if cmdline is not None:
        budget, kept = 8_000, []
        for arg in cmdline[:1_000]:
            if len(arg) > budget:
                break
            kept.append(arg)
            budget -= len(arg)
        cmdline = kept
    return {
        "pid": info["pid"],
        "ppid": info.get("ppid"),
        "name": info.get("name"),
        "username": info.get("username"),
        "status": info.get("status"),
        "create_time": _iso(info.get("create_time")),
        "cpu_percent": info.get("cpu_percent"),
        "memory_rss_bytes": memory.rss if memory else None,
        "memory_percent": round(info["memory_percent"], 4) if info.get("memory_percent") is not None else None,
        "num_threads": info.get("num_threads"),
        "exe": info.get("exe") or None,
        "cmdline": cmdline,
    }


def real_processes() -> list[dict]:
    """This machine's process list as the agent would send it."""
    processes = []
    for proc in psutil.process_iter(_ATTRS, ad_value=None):
        processes.append(_process(proc.info))
    return processes


def pad_processes(processes: list[dict], count: int = TARGET_PROCESSES) -> list[dict]:
    """Repeat the real list (with unused pids) until it has *count* entries."""
    if not processes:
        raise RuntimeError("psutil returned no processes")
    padded = list(processes[:count])
    next_pid = max(p["pid"] for p in processes) + 1
    index = 0
    while len(padded) < count:
        clone = dict(processes[index % len(processes)])
        clone["pid"] = next_pid
        next_pid += 1
        index += 1
        padded.append(clone)
    return padded


def _machine_id() -> str:
    try:
        with open("/etc/machine-id", encoding="ascii") as handle:
            return handle.read().strip() or socket.gethostname()
    except OSError:
        return socket.gethostname()


def collect_snapshot(processes: int = TARGET_PROCESSES) -> dict:
    """One schema-v1 snapshot of this machine with *processes* processes."""
    os_release = platform.freedesktop_os_release() if hasattr(platform, "freedesktop_os_release") else {}
    memory = psutil.virtual_memory()
    frequency = psutil.cpu_freq()
    users = [
        {"name": user.name, "terminal": user.terminal, "host": user.host, "started": _iso(user.started)}
        for user in psutil.users()
    ]
    addresses = sorted({
        addr.address for addrs in psutil.net_if_addrs().values() for addr in addrs
        if addr.family in (socket.AF_INET, socket.AF_INET6) and not addr.address.startswith(("127.", "::1", "fe80"))
    })
    return {
        "schema_version": 1,
        "snapshot_id": str(uuid.uuid4()),
        "collected_at": dt.datetime.now(dt.timezone.utc).isoformat(),
        "agent": {"version": "bench-psutil-" + psutil.__version__},
        "host": {"id": _machine_id(), "hostname": socket.gethostname(), "fqdn": socket.getfqdn(),
                 "ips": addresses[:256], "boot_time": _iso(psutil.boot_time())},
        "os": {"name": platform.system(), "version": platform.version(), "release": platform.release(),
               "build": None, "distribution": os_release.get("NAME"),
               "distribution_version": os_release.get("VERSION_ID"), "kernel": platform.release(),
               "arch": platform.machine()},
        "cpu": {"model": _cpu_model(), "vendor": None, "arch": platform.machine(),
                "physical_cores": psutil.cpu_count(logical=False), "logical_cores": psutil.cpu_count(),
                "frequency_mhz": frequency.current if frequency else None,
                "usage_percent": psutil.cpu_percent(interval=0.1)},
        "memory": {"total_bytes": memory.total, "available_bytes": memory.available},
        "users": users,
        "users_source": "utmp",
        "processes": pad_processes(real_processes(), processes),
    }


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


_ID_PLACEHOLDER = "00000000-0000-4000-8000-000000000000"
_TIME_PLACEHOLDER = "2000-01-01T00:00:00.000000+00:00"


class UploadTemplate:
    """Many distinct upload bodies from one snapshot, by replacing fixed-width fields."""

    def __init__(self, snapshot: dict, *, host_id: str | None = None, hostname: str | None = None):
        snapshot = json.loads(json.dumps(snapshot))
        snapshot["snapshot_id"] = _ID_PLACEHOLDER
        snapshot["collected_at"] = _TIME_PLACEHOLDER
        if host_id is not None:
            snapshot["host"]["id"] = host_id
        if hostname is not None:
            snapshot["host"]["hostname"] = hostname
        raw = json.dumps(snapshot, separators=(",", ":")).encode()
        self._id_at = raw.index(_ID_PLACEHOLDER.encode())
        self._time_at = raw.index(_TIME_PLACEHOLDER.encode())
        if self._id_at > self._time_at:
            raise RuntimeError("snapshot_id must come before collected_at in the template")
        self._raw = raw

    def __len__(self) -> int:
        return len(self._raw)

    def body(self, *, snapshot_id: uuid.UUID | None = None, collected_at: dt.datetime | None = None) -> bytes:
        snapshot_id = snapshot_id or uuid.uuid4()
        collected_at = (collected_at or dt.datetime.now(dt.timezone.utc)).astimezone(dt.timezone.utc)
        stamp = collected_at.strftime("%Y-%m-%dT%H:%M:%S.%f+00:00").encode()
        raw = self._raw
        i, t = self._id_at, self._time_at
        return b"".join((raw[:i], str(snapshot_id).encode(), raw[i + 36:t], stamp, raw[t + len(_TIME_PLACEHOLDER):]))


if __name__ == "__main__":
    snapshot = collect_snapshot()
    real = len(real_processes())
    template = UploadTemplate(snapshot)
    print(f"real processes on this machine: {real}")
    print(f"payload processes: {len(snapshot['processes'])}")
    print(f"payload size: {len(template.body())} bytes")
    print(os.linesep.join(json.dumps(p) for p in snapshot["processes"][:3]))
