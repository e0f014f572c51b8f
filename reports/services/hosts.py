"""Writes to a host that an operator asks for (the ingest path keeps the rest of a host up to date)."""

from __future__ import annotations

from reports import identity
from reports.models import Host


def identity_conflict_clear(*, host: Host) -> None:
    """Clear *host*'s identity conflict now (an admin's word that it is fixed); detection starts afresh."""
    Host.objects.filter(pk=host.pk).update(**identity.cleared())
