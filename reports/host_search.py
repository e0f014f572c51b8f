"""What the host list searches and shows beyond the summary columns, derived from a host's newest snapshot.

Behind NAT or a proxy the address the server saw (``last_ip``) is not the
host's own, so an operator searching for ``10.20.0.7`` found nothing. Ingest
keeps one lower-cased text of everything a search should find (names, the
host's own addresses, OS, version, kernel, CPU), so the list's search is one
substring match on one column, and on the Host row the few values the list
shows that no summary column holds (own address, agent version, boot time).

The text lives in ``HostSearch``, a table of its own, and the host row keeps
only its digest (``search_digest``): the host row is rewritten on every
upload, and its copy of the text with it, trigram index entries and all
(docs/performance.md). Pure: ingest, the loaders and the migrations call the
same functions.
"""

from __future__ import annotations

import functools
import ipaddress

from reports import payload as payload_schema
from reports.digests import text_digest  # Host.search_digest: an upload compares it, not the text

# The Host columns ``host_search_columns`` fills.
COLUMNS = ("own_address", "agent_version", "boot_time", "search_digest")


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


def search_text(payload: payload_schema.SnapshotPayload, *, last_ip: str) -> str:
    """The host's ``HostSearch`` text when this snapshot is its newest: each word once, lower-cased, one a line."""
    system = payload.os
    words = [
        payload.host.hostname, payload.host.fqdn, payload.host.id, last_ip, *own_addresses(payload),
        system.name, system.version, system.release, system.build, system.distribution,
        system.distribution_version, system.kernel, system.arch, payload.cpu.model,
    ]
    if system.distribution:
        words.append(f"{system.distribution} {system.distribution_version or ''}")
    return "\n".join(dict.fromkeys(w.strip().lower() for w in words if w and w.strip()))


def shown_columns(payload: payload_schema.SnapshotPayload) -> dict[str, object]:
    """The values the host list shows that no summary column holds: own address, agent version, boot time."""
    addresses = own_addresses(payload)
    return {
        "own_address": addresses[0] if addresses else "",
        "agent_version": payload.agent.version[:64],
        "boot_time": payload.host.boot_time,
    }


def host_search_columns(payload: payload_schema.SnapshotPayload, *, text: str) -> dict[str, object]:
    """The Host columns of COLUMNS that this snapshot gives its host when it is the newest one.

    *text* is the snapshot's ``search_text``, which the caller also writes to the host's ``HostSearch`` row.
    """
    return {**shown_columns(payload), "search_digest": text_digest(text)}


def search_needle(search: str) -> str:
    """The text ``HostSearch.text`` is matched against: the search as typed, lower-cased (it is stored lower-case)."""
    return search.strip().lower()
