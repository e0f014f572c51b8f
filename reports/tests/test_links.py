"""Odd links to the raw day-file download: never a 5xx, and the request log says what the client got.

``/hosts/<id>/days/<ip>/<day>.json`` takes an address from the link. It used
to be parsed with surrounding whitespace stripped while the raw text went on
into ``Content-Disposition``: a ``%0A`` made Django raise (500), and a
``%0C``, ``%1F`` or ``%E2%80%A8`` passed Django but not gunicorn, which
answered 500 itself after the request log had written 200. Both are checked
here through the test client and through a real gunicorn.
"""

from __future__ import annotations

import json
import logging
import urllib.parse

import pytest
import requests
from django.http import HttpResponse
from django.test import RequestFactory
from django.utils import timezone

from relevo_testing.factories import encode, make_payload
from reports import payload as payload_schema
from reports import addresses, services
from reports.middleware import RequestLogMiddleware
from reports.models import Snapshot

pytestmark = pytest.mark.django_db

# Leading and trailing, each: what the issue found, and their neighbours.
ODD = ["%0A", "%0C", "%1F", "%E2%80%A8", "%0D", "%09", "%20", "%C2%85", "%C2%A0", "%00", "%0B"]
ODD_ADDRESSES = [f"{c}127.0.0.1" for c in ODD] + [f"127.0.0.1{c}" for c in ODD] + [
    "127.0.0.1%0A%0D", "%3A%3Affff%3A127.0.0.1%0A", "127.0.0.1%25eth0", "fe80::1%25eth0",
    "127.000.0.1", "1.2.3", "%EF%BC%91.0.0.1",  # fullwidth digit
]


class LogLines(logging.Handler):
    """The request log's JSON lines, as written."""

    def __init__(self):
        super().__init__()
        self.lines: list[dict] = []

    def emit(self, record):
        self.lines.append(json.loads(record.getMessage()))


@pytest.fixture
def request_log():
    handler = LogLines()
    logger = logging.getLogger("relevo.request")
    logger.addHandler(handler)
    yield handler.lines
    logger.removeHandler(handler)


@pytest.fixture
def stored_day(data_dir):
    """One snapshot of a host from 127.0.0.1, so the well-formed link has a file to serve."""
    payload = payload_schema.decode(encode(make_payload()), now=timezone.now())
    result = services.snapshot_ingest(payload=payload, ip=addresses.parse_ip("127.0.0.1"))
    snapshot = Snapshot.objects.get(snapshot_id=result.snapshot_id)
    return snapshot.host_id, result.date


def test_the_well_formed_link_downloads_under_the_canonical_file_name(signed_in, stored_day):
    pk, day = stored_day
    response = signed_in.get(f"/hosts/{pk}/days/127.0.0.1/{day}.json")
    assert response.status_code == 200
    assert response["Content-Disposition"] == f'attachment; filename="127.0.0.1_{day}.json"'
    assert json.loads(b"".join(response.streaming_content))[0]["ip"] == "127.0.0.1"
    # Another spelling of the same address gets the same, canonical name.
    mapped = signed_in.get(f"/hosts/{pk}/days/::ffff:127.0.0.1/{day}.json")
    assert mapped.status_code == 200
    assert mapped["Content-Disposition"] == f'attachment; filename="127.0.0.1_{day}.json"'


@pytest.mark.parametrize("address", ODD_ADDRESSES)
def test_an_odd_address_in_the_link_is_a_404_and_logged_as_one(signed_in, stored_day, request_log, address):
    pk, day = stored_day
    response = signed_in.get(f"/hosts/{pk}/days/{address}/{day}.json")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert json.loads(response.content)["error"] == "not_found"
    assert "Content-Disposition" not in response
    assert [line["status"] for line in request_log] == [response.status_code]


def test_a_header_the_server_could_not_send_becomes_a_logged_500(rf: RequestFactory, request_log):
    """The last line of defence: whatever a view puts in a header, the log and the client agree."""
    def view(request):
        response = HttpResponse(b"{}", content_type="application/json")
        response["Content-Disposition"] = 'attachment; filename="a\x1fb.json"'
        return response

    response = RequestLogMiddleware(view)(rf.get("/somewhere"))
    assert response.status_code == 500
    assert json.loads(response.content)["error"] == "server_error"
    assert "Content-Disposition" not in response
    assert [(line["path"], line["status"]) for line in request_log] == [("/somewhere", 500)]


@pytest.mark.slow
def test_odd_links_through_gunicorn_answer_4xx_and_the_log_agrees(live_relevo):
    server = live_relevo
    stored = requests.post(f"{server.url}/upload", data=encode(make_payload()), timeout=30, headers={
        "Authorization": f"Token {server.agent_token}", "Content-Type": "application/json"})
    assert stored.status_code == 201, stored.text
    day = stored.json()["date"]
    session = requests.Session()
    session.get(f"{server.url}/accounts/login/", timeout=30)
    signed = session.post(f"{server.url}/accounts/login/", timeout=30, allow_redirects=False, data={
        "username": "admin", "password": server.admin_password,
        "csrfmiddlewaretoken": session.cookies["csrftoken"]})
    assert signed.status_code == 302, signed.text

    good = session.get(f"{server.url}/hosts/1/days/127.0.0.1/{day}.json", timeout=30)
    assert good.status_code == 200
    assert good.headers["Content-Disposition"] == f'attachment; filename="127.0.0.1_{day}.json"'

    received = {}
    for address in ODD_ADDRESSES:
        path = f"/hosts/1/days/{address}/{day}.json"
        response = session.get(server.url + path, timeout=30)
        received[urllib.parse.unquote(path, errors="strict")] = response.status_code
        assert response.status_code == 404, (address, response.status_code, response.text[:200])
        assert response.headers["Content-Type"] == "application/json"
        assert "Content-Disposition" not in response.headers

    logged = {}
    for line in server.log().split("\n"):  # not splitlines(): U+2028 and U+0085 stay inside a JSON line
        if line.startswith('{"time"'):
            entry = json.loads(line)
            logged[entry["path"]] = entry["status"]
    assert {path: logged.get(path) for path in received} == received
