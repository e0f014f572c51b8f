"""The read API (/api/hosts/, snapshots, processes) over real SQLite rows and real day files."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone
from rest_framework.test import APIClient

from relevo_testing.factories import encode, make_payload, rewrite_as_zlib
from reports import payload as payload_schema
from reports import addresses, services
from reports.models import Host, Snapshot
from reports.tests import helpers

pytestmark = pytest.mark.django_db


def ingest(*, ip: str = "10.0.0.5", age: dt.timedelta = dt.timedelta(0), **kwargs) -> dict:
    """Store a new snapshot collected *age* ago; returns the payload sent."""
    body = make_payload(collected_at=(timezone.now() - age).replace(microsecond=0), **kwargs)
    helpers.ingest(body, ip=ip)
    return body


@pytest.fixture
def fleet():
    """Three hosts: a fresh Linux web server, an offline Windows box, a stale Linux db."""
    ingest(host_id="id-web", hostname="web-01", ip="10.0.0.5")
    ingest(host_id="id-win", hostname="win-07", ip="10.0.0.7", age=dt.timedelta(hours=2),
           os={"name": "Windows", "version": "10.0.22631"})
    ingest(host_id="id-db", hostname="db-02", ip="10.0.0.9", age=dt.timedelta(days=30),
           processes=1)
    return {host.hostname: host for host in Host.objects.all()}


def names(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [host["hostname"] for host in response.json()["results"]]


def test_host_list_is_paginated_and_ordered_by_hostname(reader_client, fleet):
    body = reader_client.get("/api/hosts/").json()
    assert body["count"] == 3 and body["next"] is None
    assert [h["hostname"] for h in body["results"]] == ["db-02", "web-01", "win-07"]
    web = body["results"][1]
    assert web["host_id"] == "id-web" and web["last_ip"] == "10.0.0.5" and web["status"] == "online"
    assert web["latest_snapshot_id"] == str(Snapshot.objects.get(host__host_id="id-web").snapshot_id)
    page = reader_client.get("/api/hosts/", {"page_size": 2, "page": 2}).json()
    assert [h["hostname"] for h in page["results"]] == ["win-07"] and page["previous"]


def test_host_list_search_os_status_and_ordering(reader_client, fleet):
    assert names(reader_client.get("/api/hosts/", {"search": "WEB"})) == ["web-01"]
    assert names(reader_client.get("/api/hosts/", {"search": "10.0.0.9"})) == ["db-02"]
    assert names(reader_client.get("/api/hosts/", {"os": "Windows"})) == ["win-07"]
    assert names(reader_client.get("/api/hosts/", {"status": "online"})) == ["web-01"]
    assert names(reader_client.get("/api/hosts/", {"status": "offline"})) == ["win-07"]
    assert names(reader_client.get("/api/hosts/", {"status": "stale"})) == ["db-02"]
    assert names(reader_client.get("/api/hosts/", {"ordering": "-last_seen"})) == ["web-01", "win-07", "db-02"]
    assert names(reader_client.get("/api/hosts/", {"ordering": "process_count"}))[0] == "db-02"


@pytest.mark.parametrize("params, field", [
    ({"status": "sleepy"}, "status"),
    ({"ordering": "key_hash"}, "ordering"),
    ({"search": "x" * 300}, "search"),
])
def test_bad_host_list_parameters_are_400(reader_client, fleet, params, field):
    response = reader_client.get("/api/hosts/", params)
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid_parameters" and field in body["fields"]


def test_bad_host_list_parameters_are_named_with_their_messages(reader_client, fleet):
    """Every bad parameter is reported at once, with the messages clients have always been answered with."""
    response = reader_client.get("/api/hosts/", {"status": "sleepy", "ordering": "key_hash", "os": "x" * 65,
                                                 "search": "a\x00b"})
    assert response.status_code == 400
    assert response.json() == {"error": "invalid_parameters", "detail": "The request is not valid.", "fields": {
        "search": ["Null characters are not allowed."],
        "os": ["Ensure this value has at most 64 characters (it has 65)."],
        "status": ["Select a valid choice. sleepy is not one of the available choices."],
        "ordering": ["Select a valid choice. key_hash is not one of the available choices."],
    }}
    assert names(reader_client.get("/api/hosts/", {"search": "", "os": "", "status": "", "ordering": ""})) == \
        ["db-02", "web-01", "win-07"]  # an empty parameter is no filter


def test_a_page_past_the_end_is_404_json(reader_client, fleet):
    response = reader_client.get("/api/hosts/", {"page": 9})
    assert response.status_code == 404 and response.json()["error"] == "not_found"


def test_host_detail_and_its_snapshots_newest_first(reader_client, fleet):
    host = fleet["web-01"]
    ingest(host_id="id-web", hostname="web-01", ip="10.0.0.5", age=dt.timedelta(minutes=10))
    detail = reader_client.get(f"/api/hosts/{host.pk}/").json()
    assert detail["hostname"] == "web-01" and detail["os_name"] == "Linux"
    snapshots = reader_client.get(f"/api/hosts/{host.pk}/snapshots/").json()
    assert snapshots["count"] == 2
    times = [s["collected_at"] for s in snapshots["results"]]
    assert times == sorted(times, reverse=True)
    assert reader_client.get("/api/hosts/999999/").status_code == 404
    assert reader_client.get("/api/hosts/999999/snapshots/").status_code == 404


def test_snapshot_detail_returns_the_stored_document(reader_client, data_dir):
    body = ingest(host_id="id-x", hostname="x-1", processes=4)
    response = reader_client.get(f"/api/snapshots/{body['snapshot_id']}/")
    assert response.status_code == 200
    data = response.json()
    assert data["host"]["host_id"] == "id-x" and data["process_count"] == 4
    assert data["document"]["snapshot_id"] == body["snapshot_id"]
    assert data["document"]["ip"] == "10.0.0.5" and len(data["document"]["processes"]) == 4


def test_snapshot_detail_falls_back_to_the_row_when_the_day_file_is_gone(reader_client, data_dir):
    body = ingest()
    for path in data_dir.glob("*.json"):
        path.unlink()
    data = reader_client.get(f"/api/snapshots/{body['snapshot_id']}/").json()
    assert data["document"]["snapshot_id"] == body["snapshot_id"]


def test_rows_written_with_zlib_before_zstd_still_read(reader_client, data_dir):
    """/api/snapshots/{id}/ and /query read the row when the day file is gone, /api/processes/ always does."""
    body = ingest(host_id="id-old", hostname="old-1", processes=4)
    assert rewrite_as_zlib(body["snapshot_id"])[:1] == b"\x78"
    for path in data_dir.glob("*.json"):
        path.unlink()
    data = reader_client.get(f"/api/snapshots/{body['snapshot_id']}/").json()
    assert data["document"]["snapshot_id"] == body["snapshot_id"] and len(data["document"]["processes"]) == 4
    latest = reader_client.get("/query", {"ip": "10.0.0.5", "latest": "true"})
    assert latest.status_code == 200
    answer = json.loads(b"".join(latest.streaming_content))  # /query streams its answer
    assert [s["snapshot_id"] for s in answer["snapshots"]] == [body["snapshot_id"]]
    [match] = reader_client.get("/api/processes/", {"name": "proc-3"}).json()["results"]
    assert match["host"]["hostname"] == "old-1" and [p["name"] for p in match["processes"]] == ["proc-3"]


def test_unknown_snapshot_is_404(reader_client):
    response = reader_client.get("/api/snapshots/00000000-0000-4000-8000-000000000000/")
    assert response.status_code == 404 and response.json()["error"] == "not_found"


def test_process_search_lists_hosts_and_their_matching_processes(reader_client):
    body = make_payload(host_id="id-a", hostname="a-1")
    body["processes"][1]["name"] = "postgres"
    body["processes"][1]["cmdline"] = ["/usr/lib/postgresql/15/bin/postgres", "-D", "/var/lib/pg"]
    payload = payload_schema.decode(encode(body), now=timezone.now())
    services.snapshot_ingest(payload=payload, ip=addresses.parse_ip("10.0.0.5"))
    ingest(host_id="id-b", hostname="b-1", ip="10.0.0.6")
    response = reader_client.get("/api/processes/", {"name": "POSTGRES"})
    assert response.status_code == 200
    [match] = response.json()["results"]
    assert match["host"]["hostname"] == "a-1"
    assert [p["pid"] for p in match["processes"]] == [body["processes"][1]["pid"]]
    assert match["processes"][0]["cmdline"][0].endswith("/postgres")
    assert reader_client.get("/api/processes/", {"name": "no-such-thing"}).json()["results"] == []


def test_process_search_needs_a_name(reader_client):
    for params in ({}, {"name": ""}):
        response = reader_client.get("/api/processes/", params)
        assert response.status_code == 400 and "name" in response.json()["fields"]
    # A blank name is a name (the schema says minLength 1), and it matches nothing.
    blank = reader_client.get("/api/processes/", {"name": "   "})
    assert blank.status_code == 200 and blank.json()["results"] == []


def test_a_signed_in_session_reads_too():
    user = get_user_model().objects.create_user("viewer", password="pw-for-tests-only")
    client = APIClient()
    client.force_login(user)
    assert client.get("/api/hosts/").status_code == 200


def test_read_endpoints_refuse_writes_with_405(reader_client):
    for url in ("/api/hosts/", "/api/processes/", "/api/snapshots/00000000-0000-4000-8000-000000000000/"):
        response = reader_client.post(url, {}, format="json")
        assert response.status_code == 405 and response.json()["error"] == "method_not_allowed"
