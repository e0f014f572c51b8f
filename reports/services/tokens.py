"""Credentials: agent tokens (upload) and API tokens (read), made, enrolled, revoked and touched here.

Only a hash and a short display prefix of a token are stored; the raw value
is returned once, by the function that makes it.
"""

from __future__ import annotations

import datetime as dt

from django.db import transaction
from django.utils import timezone

from reports.models import AgentToken, ApiToken


def agent_token_create(*, name: str) -> tuple[AgentToken, str]:
    """A new agent token; the raw value is returned once and never stored."""
    raw, prefix, digest = AgentToken.generate()
    token = AgentToken.objects.create(name=name, key_prefix=prefix, key_hash=digest)
    return token, raw


def agent_token_revoke(*, token: AgentToken) -> None:
    if token.revoked_at is None:
        AgentToken.objects.filter(pk=token.pk).update(revoked_at=timezone.now())
        token.refresh_from_db(fields=["revoked_at"])


def agent_token_enroll(*, host_id: str, hostname: str = "") -> tuple[AgentToken, str]:
    """A new token bound to *host_id*; the host's earlier enrolled tokens stop working.

    One live enrolled token per host: an agent that lost its state folder
    re-enrolls, and the token it lost cannot be used by whoever finds it.
    Fleet tokens (no host binding) are left alone.
    """
    raw, prefix, digest = AgentToken.generate()
    with transaction.atomic():
        AgentToken.objects.filter(host_id=host_id, revoked_at__isnull=True).update(revoked_at=timezone.now())
        name = f"enrolled: {hostname or host_id}"[:100]
        token = AgentToken.objects.create(name=name, key_prefix=prefix, key_hash=digest, host_id=host_id)
    return token, raw


def agent_tokens_revoke_for_host(*, host_id: str) -> int:
    """Revoke every live token bound to *host_id*; returns how many were revoked."""
    return AgentToken.objects.filter(host_id=host_id, revoked_at__isnull=True).update(revoked_at=timezone.now())


def api_token_create(*, user, name: str = "api") -> tuple[ApiToken, str]:
    """A new read token for *user*; the raw value is returned once and never stored."""
    raw, prefix, digest = ApiToken.generate()
    token = ApiToken.objects.create(user=user, name=name, key_prefix=prefix, key_hash=digest)
    return token, raw


def api_token_revoke(*, token: ApiToken) -> None:
    """Stop a read token at once (every request looks its token up; nothing caches it)."""
    if token.revoked_at is None:
        ApiToken.objects.filter(pk=token.pk).update(revoked_at=timezone.now())
        token.refresh_from_db(fields=["revoked_at"])


def token_touch(*, token: AgentToken | ApiToken) -> None:
    """Note when a token was last used, at most hourly, so auth stays read-only on the hot path."""
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at > dt.timedelta(hours=1):
        type(token).objects.filter(pk=token.pk).update(last_used_at=now)
