"""Where the OpenAPI document and the server disagreed, checked against both, fast.

The six cases schemathesis found (issue 13, item 6), each asserted two ways:
what the server answers, and what the published schema says about the same
input (with the JSON Schema validator schemathesis itself uses for
OpenAPI 3.1), so neither side can drift alone. test_schema.py runs the whole
``st run --checks all`` against a real gunicorn.
"""

from __future__ import annotations

import json

import jsonschema_rs
import pytest
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone
from rest_framework.test import APIClient

from relevo_testing.factories import encode, make_payload
from reports import payload as payload_schema
from reports import addresses, services
from reports.models import AgentToken, Snapshot

pytestmark = pytest.mark.django_db
SECRET = "enroll-secret-for-tests-0123456789"


@pytest.fixture
def reader():
    user = get_user_model().objects.create_user("reader", password="pw-for-tests-only")
    client = APIClient(REMOTE_ADDR="127.0.0.1")
    client.credentials(HTTP_AUTHORIZATION=f"Token {services.api_token_create(user=user)[1]}")
    payload = payload_schema.decode(encode(make_payload()), now=timezone.now())
    services.snapshot_ingest(payload=payload, ip=addresses.parse_ip("10.0.0.5"))
    return client


@pytest.fixture(scope="module")
def document(django_db_setup, django_db_blocker):
    """The served schema, fetched once per module.

    Outside any test's transaction, so it rolls back its own: the request
    counts a read-throttle hit, which would otherwise stay in the test
    database for every later test to see.
    """
    with django_db_blocker.unblock(), transaction.atomic():
        schema = APIClient().get("/api/schema/?format=json").json()
        transaction.set_rollback(True)
    return schema


def parameter(document, path: str, name: str) -> dict:
    found = [p for p in document["paths"][path]["get"]["parameters"] if p["name"] == name]
    assert len(found) == 1, (path, name)
    return found[0]


def valid(document, schema: dict, value) -> bool:
    root = {**schema, "components": document["components"]}
    return jsonschema_rs.Draft202012Validator(root, validate_formats=True).is_valid(value)


def test_the_schema_is_openapi_3_1(document):
    # 3.1 is JSON Schema 2020-12, where 42.0 is an integer; the checks below rely on it.
    assert document["openapi"].startswith("3.1")


@pytest.mark.parametrize("ip, stored", [("", False), (" 10.0.0.5", False), ("10.0.0.5\n", False),
                                        ("fe80::1%eth0", False), ("10.0.0.5", True), ("::ffff:10.0.0.5", True)])
def test_query_ip_is_an_address_for_both(reader, document, ip, stored):
    response = reader.get("/query", {"ip": ip})
    assert response.status_code == (200 if stored else 400), response.content
    assert valid(document, parameter(document, "/query", "ip")["schema"], ip) is stored


@pytest.mark.parametrize("name, accepted", [("", False), (" ", True), ("nginx", True), ("a\x00b", False),
                                            ("x" * 256, True), ("x" * 257, False)])
def test_process_name_rules_are_the_same_for_both(reader, document, name, accepted):
    response = reader.get("/api/processes/", {"name": name})
    assert response.status_code == (200 if accepted else 400), response.content
    assert valid(document, parameter(document, "/api/processes/", "name")["schema"], name) is accepted


@pytest.mark.parametrize("name, value, accepted", [
    ("status", "", True), ("status", "online", True), ("status", "Online", False),
    ("ordering", "", True), ("ordering", "-last_seen", True), ("ordering", "key_hash", False),
    ("search", "", True), ("search", "x" * 256, True), ("search", "x" * 257, False), ("search", "a\x00b", False),
    ("os", "", True), ("os", "x" * 64, True), ("os", "x" * 65, False),
])
def test_host_list_filters_are_the_same_for_both(reader, document, name, value, accepted):
    """An empty filter is no filter for the server, so the schema must take it too (schemathesis' ST201)."""
    response = reader.get("/api/hosts/", {name: value})
    assert response.status_code == (200 if accepted else 400), response.content
    assert valid(document, parameter(document, "/api/hosts/", name)["schema"], value) is accepted


@pytest.mark.parametrize("query, accepted", [
    ({"page_size": "null"}, False), ({"page": ""}, False), ({"fields": "false", "page": ""}, False),
    ({"page_size": "0"}, False), ({"page": "0"}, False), ({"page": "last"}, False), ({"page_size": "1.5"}, False),
    ({"page_size": "2"}, True), ({"page": "1"}, True), ({"page_size": "100000"}, True),
])
def test_page_parameters_are_whole_numbers_for_both(reader, document, query, accepted):
    response = reader.get("/api/hosts/", query)
    assert response.status_code == (200 if accepted else 400), response.content
    if not accepted:
        assert response.json()["error"] == "invalid_parameters"
    for name, value in query.items():
        if name in ("page", "page_size"):
            schema = parameter(document, "/api/hosts/", name)["schema"]
            as_number = int(value) if value.isdigit() else value
            assert valid(document, schema, as_number) is accepted, (name, value)


def test_a_page_past_the_last_is_404_whatever_its_size(reader):
    assert reader.get("/api/hosts/", {"page": "2"}).status_code == 404
    assert reader.get("/api/hosts/", {"page": "9" * 5000}).status_code == 404


@pytest.mark.parametrize("host_id, accepted", [("", False), (" ", True), ("h" * 256, True), ("h" * 257, False),
                                               ("a\x00b", False), ("host-1", True)])
def test_enroll_host_id_rules_are_the_same_for_both(settings, document, host_id, accepted):
    settings.INVENTORY_ENROLL_SECRETS = [SECRET]
    body = {"enroll_secret": SECRET, "host_id": host_id}
    response = APIClient().post("/enroll", body, format="json")
    assert response.status_code == (201 if accepted else 400), response.content
    assert AgentToken.objects.count() == (1 if accepted else 0)  # (PostgreSQL cannot even look up a NUL)
    assert valid(document, {"$ref": "#/components/schemas/EnrollRequest"}, body) is accepted


def _upload(body: dict):
    token = services.agent_token_create(name="fleet")[1]
    client = APIClient(REMOTE_ADDR="10.0.0.5")
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client.generic("POST", "/upload", json.dumps(body).encode(), content_type="application/json")


@pytest.mark.parametrize("ips, accepted", [(["10.0.1.15", "2001:db8::1"], True), (["0" * 63], False),
                                           (["not an address"], False), ([""], False), (["10.0.0.1 "], False)])
def test_host_ips_are_addresses_for_both(data_dir, document, ips, accepted):
    body = make_payload()
    body["host"]["ips"] = ips
    response = _upload(body)
    assert response.status_code == (201 if accepted else 400), response.content
    assert Snapshot.objects.exists() is accepted
    assert valid(document, {"$ref": "#/components/schemas/SnapshotPayload"}, body) is accepted


def test_a_whole_number_spelled_as_a_float_is_an_integer_for_both(data_dir, document):
    body = make_payload()
    body["cpu"]["logical_cores"] = 8.0
    body["processes"][0]["pid"] = 1e3
    assert valid(document, {"$ref": "#/components/schemas/SnapshotPayload"}, body)
    response = _upload(body)
    assert response.status_code == 201, response.content
    stored = json.loads((data_dir / response.json()["file"]).read_bytes())[0]
    assert stored["cpu"]["logical_cores"] == 8 and stored["processes"][0]["pid"] == 1000
    assert '"pid":1000,' in (data_dir / response.json()["file"]).read_text()
    for bad in (8.5, "8", True):
        body["cpu"]["logical_cores"] = bad
        assert _upload(body).status_code == 400
        assert not valid(document, {"$ref": "#/components/schemas/SnapshotPayload"}, body)


def test_nul_in_a_payload_string_is_refused_by_both(data_dir, document):
    body = make_payload()
    body["os"]["kernel"] = "6.1\x00"
    assert _upload(body).status_code == 400
    assert not valid(document, {"$ref": "#/components/schemas/SnapshotPayload"}, body)
