"""The admin: useful changelists without N+1 queries, read-only documents, tokens through services."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from relevo_testing.factories import encode, make_payload, rewrite_as_zlib
from reports import services
from reports.models import AgentToken, ApiToken, Host, Snapshot
from reports.tests.helpers import api_client, assert_error, ingest, upload

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client_(client, django_user_model):
    user = django_user_model.objects.create_superuser("root", "root@example.invalid", "a-long-test-password")
    client.force_login(user)
    return client


def changelist_queries(client, url: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200
    return len(queries)


def test_changelists_use_a_fixed_number_of_queries(admin_client_):
    """Twice the rows, same query count: no per-row query (the N+1 the issue forbids)."""
    now = timezone.now().replace(microsecond=0)
    for i in range(3):
        ingest(make_payload(host_id=f"h{i}", hostname=f"h{i}", collected_at=now - dt.timedelta(minutes=i)),
               ip=f"10.0.0.{i + 1}")
    hosts_few = changelist_queries(admin_client_, "/admin/reports/host/")
    snapshots_few = changelist_queries(admin_client_, "/admin/reports/snapshot/")
    for i in range(3, 9):
        ingest(make_payload(host_id=f"h{i}", hostname=f"h{i}", collected_at=now - dt.timedelta(minutes=i)),
               ip=f"10.0.0.{i + 1}")
    assert changelist_queries(admin_client_, "/admin/reports/host/") == hosts_few
    assert changelist_queries(admin_client_, "/admin/reports/snapshot/") == snapshots_few


def test_host_changelist_filters_by_status_and_searches(admin_client_):
    now = timezone.now().replace(microsecond=0)
    ingest(make_payload(host_id="fresh", hostname="fresh-host", collected_at=now))
    ingest(make_payload(host_id="gone", hostname="gone-host", collected_at=now - dt.timedelta(days=30)), ip="10.0.0.6")
    stale = admin_client_.get("/admin/reports/host/", {"status": "stale"}).content.decode()
    assert "gone-host" in stale and "fresh-host" not in stale
    found = admin_client_.get("/admin/reports/host/", {"q": "10.0.0.5"}).content.decode()
    assert "fresh-host" in found and "gone-host" not in found
    assert admin_client_.get("/admin/reports/host/", {"last_seen__year": now.year}).status_code == 200


def test_snapshot_page_shows_the_document_pretty_printed_and_read_only(admin_client_):
    result = ingest(make_payload(hostname="doc-host"))
    snapshot = Snapshot.objects.get(snapshot_id=result.snapshot_id)
    response = admin_client_.get(f"/admin/reports/snapshot/{snapshot.pk}/change/")
    assert response.status_code == 200
    html = response.content.decode()
    assert '"hostname": "doc-host"' in html.replace("&quot;", '"')
    assert "\n  &quot;schema_version&quot;: 1," in html or '\n  "schema_version": 1,' in html
    assert 'name="_save"' not in html, "documents are read-only"
    before = snapshot.document_bytes
    post = admin_client_.post(f"/admin/reports/snapshot/{snapshot.pk}/change/", {"ip": "10.9.9.9"})
    assert post.status_code == 403
    snapshot.refresh_from_db()
    assert snapshot.document_bytes == before and snapshot.ip == "10.0.0.5"
    assert admin_client_.get("/admin/reports/snapshot/add/").status_code == 403


def test_snapshot_page_reads_a_zlib_row_from_before_zstd(admin_client_):
    result = ingest(make_payload(hostname="zlib-host"))
    rewrite_as_zlib(result.snapshot_id)
    snapshot = Snapshot.objects.get(snapshot_id=result.snapshot_id)
    html = admin_client_.get(f"/admin/reports/snapshot/{snapshot.pk}/change/").content.decode()
    assert '"hostname": "zlib-host"' in html.replace("&quot;", '"')


def test_snapshot_search_by_id_ip_and_hostname(admin_client_):
    result = ingest(make_payload(hostname="findme"))
    other = ingest(make_payload(host_id="other", hostname="other"), ip="10.0.0.99")
    for term in (result.snapshot_id, "10.0.0.5", "findme"):
        html = admin_client_.get("/admin/reports/snapshot/", {"q": term}).content.decode()
        assert result.snapshot_id in html and other.snapshot_id not in html, term


def test_creating_an_agent_token_shows_it_once_and_stores_only_its_hash(admin_client_):
    response = admin_client_.post("/admin/reports/agenttoken/add/", {"name": "rack-7"})
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    raw = re.search(r'value="(rlv_a_[A-Za-z0-9_\-]+)"', response.content.decode()).group(1)
    token = AgentToken.objects.get(name="rack-7")
    assert token.key_hash == AgentToken.hash(raw) and raw not in (token.key_hash, token.key_prefix)
    assert raw.startswith(token.key_prefix)
    listing = admin_client_.get("/admin/reports/agenttoken/").content.decode()
    detail = admin_client_.get(f"/admin/reports/agenttoken/{token.pk}/change/").content.decode()
    assert raw not in listing and raw not in detail, "the raw token is shown once only"


def test_a_created_token_really_uploads(admin_client_, client):
    response = admin_client_.post("/admin/reports/agenttoken/add/", {"name": "real"})
    raw = re.search(r'value="(rlv_a_[^"]+)"', response.content.decode()).group(1)
    upload = client.post("/upload", data=encode(make_payload()), content_type="application/json",
                         HTTP_AUTHORIZATION=f"Token {raw}")
    assert upload.status_code == 201, upload.content


def _read_hosts(raw: str):
    return api_client(raw, ip="127.0.0.1").get("/api/hosts/")


# Each kind of token: its admin model, how the service makes one, a request it authorizes, that request's status.
TOKEN_KINDS = {
    "agent": ("agenttoken", lambda user, name: services.agent_token_create(name=name), upload, 201),
    "api": ("apitoken", lambda user, name: services.api_token_create(user=user, name=name), _read_hosts, 200),
}


@pytest.mark.parametrize("kind", TOKEN_KINDS)
def test_revoke_action_goes_through_the_service_and_stops_the_token_at_once(kind, admin_client_, django_user_model):
    """docs/security.md: agent and API tokens are revoked in the admin alike, effective on the next request."""
    model, create, use, ok = TOKEN_KINDS[kind]
    reader = django_user_model.objects.create_user("reader", password="a-long-test-password")
    keep, keep_raw = create(reader, "keep")
    drop, drop_raw = create(reader, "drop")
    assert use(drop_raw).status_code == ok
    response = admin_client_.post(f"/admin/reports/{model}/", {
        "action": "revoke", "_selected_action": [drop.pk],
    }, follow=True)
    assert "Revoked 1 token." in response.content.decode()
    drop.refresh_from_db()
    keep.refresh_from_db()
    assert drop.revoked_at is not None and keep.revoked_at is None
    assert_error(use(drop_raw), 401, "authentication_failed")
    assert use(keep_raw).status_code == ok
    listing = admin_client_.get(f"/admin/reports/{model}/", {"state": "revoked"}).content.decode()
    assert "drop" in listing and ">keep<" not in listing
    # Revoking again changes nothing (the first revocation time stays).
    first = drop.revoked_at
    admin_client_.post(f"/admin/reports/{model}/", {"action": "revoke", "_selected_action": [drop.pk]})
    drop.refresh_from_db()
    assert drop.revoked_at == first


def test_host_admin_is_read_only(admin_client_):
    ingest(make_payload(hostname="ro"))
    host = Host.objects.get()
    assert admin_client_.get("/admin/reports/host/add/").status_code == 403
    page = admin_client_.get(f"/admin/reports/host/{host.pk}/change/")
    assert page.status_code == 200 and 'name="_save"' not in page.content.decode()
    assert admin_client_.post(f"/admin/reports/host/{host.pk}/delete/", {"post": "yes"}).status_code == 403
    assert Host.objects.filter(pk=host.pk).exists()


def test_creating_an_api_token_goes_through_the_service(admin_client_, django_user_model):
    reader = django_user_model.objects.create_user("reader", password="a-long-test-password")
    response = admin_client_.post("/admin/reports/apitoken/add/", {"name": "scripts", "user": reader.pk})
    assert response.status_code == 200
    raw = re.search(r'value="(rlv_u_[A-Za-z0-9_\-]+)"', response.content.decode()).group(1)
    token = ApiToken.objects.get(name="scripts")
    assert token.user == reader and token.key_hash == ApiToken.hash(raw)
    assert raw not in admin_client_.get(f"/admin/reports/apitoken/{token.pk}/change/").content.decode()


def test_changelists_fit_with_readable_labels_units_and_50_rows_a_page(admin_client_):
    for i in range(55):
        ingest(make_payload(host_id=f"page-{i:02d}", hostname=f"page-{i:02d}", processes=0))
    hosts = admin_client_.get("/admin/reports/host/")
    html = hosts.content.decode()
    assert len(hosts.context["cl"].result_list) == 50
    headers = re.findall(r'<th scope="col"[^>]*>.*?<(?:a|span)[^>]*>([^<]+)</', html, re.S)
    assert {"IP address", "OS", "Memory", "Last seen"} <= {h.strip() for h in headers}, headers
    assert "Ip" not in headers and "7.7 GiB" in html and "Debian GNU/Linux 12" in html
    assert "Linux Debian" not in html
    snapshots = admin_client_.get("/admin/reports/snapshot/")
    html = snapshots.content.decode()
    assert len(snapshots.context["cl"].result_list) == 50
    headers = {h.strip() for h in re.findall(r'<th scope="col"[^>]*>.*?<(?:a|span)[^>]*>([^<]+)</', html, re.S)}
    assert {"IP address", "OS name", "Memory available", "Collected"} <= headers, headers
    assert "5.6 GiB" in html and not re.search(r"\b(a\.m\.|p\.m\.)", html)


@pytest.mark.parametrize("zone", ["UTC", "Europe/Madrid"])
def test_host_date_drilldown_lists_the_periods_djangos_distinct_query_lists(admin_client_, zone):
    """The admin's date drill-down probes the index per period; it must list exactly what the stock query lists."""
    from reports.admin import DateHierarchyQuerySet

    seen = [dt.datetime(2026, 1, 31, 23, 30, tzinfo=dt.timezone.utc),  # February already in Madrid
            dt.datetime(2026, 3, 29, 0, 30, tzinfo=dt.timezone.utc),  # the night the clocks move
            dt.datetime(2026, 3, 29, 12, 0, tzinfo=dt.timezone.utc),
            dt.datetime(2026, 12, 31, 23, 59, tzinfo=dt.timezone.utc),
            dt.datetime(2024, 7, 4, 8, 0, tzinfo=dt.timezone.utc)]
    for i, moment in enumerate(seen):
        ingest(make_payload(host_id=f"d{i}", hostname=f"d{i}"), ip=f"10.0.1.{i + 1}")
        Host.objects.filter(host_id=f"d{i}").update(last_seen=moment)
    probed = DateHierarchyQuerySet(model=Host)
    with timezone.override(zone):
        for kind in ("year", "month", "day"):
            for order in ("ASC", "DESC"):
                assert list(probed.datetimes("last_seen", kind, order)) == \
                    list(Host.objects.datetimes("last_seen", kind, order)), (kind, order)
        narrowed = probed.filter(last_seen__year=2026)
        assert list(narrowed.datetimes("last_seen", "month")) == \
            list(Host.objects.filter(last_seen__year=2026).datetimes("last_seen", "month"))
    assert DateHierarchyQuerySet(model=Host).none().datetimes("last_seen", "day") == []
    page = admin_client_.get("/admin/reports/host/", {"last_seen__year": 2026}).content.decode()
    links = re.findall(r'href="\?last_seen__month=(\d+)&amp;last_seen__year=2026"', page)
    assert links == ["1", "3", "12"]


def test_the_snapshot_list_counts_up_to_a_cap_and_a_page_past_it_counts_exactly(admin_client_, monkeypatch):
    """Millions of rows: the list says "N+ snapshots" instead of counting them all (reports.paging).

    The count printed is the paginator's: the changelist keeps the capped one it read before the page.
    """
    from reports import paging

    monkeypatch.setattr(paging.CappedPaginator, "cap", 60)
    now = timezone.now().replace(microsecond=0)
    for i in range(130):
        ingest(make_payload(host_id="many", hostname="many", collected_at=now - dt.timedelta(minutes=130 - i)))
    newest_first = list(Snapshot.objects.order_by("-pk").values_list("pk", flat=True))

    def shown(response) -> list[int]:
        return [row.pk for row in response.context["cl"].result_list]

    first = admin_client_.get("/admin/reports/snapshot/")
    assert first.status_code == 200 and first.context["cl"].paginator.capped
    html = first.content.decode()
    assert "60+ snapshots" in html and "130 snapshots" not in html
    assert shown(first) == newest_first[:50]
    # Page 3 reaches past the cap: counted exactly, and it holds the real last rows.
    last = admin_client_.get("/admin/reports/snapshot/", {"p": 3})
    assert last.status_code == 200 and not last.context["cl"].paginator.capped
    assert "130 snapshots" in last.content.decode()
    assert shown(last) == newest_first[100:]
    assert admin_client_.get("/admin/reports/snapshot/", {"p": 9}).status_code == 302  # no such page: admin's ?e=1
