"""schemathesis against /api/schema/ of a real gunicorn: every operation, every check.

``st run --checks all`` (reports/tests/schemathesis.toml) sends each
operation generated requests from the OpenAPI document (the upload body from
the msgspec payload schema) with the credential it needs: an agent token for
/upload, a reader token for the read API, the enroll secret's field for
/enroll. Every check must pass: no 5xx, statuses, content types and bodies as
documented, schema-valid requests accepted and schema-invalid ones refused,
missing credentials refused. Bounded by ``max-examples`` and deterministic.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests
import schemathesis

from relevo_testing import live
from relevo_testing.factories import encode, make_payload

pytestmark = pytest.mark.slow

ENROLL_SECRET = "schema-test-enroll-secret-0123456789"
CONFIG = Path(__file__).with_name("schemathesis.toml")


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
    # The inventory read API (reports/api/inventory_views.py).
    ("GET", "/api/software/"), ("GET", "/api/software.csv"), ("GET", "/api/software/hosts/"),
    ("GET", "/api/listening/hosts/"), ("GET", "/api/disks/hosts/"),
    ("GET", "/api/hosts.csv"), ("GET", "/api/hosts/{id}/software/"), ("GET", "/api/hosts/{id}/software.csv"),
    ("GET", "/api/hosts/{id}/listening/"), ("GET", "/api/hosts/{id}/disks/"), ("GET", "/api/hosts/{id}/interfaces/"),
    ("GET", "/api/hosts/{id}/services/"), ("GET", "/api/hosts/{id}/hardware/"),
    # The alerts read API (reports/api/alert_views.py).
    ("GET", "/api/alerts/"), ("GET", "/api/alerts/rules/"),
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


def test_api_and_schema_agree_under_every_schemathesis_check(schema_server):
    """``st run`` with every check (``--checks all``) on every operation: no disagreement, no 5xx.

    The CLI runs schemathesis' coverage phase (boundary values such as
    ``ip=`` or ``page_size=null``) as well as fuzzing, which the Hypothesis
    strategies alone do not. Bounded and repeatable by schemathesis.toml
    (max examples per operation, deterministic generation).
    """
    env = {**os.environ, "RELEVO_URL": schema_server.url, "RELEVO_READER_TOKEN": schema_server.reader_token,
           "RELEVO_AGENT_TOKEN": schema_server.agent_token, "PYTHONPATH": str(live.ROOT)}
    run = subprocess.run(
        [str(Path(sys.executable).with_name("st")), "--no-color", "--config-file", str(CONFIG), "run",
         f"{schema_server.url}/api/schema/?format=json", "--checks", "all"],
        cwd=live.ROOT, env=env, capture_output=True, text=True, timeout=900,
    )
    assert run.returncode == 0, run.stdout[-20000:] + run.stderr[-5000:]
    assert f"Tested: {len(OPERATIONS)}" in run.stdout and " passed" in run.stdout, run.stdout[-3000:]


def test_each_component_is_listed_under_one_name():
    """Swagger UI lists components by title: the payload's Process and the API's Process must not both say "Process"."""
    from drf_spectacular.generators import SchemaGenerator

    schemas = SchemaGenerator().get_schema(request=None, public=True)["components"]["schemas"]
    shown = [schema.get("title", name) for name, schema in schemas.items()]
    assert len(shown) == len(set(shown)), sorted(n for n in shown if shown.count(n) > 1)
    assert {"Host", "Process", "PayloadProcess", "PayloadHostIdentity"} <= set(shown)
