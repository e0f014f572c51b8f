"""Addresses: strict parsing, network membership, and the one client address of a request.

The end-to-end cases (a forged ``X-Forwarded-For`` cannot pick the day file,
escape a sign-in lock or open ``/metrics``) are in test_api.py,
test_security.py, test_lockout.py and test_metrics.py; here are the rules
they rest on.
"""

from __future__ import annotations

import ipaddress

import pytest
from django.test import RequestFactory
from rest_framework.request import Request
from rest_framework.test import APIClient

from reports import addresses, services
from relevo_testing.factories import encode, make_payload

IP = addresses.parse_ip("10.0.0.5")


@pytest.mark.parametrize("text", ["fe80::1%eth0", "../../etc/passwd", "10.0.0.256", "", "1.2.3.4/24", " ", "1" * 100])
def test_parse_ip_refuses_anything_but_a_plain_address(text):
    with pytest.raises(ValueError):
        addresses.parse_ip(text)


@pytest.mark.parametrize("text", ["10.0.0.5\n", " 10.0.0.5", "10.0.0.5\x1f", "127.000.0.1", "1.2.3"])
def test_parse_ip_strips_nothing_and_guesses_nothing(text):
    with pytest.raises(ValueError):
        addresses.parse_ip(text)


def test_ipv4_mapped_ipv6_is_the_ipv4_address():
    assert addresses.parse_ip("::ffff:10.0.0.5") == IP
    assert addresses.parse_ip("2001:DB8::1") == ipaddress.IPv6Address("2001:db8::1")


def test_network_membership_keeps_ipv4_and_ipv6_apart():
    networks = addresses.parse_networks(["10.0.0.7/24", "::1"])  # host bits allowed, as operators write them
    assert networks == (ipaddress.ip_network("10.0.0.0/24"), ipaddress.ip_network("::1/128"))
    assert addresses.in_networks(addresses.parse_ip("10.0.0.200"), networks)
    assert addresses.in_networks(addresses.parse_ip("::1"), networks)
    assert not addresses.in_networks(addresses.parse_ip("10.0.1.1"), networks)
    assert not addresses.in_networks(addresses.parse_ip("::ffff:10.0.1.1"), networks)
    assert not addresses.in_networks(IP, addresses.parse_networks([]))
    with pytest.raises(ValueError):
        addresses.parse_networks(["office"])


def request(remote="10.0.0.5", forwarded=None):
    extra = {"REMOTE_ADDR": remote}
    if forwarded is not None:
        extra["HTTP_X_FORWARDED_FOR"] = forwarded
    return RequestFactory().get("/", **extra)


def test_without_trusted_proxies_forwarded_for_is_ignored(settings):
    settings.INVENTORY_TRUSTED_PROXIES = []
    assert addresses.client_ip(request(forwarded="198.51.100.7")) == IP


@pytest.mark.parametrize("forwarded, expected", [
    ("198.51.100.7", "198.51.100.7"),
    ("1.2.3.4, 198.51.100.7, 10.0.0.9", "198.51.100.7"),  # left of the first untrusted hop: the client's own words
    ("10.0.0.8, 10.0.0.9", "10.0.0.8"),  # only proxies: the farthest one
    ("", "10.0.0.5"),
    ("198.51.100.7, ../../etc/passwd", "10.0.0.5"),  # garbled: no further than the last known proxy
    ("198.51.100.7, not-an-address, 10.0.0.9", "10.0.0.9"),
    ("198.51.100.7, fe80::1%eth0", "10.0.0.5"),
])
def test_behind_a_trusted_proxy_the_chain_is_walked_from_the_right(settings, forwarded, expected):
    settings.INVENTORY_TRUSTED_PROXIES = ["10.0.0.0/24"]
    assert addresses.client_ip(request(forwarded=forwarded)) == addresses.parse_ip(expected)


def test_an_untrusted_peer_cannot_forge_a_forwarded_address(settings):
    settings.INVENTORY_TRUSTED_PROXIES = ["10.0.0.0/24"]
    assert addresses.client_ip(request(remote="203.0.113.9", forwarded="10.0.0.7")) == addresses.parse_ip("203.0.113.9")


@pytest.mark.parametrize("remote", ["", "../../etc/passwd", "fe80::1%eth0", "unix:/run/gunicorn.sock"])
def test_a_peer_without_a_usable_address_has_none(remote):
    with pytest.raises(ValueError):
        addresses.client_ip(request(remote=remote))
    assert addresses.client_address(request(remote=remote)) is None
    assert addresses.client_address(request()) == "10.0.0.5"


def test_the_answer_is_kept_on_the_request_and_shared_with_drf(settings):
    settings.INVENTORY_TRUSTED_PROXIES = ["10.0.0.0/24"]
    django_request = request(forwarded="198.51.100.7")
    assert addresses.client_ip(Request(django_request)) == addresses.parse_ip("198.51.100.7")
    settings.INVENTORY_TRUSTED_PROXIES = []  # worked out already: not asked again
    assert addresses.client_ip(django_request) == addresses.parse_ip("198.51.100.7")
    assert addresses.client_ip(request(forwarded="198.51.100.7")) == IP  # another request is asked anew


@pytest.mark.django_db
def test_an_upload_works_out_its_client_address_once(settings, monkeypatch, data_dir):
    """Throttle key, failed-credential count, day file and request log all read one answer."""
    settings.INVENTORY_TRUSTED_PROXIES = ["10.0.0.0/24"]
    settings.INVENTORY_REQUEST_LOG = True
    settings.INVENTORY_THROTTLE_UPLOAD = "100/min"
    settings.INVENTORY_THROTTLE_AUTH_FAILURES = "100/min"
    calls = []
    work_out = addresses._forwarded_client
    monkeypatch.setattr(addresses, "_forwarded_client", lambda meta: calls.append(1) or work_out(meta))
    _, token = services.agent_token_create(name="fleet")

    def post(credential):
        client = APIClient(REMOTE_ADDR="10.0.0.9", HTTP_X_FORWARDED_FOR="198.51.100.7")
        client.credentials(HTTP_AUTHORIZATION=f"Token {credential}")
        return client.generic("POST", "/upload", encode(make_payload()), content_type="application/json")

    stored = post(token)
    assert stored.status_code == 201 and stored.json()["ip"] == "198.51.100.7"
    assert len(calls) == 1
    assert post("rlv_a_wrong").status_code == 401
    assert len(calls) == 2
