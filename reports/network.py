"""Which address an upload came from.

The day file is named after the address the server sees. Behind a load
balancer that is the balancer, so ``X-Forwarded-For`` is honoured, but only
when the immediate peer is a proxy listed in ``INVENTORY_TRUSTED_PROXIES``;
otherwise any client could pick the file it writes to.
"""

from __future__ import annotations

import functools
import ipaddress

from django.conf import settings

from reports.store import IPAddress, parse_ip


@functools.lru_cache(maxsize=8)
def _networks(entries: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(entry, strict=False) for entry in entries)


def _trusted(address: IPAddress, networks) -> bool:
    return any(address.version == net.version and address in net for net in networks)


def client_ip(meta: dict) -> IPAddress:
    """The client's address from a WSGI environ; ValueError when there is none usable.

    With trusted proxies, walk ``X-Forwarded-For`` from the right and take the
    first address that is not a trusted proxy: entries left of it were written
    by the client and prove nothing.
    """
    remote = parse_ip(meta.get("REMOTE_ADDR", ""))
    networks = _networks(tuple(settings.INVENTORY_TRUSTED_PROXIES))
    if not networks or not _trusted(remote, networks):
        return remote
    hop = remote
    for entry in reversed(meta.get("HTTP_X_FORWARDED_FOR", "").split(",")):
        entry = entry.strip()
        if not entry:
            continue
        try:
            candidate = parse_ip(entry)
        except ValueError:
            return hop  # a garbled chain: trust no further than the last proxy we know
        if not _trusted(candidate, networks):
            return candidate
        hop = candidate
    return hop
