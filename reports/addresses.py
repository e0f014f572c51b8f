"""IP addresses: parsing, network membership, and which address a request came from.

A leaf: it imports nothing of Relevo's, so the store, the middleware, the
throttles, the sign-in lockout and the views can all use it.

**Parsing** is strict (``parse_ip``): the day files are named after the
address, so an address is used only in its parsed, canonical form.

**The client address** (``client_ip``) names the day file an upload goes to,
keys the throttles and the sign-in lockout, opens ``/metrics`` and goes into
the request log. Behind a load balancer the peer is the balancer, so
``X-Forwarded-For`` is honoured, but only when the immediate peer is a proxy
listed in ``INVENTORY_TRUSTED_PROXIES``; otherwise any client could pick the
file it writes to and the address it is counted against. It is worked out once
per request and every user reads that one answer.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable

from django.conf import settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Where a request's answer is kept: ``request.META`` is the one dict Django's
# request and DRF's wrapper around it share, and a client cannot send a key
# without the ``HTTP_`` prefix.
_CLIENT_IP_KEY = "relevo.client_ip"


def parse_ip(text: str) -> IPAddress:
    """A canonical address from text, or ValueError.

    Strict: the text must be the address and nothing else. Nothing is
    stripped, because the text may come from a link or a query string and
    the caller must never be able to keep using it raw (a trailing ``\\n``
    or ``\\x1f`` once reached a ``Content-Disposition`` header); callers use
    the returned address from here on. Scope ids (``fe80::1%eth0``) are
    refused, and IPv4-mapped IPv6 addresses become the IPv4 address they
    carry, so one host has one file name.
    """
    if not isinstance(text, str) or not text or len(text) > 45 or "%" in text:
        raise ValueError(f"{text!r} is not an IP address")
    address = ipaddress.ip_address(text)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


@functools.lru_cache(maxsize=8)
def _parse_networks(entries: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    # Keyed by the setting's value, so a changed setting (tests) is parsed anew.
    return tuple(ipaddress.ip_network(entry, strict=False) for entry in entries)


def parse_networks(entries: Iterable[str]) -> tuple[IPNetwork, ...]:
    """Addresses or networks from a setting (``10.0.0.0/8``, ``::1``); ValueError for a bad entry.

    Host bits are allowed (``10.0.0.7/8`` is ``10.0.0.0/8``), as operators
    write them; ``reports.checks`` reports a bad entry at start.
    """
    return _parse_networks(tuple(entries))


def in_networks(address: IPAddress, networks: Iterable[IPNetwork]) -> bool:
    """Whether *address* is in any of *networks* (an IPv4 address is never in an IPv6 network)."""
    return any(address.version == net.version and address in net for net in networks)


def _forwarded_client(meta: dict) -> IPAddress:
    """The client's address from a WSGI environ; ValueError when there is none usable.

    With trusted proxies, walk ``X-Forwarded-For`` from the right and take the
    first address that is not a trusted proxy: entries left of it were written
    by the client and prove nothing.
    """
    remote = parse_ip(meta.get("REMOTE_ADDR", ""))
    networks = parse_networks(settings.INVENTORY_TRUSTED_PROXIES)
    if not networks or not in_networks(remote, networks):
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
        if not in_networks(candidate, networks):
            return candidate
        hop = candidate
    return hop


def client_ip(request) -> IPAddress:
    """The address *request* came from (Django's request or DRF's); ValueError when there is none usable.

    Worked out on the first call and kept on the request, so the day file,
    the throttles, the lockout, the ``/metrics`` check and the request log
    all see the same answer and the headers are parsed once.
    """
    meta = request.META
    try:
        address = meta[_CLIENT_IP_KEY]
    except KeyError:
        try:
            address = _forwarded_client(meta)
        except ValueError:
            address = None
        meta[_CLIENT_IP_KEY] = address
    if address is None:
        raise ValueError("the request has no usable client address")
    return address


def client_address(request) -> str | None:
    """``client_ip`` as text, or None when there is none usable (a Unix socket peer): for logs and keys."""
    try:
        return str(client_ip(request))
    except ValueError:
        return None
