"""The sender against a real local HTTP server: headers, retries, Retry-After, timeouts, typed errors."""

from __future__ import annotations

import gzip
import json
import random
import time
from datetime import datetime, timedelta, timezone

import pytest

from agent.sender import (
    AuthRefused,
    RequestRefused,
    RetryPolicy,
    Sender,
    ServerUnavailable,
    SnapshotRejected,
    mask_token,
    parse_retry_after,
    status_error,
)

from .conftest import Reply

BODY = gzip.compress(json.dumps({"snapshot_id": "11111111-1111-1111-1111-111111111111"}).encode())
FAST = RetryPolicy(attempts=3, base_seconds=0.01, cap_seconds=0.05)


def _sender(url: str, **kwargs) -> Sender:
    kwargs.setdefault("policy", FAST)
    return Sender(server=url, token="agent-token-0123456789", **kwargs)


def test_post_carries_token_gzip_and_json(upload_server):
    _sender(upload_server.url + "/").send(BODY)
    [request] = upload_server.requests
    assert request["path"] == "/upload"
    assert request["headers"]["Authorization"] == "Token agent-token-0123456789"
    assert request["headers"]["Content-Encoding"] == "gzip"
    assert request["headers"]["Content-Type"] == "application/json"
    assert upload_server.snapshot_ids == ["11111111-1111-1111-1111-111111111111"]


def test_5xx_is_retried_then_delivered(upload_server):
    upload_server.script = [Reply(503), Reply(500)]
    _sender(upload_server.url).send(BODY)
    assert len(upload_server.requests) == 3 and len(upload_server.received) == 1


def test_5xx_forever_gives_up_as_unavailable(upload_server):
    upload_server.script = [Reply(502)] * 3
    with pytest.raises(ServerUnavailable, match="3 attempts"):
        _sender(upload_server.url).send(BODY)
    assert len(upload_server.requests) == 3


def test_429_waits_for_retry_after(upload_server):
    upload_server.script = [Reply(429, headers={"Retry-After": "1"})]
    _sender(upload_server.url).send(BODY)
    first, second = upload_server.requests
    assert second["at"] - first["at"] >= 1.0
    assert len(upload_server.received) == 1


def test_retry_after_too_long_spools_instead_of_waiting(upload_server):
    upload_server.script = [Reply(429, headers={"Retry-After": "3600"})]
    started = time.monotonic()
    with pytest.raises(ServerUnavailable, match="Retry-After"):
        _sender(upload_server.url).send(BODY)
    assert time.monotonic() - started < 1.0
    assert len(upload_server.requests) == 1


def test_401_stops_at_once(upload_server):
    upload_server.script = [Reply(401, body='{"detail": "Invalid token."}')]
    with pytest.raises(AuthRefused, match="Invalid token"):
        _sender(upload_server.url).send(BODY)
    assert len(upload_server.requests) == 1


def test_400_is_rejected_with_the_server_error(upload_server):
    upload_server.script = [Reply(400, body='{"processes": ["This field is required."]}')]
    with pytest.raises(SnapshotRejected) as caught:
        _sender(upload_server.url).send(BODY)
    assert caught.value.status == 400 and "This field is required" in caught.value.detail
    assert len(upload_server.requests) == 1


def test_404_is_a_configuration_error_not_retried(upload_server):
    upload_server.script = [Reply(404, body="not found")]
    with pytest.raises(RequestRefused, match="check --server"):
        _sender(upload_server.url).send(BODY)
    assert len(upload_server.requests) == 1


def test_slow_server_hits_the_read_timeout(upload_server):
    upload_server.script = [Reply(delay=3.0)]
    started = time.monotonic()
    with pytest.raises(ServerUnavailable, match="Timeout"):
        _sender(upload_server.url, read_timeout=0.3, policy=RetryPolicy(attempts=1)).send(BODY)
    assert time.monotonic() - started < 2.0


def test_connection_refused_is_retried_then_unavailable(free_port):
    with pytest.raises(ServerUnavailable, match="ConnectionError"):
        _sender(f"http://127.0.0.1:{free_port}").send(BODY)


def test_stop_request_interrupts_the_backoff(upload_server):
    upload_server.script = [Reply(503)]
    with pytest.raises(ServerUnavailable, match="stopped"):
        _sender(upload_server.url, wait=lambda seconds: True).send(BODY)
    assert len(upload_server.requests) == 1


def test_full_jitter_stays_within_the_capped_exponential():
    policy = RetryPolicy(base_seconds=1.0, cap_seconds=10.0)
    rng = random.Random(7)
    for attempt in range(8):
        ceiling = min(10.0, 2.0 ** attempt)
        delays = [policy.backoff(attempt, rng) for _ in range(200)]
        assert all(0.0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling / 2  # jitter spreads over the whole range


def test_parse_retry_after_forms():
    now = datetime(2026, 11, 27, 8, 0, tzinfo=timezone.utc)
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after("Fri, 27 Nov 2026 08:00:30 GMT", now=now) == 30.0
    assert parse_retry_after((now - timedelta(hours=1)).strftime("%a, %d %b %Y %H:%M:%S GMT"), now=now) == 0.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


def test_token_never_shows_in_repr():
    sender = _sender("http://127.0.0.1:1")
    assert "agent-token-0123456789" not in repr(sender)
    assert mask_token("agent-token-0123456789") == "agen…(22 chars)"
    assert mask_token("short") == "****"
    assert "pw" not in repr(Sender(server="https://bob:pw@relevo.example", token="t"))


@pytest.mark.parametrize(("status", "upload", "enroll"), [
    (200, None, None), (201, None, None),
    (301, RequestRefused, RequestRefused), (404, RequestRefused, RequestRefused),
    (401, AuthRefused, AuthRefused), (403, AuthRefused, AuthRefused),
    (400, SnapshotRejected, RequestRefused), (413, SnapshotRejected, RequestRefused),
    (415, SnapshotRejected, RequestRefused), (422, SnapshotRejected, RequestRefused),
    (429, ServerUnavailable, ServerUnavailable), (500, ServerUnavailable, ServerUnavailable),
    (503, ServerUnavailable, ServerUnavailable), (507, ServerUnavailable, ServerUnavailable),
])
def test_one_classifier_maps_statuses_for_uploads_and_enrollment(status, upload, enroll):
    """Only a snapshot can be refused for its content; an enrollment body the server refuses is misconfiguration."""
    assert status_error(status) is upload
    assert status_error(status, snapshot=False) is enroll
