"""Which changes a rule reports: pure functions over a host's state before and after a snapshot.

Nothing here reads the database or a document. ``reports.alerts.outbox``
gathers the before state from the host's summary columns and search rows
(``Host.process_index``, ``HostSoftware``, ``HostListeningSocket``,
``HostDisk``), the after state from the upload, and asks each rule what
changed. Process matching is ``reports.processes``'s rule, applied to the
stored index lines, so an alert agrees with the process search page.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from reports import processes

PROCESS_KINDS = frozenset({"process_started", "process_stopped"})
SOFTWARE_KINDS = frozenset({"software_installed", "software_removed", "software_upgraded"})
PORT_KINDS = frozenset({"port_opened"})
DISK_KINDS = frozenset({"disk_full"})
STATUS_KINDS = frozenset({"host_offline", "host_stale", "host_back"})
REJECTED_KINDS = frozenset({"snapshot_rejected"})
IDENTITY_KINDS = frozenset({"identity_conflict"})
UPLOAD_KINDS = PROCESS_KINDS | SOFTWARE_KINDS | PORT_KINDS | DISK_KINDS | IDENTITY_KINDS


@dataclass(frozen=True)
class Rule:
    """An active rule as the evaluation needs it (a plain copy, cached per process by the outbox)."""

    pk: int
    name: str
    kind: str
    pattern: str = ""
    threshold_percent: float | None = None
    allowed_ports: frozenset[int] = frozenset()
    os_name: str = ""
    os_version: str = ""
    hostname_pattern: str = ""
    group_seconds: int = 0
    destinations: tuple[int, ...] = ()

    def in_scope(self, *, hostname: str, os_name: str, os_version: str) -> bool:
        """Whether the rule watches a host: the hosts list's OS and distribution filters (exact), name (substring)."""
        if self.os_name and self.os_name.lower() != (os_name or "").lower():
            return False
        if self.os_version and self.os_version != (os_version or ""):
            return False
        return not self.hostname_pattern or self.hostname_pattern.lower() in (hostname or "").lower()


@dataclass(frozen=True)
class Change:
    """One thing a rule reports: ``detail`` tells two changes of one snapshot apart (the idempotency key)."""

    kind: str
    subject: str
    before: object
    after: object
    detail: str


def parse_ports(text: str) -> frozenset[int]:
    """``"22, 443"`` as a set of ports; anything not a port in 0-65535 raises ValueError."""
    ports = set()
    for part in text.replace(";", ",").split(","):
        if part.strip():
            port = int(part.strip())
            if not 0 <= port <= 65_535:
                raise ValueError(f"{port} is not a port")
            ports.add(port)
    return frozenset(ports)


def index_difference(before_index: str, after_index: str) -> tuple[frozenset[str], frozenset[str]]:
    """(started, stopped): the process index lines only in *after_index*, and only in *before_index*.

    Computed once per upload for every process rule; an unchanged index
    (the usual upload) costs one string comparison.
    """
    if before_index == after_index:
        return frozenset(), frozenset()
    before, after = set(before_index.split("\n")), set(after_index.split("\n"))
    return frozenset(after - before - {""}), frozenset(before - after - {""})


def process_changes(rule: Rule, *, started: frozenset[str], stopped: frozenset[str]) -> list[Change]:
    """Processes matching the pattern that appear in (started) or vanish from (stopped) the process index.

    Compared as the set of index lines (name and command line, as
    ``index_difference`` gives them), so one more copy of an already running
    process is not a start.
    """
    needle = processes.query_needle(rule.pattern)
    verb = "started" if rule.kind == "process_started" else "stopped"
    lines = sorted(processes.matching_lines("\n".join(started if verb == "started" else stopped), needle))
    return [Change(rule.kind, f"process {line.split(chr(9))[0] or line} {verb}",
                   None if verb == "started" else line, line if verb == "started" else None, line)
            for line in lines]


def software_changes(rule: Rule, *, before: Iterable[tuple[str, str]], after: Iterable[tuple[str, str]]) -> list[Change]:
    """Packages (name, version) matching the pattern installed, removed or changed version.

    A name present on both sides with other versions is an upgrade (or a
    downgrade: the versions are reported, not ranked).
    """
    needle = rule.pattern.strip().lower()

    def versions(pairs: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for name, version in pairs:
            if needle in name.lower():
                found.setdefault(name, []).append(version or "")
        return {name: sorted(set(values)) for name, values in found.items()}

    old, new = versions(before), versions(after)
    changes = []
    if rule.kind == "software_installed":
        changes = [Change(rule.kind, f"{name} {' '.join(new[name])} installed".strip(), None, new[name], name)
                   for name in sorted(new.keys() - old.keys())]
    elif rule.kind == "software_removed":
        changes = [Change(rule.kind, f"{name} {' '.join(old[name])} removed".strip(), old[name], None, name)
                   for name in sorted(old.keys() - new.keys())]
    elif rule.kind == "software_upgraded":
        changes = [Change(rule.kind, f"{name} {' '.join(old[name])} -> {' '.join(new[name])}", old[name], new[name],
                          f"{name}:{','.join(new[name])}")
                   for name in sorted(old.keys() & new.keys()) if old[name] != new[name]]
    return changes


def port_changes(rule: Rule, *, before: Iterable[tuple[str, int]], after: Iterable[tuple[str, int]]) -> list[Change]:
    """Listening (protocol, port) pairs new in *after*, except the rule's allowed ports."""
    opened = sorted(set(after) - set(before))
    return [Change(rule.kind, f"new listening port {protocol}/{port}", None, {"protocol": protocol, "port": port},
                   f"{protocol}/{port}")
            for protocol, port in opened if port not in rule.allowed_ports]


def disk_changes(rule: Rule, *, before: Mapping[str, float | None], after: Mapping[str, float | None]) -> list[Change]:
    """Mount points whose use reached the threshold and was below it (or unknown, or absent) before."""
    threshold = rule.threshold_percent if rule.threshold_percent is not None else 90.0
    changes = []
    for mount, used in sorted(after.items()):
        previous = before.get(mount)
        if used is not None and used >= threshold and (previous is None or previous < threshold):
            changes.append(Change(rule.kind, f"disk {mount} {used:.1f}% full (over {threshold:g}%)",
                                  previous, used, mount))
    return changes


def identity_changes(rule: Rule, *, conflict_before: bool, conflict_after: bool, fields: str) -> list[Change]:
    """A host flagged with an identity conflict by this upload (``reports.identity`` decides; this reports it)."""
    if conflict_before or not conflict_after:
        return []
    return [Change(rule.kind, f"identity conflict: two machines send this host id ({fields or 'identity'} differ)",
                   None, fields, "conflict")]


# The status transition each status rule reports.
_STATUS_FIRES = {
    "host_offline": lambda old, new: new == "offline" and old == "online",
    "host_stale": lambda old, new: new == "stale" and old != "stale",
    "host_back": lambda old, new: new == "online" and old != "online",
}


def status_changes(rule: Rule, *, before: str, after: str) -> list[Change]:
    """A host's status moving the way the rule watches (offline, stale, back online)."""
    if before == after or not _STATUS_FIRES[rule.kind](before, after):
        return []
    return [Change(rule.kind, f"host {after}" if rule.kind != "host_back" else "host back online",
                   before, after, f"{before}->{after}")]
