"""Two machines, one id: interleaved clones are flagged; one change (rename, DHCP, new board) is not."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest

from reports import identity
from reports.models import Host
from reports.tests import helpers

pytestmark = pytest.mark.django_db

STEP = dt.timedelta(minutes=5)


def hardware(serial: str, uuid: str) -> dict:
    return {"vendor": "QEMU", "model": "Standard PC", "serial": serial, "uuid": uuid, "virtual": True,
            "hypervisor": "kvm"}


CLONE_A = {"hostname": "web-01", "ip": "10.0.0.5", "hardware": hardware("VM-A", "11111111-aaaa-4aaa-8aaa-000000000001")}
CLONE_B = {"hostname": "web-01", "ip": "10.0.0.9", "hardware": hardware("VM-B", "22222222-bbbb-4bbb-8bbb-000000000002")}


def send(machines, *, start: dt.datetime | None = None) -> Host:
    """Upload one snapshot per entry of *machines* (hostname, ip, hardware), STEP apart, all as host-1."""
    start = start or helpers.same_day_start(span=len(machines) * STEP)
    for n, machine in enumerate(machines):
        fields = dict(machine)
        ip = fields.pop("ip")
        if fields.get("hardware") is None:
            fields.pop("hardware", None)
        helpers.ingest(ip=ip, collected_at=start + n * STEP, **fields)
    return Host.objects.get(host_id="host-1")


def test_interleaved_clones_are_flagged_with_what_differs():
    host = send([CLONE_A, CLONE_B] * 3)
    assert host.identity_conflict
    assert host.identity_conflict_fields == "hardware serial, hardware UUID, address"


def test_clones_without_hardware_are_told_apart_by_hostname_or_address():
    a = {"hostname": "web-01", "ip": "10.0.0.5", "hardware": None}
    b = {"hostname": "web-01-clone", "ip": "10.0.0.5", "hardware": None}
    assert send([a, b] * 3).identity_conflict_fields == "hostname"


@pytest.mark.parametrize("change", [
    pytest.param({"hostname": "web-01-renamed"}, id="rename"),
    pytest.param({"ip": "10.0.0.77"}, id="dhcp"),
    pytest.param({"hardware": hardware("NEW-BOARD", "33333333-cccc-4ccc-8ccc-000000000003")}, id="motherboard"),
])
def test_one_change_is_not_a_conflict(change):
    host = send([CLONE_A] * 4 + [{**CLONE_A, **change}] * 8)
    assert not host.identity_conflict and host.identity_returns == 0


def test_a_change_back_hours_later_is_not_a_conflict():
    """A laptop at the office by day and at home by night returns to each address once in the window."""
    office, home = CLONE_A, {**CLONE_A, "ip": "192.168.1.20"}
    start = helpers.same_day_start() - dt.timedelta(days=3)
    for n, machine in enumerate(itertools.islice(itertools.cycle([office, home]), 8)):
        send([machine], start=start + n * 2 * identity.RETURN_WINDOW)
    assert not Host.objects.get().identity_conflict


def test_ipv4_and_ipv6_in_turn_are_one_machine():
    host = send([CLONE_A, {**CLONE_A, "ip": "2001:db8::5"}] * 4)
    assert not host.identity_conflict


def test_unknown_or_placeholder_hardware_never_differs():
    no_root = {**CLONE_A, "hardware": hardware(None, None)}
    placeholder = {**CLONE_A, "hardware": hardware("To Be Filled By O.E.M.", "00000000-0000-0000-0000-000000000000")}
    assert not send([CLONE_A, no_root, placeholder] * 3).identity_conflict


def test_the_flag_clears_after_steady_snapshots():
    # The first CLONE_A after the last CLONE_B is a change; the ones after it are steady.
    host = send([CLONE_A, CLONE_B] * 3 + [CLONE_A] * identity.STEADY_TO_CLEAR)
    assert host.identity_conflict and host.identity_steady == identity.STEADY_TO_CLEAR - 1
    send([CLONE_A], start=host.last_seen + STEP)
    host.refresh_from_db()
    assert not host.identity_conflict and host.identity_returns == 0


def test_an_admin_clears_the_flag(admin_client):
    host = send([CLONE_A, CLONE_B] * 3)
    response = admin_client.post("/admin/reports/host/", {"action": "identity_conflict_clear",
                                                          "_selected_action": [host.pk]})
    assert response.status_code == 302
    host.refresh_from_db()
    assert not host.identity_conflict


def test_a_late_spooled_snapshot_is_not_a_flip():
    """Only the newest snapshot is the host's identity; one collected earlier but delivered late is history."""
    start = helpers.same_day_start()
    send([CLONE_A] * 3, start=start + STEP * 6)
    send([CLONE_B, CLONE_B], start=start)
    host = send([CLONE_A], start=start + STEP * 9)
    assert not host.identity_conflict and host.identity_returns == 0


def test_the_flag_in_the_page_the_list_filter_and_the_api(signed_in, reader_client):
    send([CLONE_A, CLONE_B] * 3)
    helpers.ingest(host_id="host-2", hostname="db-01", ip="10.0.0.6")
    host = Host.objects.get(host_id="host-1")

    page = helpers.text(signed_in.get(f"/hosts/{host.pk}/"))
    assert "Two machines seem to send this host id" in page and "hardware serial, hardware UUID, address" in page
    assert "Two machines seem" not in helpers.text(signed_in.get(f"/hosts/{Host.objects.get(host_id='host-2').pk}/"))

    listed = helpers.text(signed_in.get("/?identity_conflict=on"))
    assert "web-01 id conflict" in listed and "db-01" not in listed
    everyone = helpers.text(signed_in.get("/"))
    assert "db-01" in everyone and everyone.count("id conflict") == 1

    flagged = reader_client.get("/api/hosts/?identity_conflict=true").json()["results"]
    assert [(h["hostname"], h["identity_conflict"], h["identity_conflict_fields"]) for h in flagged] == [
        ("web-01", True, "hardware serial, hardware UUID, address")]
    all_hosts = {h["hostname"]: h["identity_conflict"] for h in reader_client.get("/api/hosts/").json()["results"]}
    assert all_hosts == {"web-01": True, "db-01": False}
    helpers.assert_error(reader_client.get("/api/hosts/?identity_conflict="), 400)
