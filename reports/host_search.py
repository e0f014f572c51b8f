"""What the host list searches and shows beyond the summary columns, derived from a host's newest snapshot.

Behind NAT or a proxy the address the server saw (``last_ip``) is not the
host's own, so an operator searching for ``10.20.0.7`` found nothing. Ingest
keeps, on the Host row, one lower-cased text of everything a search should
find (names, the host's own addresses, OS, version, kernel, CPU) so the
list's search is one substring match on one column, and the few values the
list shows that no summary column holds (own address, agent version, boot
time). Pure: ingest and the migration's backfill call the same function.
"""

from __future__ import annotations

import functools
import ipaddress

from reports import payload as payload_schema

# The Host columns ``host_search_columns`` fills.
COLUMNS = ("search_text", "own_address", "agent_version", "boot_time")


def own_addresses(payload: payload_schema.SnapshotPayload) -> list[str]:
    """The host's own addresses, reported ones first, without loopback or link-local ones, each once."""
    found = [*payload.host.ips]
    for interface in payload.interfaces or ():
        found.extend(entry.address for entry in interface.addresses)
    result: list[str] = []
    for text in found:
        address = _own_address(text)
        if address is not None and address not in result:
            result.append(address)
    return result


@functools.lru_cache(maxsize=4096)
def _own_address(text: str) -> str | None:
    """*text* as a canonical address, or None when it is not one or is loopback or link-local.

    Cached: a host reports the same few addresses on every upload, and
    parsing them was a measurable part of an upload's CPU.
    """
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
    if address.is_loopback or address.is_link_local:
        return None
    return str(address)


def host_search_columns(payload: payload_schema.SnapshotPayload, *, last_ip: str) -> dict[str, object]:
    """The Host columns of COLUMNS that this snapshot gives its host when it is the newest one."""
    system = payload.os
    addresses = own_addresses(payload)
    words = [
        payload.host.hostname, payload.host.fqdn, payload.host.id, last_ip, *addresses,
        system.name, system.version, system.release, system.build, system.distribution,
        system.distribution_version, system.kernel, system.arch, payload.cpu.model,
    ]
    if system.distribution:
        words.append(f"{system.distribution} {system.distribution_version or ''}")
    return {
        "search_text": "\n".join(dict.fromkeys(w.strip().lower() for w in words if w and w.strip())),
        "own_address": addresses[0] if addresses else "",
        "agent_version": payload.agent.version[:64],
        "boot_time": payload.host.boot_time,
    }


def search_needle(search: str) -> str:
    """The text ``search_text`` is matched against: the search as typed, lower-cased (it is stored lower-case)."""
    return search.strip().lower()
