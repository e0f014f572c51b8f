"""Upload of the inventory fields (software, listening, disks, interfaces, services, hardware).

Real JSON through ``POST /upload``: what is accepted is stored as sent, what
breaks a bound is a 400 that writes nothing, and the software rule's answer
(``software_wanted``) follows the host's current list.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest

from relevo_testing.factories import make_inventory, make_payload, make_software, software_digest
from reports import payload as payload_schema
from reports.models import Host, Snapshot
from reports.tests.helpers import assert_error, assert_nothing_stored, same_day_start, upload

pytestmark = pytest.mark.django_db


def _stored(data_dir, payload) -> dict:
    day = dt.datetime.fromisoformat(payload["collected_at"]).date().isoformat()
    documents = json.loads((data_dir / f"10.0.0.5_{day}.json").read_bytes())
    return next(d for d in documents if d["snapshot_id"] == payload["snapshot_id"])


def test_full_inventory_is_stored_as_sent_and_becomes_the_hosts_software(agent_token, data_dir):
    payload = make_payload(**make_inventory())

    response = upload(agent_token, payload)

    assert response.status_code == 201, response.content
    assert response.json()["software_wanted"] is False
    stored = _stored(data_dir, payload)
    for field in ("software", "software_digest", "software_count", "listening", "disks", "interfaces",
                  "services", "hardware"):
        assert stored[field] == payload[field], field
    host = Host.objects.get()
    assert host.software_digest == payload["software_digest"]
    assert host.software_snapshot == Snapshot.objects.get()


def test_older_agent_without_inventory_is_accepted(agent_token, data_dir):
    payload = make_payload()
    response = upload(agent_token, payload)
    assert response.status_code == 201 and response.json()["software_wanted"] is False
    assert _stored(data_dir, payload)["software"] is None
    assert Host.objects.get().software_digest == ""


def test_digest_only_upload_is_answered_by_what_the_server_holds(agent_token):
    software = make_software(5)
    start = same_day_start()

    def send(minutes, **inventory):
        payload = make_payload(collected_at=start + dt.timedelta(minutes=minutes), **make_inventory(**inventory))
        response = upload(agent_token, payload)
        assert response.status_code == 201, response.content
        return response.json()["software_wanted"]

    assert send(0, software=software, full=False) is True  # the server has never seen a list
    assert send(5, software=software, full=True) is False
    assert send(10, software=software, full=False) is False  # the usual five-minute run
    upgraded = make_software(5, version="2.0")
    assert send(15, software=upgraded, full=False) is True  # changed, and (wrongly) sent as digest only
    assert send(20, software=upgraded, full=True) is False
    assert Host.objects.get().software_digest == software_digest(upgraded)

    # An older full list (a spooled snapshot delivered late) does not replace the newer one.
    assert send(1, software=software, full=True) is False
    assert Host.objects.get().software_digest == software_digest(upgraded)

    # The snapshot holding the list is pruned: the server no longer has it and says so.
    Snapshot.objects.filter(pk=Host.objects.get().software_snapshot_id).delete()
    assert Host.objects.get().software_snapshot is None
    assert send(25, software=upgraded, full=False) is True
    assert send(26, software=upgraded, full=True) is False


def _bad(mutate):
    def build():
        payload = make_payload(**make_inventory())
        mutate(payload)
        return payload
    return build


def _set(path, value):
    def mutate(payload):
        node = payload
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    return mutate


BAD = {
    "too many software entries": (_bad(lambda p: p.update(software=make_software(20_001),
                                                          software_count=None)), "software"),
    "software name empty": (_bad(_set(["software", 0, "name"], "")), "software[0].name"),
    "software name too long": (_bad(_set(["software", 0, "name"], "x" * 1025)), "software[0].name"),
    "software source not a word": (_bad(_set(["software", 0, "source"], "Deb Package")), "software[0].source"),
    "software install_date not a date": (_bad(_set(["software", 0, "install_date"], "2024-13-01")),
                                         "software[0].install_date"),
    "software digest not hex": (_bad(_set(["software_digest"], "Z" * 64)), "software_digest"),
    "listening protocol": (_bad(_set(["listening", 0, "protocol"], "sctp")), "listening[0].protocol"),
    "listening port": (_bad(_set(["listening", 0, "port"], 70_000)), "listening[0].port"),
    "listening address not an IP": (_bad(_set(["listening", 0, "address"], "localhost")), "listening[0].address"),
    "too many sockets": (_bad(lambda p: p.update(listening=p["listening"][:1] * 10_001)), "listening"),
    "too many disks": (_bad(lambda p: p.update(disks=p["disks"] * 1_001)), "disks"),
    "disk negative size": (_bad(_set(["disks", 0, "free_bytes"], -1)), "disks[0].free_bytes"),
    "too many interfaces": (_bad(lambda p: p.update(interfaces=p["interfaces"] * 1_001)), "interfaces"),
    "mac in Windows form": (_bad(_set(["interfaces", 0, "mac"], "02-FC-00-00-00-01")), "interfaces[0].mac"),
    "prefix length": (_bad(_set(["interfaces", 0, "addresses", 0, "prefix_length"], 129)),
                      "interfaces[0].addresses[0].prefix_length"),
    "interface address not an IP": (_bad(_set(["interfaces", 0, "addresses", 0, "address"], "10.0.1")),
                                    "interfaces[0].addresses[0].address"),
    "too many services": (_bad(lambda p: p.update(services=p["services"] * 10_001)), "services"),
    "service state too long": (_bad(_set(["services", 0, "active_state"], "a" * 65)), "services[0].active_state"),
    "hardware bios_date": (_bad(_set(["hardware", "bios_date"], "04/01/2014")), "hardware.bios_date"),
    "hardware virtual not a bool": (_bad(_set(["hardware", "virtual"], "yes")), "hardware.virtual"),
    "NUL in a service path": (_bad(_set(["services", 1, "binary_path"], "C:\\x\u0000.exe")),
                              "services[1].binary_path"),
}


DERIVED = {
    "a version changed after the digest was made": _set(["software", 0, "version"], "9.9"),
    "no digest": _set(["software_digest"], None),
    "a count that disagrees": _set(["software_count"], 4),
}


@pytest.mark.parametrize("case", list(DERIVED), ids=list(DERIVED))
def test_a_sent_list_sets_the_hosts_digest_and_count_whatever_else_came_with_it(agent_token, case):
    """The list is the truth (a schema cannot say "the sha256 of this list"): digest and count come from it."""
    payload = _bad(DERIVED[case])()
    response = upload(agent_token, payload)
    assert response.status_code == 201, response.content
    derived = software_digest(payload["software"])
    assert Host.objects.get().software_digest == derived
    stored = json.loads(Snapshot.objects.get().document_bytes)
    assert (stored["software_digest"], stored["software_count"]) == (derived, len(payload["software"]))


@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
def test_bad_inventory_is_a_400_and_nothing_is_written(agent_token, data_dir, case):
    build, field = BAD[case]

    response = upload(agent_token, build())

    body = assert_error(response, 400, "invalid_payload")
    assert field in body["fields"], body
    assert_nothing_stored(data_dir)


def test_agent_and_server_agree_on_the_digest():
    from agent.inventory import software_digest as agent_digest

    software = make_software(3) + [
        {"name": "café \"quoted\" \\ back/slash\ttab", "version": None, "vendor": "Ütf ✓ 😀", "arch": None,
         "source": "windows", "install_date": None},
        {"name": "\u2028line sep\x7f", "version": "1", "vendor": None, "arch": "x86", "source": "apk",
         "install_date": "2024-02-29"},
    ]
    decoded = payload_schema.decode(json.dumps(make_payload(**make_inventory(software=software))).encode(),
                                    now=dt.datetime.now(dt.timezone.utc))
    assert payload_schema.software_digest(decoded.software) == agent_digest(software) == decoded.software_digest
