"""HTTP delivery of one snapshot to ``POST /upload``.

Every request has connect and read timeouts and verifies TLS. Failures become
typed errors so the CLI can choose between spooling, setting a snapshot aside
and stopping: 5xx, 429 and network errors are retried with capped exponential
backoff and full jitter (honouring ``Retry-After``); 401/403 stop at once; a
400 or 413 means this snapshot will never be accepted and must not be retried
(413 ``day_file_full``: the server stores no more of this host's snapshots
for that day).

The server answers 503 ``database_unavailable`` while its database is
unreachable (``Retry-After`` of seconds: waited for) and 507 ``storage_full``
while its disk is full (``Retry-After`` of minutes, longer than
``retry_after_max_seconds``: the snapshot is spooled at once). Both are
"later", never "set aside": the snapshot itself is fine.
"""

from __future__ import annotations

import email.utils
import json
import logging
import random
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable

import requests

from . import __version__
from .redact import cmdline_redact

log = logging.getLogger(__name__)

UPLOAD_PATH = "/upload"
# Statuses that mean "this body can never be accepted": keep it aside, do not loop.
_REJECTING = frozenset({400, 413, 415, 422})
_AUTH = frozenset({401, 403})


class DeliveryError(Exception):
    """Base of every way a delivery can fail."""


class AuthRefused(DeliveryError):
    """The server refused the token (401/403): retrying cannot help."""


class SnapshotRejected(DeliveryError):
    """The server refused this snapshot's content (400 ...); ``detail`` holds its answer."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"server rejected the snapshot with HTTP {status}: {detail}")
        self.status = status
        self.detail = detail

    @property
    def code(self) -> str:
        """The server's error code (``{"error": "<code>", ...}``), or "" when its answer has none."""
        try:
            answer = json.loads(self.detail)
        except ValueError:
            return ""
        code = answer.get("error") if isinstance(answer, dict) else None
        return code if isinstance(code, str) else ""


class RequestRefused(DeliveryError):
    """Another 4xx or a redirect: the agent is misconfigured (wrong URL), the snapshot is fine."""


class ServerUnavailable(DeliveryError):
    """The server could not be reached or kept failing; the snapshot should be spooled."""


def status_error(status: int, *, snapshot: bool = True) -> type[DeliveryError] | None:
    """What an HTTP status means to the agent: ``None`` for success, else the error to raise.

    The one mapping for every request the agent makes (``/upload``,
    ``/enroll``). ``ServerUnavailable`` (429, 5xx) means "try again later";
    ``SnapshotRejected`` applies only when the body is a snapshot
    (``snapshot=True``): another body the server cannot take means a
    misconfigured agent, ``RequestRefused``, as do redirects and other 4xx.
    """
    if 200 <= status < 300:
        return None
    if status in _AUTH:
        return AuthRefused
    if status == 429 or status >= 500:
        return ServerUnavailable
    if snapshot and status in _REJECTING:
        return SnapshotRejected
    return RequestRefused


@dataclass(frozen=True)
class RetryPolicy:
    """How hard one delivery tries before the snapshot goes to the spool."""

    attempts: int = 4
    base_seconds: float = 1.0
    cap_seconds: float = 30.0
    # A Retry-After longer than this is not waited for: the snapshot is spooled instead.
    retry_after_max_seconds: float = 120.0

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Full jitter (AWS architecture blog): uniform in [0, min(cap, base * 2**attempt)]."""
        return rng.uniform(0.0, min(self.cap_seconds, self.base_seconds * (2 ** attempt)))


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    now = now or datetime.now(timezone.utc)
    return max(0.0, (when - now).total_seconds())


def _default_wait(seconds: float) -> bool:
    time.sleep(seconds)
    return False


def mask_token(token: str) -> str:
    """Show just enough of a token to tell two apart in a log, never the token."""
    return f"{token[:4]}…({len(token)} chars)" if len(token) > 8 else "****"


def _answer(response: requests.Response) -> dict[str, Any]:
    try:
        answer = response.json()
    except ValueError:
        return {}
    return answer if isinstance(answer, dict) else {}


class Sender:
    """Posts gzip snapshot bodies to one server with one token."""

    def __init__(
        self,
        *,
        server: str,
        token: str,
        ca_bundle: str | None = None,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        policy: RetryPolicy | None = None,
        wait: Callable[[float], bool] = _default_wait,
        rng: random.Random | None = None,
    ) -> None:
        self.url = server.rstrip("/") + UPLOAD_PATH
        # For logs: a server URL may carry user:password@, which must not be printed.
        self.display_url = cmdline_redact([self.url])[0]
        self._token = token
        self.verify: bool | str = ca_bundle or True
        self.timeout = (connect_timeout, read_timeout)
        self.policy = policy or RetryPolicy()
        # wait(seconds) returns True when the agent was asked to stop meanwhile.
        self.wait = wait
        self.rng = rng or random.Random()
        self.session = requests.Session()
        self.session.headers.update({
            "Authorization": f"Token {token}",
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
            "User-Agent": f"relevo-agent/{__version__}",
        })

    def __repr__(self) -> str:
        return f"Sender(url={self.display_url!r}, token={mask_token(self._token)!r})"

    def close(self) -> None:
        """Release the connection pool."""
        self.session.close()

    def send(self, body_gz: bytes) -> dict[str, Any]:
        """Deliver one gzip body, retrying transient failures; raise a DeliveryError otherwise.

        Returns the server's JSON answer (``software_wanted`` ...), or ``{}``
        when the body is not a JSON object: the snapshot is delivered either way.
        """
        last_problem = "no attempt made"
        for attempt in range(self.policy.attempts):
            delay: float | None = None
            try:
                response = self.session.post(self.url, data=body_gz, timeout=self.timeout,
                                             verify=self.verify, allow_redirects=False)
            except requests.exceptions.SSLError as exc:
                raise ServerUnavailable(f"TLS verification failed for {self.display_url}: {exc}") from exc
            except (requests.ConnectionError, requests.Timeout) as exc:
                last_problem = f"{type(exc).__name__}: {exc}"
            else:
                status = response.status_code
                error = status_error(status)
                if error is None:
                    return _answer(response)
                detail = response.text[:2000]
                if error is AuthRefused:
                    raise AuthRefused(f"server refused the agent token (HTTP {status}): {detail}")
                if error is SnapshotRejected:
                    raise SnapshotRejected(status, detail)
                if error is RequestRefused:
                    raise RequestRefused(f"HTTP {status} from {self.display_url}: check --server ({detail[:200]})")
                last_problem = f"HTTP {status}"
                delay = parse_retry_after(response.headers.get("Retry-After"))
                if delay is not None and delay > self.policy.retry_after_max_seconds:
                    raise ServerUnavailable(f"HTTP {status}, Retry-After {delay:.0f}s is too long to wait")
            if attempt + 1 >= self.policy.attempts:
                break
            if delay is None:
                delay = self.policy.backoff(attempt, self.rng)
            log.info("delivery attempt %d failed (%s); retrying in %.2fs", attempt + 1, last_problem, delay)
            if self.wait(delay):
                raise ServerUnavailable(f"stopped while retrying ({last_problem})")
        raise ServerUnavailable(f"gave up after {self.policy.attempts} attempts: {last_problem}")
