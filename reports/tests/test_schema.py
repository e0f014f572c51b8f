"""schemathesis against /api/schema/ of a real gunicorn: every operation, with valid credentials.

Each operation gets generated requests from the OpenAPI document (the upload
body from the msgspec payload schema), sent with the credential it needs so
they reach the handlers: an agent token for /upload, a reader token for the
read API, the enroll secret's field for /enroll. Checks: no 5xx, every status
code and content type documented, every response body matching its schema.
Bounded by ``max_examples`` so the module finishes in about a minute.
"""

from __future__ import annotations

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings as hsettings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from reports.tests import live
from reports.tests.factories import encode, make_payload

pytestmark = pytest.mark.slow

ENROLL_SECRET = "schema-test-enroll-secret-0123456789"
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def schema_server(tmp_path_factory):
    server = live.start(tmp_path_factory.mktemp("schema"), workers=2, extra_env={
        # Fuzzing sends hundreds of requests a minute; limits are proven in test_security.
        "INVENTORY_THROTTLE_UPLOAD": "off", "INVENTORY_THROTTLE_READ": "off",
        "INVENTORY_THROTTLE_ENROLL": "off", "INVENTORY_THROTTLE_AUTH_FAILURES": "off",
        "INVENTORY_ENROLL_SECRET": ENROLL_SECRET,
    })
    # Something to find: host 1 and a stored day for 127.0.0.1.
    seeded = requests.post(f"{server.url}/upload", data=encode(make_payload()), timeout=10, headers={
        "Authorization": f"Token {server.agent_token}", "Content-Type": "application/json"})
    assert seeded.status_code == 201, seeded.text
    yield server
    server.stop()


@pytest.fixture(scope="module")
def api_schema(schema_server):
    return schemathesis.openapi.from_url(f"{schema_server.url}/api/schema/?format=json")


OPERATIONS = [
    ("POST", "/upload"), ("POST", "/enroll"), ("GET", "/query"), ("GET", "/api/hosts/"),
    ("GET", "/api/hosts/{id}/"), ("GET", "/api/hosts/{id}/snapshots/"),
    ("GET", "/api/snapshots/{snapshot_id}/"), ("GET", "/api/processes/"),
]


def test_the_schema_describes_every_endpoint(api_schema, schema_server):
    document = requests.get(f"{schema_server.url}/api/schema/?format=json", timeout=10).json()
    assert set(document["paths"]) >= {
        "/upload", "/query", "/enroll", "/api/hosts/", "/api/hosts/{id}/", "/api/hosts/{id}/snapshots/",
        "/api/snapshots/{snapshot_id}/", "/api/processes/",
    }
    body = document["paths"]["/upload"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/SnapshotPayload"}
    payload = document["components"]["schemas"]["SnapshotPayload"]
    assert {"snapshot_id", "collected_at", "host", "processes"} <= set(payload["required"])
    assert document["components"]["schemas"]["PayloadProcess"]["properties"]["pid"]["maximum"] == 2**32 - 1


def test_the_list_above_is_every_operation(api_schema):
    found = {(op.ok().method.upper(), op.ok().path) for op in api_schema.get_all_operations()}
    assert found == set(OPERATIONS)


# schemathesis' own pytest plugin does not work with pytest 9 yet, so the
# operations are driven through their Hypothesis strategies directly.
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=lambda m: m.value)
@pytest.mark.parametrize("method, path", OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_api_conforms_to_its_schema(api_schema, schema_server, method, path, mode):
    operation = api_schema[path][method]
    if path == "/upload":
        token = schema_server.agent_token
    elif path == "/enroll":
        token = None
    else:
        token = schema_server.reader_token
    headers = {"Authorization": f"Token {token}"} if token else {}

    @hsettings(max_examples=25, deadline=None, derandomize=True, database=None,
               suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode))
    def check(case):
        case.call_and_validate(base_url=schema_server.url, headers=headers, checks=CHECKS, timeout=30)

    check()
