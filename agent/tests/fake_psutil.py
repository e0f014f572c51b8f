"""A tiny stand-in for psutil, for the branches this Linux machine cannot produce.

Used only where the real psutil cannot show the case: a Windows process table
(where ``name()`` and ``exe()`` fail as they do under Wine), an empty utmp, or
processes whose fields raise arbitrary errors. Everything else in the tests
uses the real psutil.
"""

from __future__ import annotations

import contextlib
from collections import namedtuple
from typing import Any

import psutil

Error = psutil.Error
NoSuchProcess = psutil.NoSuchProcess
ZombieProcess = psutil.ZombieProcess
AccessDenied = psutil.AccessDenied

User = namedtuple("User", "name terminal host started pid")
Mem = namedtuple("Mem", "rss vms")
VMem = namedtuple("VMem", "total available percent")
Freq = namedtuple("Freq", "current min max")
Addr = namedtuple("Addr", "family address netmask broadcast ptp")
Conn = namedtuple("Conn", "fd family type laddr raddr status pid")
Partition = namedtuple("Partition", "device mountpoint fstype opts")
Usage = namedtuple("Usage", "total used free percent")
IfStats = namedtuple("IfStats", "isup duplex speed mtu flags")


class FakeService:
    """A Windows service as psutil.win_service_iter() yields it; a field may be an exception."""

    def __init__(self, **fields: Any) -> None:
        self.fields = fields

    def __getattr__(self, name: str) -> Any:
        fields = self.__dict__.get("fields", {})
        if name not in fields:
            raise AttributeError(name)
        value = fields[name]

        def read() -> Any:
            if isinstance(value, BaseException):
                raise value
            return value

        return read


class FakeProcess:
    """A process whose fields are values, or exceptions to raise when read."""

    def __init__(self, pid: int, **fields: Any) -> None:
        self.pid = pid
        self.fields = {
            "ppid": 0, "name": f"proc{pid}", "username": "root", "status": "running",
            "create_time": 1_790_000_000.0, "num_threads": 1, "exe": None, "cmdline": [],
            "memory_info": Mem(1024 * 1024, 2 * 1024 * 1024), "cpu_percent": 1.5,
        }
        self.fields.update(fields)

    def oneshot(self) -> contextlib.AbstractContextManager:
        return contextlib.nullcontext()

    def __getattr__(self, name: str) -> Any:
        fields = self.__dict__.get("fields", {})
        if name not in fields:
            raise AttributeError(name)
        value = fields[name]

        def read(*_args: Any, **_kwargs: Any) -> Any:
            if isinstance(value, BaseException):
                raise value
            return value

        return read


class FakePsutil:
    """The module-level psutil API the collector uses, with fixed answers."""

    Error = Error
    NoSuchProcess = NoSuchProcess
    ZombieProcess = ZombieProcess
    AccessDenied = AccessDenied
    AF_LINK = psutil.AF_LINK
    CONN_LISTEN = psutil.CONN_LISTEN
    CONN_NONE = psutil.CONN_NONE

    def __init__(self, processes: list[FakeProcess] | None = None, users: Any = (), **answers: Any) -> None:
        self.processes = processes or []
        self._users = users
        # Inventory answers (net_connections, disk_partitions, disk_usage,
        # net_if_stats, win_service_iter): a value, a callable, or an exception to raise.
        self.answers = answers

    def _answer(self, name: str, *args: Any) -> Any:
        value = self.answers[name]
        if isinstance(value, BaseException):
            raise value
        return value(*args) if callable(value) else value

    def net_connections(self, kind: str = "inet"):
        return self._answer("net_connections", kind)

    def disk_partitions(self, all: bool = False):  # noqa: A002 - psutil's name
        return self._answer("disk_partitions")

    def disk_usage(self, path: str):
        return self._answer("disk_usage", path)

    def net_if_stats(self):
        return self._answer("net_if_stats")

    def win_service_iter(self):
        return iter(self._answer("win_service_iter"))

    def process_iter(self, *_args: Any, **_kwargs: Any):
        return iter(list(self.processes))

    def pids(self) -> list[int]:
        return [p.pid for p in self.processes]

    def Process(self, pid: int) -> FakeProcess:  # noqa: N802 - psutil's name
        for proc in self.processes:
            if proc.pid == pid:
                return proc
        raise NoSuchProcess(pid)

    def users(self):
        if isinstance(self._users, BaseException):
            raise self._users
        return list(self._users)

    def cpu_percent(self, interval: float | None = None) -> float:
        return 12.5

    def cpu_count(self, logical: bool = True) -> int:
        return 4 if logical else 2

    def cpu_freq(self):
        return Freq(0.0, 0.0, 2400.0)

    def virtual_memory(self):
        return VMem(8 * 1024**3, 6 * 1024**3, 25.0)

    def boot_time(self) -> float:
        return 1_790_000_000.0

    def net_if_addrs(self):
        import socket
        if "net_if_addrs" in self.answers:
            return self._answer("net_if_addrs")
        return {
            "Ethernet": [Addr(socket.AF_INET, "10.0.1.15", None, None, None),
                         Addr(socket.AF_INET6, "fe80::1%12", None, None, None)],
            "Loopback": [Addr(socket.AF_INET, "127.0.0.1", None, None, None)],
        }
