"""Two machines, one id: noticing that one host id is sent by two machines.

Cloned virtual machines often keep the template's ``/etc/machine-id`` or
``MachineGuid``, which is the agent's host id; their snapshots then land on
one ``Host`` and its history mixes two machines. This module owns the rule
that notices it, and clearing the flag.

The rule runs on every upload, so it reads nothing but a few columns of the
``Host`` row ingest already holds locked (``HOST_FIELDS`` with ``hostname``
and ``last_ip``) and returns the columns to change: O(1) per upload, no
document read back. Each snapshot gives an :class:`Identity` (hostname,
upload address, hardware serial and UUID). Against the host's current one:

- the same: nothing happens (a flagged host counts it as a steady snapshot);
- different, and different from the identity before the last change too:
  one change, A -> B. A rename, a new address from DHCP, a motherboard swap
  or moving the agent to a new machine are this, and are never flagged;
- different, but the identity before the last change again: a return,
  A -> B -> A. Two machines sending alternately return on nearly every
  upload; ``RETURNS_TO_FLAG`` returns within ``RETURN_WINDOW`` flag the host.

A field only counts as different when both sides know it (an agent without
root reads no serial) and it is not a vendor placeholder ("To Be Filled By
O.E.M.", an all-zero UUID); addresses only when both are of one family, so
a host uploading over IPv4 and IPv6 in turn is not two machines.

The flag clears itself after ``STEADY_TO_CLEAR`` snapshots in a row with no
change (one of the clones was switched off or got a new id), or at once
through ``services.identity_conflict_clear`` (the admin's action).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from reports.models import Host

RETURNS_TO_FLAG = 3
RETURN_WINDOW = dt.timedelta(hours=1)
STEADY_TO_CLEAR = 24

# The Host columns this rule keeps, besides hostname and last_ip (the current identity's).
HOST_FIELDS = (
    "identity_serial", "identity_uuid", "identity_previous", "identity_returns", "identity_window_start",
    "identity_steady", "identity_conflict_since", "identity_conflict_fields",
)

# Values firmware writes when the vendor filled in nothing; they identify no machine.
_PLACEHOLDERS = {
    "", "0", "none", "null", "n/a", "na", "default string", "to be filled by o.e.m.", "not specified",
    "not applicable", "system serial number", "chassis serial number", "0123456789", "serial",
    "00000000-0000-0000-0000-000000000000", "ffffffff-ffff-ffff-ffff-ffffffffffff",
    "03000200-0400-0500-0006-000700080009",
}


def _known(value: str | None) -> str:
    value = (value or "").strip()
    return "" if value.lower() in _PLACEHOLDERS else value


@dataclass(frozen=True)
class Identity:
    """What tells one machine from another in a snapshot; ``""`` where unknown."""

    hostname: str
    address: str
    serial: str = ""
    uuid: str = ""

    @classmethod
    def of(cls, *, hostname: str, address: str, hardware=None) -> Identity:
        """A snapshot's identity: its hostname, the address it came from, its ``hardware`` section (or None)."""
        serial = _known(getattr(hardware, "serial", None))[:255]
        uuid = _known(getattr(hardware, "uuid", None)).lower()[:64]
        return cls(hostname=hostname[:255], address=address, serial=serial, uuid=uuid)

    def packed(self) -> str:
        return "\t".join((self.hostname, self.address, self.serial, self.uuid))

    @classmethod
    def unpacked(cls, text: str) -> Identity | None:
        parts = text.split("\t")
        return cls(*parts) if len(parts) == 4 else None


def differences(a: Identity, b: Identity) -> list[str]:
    """The fields in which *a* and *b* name different machines (unknown fields never differ)."""
    names = []
    if a.serial and b.serial and a.serial != b.serial:
        names.append("hardware serial")
    if a.uuid and b.uuid and a.uuid != b.uuid:
        names.append("hardware UUID")
    if a.hostname.lower() != b.hostname.lower():
        names.append("hostname")
    if a.address != b.address and (":" in a.address) == (":" in b.address):
        names.append("address")
    return names


def cleared() -> dict[str, object]:
    """The columns of a host without a conflict, its alternation count started afresh."""
    return {"identity_returns": 0, "identity_window_start": None, "identity_steady": 0,
            "identity_conflict_since": None, "identity_conflict_fields": ""}


def identity_changes(host: Host, seen: Identity, *, at: dt.datetime) -> dict[str, object]:
    """The Host columns that change when *host*'s newest snapshot, collected *at*, shows *seen*.

    Pure: *host* holds the columns of ``HOST_FIELDS`` plus ``hostname`` and
    ``last_ip`` as they were before this snapshot; nothing is written here.
    """
    changes: dict[str, object] = {}
    if seen.serial and seen.serial != host.identity_serial:
        changes["identity_serial"] = seen.serial
    if seen.uuid and seen.uuid != host.identity_uuid:
        changes["identity_uuid"] = seen.uuid
    current = Identity(hostname=host.hostname, address=host.last_ip,
                       serial=host.identity_serial, uuid=host.identity_uuid)
    changed = differences(current, seen)
    flagged = host.identity_conflict_since is not None
    if not changed:
        if flagged and host.identity_steady + 1 >= STEADY_TO_CLEAR:
            changes.update(cleared())
        elif flagged:
            changes["identity_steady"] = host.identity_steady + 1
        return changes
    previous = Identity.unpacked(host.identity_previous)
    changes["identity_previous"] = current.packed()
    if host.identity_steady:
        changes["identity_steady"] = 0
    if previous is None or differences(previous, seen):
        return changes  # A -> B: one change
    window_start = host.identity_window_start
    if window_start is None or at - window_start > RETURN_WINDOW or at < window_start:
        changes.update(identity_returns=1, identity_window_start=at)
    else:
        changes["identity_returns"] = host.identity_returns + 1
    if changes["identity_returns"] >= RETURNS_TO_FLAG and not flagged:
        changes.update(identity_conflict_since=at, identity_conflict_fields=", ".join(changed))
    return changes
