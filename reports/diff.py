"""What changed between two snapshots of a host: a pure function over two payloads.

Processes are matched by name and command line, never by pid: pids are
reused, and a service restarted by its supervisor comes back with a new pid
but is the same thing running. Matching is by count (a multiset), so going
from two ``nginx: worker`` processes to four shows two started, not zero.
Users are matched the same way by (name, terminal, remote host).

The inventory areas (docs/payload.md, "Inventory") are optional, and absent
is not empty: an area one snapshot did not report (an older agent, a host
without systemd, a package database that could not be read) is *not
compared*, never read as "everything removed". The software list in
particular is sent in full only when it changed or once a day; a snapshot
that sends only its digest is compared through the host's list with that
digest (``old_known`` / ``new_known``, found by ``reports.breadth``), and
two equal digests mean "unchanged" without reading any list.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from reports import processes
from reports.payload import Disk, Interface, ListeningSocket, Process, Service, SessionUser, SnapshotPayload, Software

ProcessKey = tuple[str, tuple[str, ...]]
UserKey = tuple[str, str, str]

# The one label map of the changes page: (section, attribute) -> what a person
# calls it. Sizes are marked by ``_bytes`` in the attribute and shown in binary
# units (GiB, MiB) by the page.
FIELD_LABELS = {
    ("host", "hostname"): "Host name",
    ("host", "fqdn"): "FQDN",
    ("host", "boot_time"): "Boot time",
    ("os", "name"): "OS",
    ("os", "version"): "OS version",
    ("os", "release"): "OS release",
    ("os", "build"): "OS build",
    ("os", "distribution"): "Distribution",
    ("os", "distribution_version"): "Distribution version",
    ("os", "kernel"): "Kernel",
    ("os", "arch"): "Architecture",
    ("cpu", "model"): "CPU model",
    ("cpu", "vendor"): "CPU vendor",
    ("cpu", "physical_cores"): "Physical CPU cores",
    ("cpu", "logical_cores"): "Logical CPU cores",
    ("memory", "total_bytes"): "Total memory",
    ("memory", "available_bytes"): "Available memory",
    ("agent", "version"): "Agent version",
}
_SECTIONS = {"host": "Host", "os": "OS", "cpu": "CPU", "memory": "Memory", "agent": "Agent"}
_FIELDS = tuple((_SECTIONS[path[0]], label, path) for path, label in FIELD_LABELS.items())
# A boot time is computed from the uptime, so clock corrections move it by a
# few seconds without a reboot; a smaller move is neither a reboot nor a change.
BOOT_TIME_JITTER = dt.timedelta(seconds=60)
# Compared only when both snapshots report hardware (absent is not "all null").
_HARDWARE_FIELDS = (
    ("Hardware vendor", "vendor"), ("Hardware model", "model"), ("Hardware serial number", "serial"), ("System UUID", "uuid"),
    ("BIOS vendor", "bios_vendor"), ("BIOS version", "bios_version"), ("BIOS date", "bios_date"),
    ("Virtual machine", "virtual"), ("Hypervisor", "hypervisor"),
)
# What "a large drop in free space" means, in one place (docs/dashboard.md):
# the free share of a disk fell by at least FREE_DROP_POINTS percentage points,
# or fell from LOW_FREE_PERCENT or more to below it.
FREE_DROP_POINTS = 10.0
LOW_FREE_PERCENT = 10.0
# Service fields whose change is reported: the state, and what would make the
# same name run something else (account, binary path).
_SERVICE_FIELDS = (
    ("active", "active_state"), ("sub-state", "sub_state"), ("enabled", "enabled"), ("status", "status"),
    ("start type", "start_type"), ("account", "account"), ("binary path", "binary_path"),
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
    """One process (a name and command line) that started or stopped, run by ``count`` PIDs ("×3").

    ``example`` is one of its PIDs; ``kernel`` says whether it is a kernel
    thread (``reports.processes.is_kernel_thread``); ``age`` is how long it had
    been running at the snapshot that lists it (None: start time unknown).
    """

    name: str
    cmdline: str
    count: int
    example: Process
    kernel: bool = False
    age: dt.timedelta | None = None


@dataclass(frozen=True)
class ProcessView:
    """The started and stopped lists as the page shows them: kernel threads hidden unless asked.

    Each list counts processes, not PIDs: ``len(started)`` is "+N started".
    ``hidden_*`` say how many kernel threads the toggle would add.
    """

    started: list[ProcessChange]
    stopped: list[ProcessChange]
    hidden_started: int
    hidden_stopped: int
    show_kernel: bool


@dataclass(frozen=True)
class Reboot:
    """The host rebooted between the two snapshots (its boot time changed), and what came with it."""

    old_boot: dt.datetime | None
    new_boot: dt.datetime
    old_kernel: str | None
    new_kernel: str | None
    old_os_version: str | None
    new_os_version: str | None
    processes_since_boot: int

    @property
    def kernel_changed(self) -> bool:
        return self.old_kernel != self.new_kernel

    @property
    def os_changed(self) -> bool:
        return self.old_os_version != self.new_os_version


@dataclass(frozen=True)
class UserChange:
    name: str
    terminal: str
    host: str
    count: int


@dataclass(frozen=True)
class VersionChange:
    """One package whose version changed; ``downgrade`` when the new version sorts before the old."""

    name: str
    arch: str | None
    source: str
    old_version: str | None
    new_version: str | None
    downgrade: bool = False


@dataclass
class SoftwareDiff:
    installed: list[Software] = field(default_factory=list)
    removed: list[Software] = field(default_factory=list)
    upgraded: list[VersionChange] = field(default_factory=list)
    downgraded: list[VersionChange] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.installed or self.removed or self.upgraded or self.downgraded)

    @property
    def versions_changed(self) -> int:
        return len(self.upgraded) + len(self.downgraded)


@dataclass(frozen=True)
class ServiceChange:
    """A service present in both snapshots whose state changed: ``changes`` is (what, old, new)."""

    name: str
    display_name: str | None
    changes: tuple[tuple[str, object, object], ...]


@dataclass(frozen=True)
class DiskDrop:
    """A disk whose free space dropped by a large amount (FREE_DROP_POINTS, LOW_FREE_PERCENT)."""

    mount_point: str
    device: str | None
    total_bytes: int
    old_free_bytes: int
    new_free_bytes: int
    old_free_percent: float
    new_free_percent: float


@dataclass(frozen=True)
class InterfaceChange:
    """An interface present in both snapshots whose MAC, addresses or link state changed."""

    name: str
    old_mac: str | None
    new_mac: str | None
    addresses_added: tuple[str, ...] = ()
    addresses_removed: tuple[str, ...] = ()
    old_up: bool | None = None
    new_up: bool | None = None

    @property
    def mac_changed(self) -> bool:
        return self.old_mac != self.new_mac

    @property
    def up_changed(self) -> bool:
        return self.old_up != self.new_up


@dataclass(frozen=True)
class Uncompared:
    """An inventory area left out of the diff, and why (it is not reported on one side)."""

    area: str
    reason: str


@dataclass
class SnapshotDiff:
    started: list[ProcessChange] = field(default_factory=list)
    stopped: list[ProcessChange] = field(default_factory=list)
    logged_in: list[UserChange] = field(default_factory=list)
    logged_out: list[UserChange] = field(default_factory=list)
    fields: list[FieldChange] = field(default_factory=list)
    unchanged_processes: int = 0
    # None: not compared (see ``uncompared``).
    software: SoftwareDiff | None = None
    ports_opened: list[ListeningSocket] = field(default_factory=list)
    ports_closed: list[ListeningSocket] = field(default_factory=list)
    services_added: list[Service] = field(default_factory=list)
    services_removed: list[Service] = field(default_factory=list)
    services_changed: list[ServiceChange] = field(default_factory=list)
    disks_added: list[Disk] = field(default_factory=list)
    disks_removed: list[Disk] = field(default_factory=list)
    disks_filling: list[DiskDrop] = field(default_factory=list)
    interfaces_added: list[Interface] = field(default_factory=list)
    interfaces_removed: list[Interface] = field(default_factory=list)
    interfaces_changed: list[InterfaceChange] = field(default_factory=list)
    uncompared: list[Uncompared] = field(default_factory=list)
    # A side sent only its software digest, the digests differ, and no list
    # with that digest was given: reports.breadth looks the list up.
    software_unresolved: bool = False
    # Set when the boot time changed: the page's headline instead of a boot-time row.
    reboot: Reboot | None = None

    def processes(self, *, show_kernel: bool = False) -> ProcessView:
        """The started and stopped processes, without kernel threads unless *show_kernel*."""
        def shown(changes: list[ProcessChange]) -> list[ProcessChange]:
            return changes if show_kernel else [c for c in changes if not c.kernel]
        started, stopped = shown(self.started), shown(self.stopped)
        return ProcessView(started, stopped, len(self.started) - len(started), len(self.stopped) - len(stopped),
                           show_kernel)

    @property
    def is_empty(self) -> bool:
        return not (self.reboot or self.started or self.stopped or self.logged_in or self.logged_out or self.fields
                    or self.software or self.ports_opened or self.ports_closed or self.services_added
                    or self.services_removed or self.services_changed or self.disks_added or self.disks_removed
                    or self.disks_filling or self.interfaces_added or self.interfaces_removed
                    or self.interfaces_changed)


def process_key(process: Process) -> ProcessKey:
    return (process.name or "", tuple(process.cmdline or ()))


def user_key(user: SessionUser) -> UserKey:
    return (user.name, user.terminal or "", user.host or "")


def _get(payload: SnapshotPayload, path: tuple[str, str]) -> object:
    section = getattr(payload, path[0])
    return None if section is None else getattr(section, path[1])


def _examples(process_list: Iterable[Process]) -> dict[ProcessKey, Process]:
    """For each (name, command line) of *process_list*, the process a change shows: the one running longest."""
    examples: dict[ProcessKey, Process] = {}
    for process in process_list:
        key = process_key(process)
        if key not in examples or _started(process) < _started(examples[key]):
            examples[key] = process
    return examples


def _process_changes(more: list[Process], less: list[Process], at: dt.datetime) -> list[ProcessChange]:
    """Processes of *more* beyond their count in *less*, in the order that matters to a person.

    User-space processes first, kernel threads last; within each, the one
    that had been running longest at *at* (the snapshot that lists it) first,
    so a new daemon or a miner that ran for hours comes before a ``sleep 1``
    that happened to be caught; then by name.
    """
    surplus = Counter(map(process_key, more)) - Counter(map(process_key, less))
    examples = _examples(process for process in more if process_key(process) in surplus)
    changes = [
        ProcessChange(name=key[0], cmdline=" ".join(key[1]), count=count, example=examples[key],
                      kernel=processes.is_kernel_thread(examples[key]),
                      age=at - examples[key].create_time if examples[key].create_time else None)
        for key, count in surplus.items()
    ]
    return sorted(changes, key=lambda c: (c.kernel, c.age is None, -(c.age or _NO_AGE).total_seconds(),
                                          c.name.lower(), c.cmdline))


@dataclass(frozen=True)
class ProcessTally:
    """A process list reduced to what counting its changes needs (``process_change_counts``).

    How many processes of each (name, command line), and which of those keys
    are kernel threads, judged on the same example process ``_process_changes``
    would show (the longest running). Built once per snapshot, so a page of
    history compares each snapshot with its neighbours without recounting.
    """

    counts: Counter
    kernel: frozenset

    @classmethod
    def of(cls, process_list: list[Process]) -> ProcessTally:
        counts = Counter(map(process_key, process_list))
        # A process with a command line is never a kernel thread (processes.is_kernel_thread).
        examples = _examples(process for process in process_list if not (process.cmdline and any(process.cmdline)))
        return cls(counts, frozenset(k for k, p in examples.items() if processes.is_kernel_thread(p)))


def process_change_counts(old: ProcessTally, new: ProcessTally) -> tuple[int, int]:
    """(started, stopped) between two snapshots, as their changes page's tiles count them by default.

    One per program and command line that started or stopped, kernel threads
    left out (the page hides them unless asked), so a host's history row and
    its changes page agree.
    """
    started = [key for key in new.counts - old.counts if key not in new.kernel]
    stopped = [key for key in old.counts - new.counts if key not in old.kernel]
    return len(started), len(stopped)


_NO_AGE = dt.timedelta(0)
_FAR_FUTURE = dt.datetime.max.replace(tzinfo=dt.timezone.utc)


def _started(process: Process) -> dt.datetime:
    return process.create_time or _FAR_FUTURE


def _user_changes(more: list[SessionUser], less: list[SessionUser]) -> list[UserChange]:
    surplus = Counter(map(user_key, more)) - Counter(map(user_key, less))
    return [UserChange(name=k[0], terminal=k[1], host=k[2], count=n) for k, n in sorted(surplus.items())]


def snapshot_diff(old: SnapshotPayload, new: SnapshotPayload, *, old_known: list[Software] | None = None,
                  new_known: list[Software] | None = None) -> SnapshotDiff:
    """Everything that differs from *old* to *new*.

    ``old_known`` / ``new_known``: the host's software list as of each
    snapshot, used only when that snapshot sent its digest instead of its list.
    """
    diff = SnapshotDiff(
        started=_process_changes(new.processes, old.processes, new.collected_at),
        stopped=_process_changes(old.processes, new.processes, old.collected_at),
        logged_in=_user_changes(new.users, old.users),
        logged_out=_user_changes(old.users, new.users),
    )
    common = Counter(map(process_key, old.processes)) & Counter(map(process_key, new.processes))
    diff.unchanged_processes = sum(common.values())
    diff.reboot = _reboot(old, new)
    # A reboot is the headline, with its kernel: neither repeats as a row.
    folded = {("host", "boot_time"), ("os", "kernel")} if diff.reboot else {("host", "boot_time")}
    for section, label, path in _FIELDS:
        before, after = _get(old, path), _get(new, path)
        if before != after and path not in folded:
            diff.fields.append(FieldChange(section, label, before, after, is_bytes=path[1].endswith("_bytes")))
    _software_changes(diff, old, new, old_known=old_known, new_known=new_known)
    if _both_report(diff, "listening ports", old.listening, new.listening):
        diff.ports_opened, diff.ports_closed = _port_changes(old.listening, new.listening)
    if _both_report(diff, "services", old.services, new.services):
        diff.services_added, diff.services_removed, diff.services_changed = _service_changes(old.services, new.services)
    if _both_report(diff, "disks", old.disks, new.disks):
        diff.disks_added, diff.disks_removed, diff.disks_filling = _disk_changes(old.disks, new.disks)
    if _both_report(diff, "network interfaces", old.interfaces, new.interfaces):
        diff.interfaces_added, diff.interfaces_removed, diff.interfaces_changed = _interface_changes(
            old.interfaces, new.interfaces)
    if _both_report(diff, "hardware", old.hardware, new.hardware):
        for label, name in _HARDWARE_FIELDS:
            before, after = getattr(old.hardware, name), getattr(new.hardware, name)
            if before != after:
                diff.fields.append(FieldChange("Hardware", label, before, after))
    return diff


def _reboot(old: SnapshotPayload, new: SnapshotPayload) -> Reboot | None:
    """A Reboot when *new* booted after *old* did (an unknown old boot time counts, an unknown new one not)."""
    before, after = _get(old, ("host", "boot_time")), _get(new, ("host", "boot_time"))
    if after is None or (before is not None and abs(after - before) < BOOT_TIME_JITTER):
        return None
    since_boot = {process_key(p) for p in new.processes if not processes.is_kernel_thread(p)}
    return Reboot(old_boot=before, new_boot=after, old_kernel=_get(old, ("os", "kernel")),
                  new_kernel=_get(new, ("os", "kernel")), old_os_version=_get(old, ("os", "version")),
                  new_os_version=_get(new, ("os", "version")), processes_since_boot=len(since_boot))


def _both_report(diff: SnapshotDiff, area: str, old: object, new: object) -> bool:
    """Whether both snapshots report *area*; if only one does, say so in ``diff.uncompared``."""
    if old is not None and new is not None:
        return True
    if old is not None or new is not None:
        side = "older" if old is None else "newer"
        diff.uncompared.append(Uncompared(area, f"not reported by the {side} snapshot"))
    return False


# --- software ----------------------------------------------------------------------

def _software_changes(diff: SnapshotDiff, old: SnapshotPayload, new: SnapshotPayload, *,
                      old_known: list[Software] | None, new_known: list[Software] | None) -> None:
    if old.software_digest is not None and old.software_digest == new.software_digest:
        diff.software = SoftwareDiff()  # the same list, whether or not either was sent in full
        return
    before = old.software if old.software is not None else old_known
    after = new.software if new.software is not None else new_known
    if before is not None and after is not None:
        diff.software = software_diff(before, after)
        return
    reported = [p.software is not None or p.software_digest is not None for p in (old, new)]
    if not all(reported):
        _both_report(diff, "software", None if not reported[0] else (), None if not reported[1] else ())
        return
    # Both report a list, they differ, and one was sent as its digest only.
    diff.software_unresolved = True
    side = "older" if before is None else "newer"
    diff.uncompared.append(Uncompared(
        "software", f"the {side} snapshot sent only the list's digest, and no stored snapshot holds that list"))


def software_diff(old: list[Software], new: list[Software]) -> SoftwareDiff:
    """Packages installed, removed, upgraded and downgraded from *old* to *new*.

    A package is (name, arch, source): dpkg installs one package for two
    architectures, and Windows lists one program in its 64- and 32-bit views.
    Versions present on both sides cancel out; one version left on each side
    is an upgrade or a downgrade (``version_compare``), anything else is
    installed or removed.
    """
    before, after = _by_package(old), _by_package(new)
    result = SoftwareDiff()
    for key in sorted(before.keys() | after.keys(), key=lambda k: (k[0].lower(), k)):
        olds, news = before.get(key, []), after.get(key, [])
        common = Counter(e.version for e in olds) & Counter(e.version for e in news)
        gone, came = _without_versions(olds, common), _without_versions(news, common)
        if len(gone) == 1 and len(came) == 1:
            was, now = gone[0].version, came[0].version
            change = VersionChange(key[0], gone[0].arch, key[2], was, now,
                                   downgrade=version_compare(now or "", was or "") < 0)
            (result.downgraded if change.downgrade else result.upgraded).append(change)
        else:
            result.removed.extend(gone)
            result.installed.extend(came)
    return result


def _by_package(entries: list[Software]) -> dict[tuple[str, str, str], list[Software]]:
    groups: dict[tuple[str, str, str], list[Software]] = {}
    for entry in entries:
        groups.setdefault((entry.name, entry.arch or "", entry.source), []).append(entry)
    return groups


def _without_versions(entries: list[Software], versions: Counter) -> list[Software]:
    left = Counter(versions)
    kept = []
    for entry in entries:
        if left[entry.version] > 0:
            left[entry.version] -= 1
        else:
            kept.append(entry)
    return kept


def version_compare(a: str, b: str) -> int:
    """Negative, zero or positive as version *a* sorts before, with or after *b*, by dpkg's rules.

    ``[epoch:]upstream[-revision]``; within each part, runs of non-digits
    compare by character (letters before other signs, ``~`` before anything,
    even the end) and runs of digits compare as numbers. rpm orders versions
    nearly the same way and Windows' dotted versions are a special case, so
    one rule serves every source for telling an upgrade from a downgrade.
    """
    (epoch_a, up_a, rev_a), (epoch_b, up_b, rev_b) = _version_parts(a), _version_parts(b)
    return (epoch_a - epoch_b) or _verrevcmp(up_a, up_b) or _verrevcmp(rev_a, rev_b)


def _version_parts(version: str) -> tuple[int, str, str]:
    epoch, _, rest = version.partition(":")
    if not rest or not epoch.isdigit():
        epoch, rest = "0", version
    upstream, _, revision = rest.rpartition("-")
    if not upstream:
        upstream, revision = rest, ""
    return int(epoch), upstream, revision


def _order(char: str) -> int:
    if char.isalpha() and char.isascii():
        return ord(char)
    if char == "~":
        return -1
    return ord(char) + 256


def _verrevcmp(a: str, b: str) -> int:
    i = j = 0
    while i < len(a) or j < len(b):
        while (i < len(a) and not _is_digit(a[i])) or (j < len(b) and not _is_digit(b[j])):
            ac = _order(a[i]) if i < len(a) and not _is_digit(a[i]) else 0
            bc = _order(b[j]) if j < len(b) and not _is_digit(b[j]) else 0
            if ac != bc:
                return ac - bc
            i, j = i + 1, j + 1
        while i < len(a) and a[i] == "0":
            i += 1
        while j < len(b) and b[j] == "0":
            j += 1
        first_diff = 0
        while i < len(a) and _is_digit(a[i]) and j < len(b) and _is_digit(b[j]):
            first_diff = first_diff or ord(a[i]) - ord(b[j])
            i, j = i + 1, j + 1
        if i < len(a) and _is_digit(a[i]):
            return 1
        if j < len(b) and _is_digit(b[j]):
            return -1
        if first_diff:
            return first_diff
    return 0


def _is_digit(char: str) -> bool:
    return "0" <= char <= "9"


# --- sockets, services, disks, interfaces ----------------------------------------------

def _socket_key(sock: ListeningSocket) -> tuple[int, str, str]:
    return (sock.port, sock.protocol, sock.address)


def _port_changes(old: list[ListeningSocket], new: list[ListeningSocket]):
    """(opened, closed) by protocol, address and port, sorted by port.

    One port held by several processes (SO_REUSEPORT workers) counts once. A
    port that another named process now holds is closed by the old one and
    opened by the new one; a name that became unreadable (an agent no longer
    running as root) is not a change.
    """
    before = {_socket_key(s): s for s in reversed(old)}
    after = {_socket_key(s): s for s in reversed(new)}
    opened = [s for k, s in after.items() if k not in before]
    closed = [s for k, s in before.items() if k not in after]
    for key in before.keys() & after.keys():
        was, now = before[key].process, after[key].process
        if was is not None and now is not None and was != now:
            opened.append(after[key])
            closed.append(before[key])
    return sorted(opened, key=_socket_key), sorted(closed, key=_socket_key)


def _matched(old: list, new: list, key: str):
    """(added, removed, [(old, new) present in both]) of two lists matched by attribute *key*, each sorted by it."""
    before = {getattr(item, key): item for item in old}
    after = {getattr(item, key): item for item in new}
    return ([after[k] for k in sorted(after.keys() - before.keys())],
            [before[k] for k in sorted(before.keys() - after.keys())],
            [(before[k], after[k]) for k in sorted(before.keys() & after.keys())])


def _service_changes(old: list[Service], new: list[Service]):
    added, removed, both = _matched(old, new, "name")
    changed = []
    for was, now in both:
        fields = tuple((label, getattr(was, attr), getattr(now, attr)) for label, attr in _SERVICE_FIELDS
                       if getattr(was, attr) != getattr(now, attr))
        if fields:
            changed.append(ServiceChange(now.name, now.display_name or was.display_name, fields))
    return added, removed, changed


def free_percent(disk: Disk) -> float | None:
    """The share of the disk that is free, 0..100; None when its sizes are unknown."""
    if not disk.total_bytes or disk.free_bytes is None:
        return None
    return min(100.0, 100.0 * disk.free_bytes / disk.total_bytes)


def _disk_changes(old: list[Disk], new: list[Disk]):
    added, removed, both = _matched(old, new, "mount_point")
    drops = []
    for was, now in both:
        was_free, now_free = free_percent(was), free_percent(now)
        if was_free is None or now_free is None:
            continue
        if was_free - now_free >= FREE_DROP_POINTS or (was_free >= LOW_FREE_PERCENT > now_free):
            drops.append(DiskDrop(now.mount_point, now.device, now.total_bytes, was.free_bytes, now.free_bytes,
                                  was_free, now_free))
    return added, removed, drops


def _address_text(interface: Interface) -> set[str]:
    return {a.address if a.prefix_length is None else f"{a.address}/{a.prefix_length}"
            for a in interface.addresses}


def _interface_changes(old: list[Interface], new: list[Interface]):
    added, removed, both = _matched(old, new, "name")
    changed = []
    for was, now in both:
        was_addresses, now_addresses = _address_text(was), _address_text(now)
        # Link state only when both sides could tell.
        up_changed = was.up is not None and now.up is not None and was.up != now.up
        if was.mac != now.mac or was_addresses != now_addresses or up_changed:
            changed.append(InterfaceChange(
                now.name, was.mac, now.mac, tuple(sorted(now_addresses - was_addresses)),
                tuple(sorted(was_addresses - now_addresses)),
                was.up if up_changed else None, now.up if up_changed else None))
    return added, removed, changed
