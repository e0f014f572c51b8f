"""First-run enrollment: trade the fleet's enroll secret for a per-host token.

Like osquery/Fleet's enroll secret -> node key: the agent POSTs the shared
secret and its ``host.id`` to ``/enroll`` once, receives a token bound to that
host, and keeps it in its state folder (a file only its owner can read). From
then on the shared secret is needed only to enroll again, for example after
the token was revoked.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import requests

from . import __version__
from .sender import AuthRefused, RequestRefused, ServerUnavailable, status_error
from .state import write_atomic

log = logging.getLogger(__name__)

ENROLL_PATH = "/enroll"
TOKEN_FILE = "token"


def token_path(state_dir: Path) -> Path:
    return state_dir / TOKEN_FILE


def token_load(state_dir: Path) -> str | None:
    """The token kept from an earlier enrollment, or None."""
    try:
        token = token_path(state_dir).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    return token or None


def token_save(state_dir: Path, token: str) -> Path:
    """Keep the token crash-safely; the file is created 0600 (owner only) on POSIX."""
    path = token_path(state_dir)
    write_atomic(path, (token + "\n").encode("utf-8"))
    if os.name == "posix":
        os.chmod(path, 0o600)
    return path


def enroll(*, server: str, secret: str, host_id: str, hostname: str | None,
           ca_bundle: str | None = None, timeout: tuple[float, float] = (5.0, 30.0)) -> str:
    """POST /enroll and return the new token; raise the sender's typed errors on failure."""
    url = server.rstrip("/") + ENROLL_PATH
    body = {"enroll_secret": secret, "host_id": host_id}
    if hostname:
        body["hostname"] = hostname
    try:
        response = requests.post(
            url, data=json.dumps(body), timeout=timeout, verify=ca_bundle or True, allow_redirects=False,
            headers={"Content-Type": "application/json", "User-Agent": f"relevo-agent/{__version__}"},
        )
    except requests.exceptions.SSLError as exc:
        raise ServerUnavailable(f"TLS verification failed for {server}: {exc}") from exc
    except (requests.ConnectionError, requests.Timeout) as exc:
        raise ServerUnavailable(f"enrollment failed: {type(exc).__name__}: {exc}") from exc
    status = response.status_code
    error = status_error(status, snapshot=False)
    if error is None and status == 201:
        try:
            token = response.json()["token"]
        except (ValueError, KeyError, TypeError):
            raise RequestRefused("the server's enrollment answer has no token") from None
        if not isinstance(token, str) or not token:
            raise RequestRefused("the server's enrollment answer has no token")
        return token
    detail = response.text[:500]
    if error is AuthRefused:
        raise AuthRefused(f"the server refused enrollment (HTTP {status}): {detail}")
    if error is ServerUnavailable:
        raise ServerUnavailable(f"enrollment failed with HTTP {status}")
    # Another 2xx than 201 Created is no enrollment either: a proxy or a wrong --server answered.
    raise RequestRefused(f"enrollment failed with HTTP {status}: {detail}")
