"""Security controls, each proven against the real stack (Django, SQLite, day files).

Enrollment and host-bound tokens, revocation, the auth matrix of every
endpoint, throttling with Retry-After, the bad-input battery (status, JSON
error body, nothing written), the data-folder boundary, security headers,
CSRF, ``check --deploy`` and tokens staying out of logs.
"""

from __future__ import annotations

import gzip
import json
import os
import random
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import requests
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from rest_framework.test import APIClient

from relevo_testing.factories import encode, make_payload
from relevo_testing.prerequisites import require
from reports import addresses, services, store
from reports.models import AgentToken, Host, Snapshot, ThrottleCounter
from reports.tests.helpers import api_client, assert_error, assert_nothing_stored, upload

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
SECRET = "enroll-secret-for-tests-0123456789"


@pytest.fixture(autouse=True)
def _enroll_secret(settings):
    settings.INVENTORY_ENROLL_SECRETS = [SECRET]
    # The test users' passwords are never what is under test; a slow KDF would only slow the matrix.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def enroll(host_id="host-1", secret=SECRET, ip="10.0.0.5", **extra):
    return api_client(ip=ip).post("/enroll", {"enroll_secret": secret, "host_id": host_id, **extra}, format="json")


# --- enrollment and host-bound tokens --------------------------------------------------

def test_enroll_returns_a_token_bound_to_the_host_that_uploads_for_it(data_dir):
    response = enroll(host_id="host-1", hostname="web-01")
    assert response.status_code == 201
    body = response.json()
    assert body["token"].startswith("rlv_a_") and body["host_id"] == "host-1"
    stored = AgentToken.objects.get(host_id="host-1")
    assert stored.key_hash == AgentToken.hash(body["token"]) and body["token"] not in stored.key_hash
    assert upload(body["token"], make_payload(host_id="host-1")).status_code == 201


def test_a_bound_token_cannot_upload_for_another_host_and_nothing_is_stored(data_dir):
    token = enroll(host_id="host-1").json()["token"]
    response = upload(token, make_payload(host_id="host-2"))
    assert_error(response, 403, "host_mismatch")
    assert_nothing_stored(data_dir)


def test_a_bound_token_cannot_replay_another_hosts_snapshot_id_and_learns_nothing(data_dir):
    other = make_payload(host_id="host-b", hostname="db-secret-name")
    stored = upload(enroll(host_id="host-b", ip="10.9.9.9").json()["token"], other, ip="10.9.9.9")
    assert stored.status_code == 201
    files = sorted(p.name for p in data_dir.iterdir())
    token_a = enroll(host_id="host-a").json()["token"]

    replay = make_payload(host_id="host-a", hostname="web-a")
    replay["snapshot_id"] = other["snapshot_id"]
    response = upload(token_a, replay)
    body = assert_error(response, 403, "host_mismatch")
    for secret in ["10.9.9.9", stored.json()["date"], stored.json()["file"], "host-b", "db-secret-name"]:
        assert secret not in response.content.decode(), secret
    assert "snapshot_id" not in body and "ip" not in body
    assert sorted(p.name for p in data_dir.iterdir()) == files
    assert Snapshot.objects.count() == 1 and not Host.objects.filter(host_id="host-a").exists()

    # Its own snapshot replays as before (200, same answer), and a fleet token keeps today's rule.
    mine = make_payload(host_id="host-a")
    first = upload(token_a, mine)
    assert first.status_code == 201
    again = upload(token_a, mine)
    assert again.status_code == 200 and again.json() == first.json()
    fleet = services.agent_token_create(name="fleet")[1]
    assert upload(fleet, other, ip="10.9.9.9").json() == stored.json()


def test_re_enrolling_a_host_revokes_its_previous_token(data_dir):
    first = enroll(host_id="host-1").json()["token"]
    second = enroll(host_id="host-1").json()["token"]
    assert_error(upload(first, make_payload(host_id="host-1")), 401, "authentication_failed")
    assert upload(second, make_payload(host_id="host-1")).status_code == 201


def test_fleet_tokens_from_create_agent_token_still_upload_for_any_host(data_dir):
    _, raw = services.agent_token_create(name="fleet")
    enroll(host_id="host-1")  # enrolling a host does not touch fleet tokens
    assert upload(raw, make_payload(host_id="host-1")).status_code == 201
    assert upload(raw, make_payload(host_id="host-2")).status_code == 201


def test_every_configured_secret_enrolls_during_a_rotation(settings):
    settings.INVENTORY_ENROLL_SECRETS = ["old-secret-0123456789abc", "new-secret-0123456789abc"]
    assert enroll(secret="old-secret-0123456789abc").status_code == 201
    assert enroll(secret="new-secret-0123456789abc", host_id="h2").status_code == 201
    assert_error(enroll(secret=SECRET, host_id="h3"), 401, "authentication_failed")


@pytest.mark.parametrize("secret", ["wrong", SECRET + "x", SECRET[:-1], SECRET.upper()])
def test_a_wrong_enroll_secret_is_401_and_creates_no_token(secret):
    assert_error(enroll(secret=secret), 401, "authentication_failed")
    assert AgentToken.objects.count() == 0


def test_enrollment_is_off_without_a_configured_secret(settings):
    settings.INVENTORY_ENROLL_SECRETS = []
    assert_error(enroll(secret=""), 403, "permission_denied")
    assert AgentToken.objects.count() == 0


@pytest.mark.parametrize("body, field", [
    ({"host_id": "h"}, "enroll_secret"),
    ({"enroll_secret": SECRET}, "host_id"),
    ({"enroll_secret": SECRET, "host_id": ""}, "host_id"),
    ({"enroll_secret": SECRET, "host_id": "h" * 257}, "host_id"),
    ({"enroll_secret": SECRET, "host_id": "a\x00b"}, "host_id"),
    ({"enroll_secret": SECRET, "host_id": ["h"]}, "host_id"),
])
def test_bad_enroll_bodies_are_400(body, field):
    response = api_client().post("/enroll", body, format="json")
    assert field in assert_error(response, 400, "invalid_parameters")["fields"]
    assert AgentToken.objects.count() == 0


def test_enroll_refuses_other_content_types_and_methods():
    assert_error(api_client().post("/enroll", "enroll_secret=x", content_type="text/plain"), 415)
    assert_error(api_client().get("/enroll"), 405, "method_not_allowed")
    assert_error(api_client().generic("POST", "/enroll", b"{not json", content_type="application/json"), 400,
                 "malformed_body")


# --- revocation --------------------------------------------------------------------------

def test_revoke_agent_token_by_host_stops_the_token_at_once(data_dir):
    token = enroll(host_id="host-9").json()["token"]
    assert upload(token, make_payload(host_id="host-9")).status_code == 201
    call_command("revoke_agent_token", "--host-id", "host-9")
    assert_error(upload(token, make_payload(host_id="host-9")), 401, "authentication_failed")
    assert Snapshot.objects.count() == 1


@pytest.mark.parametrize("how", ["name", "prefix", "token"])
def test_revoke_agent_token_by_name_prefix_or_value(how):
    token, raw = services.agent_token_create(name="fleet-a")
    value = {"name": "fleet-a", "prefix": token.key_prefix, "token": raw}[how]
    call_command("revoke_agent_token", f"--{how}", value)
    assert_error(upload(raw), 401)


def test_revoking_nothing_is_an_error():
    with pytest.raises(CommandError):
        call_command("revoke_agent_token", "--host-id", "never-enrolled")


# --- auth matrix ------------------------------------------------------------------------

@pytest.fixture
def principals(data_dir):
    """Every kind of caller, plus one stored snapshot so read endpoints have something to find."""
    _, fleet = services.agent_token_create(name="fleet")
    assert upload(fleet, make_payload(host_id="host-1")).status_code == 201
    other = enroll(host_id="other-host").json()["token"]
    revoked_token, revoked = services.agent_token_create(name="old")
    services.agent_token_revoke(token=revoked_token)
    User = get_user_model()
    reader = User.objects.create_user("reader", password="pw-for-tests-only")
    admin = User.objects.create_superuser("admin", "a@example.invalid", "pw-for-tests-only")
    return {
        "none": api_client(),
        "agent": api_client(fleet),
        "other_host": api_client(other),
        "revoked": api_client(revoked),
        "reader": api_client(services.api_token_create(user=reader)[1]),
        "admin": _session(admin),
    }


def _session(user) -> APIClient:
    client = APIClient(REMOTE_ADDR="10.0.0.5")
    client.force_login(user)
    return client


READ_STATUS = {"none": 401, "agent": 403, "other_host": 403, "revoked": 401, "reader": 200, "admin": 200}
UPLOAD_STATUS = {"none": 401, "agent": 201, "other_host": 403, "revoked": 401, "reader": 403, "admin": 403}


@pytest.mark.parametrize("who", list(READ_STATUS))
@pytest.mark.parametrize("endpoint", ["query", "hosts", "host", "host_snapshots", "snapshot", "processes"])
def test_auth_matrix_read_endpoints(principals, who, endpoint):
    host = Host.objects.get()
    snapshot = Snapshot.objects.get()
    url = {
        "query": "/query?ip=10.0.0.5",
        "hosts": "/api/hosts/",
        "host": f"/api/hosts/{host.pk}/",
        "host_snapshots": f"/api/hosts/{host.pk}/snapshots/",
        "snapshot": f"/api/snapshots/{snapshot.snapshot_id}/",
        "processes": "/api/processes/?name=proc",
    }[endpoint]
    response = principals[who].get(url)
    assert response.status_code == READ_STATUS[who], (who, endpoint, response.content)
    if response.status_code >= 400:
        assert_error(response, READ_STATUS[who])


@pytest.mark.parametrize("who", list(UPLOAD_STATUS))
def test_auth_matrix_upload(principals, who, data_dir):
    before = (Snapshot.objects.count(), (data_dir / next(data_dir.glob("*.json")).name).read_bytes())
    payload = make_payload(host_id="host-1")
    response = principals[who].generic("POST", "/upload", encode(payload), content_type="application/json")
    assert response.status_code == UPLOAD_STATUS[who], response.content
    if response.status_code >= 400:
        assert_error(response, UPLOAD_STATUS[who])
        assert (Snapshot.objects.count(), next(data_dir.glob("*.json")).read_bytes()) == before
    else:
        assert Snapshot.objects.filter(snapshot_id=payload["snapshot_id"]).exists()


@pytest.mark.parametrize("who", list(READ_STATUS))
def test_auth_matrix_enroll_needs_only_the_secret(principals, who):
    response = principals[who].post("/enroll", {"enroll_secret": SECRET, "host_id": f"h-{who}"}, format="json")
    assert response.status_code == 201, response.content


def test_a_session_cannot_post_without_the_csrf_token(principals):
    client = APIClient(enforce_csrf_checks=True, REMOTE_ADDR="10.0.0.5")
    client.force_login(get_user_model().objects.get(username="admin"))
    assert_error(client.post("/api/hosts/", {}, format="json"), 405)
    assert_error(client.generic("POST", "/upload", encode(make_payload()), content_type="application/json"), 403)


# --- throttling ---------------------------------------------------------------------------

@pytest.fixture
def one_window(monkeypatch):
    """The throttle's clock pinned 30 s into a minute, so that the hits a test counts fall in one window.

    With the real clock a test that began at hh:mm:59.99 counted its last hits in the next
    minute's window and saw 401 where it expected 429.
    """
    from reports import throttling

    monkeypatch.setattr(throttling, "clock", lambda: 1_800_000_030.0)


def test_uploads_over_the_rate_get_429_with_retry_after_and_store_nothing(settings, data_dir, one_window):
    settings.INVENTORY_THROTTLE_UPLOAD = "3/min"
    _, raw = services.agent_token_create(name="fleet")
    for _ in range(3):
        assert upload(raw).status_code == 201
    response = upload(raw)
    assert_error(response, 429, "throttled")
    assert 1 <= int(response["Retry-After"]) <= 60
    assert Snapshot.objects.count() == 3
    # The count is per token and address: another host behind the same fleet token is not held back.
    assert upload(raw, ip="10.0.0.6").status_code == 201


def test_the_upload_count_is_one_shared_row_per_token_and_address(settings, one_window):
    settings.INVENTORY_THROTTLE_UPLOAD = "100/min"
    token, raw = services.agent_token_create(name="fleet")
    for _ in range(4):
        upload(raw)
    counter = ThrottleCounter.objects.get(key__startswith="upload:")
    assert counter.key == f"upload:{token.pk}:10.0.0.5" and counter.hits == 4


def test_reads_over_the_rate_get_429(settings, one_window):
    settings.INVENTORY_THROTTLE_READ = "2/min"
    user = get_user_model().objects.create_user("reader", password="pw-for-tests-only")
    client = api_client(services.api_token_create(user=user)[1])
    assert [client.get("/api/hosts/").status_code for _ in range(3)] == [200, 200, 429]
    assert int(client.get("/api/hosts/")["Retry-After"]) >= 1


def test_enroll_is_limited_per_address(settings, one_window):
    settings.INVENTORY_THROTTLE_ENROLL = "2/min"
    assert [enroll(host_id=f"h{i}").status_code for i in range(3)] == [201, 201, 429]
    assert enroll(host_id="h9", ip="10.0.0.99").status_code == 201
    assert AgentToken.objects.count() == 3


def test_repeated_auth_failures_from_one_address_get_429(settings, one_window):
    settings.INVENTORY_THROTTLE_AUTH_FAILURES = "3/min"
    statuses = [upload("rlv_a_" + "x" * 43).status_code for _ in range(4)]
    assert statuses == [401, 401, 401, 429]
    assert upload("rlv_a_" + "x" * 43, ip="10.0.0.77").status_code == 401
    assert [enroll(secret="bad", ip="10.0.0.78").status_code for _ in range(4)][-1] == 429


def test_rates_can_be_turned_off(settings):
    settings.INVENTORY_THROTTLE_UPLOAD = "off"
    _, raw = services.agent_token_create(name="fleet")
    assert all(upload(raw).status_code == 201 for _ in range(5))
    assert not ThrottleCounter.objects.exists()


def test_rate_strings_are_parsed_strictly():
    from reports.throttling import parse_rate
    assert parse_rate("120/min") == (120, 60) and parse_rate("10/5s") == (10, 5)
    assert parse_rate("1000/hour") == (1000, 3600) and parse_rate("off") is None
    for bad in ("fast", "10", "10/fortnight", "0/min", "-1/s"):
        with pytest.raises(ValueError):
            parse_rate(bad)


# --- bad-input battery ---------------------------------------------------------------------

def _deep(depth: int) -> bytes:
    return b'{"schema_version": 1, "x": ' + b"[" * depth + b"]" * depth + b"}"


def _with(**changes):
    payload = make_payload()
    for path, value in changes.items():
        node = payload
        *parents, leaf = path.split("__")
        for key in parents:
            node = node[int(key)] if key.isdigit() else node[key]
        node[int(leaf) if leaf.isdigit() else leaf] = value
    return encode(payload)


_BIG = 64 * 1024

BATTERY = [
    # (id, body, extra headers, content type, status, error code)
    ("malformed-json", b'{"schema_version": 1,', {}, "application/json", 400, "invalid_payload"),
    ("not-an-object", b"[1, 2, 3]", {}, "application/json", 400, "invalid_payload"),
    ("empty", b"", {}, "application/json", 400, "invalid_payload"),
    ("wrong-type", _with(processes__0__pid="one"), {}, "application/json", 400, "invalid_payload"),
    ("negative-pid", _with(processes__0__pid=-1), {}, "application/json", 400, "invalid_payload"),
    ("huge-number", _with(memory__total_bytes=10**30), {}, "application/json", 400, "invalid_payload"),
    ("huge-float", _with(cpu__usage_percent=1e308), {}, "application/json", 400, "invalid_payload"),
    ("nan", encode(make_payload()).replace(b'"usage_percent": 7.5', b'"usage_percent": NaN'), {},
     "application/json", 400, "invalid_payload"),
    ("schema-2", _with(schema_version=2), {}, "application/json", 400, "invalid_payload"),
    ("bad-uuid", _with(snapshot_id="../../etc/passwd"), {}, "application/json", 400, "invalid_payload"),
    ("naive-time", _with(collected_at="2026-11-27T08:00:00"), {}, "application/json", 400, "invalid_payload"),
    ("future", _with(collected_at="2099-01-01T00:00:00+00:00"), {}, "application/json", 400, "invalid_payload"),
    ("deep-nesting", _deep(100_000), {}, "application/json", 400, "invalid_payload"),
    ("nul-in-string", _with(host__hostname="web\x0001"), {}, "application/json", 400, "invalid_payload"),
    ("invalid-utf8", encode(make_payload()).replace(b'"web-01"', b'"web-\xff\xfe"'), {}, "application/json",
     400, "invalid_payload"),
    ("lone-surrogate", encode(make_payload()).replace(b'"web-01"', b'"web-\\ud800"'), {}, "application/json",
     400, "invalid_payload"),
    ("100k-processes", _with(processes=[{"pid": i} for i in range(100_000)]), {}, "application/json", 400,
     "invalid_payload"),
    ("100k-cmdline-args", _with(processes__0__cmdline=["a"] * 100_000), {}, "application/json", 400,
     "invalid_payload"),
    ("100k-ips", _with(host__ips=["10.0.0.1"] * 100_000), {}, "application/json", 400, "invalid_payload"),
    ("bad-host-ip", _with(host__ips=["../../etc"]), {}, "application/json", 400, "invalid_payload"),
    ("too-large", b"{" + b" " * (_BIG + 10) + b"}", {}, "application/json", 413, "payload_too_large"),
    ("gzip-bomb", gzip.compress(b" " * (_BIG * 50)), {"HTTP_CONTENT_ENCODING": "gzip"}, "application/json",
     413, "payload_too_large"),
    ("corrupt-gzip", b"\x1f\x8b\x08\x00garbage", {"HTTP_CONTENT_ENCODING": "gzip"}, "application/json", 400,
     "malformed_body"),
    ("brotli", encode(make_payload()), {"HTTP_CONTENT_ENCODING": "br"}, "application/json", 415,
     "unsupported_media_type"),
    ("text-plain", encode(make_payload()), {}, "text/plain", 415, "unsupported_media_type"),
    ("form", b"a=1", {}, "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
    ("xml", b"<snapshot/>", {}, "application/xml", 415, "unsupported_media_type"),
]


@pytest.mark.parametrize("body, headers, content_type, status, code",
                         [case[1:] for case in BATTERY], ids=[case[0] for case in BATTERY])
def test_bad_input_battery(settings, data_dir, body, headers, content_type, status, code):
    settings.INVENTORY_MAX_UPLOAD_BYTES = max(_BIG, len(body) + 1) if status != 413 else _BIG
    _, raw = services.agent_token_create(name="fleet")
    response = upload(raw, body=body, content_type=content_type, **headers)
    assert_error(response, status, code)
    assert_nothing_stored(data_dir)


@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE"])
def test_wrong_methods_on_upload_are_405_json(data_dir, method):
    _, raw = services.agent_token_create(name="fleet")
    assert_error(api_client(raw).generic(method, "/upload"), 405, "method_not_allowed")
    assert_nothing_stored(data_dir)


@pytest.mark.parametrize("remote", ["../../etc/passwd", "10.0.0.5/../../x", "", "fe80::1%eth0", "::ffff:../"])
def test_an_unusable_client_address_writes_nothing(data_dir, remote):
    _, raw = services.agent_token_create(name="fleet")
    response = upload(raw, ip=remote)
    assert_error(response, 400, "invalid_parameters")
    assert_nothing_stored(data_dir)


def test_forged_forwarded_addresses_cannot_pick_the_file(settings, data_dir):
    settings.INVENTORY_TRUSTED_PROXIES = ["10.0.0.0/24"]
    _, raw = services.agent_token_create(name="fleet")
    response = upload(raw, HTTP_X_FORWARDED_FOR="../../../tmp/evil, ..%2f..%2fx")
    assert response.status_code == 201 and response.json()["ip"] == "10.0.0.5"
    assert [p.name for p in data_dir.iterdir() if p.suffix == ".json"] == [response.json()["file"]]


@pytest.mark.parametrize("ip", ["../../etc/passwd", "10.0.0.5/../x", "%2e%2e%2f", "10.0.0.5\x00", "::1%lo"])
def test_query_with_path_like_addresses_is_400(ip):
    user = get_user_model().objects.create_user("reader", password="pw-for-tests-only")
    response = api_client(services.api_token_create(user=user)[1]).get("/query", {"ip": ip})
    assert_error(response, 400, "invalid_parameters")


# --- the data folder boundary --------------------------------------------------------------

def test_day_file_names_never_leave_the_folder(data_dir):
    import datetime as dt
    from hypothesis import given, settings as hsettings, strategies as st

    @hsettings(max_examples=300, deadline=None)
    @given(st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6)), st.dates())
    def check(ip, day):
        path = store.day_path(addresses.parse_ip(str(ip)), day)
        assert path.parent == data_dir and "/" not in path.name and ".." not in path.name
        assert store.parse_file_name(path.name) is not None

    check()
    with pytest.raises(TypeError):
        store.file_name("../../etc/passwd", dt.date(2026, 1, 1))


def test_a_symlinked_day_file_is_never_followed(data_dir, tmp_path):
    _, raw = services.agent_token_create(name="fleet")
    payload = make_payload()
    day = payload["collected_at"][:10]
    outside = tmp_path / "outside.json"
    outside.write_bytes(b"precious")
    (data_dir / f"10.0.0.5_{day}.json").symlink_to(outside)
    client = APIClient(REMOTE_ADDR="10.0.0.5", raise_request_exception=False)
    client.credentials(HTTP_AUTHORIZATION=f"Token {raw}")
    response = client.generic("POST", "/upload", encode(payload), content_type="application/json")
    # Not client input but tampering on the server: refused and logged as a server error, never followed.
    assert response.status_code == 500 and response.json()["error"] == "server_error"
    assert outside.read_bytes() == b"precious"
    assert Snapshot.objects.count() == 0


# --- headers, CSRF, deploy check, logs -------------------------------------------------------

@pytest.mark.parametrize("url", ["/healthz", "/api/docs/", "/api/schema/", "/admin/login/", "/no-such-page",
                                 "/query?ip=10.0.0.5"])
def test_security_headers_on_every_response(url):
    response = Client().get(url)
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert "frame-ancestors 'none'" in response["Content-Security-Policy"]
    assert "script-src 'self'" in response["Content-Security-Policy"]
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"


def test_admin_login_form_carries_and_enforces_csrf():
    client = Client(enforce_csrf_checks=True)
    page = client.get("/admin/login/")
    assert b'name="csrfmiddlewaretoken"' in page.content
    get_user_model().objects.create_superuser("admin", "a@example.invalid", "pw-for-tests-only")
    refused = client.post("/admin/login/", {"username": "admin", "password": "pw-for-tests-only"})
    assert refused.status_code == 403


def test_swagger_ui_is_served_from_local_files_only():
    page = Client().get("/api/docs/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "cdn" not in html.lower() and "https://" not in html
    assert "drf_spectacular_sidecar/swagger-ui-dist" in html
    script = Client().get("/api/docs/?script=")
    assert script.status_code == 200 and b"SwaggerUIBundle" in script.content


def _deploy_env(**extra) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "INVENTORY_", "DATABASE_URL"))}
    env.update({"DJANGO_SECRET_KEY": "k" + uuid.uuid4().hex + uuid.uuid4().hex, "DJANGO_DEBUG": "false",
                "DJANGO_ALLOWED_HOSTS": "relevo.example.com", **extra})
    return env


def _deploy_check(env, tmp_path) -> subprocess.CompletedProcess:
    env = {**env, "INVENTORY_DATA_DIR": str(tmp_path / "deploy-data")}
    return subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_check_deploy_is_clean_with_the_documented_production_environment(tmp_path):
    result = _deploy_check(_deploy_env(DJANGO_SECURE="true", DJANGO_SECURE_PROXY_SSL_HEADER="true"), tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_check_deploy_complains_without_https_settings(tmp_path):
    result = _deploy_check(_deploy_env(), tmp_path)
    assert result.returncode != 0
    assert "security.W004" in result.stderr + result.stdout  # no HSTS


@pytest.mark.slow
def test_tokens_never_appear_in_the_server_log(live_relevo):
    wrong = "rlv_a_" + "Z" * 43
    for token in (live_relevo.agent_token, wrong, live_relevo.reader_token):
        requests.post(f"{live_relevo.url}/upload", data=encode(make_payload()), timeout=10,
                      headers={"Authorization": f"Token {token}", "Content-Type": "application/json"})
        requests.get(f"{live_relevo.url}/query?ip=127.0.0.1", timeout=10,
                     headers={"Authorization": f"Token {token}"})
    requests.post(f"{live_relevo.url}/enroll", json={"enroll_secret": SECRET, "host_id": "h"}, timeout=10)
    live_relevo.stop()
    log = live_relevo.log()
    for secret in (live_relevo.agent_token, wrong, live_relevo.reader_token, SECRET):
        assert secret not in log and secret[6:20] not in log
    json.dumps(log)  # the log exists and is text


def _redis_up() -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1):
            return True
    except OSError:
        return False


def test_throttle_counts_in_redis_when_redis_url_is_set(settings, data_dir, one_window):
    from reports import throttling

    require(_redis_up(), "Redis is not running on 127.0.0.1:6379 (start redis-server to run this test)")
    settings.REDIS_URL = "redis://127.0.0.1:6379/15"
    settings.INVENTORY_THROTTLE_UPLOAD = "2/min"
    ip = f"10.{random.randint(0, 255)}.{random.randint(0, 255)}.{random.randint(1, 254)}"  # fresh keys each run
    _, raw = services.agent_token_create(name="fleet")
    assert [upload(raw, ip=ip).status_code for _ in range(3)] == [201, 201, 429]
    assert not ThrottleCounter.objects.exists()  # counted in Redis, not in the database
    assert isinstance(throttling.current_counter(), throttling.RedisCounter)


def test_an_unreachable_counter_store_lets_uploads_through(settings, data_dir):
    settings.REDIS_URL = "redis://127.0.0.1:9/0"  # nothing listens on the discard port
    settings.INVENTORY_THROTTLE_UPLOAD = "1/min"
    _, raw = services.agent_token_create(name="fleet")
    assert [upload(raw).status_code for _ in range(2)] == [201, 201]


@pytest.mark.django_db(transaction=True)
def test_the_database_counter_counts_windows_in_its_table():
    """In-process tests run on PostgreSQL (an UNLOGGED table) or an in-memory SQLite, both counted in
    ThrottleCounter; an SQLite file counts in a file of its own (test_throttling.py)."""
    from django.db import connection

    from reports import throttling

    assert isinstance(throttling.current_counter(), throttling.DatabaseCounter)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT relpersistence FROM pg_class WHERE relname = %s", [ThrottleCounter._meta.db_table])
            assert cursor.fetchone()[0] == "u"
    assert [throttling.hit("t:k", (2, 60), now=1200.0)[0] for _ in range(3)] == [True, True, False]
    assert throttling.hit("t:k", (2, 60), now=1260.0)[0]  # a new window starts from zero
    assert ThrottleCounter.objects.get(key="t:k").hits == 1


def test_revoking_in_the_admin_stops_the_token_at_once(data_dir):
    token, raw = services.agent_token_enroll(host_id="host-1")
    admin = get_user_model().objects.create_superuser("admin", "a@example.invalid", "pw-for-tests-only")
    client = Client()
    client.force_login(admin)
    response = client.post("/admin/reports/agenttoken/", {"action": "revoke", "_selected_action": [token.pk]})
    assert response.status_code == 302, response.content[:2000]
    assert_error(upload(raw, make_payload(host_id="host-1")), 401, "authentication_failed")
    assert_nothing_stored(data_dir)


@pytest.mark.parametrize("name, value, error_id", [
    ("INVENTORY_THROTTLE_UPLOAD", "fast", "reports.E009"),
    ("INVENTORY_ENROLL_SECRETS", ["short"], "reports.E010"),
])
def test_system_check_reports_bad_security_settings(settings, name, value, error_id):
    from reports.checks import check_security_settings

    setattr(settings, name, value)
    assert [e.id for e in check_security_settings()] == [error_id]
