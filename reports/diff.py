"""What changed between two snapshots of a host: a pure function over two payloads.

Processes are matched by name and command line, never by pid: pids are
reused, and a service restarted by its supervisor comes back with a new pid
but is the same thing running. Matching is by count (a multiset), so going
from two ``nginx: worker`` processes to four shows two started, not zero.
Users are matched the same way by (name, terminal, remote host).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from reports.payload import Process, SessionUser, SnapshotPayload

ProcessKey = tuple[str, tuple[str, ...]]
UserKey = tuple[str, str, str]

# (section, label, attribute path) of the scalar fields worth reporting.
_FIELDS = (
    ("Host", "Hostname", ("host", "hostname")),
    ("Host", "FQDN", ("host", "fqdn")),
    ("Host", "Boot time", ("host", "boot_time")),
    ("OS", "Name", ("os", "name")),
    ("OS", "Version", ("os", "version")),
    ("OS", "Release", ("os", "release")),
    ("OS", "Build", ("os", "build")),
    ("OS", "Distribution", ("os", "distribution")),
    ("OS", "Distribution version", ("os", "distribution_version")),
    ("OS", "Kernel", ("os", "kernel")),
    ("OS", "Architecture", ("os", "arch")),
    ("CPU", "Model", ("cpu", "model")),
    ("CPU", "Vendor", ("cpu", "vendor")),
    ("CPU", "Physical cores", ("cpu", "physical_cores")),
    ("CPU", "Logical cores", ("cpu", "logical_cores")),
    ("Memory", "Total bytes", ("memory", "total_bytes")),
    ("Memory", "Available bytes", ("memory", "available_bytes")),
    ("Agent", "Version", ("agent", "version")),
)


@dataclass(frozen=True)
class FieldChange:
    section: str
    label: str
    old: object
    new: object
    is_bytes: bool = False


@dataclass(frozen=True)
class ProcessChange:
    """``count`` processes with this name and command line started (or stopped); ``example`` is one of them."""

    name: str
    cmdline: str
    count: int
    example: Process


@dataclass(frozen=True)
class UserChange:
    name: str
    terminal: str
    host: str
    count: int


@dataclass
class SnapshotDiff:
    started: list[ProcessChange] = field(default_factory=list)
    stopped: list[ProcessChange] = field(default_factory=list)
    logged_in: list[UserChange] = field(default_factory=list)
    logged_out: list[UserChange] = field(default_factory=list)
    fields: list[FieldChange] = field(default_factory=list)
    unchanged_processes: int = 0

    @property
    def is_empty(self) -> bool:
        return not (self.started or self.stopped or self.logged_in or self.logged_out or self.fields)


def process_key(process: Process) -> ProcessKey:
    return (process.name or "", tuple(process.cmdline or ()))


def user_key(user: SessionUser) -> UserKey:
    return (user.name, user.terminal or "", user.host or "")


def _get(payload: SnapshotPayload, path: tuple[str, str]) -> object:
    section = getattr(payload, path[0])
    return None if section is None else getattr(section, path[1])


def _process_changes(more: list[Process], less: list[Process]) -> list[ProcessChange]:
    """Processes of *more* beyond their count in *less*, sorted by name."""
    surplus = Counter(map(process_key, more)) - Counter(map(process_key, less))
    examples: dict[ProcessKey, Process] = {}
    for process in more:
        key = process_key(process)
        if key in surplus and key not in examples:
            examples[key] = process
    return sorted(
        (ProcessChange(name=key[0], cmdline=" ".join(key[1]), count=count, example=examples[key])
         for key, count in surplus.items()),
        key=lambda change: (change.name.lower(), change.cmdline),
    )


def _user_changes(more: list[SessionUser], less: list[SessionUser]) -> list[UserChange]:
    surplus = Counter(map(user_key, more)) - Counter(map(user_key, less))
    return [UserChange(name=k[0], terminal=k[1], host=k[2], count=n) for k, n in sorted(surplus.items())]


def snapshot_diff(old: SnapshotPayload, new: SnapshotPayload) -> SnapshotDiff:
    """Everything that differs from *old* to *new*."""
    diff = SnapshotDiff(
        started=_process_changes(new.processes, old.processes),
        stopped=_process_changes(old.processes, new.processes),
        logged_in=_user_changes(new.users, old.users),
        logged_out=_user_changes(old.users, new.users),
    )
    common = Counter(map(process_key, old.processes)) & Counter(map(process_key, new.processes))
    diff.unchanged_processes = sum(common.values())
    for section, label, path in _FIELDS:
        before, after = _get(old, path), _get(new, path)
        if before != after:
            diff.fields.append(FieldChange(section, label, before, after, is_bytes=path[1].endswith("_bytes")))
    return diff
