"""Who is calling: agent tokens upload, people (session or API token) read.

Both kinds of token arrive as ``Authorization: Token <value>``; the prefix
(``rlv_a_`` for agents, ``rlv_u_`` for people) says which table to look in.
Only SHA-256 hashes are stored, and the lookup is by hash, so no comparison
of secret bytes happens in Python at all.
"""

from __future__ import annotations

import hmac

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser
from rest_framework import authentication, exceptions, permissions

from reports import rowsql, services, throttling
from reports.models import AgentToken, ApiToken


class AgentPrincipal(AnonymousUser):
    """``request.user`` for an agent: authenticated, but no person and no permissions."""

    def __init__(self, token: AgentToken):
        super().__init__()
        self.token = token

    @property
    def is_authenticated(self) -> bool:  # type: ignore[override]
        return True

    @property
    def is_anonymous(self) -> bool:  # type: ignore[override]
        return False

    def __str__(self) -> str:
        return f"agent:{self.token.name}"


# Every upload and query authenticates, so tokens (and a reader's user) are
# read without the query compiler (see reports.rowsql): 0.07 ms instead of 0.3 ms.
_AGENT_TOKEN_FIELDS = [field.name for field in AgentToken._meta.concrete_fields]
_API_TOKEN_FIELDS = [field.name for field in ApiToken._meta.concrete_fields]


def _user_fields() -> list[str]:
    return [field.name for field in get_user_model()._meta.concrete_fields]


class TokenAuthentication(authentication.BaseAuthentication):
    keyword = "Token"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Invalid Authorization header: use 'Token <token>'.")
        try:
            raw = header[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("Invalid token.") from None
        if raw.startswith(AgentToken.PREFIX):
            token = rowsql.select_one(AgentToken, _AGENT_TOKEN_FIELDS,
                                      where={"key_hash": AgentToken.hash(raw), "revoked_at": None})
            if token is not None:
                services.token_touch(token=token)
                return AgentPrincipal(token), token
        elif raw.startswith(ApiToken.PREFIX):
            token = rowsql.select_one(ApiToken, _API_TOKEN_FIELDS,
                                      where={"key_hash": ApiToken.hash(raw), "revoked_at": None})
            user = token and rowsql.select_one(get_user_model(), _user_fields(),
                                               where={get_user_model()._meta.pk.name: token.user_id, "is_active": True})
            if token is not None and user is not None:
                token.user = user
                services.token_touch(token=token)
                return token.user, token
        throttling.auth_failure(request)
        raise exceptions.AuthenticationFailed("Invalid or revoked token.")

    def authenticate_header(self, request) -> str:
        return self.keyword


class IsAgent(permissions.BasePermission):
    """Only an agent token may upload."""

    message = "Only an agent token may upload snapshots."

    def has_permission(self, request, view) -> bool:
        return isinstance(request.auth, AgentToken)


class IsReader(permissions.BasePermission):
    """A signed-in person or a person's API token; agent tokens read nothing."""

    message = "Agent tokens cannot read; use a user's session or API token."

    def has_permission(self, request, view) -> bool:
        user = request.user
        return bool(
            user and user.is_authenticated and not isinstance(user, AgentPrincipal) and user.is_active
        )


# --- per-host credentials (enrollment) ---------------------------------------------

class HostMismatch(exceptions.PermissionDenied):
    default_code = "host_mismatch"


def check_host_binding(token: AgentToken, host_id: str) -> None:
    """A token made by /enroll uploads for its own host only; fleet tokens for any.

    Called by the upload view after validation and before anything is
    written, so a refused upload leaves no file and no row.
    """
    if token.host_id is not None and token.host_id != host_id:
        raise HostMismatch(
            f"This token is bound to another host; it cannot upload a snapshot for host.id {host_id!r}."
        )


def enroll_secret_valid(candidate: str) -> bool:
    """Compare against every configured secret in constant time (no early exit)."""
    given = candidate.encode("utf-8")
    matched = False
    for secret in settings.INVENTORY_ENROLL_SECRETS:
        matched |= hmac.compare_digest(given, secret.encode("utf-8"))
    return matched
