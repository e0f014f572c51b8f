"""Reads of the inventory: fleet software, who has a package, who listens on a port, full disks.

The searches answer from the tables ``reports.inventory_index`` keeps (never
by reading documents); a host's interfaces, services and hardware come from
its newest stored document, as the host page shows them. Used by the API
(``reports.api.inventory_views``), the CSV exports and the pages.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import QuerySet

from reports import payload as payload_schema
from reports import selectors
from reports.models import Host, HostDisk, HostListeningSocket, HostSoftware, Software

DISK_FULL_PERCENT = 90.0


def software_list(*, search: str = "", name: str = "", version: str = "", vendor: str = "",
                  source: str = "") -> QuerySet[Software]:
    """The fleet's software (packages some host has now), with ``host_count``, by name then version.

    *search* is a substring of the name (any case); the others match exactly.
    """
    rows = Software.objects.filter(host_count__gt=0)
    if search:
        rows = rows.filter(name__icontains=search)
    exact = {"name": name, "version": version, "vendor": vendor, "source": source}
    rows = rows.filter(**{field: value for field, value in exact.items() if value})
    return rows.order_by("name", "version", "arch", "vendor", "source", "id")


def _hosts(matching: QuerySet) -> QuerySet[Host]:
    """Hosts with at least one of the *matching* rows, by name.

    ``pk IN (subquery)`` rather than a correlated EXISTS: both databases read
    the matching rows once from their index, instead of probing per host.
    """
    return Host.objects.filter(pk__in=matching.values("host")).order_by("hostname", "pk")


def hosts_with_software(*, name: str, version: str = "", vendor: str = "", source: str = "") -> QuerySet[Host]:
    """Hosts whose current software list has a package of this exact name (and version, vendor, source)."""
    packages = Software.objects.filter(name=name)
    exact = {"version": version, "vendor": vendor, "source": source}
    packages = packages.filter(**{field: value for field, value in exact.items() if value})
    return _hosts(HostSoftware.objects.filter(software__in=packages.values("pk")))


def hosts_listening(*, port: int, protocol: str = "") -> QuerySet[Host]:
    """Hosts whose newest snapshot listens on *port* (TCP or UDP unless *protocol* says)."""
    sockets = HostListeningSocket.objects.filter(port=port)
    if protocol:
        sockets = sockets.filter(protocol=protocol)
    return _hosts(sockets)


def hosts_with_full_disk(*, used_percent: float = DISK_FULL_PERCENT) -> QuerySet[Host]:
    """Hosts with a file system at least *used_percent* full in their newest snapshot."""
    return _hosts(HostDisk.objects.filter(used_percent__gte=used_percent))


def hosts_narrowed(hosts: QuerySet[Host], *, software: str = "", port: int | None = None,
                   disk_full: bool = False) -> QuerySet[Host]:
    """*hosts* (the hosts list as filtered) kept to those with a package, a listening port, a full disk."""
    if software:
        packages = Software.objects.filter(name=software)
        hosts = hosts.filter(pk__in=HostSoftware.objects.filter(software__in=packages.values("pk")).values("host"))
    if port is not None:
        hosts = hosts.filter(pk__in=HostListeningSocket.objects.filter(port=port).values("host"))
    if disk_full:
        hosts = hosts.filter(pk__in=HostDisk.objects.filter(used_percent__gte=DISK_FULL_PERCENT).values("host"))
    return hosts


@dataclass(frozen=True)
class HostPackage:
    """A package in one host's current software list."""

    name: str
    version: str
    vendor: str
    arch: str
    source: str
    install_date: object


def host_software(*, host: Host, search: str = "") -> list[HostPackage]:
    """The host's current software list, by name (``search``: a substring of the name, any case)."""
    rows = HostSoftware.objects.filter(host=host)
    if search:
        rows = rows.filter(software__name__icontains=search)
    fields = ("software__name", "software__version", "software__vendor", "software__arch", "software__source",
              "install_date")
    return [HostPackage(*row) for row in rows.order_by("software__name", "software__version", "software__arch")
            .values_list(*fields)]


def host_listening(*, host: Host) -> QuerySet[HostListeningSocket]:
    return HostListeningSocket.objects.filter(host=host).order_by("port", "protocol", "address", "pk")


def host_disks(*, host: Host) -> QuerySet[HostDisk]:
    return HostDisk.objects.filter(host=host).order_by("mount_point", "pk")


@dataclass(frozen=True)
class HostInventory:
    """What the host's newest snapshot says of its interfaces, services and hardware (None: not sent)."""

    interfaces: list[payload_schema.Interface] | None
    services: list[payload_schema.Service] | None
    hardware: payload_schema.Hardware | None


def host_inventory(*, host: Host) -> HostInventory:
    """The interfaces, services and hardware of the host's newest snapshot."""
    snapshot = host.latest_snapshot
    if snapshot is None:
        return HostInventory(None, None, None)
    payload = selectors.snapshot_document(snapshot=snapshot).payload
    return HostInventory(payload.interfaces, payload.services, payload.hardware)
