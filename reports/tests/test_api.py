"""/upload, /query and the probes through Django's full request stack, real files and SQLite.

Every failure path asserts the status, the JSON error body, and that nothing
was written: no day file, no row.
"""

from __future__ import annotations

import datetime as dt
import gc
import gzip
import json
import os
import stat

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from relevo_testing.factories import encode, make_payload
from reports import payload as payload_schema
from reports import addresses, services, store
from reports.models import Snapshot
from reports.tests.helpers import api_client, assert_error, assert_nothing_stored, upload

pytestmark = pytest.mark.django_db


# --- upload: success ----------------------------------------------------------

def test_upload_stores_the_snapshot_and_answers_201(agent_token, data_dir):
    payload = make_payload()
    response = upload(agent_token, payload)
    assert response.status_code == 201
    day = dt.datetime.fromisoformat(payload["collected_at"]).date().isoformat()
    assert response.json() == {"snapshot_id": payload["snapshot_id"], "ip": "10.0.0.5", "date": day,
                               "file": f"10.0.0.5_{day}.json", "software_wanted": False}
    [stored] = json.loads((data_dir / f"10.0.0.5_{day}.json").read_bytes())
    assert stored["host"]["id"] == "host-1" and stored["ip"] == "10.0.0.5"
    assert Snapshot.objects.get().snapshot_id.hex == payload["snapshot_id"].replace("-", "")


def test_the_same_snapshot_twice_answers_200_with_the_original_result(agent_token, data_dir):
    payload = make_payload()
    first = upload(agent_token, payload)
    second = upload(agent_token, payload)
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json() == second.json()
    assert len(json.loads((data_dir / first.json()["file"]).read_bytes())) == 1
    assert Snapshot.objects.count() == 1


def test_gzip_bodies_are_accepted(agent_token, data_dir):
    response = upload(agent_token, body=gzip.compress(encode(make_payload())), HTTP_CONTENT_ENCODING="gzip")
    assert response.status_code == 201


def test_unknown_fields_are_ignored_and_not_stored(agent_token, data_dir):
    payload = make_payload(future_field={"x": 1})
    payload["processes"][0]["gpu_percent"] = 3
    assert upload(agent_token, payload).status_code == 201
    [stored] = json.loads((data_dir / upload(agent_token, payload).json()["file"]).read_bytes())
    assert "future_field" not in stored and "gpu_percent" not in stored["processes"][0]


def test_ipv6_clients_get_a_file_name_safe_file(agent_token, data_dir):
    response = upload(agent_token, ip="2001:db8::1")
    assert response.status_code == 201 and response.json()["file"].startswith("2001-db8--1_")
    assert response.json()["ip"] == "2001:db8::1"


def test_forwarded_for_is_ignored_unless_the_peer_is_a_trusted_proxy(agent_token, data_dir, settings):
    spoofed = upload(agent_token, HTTP_X_FORWARDED_FOR="10.66.66.66")
    assert spoofed.json()["ip"] == "10.0.0.5"
    settings.INVENTORY_TRUSTED_PROXIES = ["10.0.0.0/24"]
    proxied = upload(agent_token, HTTP_X_FORWARDED_FOR="1.2.3.4, 198.51.100.7, 10.0.0.9")
    assert proxied.json()["ip"] == "198.51.100.7"


# --- upload: failures -------------------------------------------------------------

def test_upload_without_a_token_is_401(data_dir):
    assert_error(upload(None), 401, "not_authenticated")
    assert_nothing_stored(data_dir)


@pytest.mark.parametrize("token", ["rlv_a_wrong", "rlv_u_wrong", "nonsense", "a b"])
def test_upload_with_a_wrong_token_is_401(token, data_dir, agent_token):
    assert_error(upload(token), 401, "authentication_failed")
    assert_nothing_stored(data_dir)


def test_upload_with_a_revoked_token_is_401(data_dir):
    token, raw = services.agent_token_create(name="gone")
    services.agent_token_revoke(token=token)
    assert_error(upload(raw), 401, "authentication_failed")
    assert_nothing_stored(data_dir)


def test_a_reader_cannot_upload(reader_token, data_dir):
    assert_error(upload(reader_token), 403, "permission_denied")
    assert_nothing_stored(data_dir)


@pytest.mark.parametrize("body,field", [
    (b"{", None),
    (b"[]", "$"),
    (b"\xff\xfe", None),
    (b"   ", None),
    (encode({**make_payload(), "schema_version": 2}), "schema_version"),
    (encode({**make_payload(), "collected_at": "2026-11-27T08:00:00"}), "collected_at"),
    (encode({**make_payload(), "collected_at": "2999-01-01T00:00:00Z"}), "collected_at"),
    (encode({**make_payload(), "snapshot_id": "not-a-uuid"}), "snapshot_id"),
    (encode({**make_payload(), "processes": [{"pid": 10**30}]}), "processes[0].pid"),
    (encode({**make_payload(), "processes": [{"pid": "1"}]}), "processes[0].pid"),
    (encode({**make_payload(), "processes": [{"pid": 1}] * 20_001}), "processes"),
    (encode({**make_payload(), "users": [{"name": "a\u0000b"}]}), "users[0].name"),
    (encode({**make_payload(), "processes": [{"pid": 1}, {"pid": 2, "cmdline": ["x", "\u0000"]}]}),
     "processes[1].cmdline[1]"),
    (encode({**make_payload(), "host": {"id": "", "hostname": "h"}}), "host.id"),
    (encode({**make_payload(), "host": {"id": "x", "hostname": "h", "ips": ["../../etc"]}}), "host.ips[0]"),
    (encode({**make_payload(), "cpu": {"usage_percent": 101}}), "cpu.usage_percent"),
    (encode({**make_payload(), "processes": [{"pid": 1, "cmdline": ["a" * 5000, "b" * 5000]}]}), "processes[0].cmdline"),
    (encode({**make_payload(), "processes": [{"pid": 1, "cmdline": ["x"]}, {"pid": 2},
                                              {"pid": 3, "cmdline": ["a" * 4097, "b" * 4096]}]}), "processes[2].cmdline"),
    (encode({**make_payload(), "nested": [[[[[]]]]] * 1}).replace(b"[[[[[]]]]]", b"[" * 50_000 + b"]" * 50_000), None),
])
def test_invalid_payloads_are_400_with_the_field_and_store_nothing(agent_token, data_dir, body, field):
    response = upload(agent_token, body=body)
    error = assert_error(response, 400, "invalid_payload")
    if field:
        assert field in error["fields"], error
    assert_nothing_stored(data_dir)


def test_a_decoded_snapshot_is_not_tracked_by_the_garbage_collector():
    snapshot = payload_schema.decode(encode(make_payload()), now=timezone.now())
    assert snapshot.processes
    assert not any(gc.is_tracked(item) for item in [snapshot, snapshot.host, *snapshot.processes, *snapshot.users])


def test_a_cmdline_of_exactly_the_budget_is_accepted(agent_token, data_dir):
    body = encode({**make_payload(), "processes": [{"pid": 3, "cmdline": ["a" * 4096, "b" * 4096]}]})
    assert upload(agent_token, body=body).status_code == 201


def test_bodies_over_the_limit_are_413(agent_token, data_dir, settings):
    settings.INVENTORY_MAX_UPLOAD_BYTES = 4096
    assert_error(upload(agent_token, body=b"{" + b" " * 5000 + b"}"), 413, "payload_too_large")
    assert_nothing_stored(data_dir)


def test_a_full_day_file_refuses_more_with_413_day_file_full_and_changes_nothing(agent_token, data_dir, settings):
    """Past INVENTORY_DAY_FILE_MAX_BYTES: a clear, permanent refusal naming the limit; replays and other days still work."""
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    first = make_payload(collected_at=now - dt.timedelta(seconds=10))
    assert upload(agent_token, first).status_code == 201
    [path] = data_dir.glob("10.0.0.5_*.json")
    settings.INVENTORY_DAY_FILE_MAX_BYTES = path.stat().st_size + 100  # room for no second snapshot
    before = path.read_bytes()

    refused = make_payload(collected_at=now)
    error = assert_error(upload(agent_token, refused), 413, "day_file_full")
    assert str(settings.INVENTORY_DAY_FILE_MAX_BYTES) in error["detail"] and path.name in error["detail"]
    assert "INVENTORY_DAY_FILE_MAX_BYTES" in error["detail"]
    assert path.read_bytes() == before and Snapshot.objects.count() == 1
    assert not Snapshot.objects.filter(snapshot_id=refused["snapshot_id"]).exists()

    assert upload(agent_token, first).status_code == 200  # a replay of a stored snapshot is still answered
    assert upload(agent_token, make_payload(host_id="host-2"), ip="10.0.0.6").status_code == 201  # another file
    yesterday = make_payload(collected_at=now - dt.timedelta(days=1))
    assert upload(agent_token, yesterday).status_code == 201


def test_a_day_file_cap_below_the_upload_limit_is_a_system_check_warning(settings):
    from reports.checks import check_inventory_settings

    assert settings.INVENTORY_DAY_FILE_MAX_BYTES == 100 * settings.INVENTORY_MAX_UPLOAD_BYTES  # the default
    assert "reports.W015" not in [message.id for message in check_inventory_settings()]
    settings.INVENTORY_DAY_FILE_MAX_BYTES = settings.INVENTORY_MAX_UPLOAD_BYTES - 1
    assert "reports.W015" in [message.id for message in check_inventory_settings()]


def test_a_day_file_fills_exactly_up_to_its_limit(agent_token, data_dir, settings):
    """The cap counts the bytes the append will write: a snapshot that just fits is stored."""
    from reports import store

    payload = make_payload()
    assert upload(agent_token, payload).status_code == 201
    [path] = data_dir.glob("10.0.0.5_*.json")
    size_one = path.stat().st_size
    document = path.read_bytes()[2:-3]
    ip_day = store.parse_file_name(path.name)
    with store.locked_for_append(*ip_day) as writer:
        expected = writer.size_after(document)
        writer.append(document)
    assert path.stat().st_size == expected == 2 * size_one - 3  # "[\n" + doc + "\n," + doc + "\n]\n"
    settings.INVENTORY_DAY_FILE_MAX_BYTES = path.stat().st_size + len(document) + 2 + 50
    sized = make_payload()  # same shape, same length of document within a few bytes
    assert upload(agent_token, sized).status_code == 201
    assert_error(upload(agent_token, make_payload()), 413, "day_file_full")


def test_a_gzip_bomb_is_413_without_inflating_it(agent_token, data_dir, settings):
    settings.INVENTORY_MAX_UPLOAD_BYTES = 64 * 1024
    bomb = gzip.compress(b"[" + b" " * (50 * 1024 * 1024) + b"]", compresslevel=9)
    assert len(bomb) < 64 * 1024
    assert_error(upload(agent_token, body=bomb, HTTP_CONTENT_ENCODING="gzip"), 413, "payload_too_large")
    assert_nothing_stored(data_dir)


def test_corrupt_or_unknown_encodings_are_refused(agent_token, data_dir):
    assert_error(upload(agent_token, body=b"not gzip", HTTP_CONTENT_ENCODING="gzip"), 400, "malformed_body")
    assert_error(upload(agent_token, body=gzip.compress(b"{}")[:-4], HTTP_CONTENT_ENCODING="gzip"), 400, "malformed_body")
    assert_error(upload(agent_token, HTTP_CONTENT_ENCODING="br"), 415, "unsupported_media_type")
    assert_nothing_stored(data_dir)


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", ""])
def test_a_body_that_is_not_json_is_415(agent_token, data_dir, content_type):
    assert_error(upload(agent_token, content_type=content_type), 415, "unsupported_media_type")
    assert_nothing_stored(data_dir)


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
def test_wrong_methods_are_405(agent_token, data_dir, method):
    response = api_client(agent_token).generic(method, "/upload")
    assert_error(response, 405, "method_not_allowed")
    assert_error(api_client().generic(method if method != "GET" else "POST", "/query"), 405, "method_not_allowed")
    assert_nothing_stored(data_dir)


# --- query -------------------------------------------------------------------------

def streamed_json(response):
    """The JSON of a streamed answer, checking that its Content-Length is what was sent."""
    assert response.streaming
    body = b"".join(response.streaming_content)
    assert int(response["Content-Length"]) == len(body)
    return json.loads(body)


def test_query_returns_the_newest_day_the_whole_day_or_the_latest(agent_token, reader_token, data_dir):
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    old = make_payload(collected_at=now - dt.timedelta(days=1))
    first, second = make_payload(collected_at=now - dt.timedelta(seconds=5)), make_payload(collected_at=now)
    for payload in (old, first, second):
        assert upload(agent_token, payload).status_code == 201
    reader = api_client(reader_token)
    days = [(now - dt.timedelta(days=1)).date().isoformat(), now.date().isoformat()]

    newest = reader.get("/query", {"ip": "10.0.0.5"})
    assert newest.status_code == 200
    body = streamed_json(newest)
    assert body["ip"] == "10.0.0.5" and body["date"] == days[1] and body["available_dates"] == days
    assert [s["snapshot_id"] for s in body["snapshots"]] == [first["snapshot_id"], second["snapshot_id"]]
    assert body["snapshots"] == json.loads((data_dir / f"10.0.0.5_{days[1]}.json").read_bytes())

    older = streamed_json(reader.get("/query", {"ip": "10.0.0.5", "date": days[0]}))
    assert [s["snapshot_id"] for s in older["snapshots"]] == [old["snapshot_id"]]

    latest = streamed_json(reader.get("/query", {"ip": "10.0.0.5", "latest": "true"}))
    assert [s["snapshot_id"] for s in latest["snapshots"]] == [second["snapshot_id"]]


def test_query_streams_a_big_day_from_disk_in_bounded_chunks(agent_token, reader_token, data_dir):
    """Never the whole file in memory: the answer comes in chunks of at most STREAM_CHUNK, and is valid JSON."""
    from reports import store

    payload = make_payload(processes=400)
    assert upload(agent_token, payload).status_code == 201
    [path] = data_dir.glob("10.0.0.5_*.json")
    day = dt.date.fromisoformat(path.name.split("_")[1][:-5])
    document = path.read_bytes()[2:-3]
    with store.locked_for_append(addresses.parse_ip("10.0.0.5"), day) as writer:
        for _ in range(40):  # the same document again: ~4 MB, more than 15 chunks
            writer.append(document)
    response = api_client(reader_token).get("/query", {"ip": "10.0.0.5", "date": day.isoformat()})
    assert response.status_code == 200 and response.streaming
    chunks = list(response.streaming_content)
    assert len(chunks) > 15 and max(map(len, chunks)) <= store.STREAM_CHUNK
    body = json.loads(b"".join(chunks))
    assert int(response["Content-Length"]) == sum(map(len, chunks))
    assert len(body["snapshots"]) == 41 and body["snapshots"][0]["snapshot_id"] == payload["snapshot_id"]


def test_a_signed_in_user_can_query(reader, agent_token):
    upload(agent_token)
    client = APIClient()
    client.force_login(reader)
    assert client.get("/query", {"ip": "10.0.0.5"}).status_code == 200


def test_query_auth(agent_token, reader_token):
    assert_error(api_client().get("/query", {"ip": "10.0.0.5"}), 401, "not_authenticated")
    assert_error(api_client(agent_token).get("/query", {"ip": "10.0.0.5"}), 403, "permission_denied")


@pytest.mark.parametrize("params,field", [
    ({}, "ip"),
    ({"ip": "fe80::1%eth0"}, "ip"),
    ({"ip": "../../etc/passwd"}, "ip"),
    ({"ip": "10.0.0.5", "date": "2026-02-30"}, "date"),
    ({"ip": "10.0.0.5", "date": "20261127"}, "date"),
    ({"ip": "10.0.0.5", "date": "../x"}, "date"),
    ({"ip": "10.0.0.5", "latest": "maybe"}, "latest"),
])
def test_query_rejects_bad_parameters_with_400(reader_token, params, field):
    error = assert_error(api_client(reader_token).get("/query", params), 400, "invalid_parameters")
    assert field in error["fields"]


def test_query_names_every_bad_parameter_with_its_message(reader_token):
    error = assert_error(api_client(reader_token).get("/query", {"ip": "bad", "date": "", "latest": "on"}),
                         400, "invalid_parameters")
    assert error["detail"] == "The query parameters are not valid."
    assert error["fields"] == {"ip": ["'bad' is not an IP address (scope ids are not accepted)."],
                               "date": ["'' is not a date in the form YYYY-MM-DD."],
                               "latest": ["Use latest=true or latest=false."]}
    assert assert_error(api_client(reader_token).get("/query", {"ip": ""}), 400, "invalid_parameters")["fields"] == \
        {"ip": ["This parameter is required."]}


def test_query_for_nothing_stored_is_404(reader_token, agent_token):
    assert_error(api_client(reader_token).get("/query", {"ip": "10.0.0.99"}), 404, "not_found")
    upload(agent_token)
    assert_error(api_client(reader_token).get("/query", {"ip": "10.0.0.5", "date": "2001-01-01"}), 404, "not_found")


# --- probes and errors ---------------------------------------------------------------

def test_health_and_readiness(data_dir):
    client = APIClient()
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"] == {"database": True, "migrated": True, "data_dir": True,
                                                                   "free_space": True}
    assert ready.json()["data_dir_free_bytes"] > 0


def test_readiness_fails_below_the_free_space_threshold(settings, data_dir):
    settings.INVENTORY_MIN_FREE_BYTES = store.free_bytes() * 2
    ready = APIClient().get("/readyz")
    assert ready.status_code == 503 and ready.json()["checks"]["free_space"] is False


def test_readiness_reports_an_unwritable_data_folder(settings, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    settings.INVENTORY_DATA_DIR = blocker / "data"
    ready = APIClient().get("/readyz")
    assert ready.status_code == 503 and ready.json()["checks"]["data_dir"] is False


def test_unknown_urls_are_json_404():
    assert_error(APIClient().get("/nothing-here"), 404, "not_found")


def test_the_system_check_reports_an_unusable_data_folder(settings, tmp_path):
    from reports.checks import check_data_dir

    blocker = tmp_path / "file"
    blocker.write_text("")
    settings.INVENTORY_DATA_DIR = blocker
    assert [e.id for e in check_data_dir()] == ["reports.E002"]
    settings.INVENTORY_DATA_DIR = blocker / "sub"
    assert [e.id for e in check_data_dir()] == ["reports.E001"]
    assert not os.path.exists(blocker / "sub")


def test_the_system_check_takes_a_missing_data_folder_it_could_create_and_leaves_it_missing(settings, tmp_path):
    """A check only looks (issue 14): the first write creates the folder, private (test_private_files)."""
    from reports.checks import check_data_dir

    settings.INVENTORY_DATA_DIR = tmp_path / "fresh" / "data"
    assert check_data_dir() == []
    assert not (tmp_path / "fresh").exists()
    (tmp_path / "locked").mkdir(mode=0o500)
    settings.INVENTORY_DATA_DIR = tmp_path / "locked" / "data"
    assert [e.id for e in check_data_dir()] == (["reports.E001"] if os.geteuid() != 0 else [])


def test_the_first_upload_creates_a_missing_data_folder_private(agent_token, settings, tmp_path):
    settings.INVENTORY_DATA_DIR = tmp_path / "fresh" / "data"
    response = upload(agent_token)
    assert response.status_code == 201, response.content
    assert (settings.INVENTORY_DATA_DIR / response.json()["file"]).is_file()
    assert stat.S_IMODE(settings.INVENTORY_DATA_DIR.stat().st_mode) == 0o700
