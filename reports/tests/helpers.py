"""What the server's tests share that is not a fixture: storing a snapshot, calling the API, checking errors.

One definition each, so that a change to how ``/upload`` decodes a payload
or how an error body looks is made in one place for every test file.
Fixtures are in ``reports/tests/conftest.py``; the live server and the
payload builders, which the benchmarks use too, are in ``relevo_testing``.
"""

from __future__ import annotations

import datetime as dt
import io
import re
from pathlib import Path

from django.core.management import call_command
from django.utils import timezone
from rest_framework.test import APIClient

from relevo_testing.factories import encode, make_payload
from reports import payload as payload_schema
from reports import addresses, services
from reports.models import Host, HostDisk, HostIndexState, HostListeningSocket, HostSoftware, Snapshot, Software


def ingest(payload: dict | None = None, *, ip: str | addresses.IPAddress = "10.0.0.5", now: dt.datetime | None = None,
           **fields) -> services.IngestResult:
    """Store one snapshot as an accepted ``/upload`` does: encoded, decoded by the schema, then ingested.

    Without *payload*, ``make_payload(**fields)`` builds one. *now* is the
    server's clock for the decoder (default: the real one).
    """
    payload = make_payload(**fields) if payload is None else payload
    decoded = payload_schema.decode(encode(payload), now=now or timezone.now())
    return services.snapshot_ingest(payload=decoded, ip=addresses.parse_ip(str(ip)))


def api_client(token: str | None = None, ip: str = "10.0.0.5", **extra) -> APIClient:
    """A DRF test client connecting from *ip*, sending ``Authorization: Token <token>`` when given one."""
    client = APIClient(REMOTE_ADDR=ip, **extra)
    if token:
        client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


def upload(token, payload=None, *, body: bytes | None = None, ip: str = "10.0.0.5",
           content_type: str = "application/json", **headers):
    """POST /upload through the full request stack; *body* (raw bytes) wins over *payload*."""
    body = encode(payload or make_payload()) if body is None else body
    return api_client(token, ip).generic("POST", "/upload", body, content_type=content_type, **headers)


def assert_error(response, status: int, code: str | None = None) -> dict:
    """The documented error shape: *status*, a JSON body of error/detail(/fields), and *code* if given."""
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) <= {"error", "detail", "fields"} and body["error"] and body["detail"]
    if code:
        assert body["error"] == code, body
    return body


def assert_nothing_stored(data_dir: Path) -> None:
    """No day file and no row: what every refused upload must leave behind."""
    assert sorted(p.name for p in data_dir.iterdir() if p.suffix == ".json") == []
    assert Snapshot.objects.count() == 0 and Host.objects.count() == 0


def text(response) -> str:
    """The page's visible text, whitespace collapsed, for readable assertions."""
    body = re.sub(r"<[^>]+>", " ", response.content.decode())
    return re.sub(r"\s+", " ", body)


def all_rows() -> dict[str, list]:
    """Every row of the inventory search tables, sorted: to compare before and after."""
    return {
        "software": sorted(HostSoftware.objects.values_list("host_id", "software_id", "install_date")),
        "catalog": sorted(Software.objects.values_list("key", "host_count")),
        "listening": sorted(HostListeningSocket.objects.values_list("host_id", "protocol", "address", "port")),
        "disks": sorted(HostDisk.objects.values_list("host_id", "mount_point", "free_bytes")),
        "state": sorted(HostIndexState.objects.values_list("host_id", "software_digest", "disks_digest")),
    }


def same_day_start(span: dt.timedelta = dt.timedelta(hours=1)) -> dt.datetime:
    """10:00 UTC of the latest day on which 10:00 + *span* has passed: the series is one day, and in the past.

    Tests that send a series minutes apart start here, so that a run just
    after midnight does not split the series over two days (and two files),
    and no snapshot of a long series lies in the future (which is refused).
    """
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    start = now.replace(hour=10, minute=0, second=0)
    return start if start + span <= now else start - dt.timedelta(days=1)


def command(*args) -> str:
    """Run a management command in this process; what it printed to stdout (stderr is dropped)."""
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO())
    return out.getvalue()
