"""Superseded by ``reports.addresses``; kept only until the callers are renamed (then deleted)."""

from __future__ import annotations

from types import SimpleNamespace

from reports.addresses import IPAddress
from reports.addresses import client_ip as _client_ip


def client_ip(meta: dict) -> IPAddress:
    """``reports.addresses.client_ip`` in the old call shape (it keeps its answer in *meta* alike)."""
    return _client_ip(SimpleNamespace(META=meta))
