"""Sign-in lockout (issue 13, item 1): password guessing is refused, the real admin is not locked out.

Through Django's test client (the address is ``REMOTE_ADDR``) for the rules,
and once through a real gunicorn on loopback, where each client binds its own
127.x address, for the whole path: CSRF, sessions, workers sharing the count.
"""

from __future__ import annotations

import datetime as dt
import re

import pytest
from axes.models import AccessAttempt
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.core.management import call_command
from django.utils import timezone

from relevo_testing import live
from relevo_testing.factories import encode, make_payload
from reports import services

pytestmark = pytest.mark.django_db

PASSWORD = "the-right-password-42"
LIMIT = 10  # the documented default of INVENTORY_LOGIN_FAILURE_LIMIT


class CountingHasher(PBKDF2PasswordHasher):
    """PBKDF2 with few rounds that counts how often a password is hashed (the cost guessing buys)."""

    iterations = 1000
    calls = 0

    def encode(self, password, salt, iterations=None):
        CountingHasher.calls += 1
        return super().encode(password, salt, iterations)


@pytest.fixture(autouse=True)
def counting_hasher(settings):
    settings.PASSWORD_HASHERS = ["reports.tests.test_lockout.CountingHasher"]
    CountingHasher.calls = 0
    return CountingHasher


@pytest.fixture
def admin_user(django_user_model, counting_hasher):
    user = django_user_model.objects.create_superuser("admin", "admin@example.invalid", PASSWORD)
    counting_hasher.calls = 0  # count only what sign-ins cost
    return user


def sign_in(client, password: str, *, address: str, path: str = "/accounts/login/", **extra):
    return client.post(path, {"username": "admin", "password": password}, REMOTE_ADDR=address, **extra)


@pytest.mark.parametrize("path", ["/accounts/login/", "/admin/login/"])
def test_guessing_is_refused_after_the_limit_without_hashing(client, admin_user, counting_hasher, path):
    statuses = [sign_in(client, f"guess-{i}", address="203.0.113.7", path=path).status_code for i in range(120)]
    assert statuses[:LIMIT - 1] == [200] * (LIMIT - 1)  # the form again, with its error
    assert statuses[LIMIT - 1:] == [429] * (120 - LIMIT + 1)
    assert counting_hasher.calls == LIMIT  # the 110 refused guesses cost no hash at all
    assert AccessAttempt.objects.get(ip_address="203.0.113.7").failures_since_start == LIMIT


def test_the_lockout_page_says_when_to_try_again(client, admin_user):
    for i in range(LIMIT):
        response = sign_in(client, f"guess-{i}", address="203.0.113.7")
    assert response.status_code == 429
    assert response["Content-Type"].startswith("text/html")
    assert 890 <= int(response["Retry-After"]) <= 900  # 15 minutes after the last counted failure
    text = re.sub(r"\s+", " ", response.content.decode())
    assert "Too many sign-in attempts" in text and "Try again in 15 minutes." in text
    # Even the right password is refused from that address until then.
    refused = sign_in(client, PASSWORD, address="203.0.113.7")
    assert refused.status_code == 429 and "_auth_user_id" not in client.session


def test_the_right_password_from_another_address_still_works(client, admin_user):
    for i in range(LIMIT + 5):
        sign_in(client, f"guess-{i}", address="203.0.113.7")
    response = sign_in(client, PASSWORD, address="198.51.100.20")
    assert response.status_code == 302 and client.session["_auth_user_id"] == str(admin_user.pk)


def test_guessing_many_user_names_from_one_address_is_counted_together(client, admin_user, counting_hasher):
    """Spraying: one password over many names would otherwise cost a hash per name, unbounded."""
    statuses = [client.post("/accounts/login/", {"username": f"user{i}", "password": "Summer2026!"},
                            REMOTE_ADDR="203.0.113.7").status_code for i in range(40)]
    assert statuses.count(429) == 40 - LIMIT + 1 and counting_hasher.calls == LIMIT


def test_behind_a_trusted_proxy_the_client_is_locked_not_the_proxy(client, admin_user, settings):
    settings.INVENTORY_TRUSTED_PROXIES = ["10.0.0.2/32"]
    for i in range(LIMIT):
        sign_in(client, f"guess-{i}", address="10.0.0.2", HTTP_X_FORWARDED_FOR="203.0.113.7")
    assert sign_in(client, "again", address="10.0.0.2", HTTP_X_FORWARDED_FOR="203.0.113.7").status_code == 429
    # Another client through the same proxy signs in.
    response = sign_in(client, PASSWORD, address="10.0.0.2", HTTP_X_FORWARDED_FOR="198.51.100.20")
    assert response.status_code == 302


def test_a_forged_forwarded_for_from_an_untrusted_peer_does_not_escape_the_lock(client, admin_user, settings):
    settings.INVENTORY_TRUSTED_PROXIES = ["10.0.0.2/32"]
    statuses = [sign_in(client, f"guess-{i}", address="203.0.113.7",
                        HTTP_X_FORWARDED_FOR=f"198.51.100.{i}").status_code for i in range(LIMIT + 3)]
    assert statuses[LIMIT - 1:] == [429] * 4
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {"203.0.113.7"}


def test_an_admin_sees_the_lockout_and_clears_it_in_the_admin(client, admin_user):
    for i in range(LIMIT):
        sign_in(client, f"guess-{i}", address="203.0.113.7")
    assert sign_in(client, PASSWORD, address="203.0.113.7").status_code == 429
    # The admin, from their own address, finds the locked address and deletes its attempts.
    assert sign_in(client, PASSWORD, address="198.51.100.20").status_code == 302
    listing = client.get("/admin/axes/accessattempt/", {"locked_out": "yes"}, REMOTE_ADDR="198.51.100.20")
    assert listing.status_code == 200 and "203.0.113.7" in listing.content.decode()
    ids = [str(pk) for pk in AccessAttempt.objects.values_list("pk", flat=True)]
    done = client.post("/admin/axes/accessattempt/", {"action": "delete_selected", "_selected_action": ids,
                                                      "post": "yes"}, REMOTE_ADDR="198.51.100.20")
    assert done.status_code == 302 and not AccessAttempt.objects.exists()
    client.logout()
    assert sign_in(client, PASSWORD, address="203.0.113.7").status_code == 302


def test_axes_reset_command_clears_a_lockout(client, admin_user):
    for i in range(LIMIT):
        sign_in(client, f"guess-{i}", address="203.0.113.7")
    call_command("axes_reset_ip", "203.0.113.7")
    assert sign_in(client, PASSWORD, address="203.0.113.7").status_code == 302


def test_a_success_does_not_reset_the_count_of_the_address(client, admin_user, django_user_model):
    """Someone with an account of their own must not get a fresh set of guesses by signing in between."""
    django_user_model.objects.create_user("mallory", password="mallorys-own-password")
    for i in range(LIMIT - 1):
        sign_in(client, f"guess-{i}", address="203.0.113.7")
    assert client.post("/accounts/login/", {"username": "mallory", "password": "mallorys-own-password"},
                       REMOTE_ADDR="203.0.113.7").status_code == 302
    client.logout()
    assert sign_in(client, "one-more-guess", address="203.0.113.7").status_code == 429


def test_tokens_from_a_locked_out_address_still_upload_and_read(client, admin_user):
    """The lock is on password sign-in only: agents and API tokens behind the same NAT are not hit."""
    for i in range(LIMIT):
        sign_in(client, f"guess-{i}", address="203.0.113.7")
    _, agent_raw = services.agent_token_create(name="fleet")
    _, reader_raw = services.api_token_create(user=admin_user, name="script")
    upload = client.post("/upload", encode(make_payload()), content_type="application/json",
                         HTTP_AUTHORIZATION=f"Token {agent_raw}", REMOTE_ADDR="203.0.113.7")
    assert upload.status_code == 201, upload.content
    read = client.get("/api/hosts/", HTTP_AUTHORIZATION=f"Token {reader_raw}", REMOTE_ADDR="203.0.113.7")
    assert read.status_code == 200 and read.json()["results"][0]["hostname"] == "web-01"


def test_lockout_off_when_the_limit_is_zero(client, admin_user, settings):
    settings.AXES_ENABLED = False  # what INVENTORY_LOGIN_FAILURE_LIMIT=0 sets
    statuses = {sign_in(client, f"guess-{i}", address="203.0.113.7").status_code for i in range(LIMIT + 2)}
    assert statuses == {200}


# --- a real gunicorn ----------------------------------------------------------------------

@pytest.mark.slow
def test_live_guessing_is_refused_and_the_admin_signs_in_from_elsewhere(live_relevo):
    attacker = live.BrowserSession(live_relevo.url, source_address="127.0.3.7")
    statuses = [attacker.sign_in("admin", f"guess-{i}").status_code for i in range(120)]
    assert statuses[:LIMIT - 1] == [200] * (LIMIT - 1)
    assert statuses[LIMIT - 1:] == [429] * (120 - LIMIT + 1)
    refused = attacker.sign_in("admin", live_relevo.admin_password, path="/admin/login/")
    assert refused.status_code == 429 and "Try again in 15 minutes" in refused.text
    assert int(refused.headers["Retry-After"]) <= 900

    admin = live.BrowserSession(live_relevo.url, source_address="127.0.3.8")
    assert admin.sign_in("admin", live_relevo.admin_password).status_code == 302
    assert "127.0.3.7" in admin.session.get(f"{live_relevo.url}/admin/axes/accessattempt/", timeout=10).text

    live_relevo.manage("axes_reset_ip", "127.0.3.7")
    assert attacker.sign_in("admin", live_relevo.admin_password).status_code == 302


@pytest.mark.parametrize("name, value", [("INVENTORY_LOGIN_FAILURE_LIMIT", -1),
                                         ("INVENTORY_LOGIN_COOLOFF_MINUTES", 0)])
def test_system_check_reports_bad_lockout_settings(settings, name, value):
    from reports.checks import check_security_settings

    assert check_security_settings() == []
    setattr(settings, name, value)
    assert [e.id for e in check_security_settings()] == ["reports.E020"]


def test_attempt_rows_keep_no_password_or_csrf_token(client, admin_user):
    client.post("/accounts/login/", {"username": "admin", "password": "hunter2-secret",
                                     "csrfmiddlewaretoken": "csrf-value-123"}, REMOTE_ADDR="203.0.113.7")
    attempt = AccessAttempt.objects.get()
    assert "hunter2-secret" not in attempt.post_data and "csrf-value-123" not in attempt.post_data


def test_a_refused_sign_in_writes_nothing_to_the_database(client, admin_user):
    """A locked-out attacker can send refusals as fast as they like: none may queue for the one SQLite writer."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for i in range(LIMIT):
        sign_in(client, f"guess-{i}", address="203.0.113.7")
    # An expired attempt of someone else's, which axes would otherwise delete on every failure.
    old = AccessAttempt.objects.create(ip_address="198.51.100.9", username="x", user_agent="", failures_since_start=1)
    AccessAttempt.objects.filter(pk=old.pk).update(attempt_time=timezone.now() - dt.timedelta(hours=2))
    with CaptureQueriesContext(connection) as queries:
        assert sign_in(client, "again", address="203.0.113.7").status_code == 429
    writes = [q["sql"] for q in queries if q["sql"].split()[0].upper() in {"INSERT", "UPDATE", "DELETE", "REPLACE"}]
    assert writes == []
