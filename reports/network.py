"""Superseded by ``reports.addresses``; kept only until the callers are renamed (then deleted)."""

from __future__ import annotations

from reports.addresses import IPAddress, _forwarded_client


def client_ip(meta: dict) -> IPAddress:
    """``reports.addresses.client_ip`` for a WSGI environ, uncached: the old call shape."""
    return _forwarded_client(meta)
