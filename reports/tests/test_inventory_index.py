"""The search rows (software, listening sockets, disks) written by ingest, and the selectors over them.

Real uploads through ``POST /upload`` and real rows: what a snapshot carries
becomes the host's rows in the same transaction, what it leaves out stays,
and a refused or failed upload changes nothing.
"""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from reports import addresses, inventory_selectors, rowsql, services
from reports import payload as payload_schema
from reports.models import Host, HostDisk, HostIndexState, HostListeningSocket, HostSoftware, Snapshot, Software
from relevo_testing.factories import encode, make_inventory, make_payload, make_software
from reports.tests.helpers import all_rows, upload

pytestmark = pytest.mark.django_db

NOW = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


def send(token, *, host_id="host-1", at=None, full=True, software=None, ip="10.0.0.5", **overrides):
    inventory = make_inventory(software=software, full=full)
    inventory.update(overrides)
    payload = make_payload(host_id=host_id, hostname=host_id, collected_at=at or NOW, **inventory)
    response = upload(token, payload, ip=ip)
    assert response.status_code == 201, response.content
    return payload


def software_rows(host_id="host-1") -> set[tuple]:
    return set(HostSoftware.objects.filter(host__host_id=host_id)
               .values_list("software__name", "software__version", "install_date"))


INDEX_MODELS = (Software, HostSoftware, HostListeningSocket, HostDisk, HostIndexState)



def test_an_upload_writes_its_hosts_software_sockets_and_disks(agent_token):
    send(agent_token)

    host = Host.objects.get()
    assert software_rows() == {(f"pkg-{i:04d}", f"1.0-{i}", dt.date(2026, 5, 9)) for i in range(3)}
    assert set(Software.objects.values_list("host_count", flat=True)) == {1}
    assert sorted(HostListeningSocket.objects.values_list("protocol", "address", "port", "pid", "process")) == [
        ("tcp", "0.0.0.0", 22, 812, "sshd"), ("udp", "::", 53, None, None)]
    disk = HostDisk.objects.get()
    assert (disk.host, disk.mount_point, disk.device, disk.fs_type) == (host, "/", "/dev/nvme0n1p1", "ext4")
    assert disk.used_percent == pytest.approx(91.0, abs=0.001)


def test_an_upload_without_software_keeps_the_hosts_software_rows(agent_token):
    send(agent_token, at=NOW - dt.timedelta(minutes=10))
    before = software_rows()

    send(agent_token, full=False, listening=[{"protocol": "tcp", "address": "::", "port": 443}])

    assert software_rows() == before and len(before) == 3
    assert list(HostListeningSocket.objects.values_list("port", flat=True)) == [443]


def test_a_new_list_is_applied_as_a_difference_and_counts_follow(agent_token):
    old = make_software(3)
    send(agent_token, host_id="a", software=old, at=NOW - dt.timedelta(minutes=10))
    send(agent_token, host_id="b", software=old, ip="10.0.0.6")
    new = [old[0], {**old[1], "version": "2.0"}, {**make_software(4)[3]}]

    send(agent_token, host_id="a", software=new)

    assert software_rows("a") == {("pkg-0000", "1.0-0", dt.date(2026, 5, 9)), ("pkg-0001", "2.0", dt.date(2026, 5, 9)),
                                  ("pkg-0003", "1.0-3", dt.date(2026, 5, 9))}
    counts = {(s.name, s.version): s.host_count for s in Software.objects.all()}
    assert counts == {("pkg-0000", "1.0-0"): 2, ("pkg-0001", "1.0-1"): 1, ("pkg-0001", "2.0"): 1,
                      ("pkg-0002", "1.0-2"): 1, ("pkg-0003", "1.0-3"): 1}
    fleet = [(s.name, s.version, s.host_count) for s in inventory_selectors.software_list(search="PKG-000")]
    assert fleet == [("pkg-0000", "1.0-0", 2), ("pkg-0001", "1.0-1", 1), ("pkg-0001", "2.0", 1),
                     ("pkg-0002", "1.0-2", 1), ("pkg-0003", "1.0-3", 1)]


def test_a_package_listed_twice_is_one_row_and_a_new_install_date_is_kept(agent_token):
    software = make_software(2)
    send(agent_token, software=[*software, software[0]], at=NOW - dt.timedelta(minutes=10))
    assert len(software_rows()) == 2

    send(agent_token, software=[{**software[0], "install_date": "2026-11-01"}, software[1]])

    assert ("pkg-0000", "1.0-0", dt.date(2026, 11, 1)) in software_rows()
    assert set(Software.objects.values_list("host_count", flat=True)) == {1}


def test_an_older_snapshot_arriving_late_does_not_replace_the_current_rows(agent_token):
    send(agent_token, software=make_software(2))
    current = all_rows()

    send(agent_token, at=NOW - dt.timedelta(hours=1), software=make_software(5),
         listening=[], disks=[])

    assert all_rows() == current


def test_an_unchanged_upload_rewrites_nothing(agent_token):
    send(agent_token, at=NOW - dt.timedelta(minutes=10))
    payload = make_payload(collected_at=NOW, **make_inventory())

    with CaptureQueriesContext(connection) as queries:
        assert upload(agent_token, payload).status_code == 201

    written = [q["sql"] for q in queries.captured_queries
               if any(word in q["sql"] for word in ("INSERT", "UPDATE", "DELETE"))
               and any(f'"{model._meta.db_table}"' in q["sql"] for model in INDEX_MODELS)]
    assert written == []


def test_a_refused_upload_changes_no_rows(agent_token):
    send(agent_token)
    before = all_rows()
    bad = make_payload(collected_at=NOW + dt.timedelta(seconds=1), **make_inventory(software=make_software(9)))
    bad["disks"][0]["total_bytes"] = -1

    assert upload(agent_token, bad).status_code == 400
    assert all_rows() == before


def test_a_failed_upload_changes_no_rows(agent_token, monkeypatch):
    send(agent_token, at=NOW - dt.timedelta(minutes=10))
    before, snapshots = all_rows(), Snapshot.objects.count()
    real_update = rowsql.update

    def failing_update(model, pk, values, **options):
        if model is Host:  # after the search rows were written, before the commit
            raise RuntimeError("the database went away")
        return real_update(model, pk, values, **options)

    monkeypatch.setattr(rowsql, "update", failing_update)
    payload = make_payload(collected_at=NOW, **make_inventory(software=make_software(7)))
    payload["listening"] = []

    with pytest.raises(RuntimeError):
        services.snapshot_ingest(payload=payload_schema.decode(encode(payload), now=NOW),
                                 ip=addresses.parse_ip("10.0.0.5"))

    assert all_rows() == before and Snapshot.objects.count() == snapshots


def test_searches_answer_from_the_rows(agent_token):
    send(agent_token, host_id="a", software=[{"name": "openssl", "version": "3.0.11", "source": "deb"}])
    send(agent_token, host_id="b", ip="10.0.0.6", software=[{"name": "openssl", "version": "3.0.13", "source": "deb"}],
         listening=[{"protocol": "tcp", "address": "0.0.0.0", "port": 3389}],
         disks=[{"mount_point": "C:\\", "total_bytes": 100, "free_bytes": 50}])

    def names(hosts):
        return [host.host_id for host in hosts]

    assert names(inventory_selectors.hosts_with_software(name="openssl", version="3.0.11")) == ["a"]
    assert names(inventory_selectors.hosts_with_software(name="openssl")) == ["a", "b"]
    assert names(inventory_selectors.hosts_with_software(name="OpenSSL")) == []
    assert names(inventory_selectors.hosts_listening(port=3389)) == ["b"]
    assert names(inventory_selectors.hosts_listening(port=22, protocol="udp")) == []
    assert names(inventory_selectors.hosts_with_full_disk()) == ["a"]
    assert names(inventory_selectors.hosts_with_full_disk(used_percent=50)) == ["a", "b"]


def test_pruning_a_host_takes_it_out_of_the_counts(agent_token):
    send(agent_token, host_id="a")
    send(agent_token, host_id="b", ip="10.0.0.6")
    assert set(Software.objects.values_list("host_count", flat=True)) == {2}

    services.day_prune(ip=addresses.parse_ip("10.0.0.6"), day=services.snapshot_day(NOW))

    assert set(Software.objects.values_list("host_count", flat=True)) == {1}
    assert not HostSoftware.objects.filter(host__host_id="b").exists()


def test_reindex_inventory_rebuilds_the_rows_from_the_stored_documents(agent_token):
    send(agent_token, host_id="a", at=NOW - dt.timedelta(minutes=10))
    send(agent_token, host_id="a", full=False)
    send(agent_token, host_id="b", ip="10.0.0.6")
    expected = all_rows()
    for model in (HostSoftware, HostListeningSocket, HostDisk, HostIndexState):
        model.objects.all().delete()
    Software.objects.update(host_count=0)

    call_command("reindex_inventory", verbosity=0)

    assert all_rows() == expected
