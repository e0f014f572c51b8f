"""snapshot_ingest against real files and a real SQLite database."""

from __future__ import annotations

import datetime as dt
import functools
import json
import uuid

import pytest

from relevo_testing.factories import encode, make_payload
from reports import payload as payload_schema
from reports import addresses, documents, host_search, services, store
from reports import processes as processes_rule
from reports.models import ApiToken, Host, HostSearch, Snapshot
from reports.services import ingest as ingest_module
from reports.tests import helpers

pytestmark = pytest.mark.django_db

IP = addresses.parse_ip("10.0.0.5")
NOW = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.timezone.utc)


# Every snapshot here is stored from IP on a server whose clock reads NOW, unless a test says otherwise.
ingest = functools.partial(helpers.ingest, ip=IP, now=NOW)


def day_items(data_dir, name):
    return json.loads((data_dir / name).read_bytes())


def test_ingest_writes_the_day_file_and_the_rows(data_dir):
    payload = make_payload(collected_at=NOW)
    result = ingest(payload)
    assert result.created and result.file == "10.0.0.5_2026-11-27.json" and result.date == "2026-11-27"
    [stored] = day_items(data_dir, result.file)
    assert stored["snapshot_id"] == payload["snapshot_id"] and stored["ip"] == "10.0.0.5"
    assert stored["processes"][0]["name"] == "proc-0" and "received_at" in stored
    row = Snapshot.objects.get()
    assert bytes(row.document_compressed)[:4] == documents.ZSTD_MAGIC
    assert json.loads(row.document_bytes) == stored
    assert (row.process_count, row.user_count, row.os_name) == (3, 1, "Linux")
    host = Host.objects.get()
    assert host.latest_snapshot_id == row.id and host.last_ip == "10.0.0.5" and host.hostname == "web-01"


def test_a_replayed_snapshot_id_stores_nothing_new(data_dir):
    payload = make_payload(collected_at=NOW)
    first = ingest(payload)
    before = (data_dir / first.file).read_bytes()
    again = ingest(payload, ip=addresses.parse_ip("10.9.9.9"))
    assert not again.created and again.as_dict() == first.as_dict()
    assert (data_dir / first.file).read_bytes() == before
    assert Snapshot.objects.count() == 1
    assert sorted(p.name for p in data_dir.iterdir()) == [first.file]


def test_a_late_snapshot_lands_in_the_file_of_its_collection_day(data_dir):
    ingest(make_payload(collected_at=NOW))
    late = ingest(make_payload(collected_at=NOW - dt.timedelta(days=2), hostname="old-name"))
    assert late.file == "10.0.0.5_2026-11-25.json"
    host = Host.objects.get()
    assert host.hostname == "web-01", "an older snapshot must not overwrite the newer state"
    assert host.first_seen == NOW - dt.timedelta(days=2)


def test_a_snapshot_between_the_first_and_the_newest_changes_neither(data_dir):
    ingest(make_payload(collected_at=NOW - dt.timedelta(days=4), hostname="first-name"))
    newest = ingest(make_payload(collected_at=NOW))
    ingest(make_payload(collected_at=NOW - dt.timedelta(days=2), hostname="old-name"))
    host = Host.objects.get()
    assert str(host.latest_snapshot.snapshot_id) == newest.snapshot_id and host.hostname == "web-01"
    assert host.first_seen == NOW - dt.timedelta(days=4) and host.last_seen == NOW


def test_the_day_follows_the_server_time_zone(settings):
    settings.TIME_ZONE = "America/New_York"
    result = ingest(make_payload(collected_at=dt.datetime(2026, 11, 27, 3, 0, tzinfo=dt.timezone.utc)))
    assert result.date == "2026-11-26"


def test_a_document_left_unrecorded_by_a_crash_is_adopted_by_the_next_writer(data_dir):
    """A worker killed between the file's fsync and the commit: simulated by appending alone."""
    ingest(make_payload(collected_at=NOW))
    orphan = make_payload(collected_at=NOW)
    orphan_doc = payload_schema.encode_stored(
        payload_schema.decode(encode(orphan), now=NOW), received_at=NOW, ip="10.0.0.5"
    )
    with store.locked_for_append(IP, NOW.date()) as writer:
        writer.append(orphan_doc)
    assert Snapshot.objects.count() == 1

    ingest(make_payload(collected_at=NOW))
    assert Snapshot.objects.count() == 3
    adopted = Snapshot.objects.get(snapshot_id=orphan["snapshot_id"])
    assert adopted.document_bytes == orphan_doc
    assert store.read_document(adopted.file_name, adopted.file_offset, adopted.file_length) == orphan_doc
    # The adopted document and the upload after it are deltas of the first row, as if none had crashed.
    rows = list(Snapshot.objects.order_by("file_offset"))
    headers = [documents.delta_header(row.document_compressed) for row in rows]
    assert headers[0] is None and headers[1:] == [(rows[0].snapshot_id, 1), (rows[0].snapshot_id, 2)]
    for row in rows:
        assert row.document_bytes == store.read_document(row.file_name, row.file_offset, row.file_length)

    retry = ingest(orphan)  # the agent never got its answer and tries again
    assert not retry.created
    items = day_items(data_dir, "10.0.0.5_2026-11-27.json")
    assert len(items) == 3 and len({i["snapshot_id"] for i in items}) == 3


def test_a_failed_commit_takes_the_document_back_out(data_dir, monkeypatch):
    ingest(make_payload(collected_at=NOW))
    before = (data_dir / "10.0.0.5_2026-11-27.json").read_bytes()

    def broken_record(**kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(ingest_module, "_record", broken_record)
    with pytest.raises(RuntimeError):
        ingest(make_payload(collected_at=NOW))
    assert (data_dir / "10.0.0.5_2026-11-27.json").read_bytes() == before
    assert Snapshot.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_commit_whose_answer_is_lost_is_settled_by_the_next_writer(data_dir, monkeypatch):
    """The connection breaks during COMMIT (a restart, a failover), committed or not.

    Injected at that one call, which a real restart (test_outage) hits only by
    chance. On PostgreSQL the document stays until the next writer asks the
    database; SQLite runs in this process, so its COMMIT cannot succeed
    unseen (only the "not committed" case exists) and the append is undone.
    """
    from django.db import OperationalError, connection, connections

    wrapper_class = type(connections["default"])
    name = "10.0.0.5_2026-11-27.json"
    ingest(make_payload(collected_at=NOW))
    real_commit = wrapper_class.commit
    cases = [False, True] if connection.vendor == "postgresql" else [False]
    for committed in cases:
        before = (data_dir / name).read_bytes()

        def commit_then_lose_the_answer(self, committed=committed):
            if committed:
                real_commit(self)
            raise OperationalError("server closed the connection unexpectedly")

        payload = make_payload(collected_at=NOW)
        with monkeypatch.context() as patch:
            patch.setattr(wrapper_class, "commit", commit_then_lose_the_answer)
            with pytest.raises(OperationalError):
                ingest(payload)
        kept = (data_dir / name).read_bytes() != before
        assert kept == (connection.vendor == "postgresql")
        assert Snapshot.objects.filter(snapshot_id=payload["snapshot_id"]).exists() == committed

        retry = ingest(payload)  # the agent was told 503 and sends it again
        assert retry.created == (connection.vendor == "sqlite")
        ingest(make_payload(collected_at=NOW))  # and the file goes on
        items = day_items(data_dir, name)
        ids = [item["snapshot_id"] for item in items]
        assert ids.count(payload["snapshot_id"]) == 1 and len(ids) == len(set(ids))
        content = (data_dir / name).read_bytes()
        rows = Snapshot.objects.filter(day=NOW.date())
        assert sorted(str(row.snapshot_id) for row in rows) == sorted(ids)
        for row in rows:
            assert json.loads(content[row.file_offset:row.file_offset + row.file_length])["snapshot_id"] == \
                str(row.snapshot_id)


def test_tokens_are_stored_only_as_hashes():
    token, raw = services.agent_token_create(name="fleet")
    assert raw.startswith("rlv_a_") and len(raw) > 40
    assert raw not in (token.key_hash, token.key_prefix) and token.key_hash == token.hash(raw)
    services.agent_token_revoke(token=token)
    assert token.revoked_at is not None


def test_api_token_revoke_sets_revoked_at_once(django_user_model):
    token, _ = services.api_token_create(user=django_user_model.objects.create_user("r"), name="script")
    services.api_token_revoke(token=token)
    first = token.revoked_at
    assert first is not None and ApiToken.objects.get(pk=token.pk).revoked_at == first
    services.api_token_revoke(token=token)
    assert ApiToken.objects.get(pk=token.pk).revoked_at == first


def test_snapshot_ids_are_uuids():
    payload = make_payload(snapshot_id=str(uuid.uuid4()).upper())
    result = ingest(payload, now=dt.datetime.now(dt.timezone.utc))
    assert result.snapshot_id == payload["snapshot_id"].lower()


def test_a_replay_that_races_past_the_first_check_is_undone_by_the_unique_constraint(data_dir, monkeypatch):
    """Two workers with the same snapshot_id through different addresses: the second one's check ran
    before the first one committed. Simulated by hiding the stored row from that first check only."""
    payload = make_payload(collected_at=NOW)
    first = ingest(payload)
    real_lookup = ingest_module._snapshot_by_id
    calls = []

    def stale_first_check(snapshot_id):
        calls.append(snapshot_id)
        return None if len(calls) == 1 else real_lookup(snapshot_id)

    monkeypatch.setattr(ingest_module, "_snapshot_by_id", stale_first_check)
    again = ingest(payload, ip=addresses.parse_ip("10.9.9.9"))
    assert not again.created and again.as_dict() == first.as_dict()
    assert sorted(p.name for p in data_dir.iterdir()) == [first.file], "the second copy must be cut back out"
    assert Snapshot.objects.count() == 1



@pytest.mark.django_db(transaction=True)
def test_first_uploads_of_a_new_host_from_two_addresses_at_once_both_succeed(data_dir):
    """On PostgreSQL both transactions can see no Host row and insert one: the loser must reuse the winner's."""
    import threading

    from django.db import connection

    barrier = threading.Barrier(2)
    results, errors = [], []

    def upload(address: str) -> None:
        try:
            payload = payload_schema.decode(encode(make_payload(host_id="brand-new", collected_at=NOW)), now=NOW)
            barrier.wait(timeout=10)
            results.append(services.snapshot_ingest(payload=payload, ip=addresses.parse_ip(address)))
        except Exception as exc:  # reported below; a thread's exception would otherwise vanish
            errors.append(exc)
        finally:
            connection.close()

    # SQLite serialises writers (BEGIN IMMEDIATE), so the race cannot happen there, and the
    # in-memory test database refuses concurrent threads: there the two uploads take turns.
    concurrent = connection.vendor != "sqlite"
    if not concurrent:
        barrier = threading.Barrier(1)
    for _ in range(5):
        threads = [threading.Thread(target=upload, args=(address,)) for address in ("10.0.0.1", "10.0.0.2")]
        for thread in threads:
            thread.start()
            if not concurrent:
                thread.join(30)
        for thread in threads:
            thread.join(30)
    assert errors == [] and len(results) == 10 and all(r.created for r in results)
    assert Host.objects.filter(host_id="brand-new").count() == 1
    assert Snapshot.objects.filter(host__host_id="brand-new").count() == 10


def test_the_process_index_is_one_sorted_lower_cased_line_per_distinct_process_text():
    processes = [
        payload_schema.Process(pid=1, name="Nginx", cmdline=["nginx:", "master\nprocess"]),
        payload_schema.Process(pid=2),
        payload_schema.Process(pid=3, name="odd\nname", cmdline=["x" * 300]),
        payload_schema.Process(pid=4, name="nginx", cmdline=["NGINX:", "master process"]),  # the same text, lower-cased
        payload_schema.Process(pid=5, name="Nginx", cmdline=["nginx:", "master\nprocess"]),  # a second copy
    ]
    lines = processes_rule.process_index(processes).split("\n")
    assert lines == ["\t", "nginx\tnginx: master process", "odd name\t" + "x" * processes_rule.CMDLINE_CHARS]
    assert lines == sorted({processes_rule.process_text(p) for p in processes})
    assert processes_rule.process_index(list(reversed(processes))) == "\n".join(lines), "order does not matter"
    assert processes_rule.process_index([]) == ""


@pytest.mark.parametrize("query", [
    "NGINX", " nginx ", "master process", "x: m", "www-data", "root", "/etc/app", "conf", "\t", "x" * 10,
    "odd name", "odd\nname", "no-such-thing", "   ",
])
def test_the_sql_filter_and_the_python_rule_agree_on_every_query(data_dir, query):
    """``HostQuerySet.running`` finds a host exactly when ``process_matches`` holds for one of its processes."""
    raw = make_payload(host_id="rule-host", processes=0, collected_at=NOW)
    raw["processes"] = [
        {"pid": 1, "name": "Nginx", "username": "www-data", "cmdline": ["nginx:", "master\nprocess"]},
        {"pid": 2, "name": "odd\nname", "username": "root", "cmdline": ["/usr/bin/app", "-c", "/etc/app.conf"]},
        {"pid": 3, "name": "java", "cmdline": ["java"] + ["x" * 300, "--late-flag"]},
    ]
    payload = payload_schema.decode(encode(raw), now=NOW)
    services.snapshot_ingest(payload=payload, ip=IP)
    needle = processes_rule.query_needle(query)
    in_python = any(processes_rule.process_matches(p, needle) for p in payload.processes)
    in_sql = Host.objects.running(query).filter(host_id="rule-host").exists()
    assert in_sql == in_python
    expected = {"NGINX": True, "www-data": False, "root": False, "no-such-thing": False, "   ": False}
    assert in_python == expected.get(query, in_python), "the user name does not count; a blank query matches nothing"


def test_the_search_columns_follow_the_newest_snapshot_and_are_left_alone_when_equal(data_dir):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    ingest(make_payload(collected_at=NOW - dt.timedelta(minutes=10)))
    with CaptureQueriesContext(connection) as queries:
        ingest(make_payload(collected_at=NOW - dt.timedelta(minutes=5)))
    [update] = [q["sql"] for q in queries.captured_queries if q["sql"].startswith('UPDATE "reports_host"')]
    assert "search_digest" not in update and "agent_version" not in update and "boot_time" not in update
    assert not [q for q in queries.captured_queries if "reports_hostsearch" in q["sql"]], "an equal text is not written"
    host = Host.objects.get()
    assert "10.0.1.15" in HostSearch.objects.get().text and host.own_address == "10.0.1.15"
    assert host.agent_version == "1.0.0"

    changed = make_payload(collected_at=NOW, agent={"version": "1.1.0"})
    changed["host"].update(ips=["10.0.1.16"], boot_time="2026-11-26T06:00:00+00:00")
    ingest(changed)
    host = Host.objects.get()
    assert host.own_address == "10.0.1.16" and host.agent_version == "1.1.0"
    assert "10.0.1.16" in HostSearch.objects.get().text and "10.0.1.15" not in HostSearch.objects.get().text
    assert host.search_digest == host_search.text_digest(HostSearch.objects.get().text)
    assert host.boot_time == dt.datetime(2026, 11, 26, 6, 0, tzinfo=dt.timezone.utc)
    # An older snapshot delivered late changes none of them.
    ingest(make_payload(collected_at=NOW - dt.timedelta(minutes=1)))
    assert Host.objects.values_list("own_address", "agent_version").get() == ("10.0.1.16", "1.1.0")
    assert "10.0.1.16" in HostSearch.objects.get().text and "10.0.1.15" not in HostSearch.objects.get().text


def test_a_large_document_is_stored_whole_and_its_encoding_buffer_not_kept():
    from reports.payload import _ENCODE_BUFFER_KEPT_BYTES, _encode_buffers

    now = dt.datetime.now(dt.timezone.utc)
    small = payload_schema.decode(encode(make_payload(collected_at=NOW)), now=NOW)
    large = payload_schema.decode(encode(make_payload(collected_at=NOW, processes=6000)), now=NOW)
    for payload in (small, large, small):
        document = payload_schema.encode_stored(payload, received_at=now, ip="10.0.0.5")
        stored = payload_schema.decode_stored(document)
        assert stored.payload == payload and stored.ip == "10.0.0.5" and stored.received_at == now
        kept = getattr(_encode_buffers, "buffer", None)
        assert (kept is None) == (len(document) > _ENCODE_BUFFER_KEPT_BYTES)
