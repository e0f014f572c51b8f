"""The Software page: the fleet's packages with host counts, and the drill-down to the hosts that have one."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse

from reports import services
from relevo_testing.factories import make_inventory, make_payload
from reports.tests.helpers import upload
from reports.tests.helpers import text

pytestmark = pytest.mark.django_db

NOW = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


@pytest.fixture
def fleet():
    token = services.agent_token_create(name="test")[1]
    for host_id, ip, version in [("web-1", "10.0.0.5", "3.0.11"), ("web-2", "10.0.0.6", "3.0.11"),
                                 ("db-1", "10.0.0.7", "3.0.13")]:
        software = [{"name": "openssl", "version": version, "source": "deb"},
                    {"name": "<script>alert(1)</script>", "version": "1", "source": "deb"}]
        inventory = make_inventory(software=software)
        if host_id == "db-1":
            inventory["disks"] = [{"mount_point": "/", "total_bytes": 100, "free_bytes": 50}]
        payload = make_payload(host_id=host_id, hostname=host_id, collected_at=NOW, **inventory)
        assert upload(token, payload, ip=ip).status_code == 201


def test_the_software_page_lists_packages_with_host_counts(signed_in, fleet):
    response = signed_in.get(reverse("reports:software_list"))
    assert response.status_code == 200
    page = text(response)
    assert "openssl 3.0.11 deb 2" in page and "openssl 3.0.13 deb 1" in page
    body = response.content.decode()
    assert "<script>alert(1)</script>" not in body and "&lt;script&gt;" in body
    assert '?name=openssl&amp;version=3.0.11">2</a>' in body


def test_the_software_page_searches_names(signed_in, fleet):
    page = text(signed_in.get(reverse("reports:software_list"), {"q": "SSL"}))
    assert "openssl" in page and "alert" not in page
    assert "No package name contains" in text(signed_in.get(reverse("reports:software_list"), {"q": "nothing"}))


def test_a_package_drills_down_to_its_hosts(signed_in, fleet):
    page = text(signed_in.get(reverse("reports:software_list"), {"name": "openssl", "version": "3.0.11"}))
    assert "Hosts with openssl 3.0.11" in page and "2 hosts have it" in page
    assert "web-1" in page and "web-2" in page and "db-1" not in page
    page = text(signed_in.get(reverse("reports:software_list"), {"name": "curl"}))
    assert "No host has curl" in page


def test_the_software_page_needs_a_sign_in(client):
    url = reverse("reports:software_list")
    assert client.get(url)["Location"] == f"/accounts/login/?next={url}"


@pytest.mark.parametrize("query, expected", [
    ({"software": "openssl"}, ["db-1", "web-1", "web-2"]),
    ({"software": "openssl", "q": "web"}, ["web-1", "web-2"]),
    ({"software": "curl"}, []),
    ({"port": "22"}, ["db-1", "web-1", "web-2"]),
    ({"port": "3389"}, []),
    ({"disk_full": "on"}, ["web-1", "web-2"]),
    ({"disk_full": "on", "port": "22", "software": "openssl"}, ["web-1", "web-2"]),
    ({"port": "not a port"}, ["db-1", "web-1", "web-2"]),  # a bad value is dropped, as the other filters do
])
def test_the_host_list_filters_by_software_port_and_full_disk(signed_in, fleet, query, expected):
    response = signed_in.get(reverse("reports:host_list"), query)
    assert response.status_code == 200
    shown = [host.host_id for host, _status in response.context["rows"]]
    assert sorted(shown) == expected
