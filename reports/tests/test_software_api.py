"""The inventory read API: fleet software, hosts having a package, each host's inventory.

Real uploads make the rows; real GETs with a reader token read them back.
Every endpoint's bad parameters are a 400 with the usual body, and a read
writes nothing.
"""

from __future__ import annotations

import datetime as dt

import pytest

from reports.models import Host
from relevo_testing.factories import make_inventory, make_payload
from reports.tests.helpers import all_rows, api_client, assert_error, upload

pytestmark = pytest.mark.django_db

NOW = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
OPENSSL = {"name": "openssl", "version": "3.0.11", "vendor": "Debian", "arch": "amd64", "source": "deb"}


@pytest.fixture
def fleet(agent_token):
    """Host a: openssl 3.0.11 and curl; host b: openssl 3.0.13 from another vendor; host c: an old agent."""
    for host_id, ip, software in [
        ("a", "10.0.0.5", [OPENSSL, {"name": "curl", "version": "7.88", "source": "deb"}]),
        ("b", "10.0.0.6", [{**OPENSSL, "version": "3.0.13", "vendor": "Ubuntu"}]),
    ]:
        payload = make_payload(host_id=host_id, hostname=f"host-{host_id}", collected_at=NOW,
                               **make_inventory(software=software))
        assert upload(agent_token, payload, ip=ip).status_code == 201
    assert upload(agent_token, make_payload(host_id="c", hostname="host-c"), ip="10.0.0.7").status_code == 201
    return {host.host_id: host.pk for host in Host.objects.all()}


def get(client, path, **params):
    response = client.get(path, params)
    assert response.status_code == 200, response.content
    return response.json()


def test_fleet_software_lists_each_package_with_its_host_count(reader_client, fleet):
    body = get(reader_client, "/api/software/")
    assert body["count"] == 3
    assert [(r["name"], r["version"], r["vendor"], r["host_count"]) for r in body["results"]] == [
        ("curl", "7.88", "", 1), ("openssl", "3.0.11", "Debian", 1), ("openssl", "3.0.13", "Ubuntu", 1)]
    assert body["results"][1] == {**OPENSSL, "host_count": 1}


@pytest.mark.parametrize("params, expected", [
    ({"search": "SSL"}, ["3.0.11", "3.0.13"]),
    ({"name": "openssl", "version": "3.0.13"}, ["3.0.13"]),
    ({"vendor": "Debian"}, ["3.0.11"]),
    ({"source": "rpm"}, []),
    ({"name": "open"}, []),
])
def test_fleet_software_filters(reader_client, fleet, params, expected):
    rows = get(reader_client, "/api/software/", **params)["results"]
    assert [r["version"] for r in rows if r["name"] == "openssl"] == expected


def test_fleet_software_is_paginated_like_the_other_lists(reader_client, fleet):
    body = get(reader_client, "/api/software/", page_size=2, page=2)
    assert body["count"] == 3 and len(body["results"]) == 1 and body["previous"] and body["next"] is None


def test_hosts_having_a_package_and_version(reader_client, fleet):
    def hosts(**params):
        return [h["host_id"] for h in get(reader_client, "/api/software/hosts/", **params)["results"]]

    assert hosts(name="openssl", version="3.0.11") == ["a"]
    assert hosts(name="openssl") == ["a", "b"]
    assert hosts(name="openssl", vendor="Ubuntu") == ["b"]
    assert hosts(name="curl", source="rpm") == []
    assert get(reader_client, "/api/software/hosts/", name="curl")["results"][0]["hostname"] == "host-a"


def test_hosts_listening_on_a_port_and_with_a_full_disk(reader_client, fleet):
    def hosts(path, **params):
        return [h["host_id"] for h in get(reader_client, path, **params)["results"]]

    assert hosts("/api/listening/hosts/", port=22) == ["a", "b"]
    assert hosts("/api/listening/hosts/", port=22, protocol="udp") == []
    assert hosts("/api/listening/hosts/", port=53, protocol="udp") == ["a", "b"]
    assert hosts("/api/listening/hosts/", port=3389) == []
    assert hosts("/api/disks/hosts/") == ["a", "b"]
    assert hosts("/api/disks/hosts/", used_percent=91.5) == []


def test_a_hosts_software_sockets_and_disks(reader_client, fleet):
    base = f"/api/hosts/{fleet['a']}"
    software = get(reader_client, f"{base}/software/")
    assert [r["name"] for r in software["results"]] == ["curl", "openssl"]
    assert software["results"][1] == {**OPENSSL, "install_date": None}
    assert [r["name"] for r in get(reader_client, f"{base}/software/", search="CUR")["results"]] == ["curl"]
    assert get(reader_client, f"{base}/listening/")["results"] == [
        {"protocol": "tcp", "address": "0.0.0.0", "port": 22, "pid": 812, "process": "sshd"},
        {"protocol": "udp", "address": "::", "port": 53, "pid": None, "process": None}]
    [disk] = get(reader_client, f"{base}/disks/")["results"]
    assert disk["mount_point"] == "/" and disk["used_percent"] == pytest.approx(91.0)


def test_a_hosts_interfaces_services_and_hardware_come_from_its_newest_snapshot(reader_client, fleet):
    inventory, base = make_inventory(), f"/api/hosts/{fleet['a']}"
    interfaces = get(reader_client, f"{base}/interfaces/")["results"]
    assert interfaces == inventory["interfaces"]
    services_ = get(reader_client, f"{base}/services/")["results"]
    assert services_[0] == {"name": "ssh.service", "display_name": None, "active_state": "active",
                            "sub_state": "running", "enabled": "enabled", "status": None, "start_type": None,
                            "account": None, "binary_path": None}
    assert services_[1]["binary_path"] == inventory["services"][1]["binary_path"]
    assert get(reader_client, f"{base}/hardware/") == inventory["hardware"]


def test_a_host_without_inventory_has_empty_lists_and_null_hardware(reader_client, fleet):
    base = f"/api/hosts/{fleet['c']}"
    for area in ("software", "listening", "disks", "interfaces", "services"):
        assert get(reader_client, f"{base}/{area}/")["results"] == [], area
    assert set(get(reader_client, f"{base}/hardware/").values()) == {None}


@pytest.mark.parametrize("path", ["software", "listening", "disks", "interfaces", "services", "hardware"])
def test_an_unknown_host_is_404(reader_client, fleet, path):
    response = reader_client.get(f"/api/hosts/999999/{path}/")
    assert response.status_code == 404 and response.json()["error"] == "not_found"


@pytest.mark.parametrize("path, params, field", [
    ("/api/software/", {"source": "Not a source!"}, "source"),
    ("/api/software/", {"search": "x" * 257}, "search"),
    ("/api/software/", {"vendor": "a\0b"}, "vendor"),
    ("/api/software/", {"page": "0"}, "page"),
    ("/api/software/hosts/", {}, "name"),
    ("/api/software/hosts/", {"name": ""}, "name"),
    ("/api/software/", {"source": ""}, "source"),
    ("/api/disks/hosts/", {"used_percent": ""}, "used_percent"),
    ("/api/listening/hosts/", {}, "port"),
    ("/api/listening/hosts/", {"port": "65536"}, "port"),
    ("/api/listening/hosts/", {"port": "22", "protocol": "sctp"}, "protocol"),
    ("/api/disks/hosts/", {"used_percent": "101"}, "used_percent"),
    ("/api/disks/hosts/", {"used_percent": "nan"}, "used_percent"),
    ("/api/hosts/{a}/listening/", {"page_size": "x"}, "page_size"),
])
def test_bad_parameters_are_a_400_and_write_nothing(reader_client, fleet, path, params, field):
    before = all_rows()
    response = reader_client.get(path.format(a=fleet["a"]), params)
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["error"] == "invalid_parameters" and field in body["fields"]
    assert all_rows() == before


def test_the_inventory_api_needs_a_reader(agent_token, fleet):
    assert api_client().get("/api/software/").status_code == 401
    assert api_client(agent_token).get(f"/api/hosts/{fleet['a']}/disks/").status_code == 403


@pytest.mark.parametrize("params, expected", [
    ({"software": "openssl"}, ["a", "b"]),
    ({"software": "curl"}, ["a"]),
    ({"software": "curl", "search": "host-b"}, []),
    ({"software": "OpenSSL"}, []),
    ({"port": "22"}, ["a", "b"]),
    ({"port": "3389"}, []),
    ({"disk_full": "true"}, ["a", "b"]),
    ({"disk_full": "false"}, ["a", "b", "c"]),
])
def test_the_hosts_list_takes_the_inventory_filters(reader_client, fleet, params, expected):
    assert [host["host_id"] for host in get(reader_client, "/api/hosts/", **params)["results"]] == expected


@pytest.mark.parametrize("params, field", [({"port": ""}, "port"), ({"port": "0"}, "port"),
                                           ({"port": "x"}, "port"), ({"disk_full": ""}, "disk_full"),
                                           ({"disk_full": "maybe"}, "disk_full")])
def test_the_hosts_lists_inventory_filters_refuse_bad_values(reader_client, fleet, params, field):
    assert field in assert_error(reader_client.get("/api/hosts/", params), 400, "invalid_parameters")["fields"]


@pytest.mark.parametrize("path, params", [
    ("/api/software/", {"name": "", "version": "", "vendor": "", "search": ""}),
    ("/api/software/hosts/", {"name": "openssl", "version": ""}),
    ("/api/hosts/{a}/software/", {"search": ""}),
    ("/api/listening/hosts/", {"port": "22", "protocol": ""}),
])
def test_an_empty_optional_filter_means_any_as_on_every_list(reader_client, fleet, path, params):
    path = path.format(**fleet)
    narrowed = {name: value for name, value in params.items() if value}
    assert get(reader_client, path, **params) == get(reader_client, path, **narrowed)
