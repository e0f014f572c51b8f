"""The hosts list (#18 items 1, 2, 9, 10): search by the host's own facts, OS version, columns, sorting, page size.

The page and /api/hosts/ read the same selector, so each rule is checked
through both where the API exposes it.
"""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.utils import timezone

from relevo_testing.factories import encode, make_payload
from reports import host_search, host_table, payload as payload_schema
from reports.models import Host, HostSearch
from reports.tests.helpers import assert_error, ingest, text

pytestmark = pytest.mark.django_db


def ago(**kwargs) -> dt.datetime:
    return (timezone.now() - dt.timedelta(**kwargs)).replace(microsecond=0)


def names(response) -> list[str]:
    return [host.hostname for host, _ in response.context["rows"]]


def headers(html: str) -> list[str]:
    head = html.split("<thead>", 1)[1].split("</thead>", 1)[0]
    return [re.sub(r"<[^>]+>|[▲▼]", "", cell).strip() for cell in re.findall(r"<th[^>]*>(.*?)</th>", head)]


@pytest.fixture
def fleet():
    """Behind NAT: every host reaches the server from 192.0.2.1; their own addresses differ."""
    centos = make_payload(host_id="id-centos", hostname="db-centos", collected_at=ago(minutes=2))
    centos["os"].update(distribution="CentOS Linux", distribution_version="7", kernel="3.10.0-1160.el7.x86_64")
    centos["host"]["ips"] = ["10.20.0.7", "127.0.0.1"]
    centos["interfaces"] = [{"name": "eth1", "addresses": [{"address": "172.16.5.9", "prefix_length": 24},
                                                           {"address": "fe80::1", "prefix_length": 64}]}]
    centos["cpu"]["model"] = "AMD EPYC 7R13 Processor"
    ingest(centos, ip="192.0.2.1")
    server = make_payload(host_id="id-win", hostname="WIN-FILES", collected_at=ago(hours=3))
    server["os"] = {"name": "Windows", "version": "10.0.14393", "release": "2016Server", "build": "14393",
                    "distribution": "Windows Server 2016 Datacenter", "distribution_version": None,
                    "kernel": None, "arch": "AMD64"}
    server["host"]["ips"] = ["10.30.0.4"]
    server["agent"] = {"version": "0.9.2"}
    server["memory"] = {"total_bytes": 4 * 1024**3, "available_bytes": 1024**3}
    ingest(server, ip="192.0.2.1")
    ingest(make_payload(host_id="id-deb", hostname="app-debian", collected_at=ago(days=9)), ip="192.0.2.1")


# --- item 1: search ------------------------------------------------------------------------

@pytest.mark.parametrize("search,expected", [
    ("10.20.0.7", ["db-centos"]),             # its own address, not the one the server saw
    ("172.16.5", ["db-centos"]),              # an interface's address
    ("db-centos.example.internal", ["db-centos"]),  # FQDN
    ("centos linux 7", ["db-centos"]),        # distribution and version
    ("Server 2016", ["WIN-FILES"]),           # OS version, any case
    ("epyc", ["db-centos"]),                  # CPU
    ("3.10.0-1160", ["db-centos"]),           # kernel
    ("id-deb", ["app-debian"]),               # host id, as before
    ("win-files", ["WIN-FILES"]),             # host name, any case
    ("192.0.2.1", ["app-debian", "db-centos", "WIN-FILES"]),  # the address the server saw, as before
    ("127.0.0.1", []),                        # loopback is nobody's address
])
def test_hosts_are_found_by_their_own_addresses_fqdn_os_and_cpu(signed_in, reader_client, fleet, search, expected):
    assert names(signed_in.get("/", {"q": search})) == expected
    api = reader_client.get("/api/hosts/", {"search": search})
    assert api.status_code == 200
    assert [h["hostname"] for h in api.json()["results"]] == expected


def test_a_newer_snapshot_replaces_what_search_finds_and_a_late_older_one_does_not():
    first = make_payload(host_id="moving", hostname="moving", collected_at=ago(hours=2))
    first["host"]["ips"] = ["10.9.9.1"]
    ingest(first)
    second = make_payload(host_id="moving", hostname="moving", collected_at=ago(hours=1))
    second["host"]["ips"] = ["10.9.9.2"]
    ingest(second)
    late = make_payload(host_id="moving", hostname="moving", collected_at=ago(hours=3))
    late["host"]["ips"] = ["10.9.9.3"]
    ingest(late)
    host = Host.objects.get(host_id="moving")
    assert host.own_address == "10.9.9.2"
    text = HostSearch.objects.get(host=host).text
    assert "10.9.9.2" in text and "10.9.9.1" not in text and "10.9.9.3" not in text
    assert host.search_digest == host_search.text_digest(text)


def test_the_search_columns_come_from_the_payload_alone():
    raw = make_payload(host_id="pure", hostname="Pure")
    raw["host"]["ips"] = ["fe80::2", "::1", "2001:db8::5", "2001:db8::5"]
    payload = payload_schema.decode(encode(raw), now=timezone.now())
    text = host_search.search_text(payload, last_ip="10.0.0.5")
    columns = host_search.host_search_columns(payload, text=text)
    assert columns["own_address"] == "2001:db8::5"
    assert columns["agent_version"] == "1.0.0"
    assert columns["boot_time"] == dt.datetime(2026, 11, 20, 6, 12, tzinfo=dt.timezone.utc)
    assert columns["search_digest"] == host_search.text_digest(text) != host_search.text_digest(text + "x")
    assert text == text.lower() and "pure" in text.splitlines() and "10.0.0.5" in text.splitlines()
    assert text.count("2001:db8::5") == 1 and "::1\n" not in text


# --- item 2: OS version ----------------------------------------------------------------------

def test_hosts_are_filtered_and_counted_by_os_version(signed_in, reader_client, fleet):
    response = signed_in.get("/")
    assert response.context["counts"]["versions"] == {
        "Linux": {"CentOS Linux 7": 1, "Debian GNU/Linux 12": 1},
        "Windows": {"Windows Server 2016 Datacenter": 1},
    }
    html = response.content.decode()
    assert 'href="?os=Linux&amp;os_version=CentOS+Linux+7"' in html
    assert names(signed_in.get("/", {"os": "Linux", "os_version": "CentOS Linux 7"})) == ["db-centos"]
    assert names(signed_in.get("/", {"os_version": "Windows Server 2016 Datacenter"})) == ["WIN-FILES"]
    assert names(signed_in.get("/", {"os": "Windows", "os_version": "CentOS Linux 7"})) == []
    # A version no host has is not a choice: dropped, as every bad page value is.
    assert len(names(signed_in.get("/", {"os_version": "BeOS 5"}))) == 3
    api = reader_client.get("/api/hosts/", {"os": "Linux", "os_version": "CentOS Linux 7"})
    assert api.status_code == 200 and [h["hostname"] for h in api.json()["results"]] == ["db-centos"]
    assert api.json()["count"] == 1


def test_the_api_refuses_an_over_long_os_version(reader_client):
    assert_error(reader_client.get("/api/hosts/", {"os_version": "x" * 256}), 400)


# --- item 9: columns, sorting, page size ---------------------------------------------------------

def test_the_new_columns_show_own_address_memory_uptime_and_agent(signed_in, reader_client, fleet):
    html = signed_in.get("/").content.decode()
    assert headers(html) == ["Status", "Hostname", "Address", "Seen from", "OS", "Version", "CPU", "Memory",
                             "Uptime", "Processes", "Users", "Last seen"]
    assert '<td class="c-ip mono opt" title="10.20.0.7">10.20.0.7</td>' in html
    assert "7.7 GiB" in html
    assert ">0.9.2</td>" in signed_in.get("/", {"col": "agent_version"}).content.decode()
    assert re.search(r'<span title="Booted 2026-11-20 06:12 UTC">\d+ d</span>', html)
    api = reader_client.get("/api/hosts/", {"search": "db-centos"}).json()["results"][0]
    assert api["own_address"] == "10.20.0.7" and api["agent_version"] == "1.0.0"
    assert api["boot_time"].startswith("2026-11-20T06:12:00")


def test_users_and_uptime_are_not_shown_for_a_host_that_stopped_reporting(signed_in, fleet):
    html = signed_in.get("/", {"q": "WIN-FILES", "col": ["uptime", "user_count"]}).content.decode()
    row = html.split("<tbody>", 1)[1]
    assert headers(html) == ["Hostname", "Uptime", "Users"]
    assert row.count('<td class="c-num opt">–</td>') == 2
    online = signed_in.get("/", {"q": "db-centos", "col": ["user_count"]}).content.decode()
    assert '<td class="c-num opt">1</td>' in online


@pytest.mark.parametrize("sort,expected", [
    ("hostname", ["app-debian", "db-centos", "WIN-FILES"]),    # any case: not every capital first
    ("-hostname", ["WIN-FILES", "db-centos", "app-debian"]),
    ("status", ["db-centos", "WIN-FILES", "app-debian"]),      # online, offline, stale
    ("-status", ["app-debian", "WIN-FILES", "db-centos"]),
    ("own_address", ["app-debian", "db-centos", "WIN-FILES"]),
    ("agent_version", ["WIN-FILES", "db-centos", "app-debian"]),   # equal versions: in the order they came
    ("memory_total_bytes", ["WIN-FILES", "db-centos", "app-debian"]),
])
def test_every_column_sorts_and_host_names_sort_in_any_case(signed_in, reader_client, fleet, sort, expected):
    assert names(signed_in.get("/", {"sort": sort})) == expected
    api = reader_client.get("/api/hosts/", {"ordering": sort})
    assert api.status_code == 200 and [h["hostname"] for h in api.json()["results"]] == expected


def test_every_shown_column_has_a_sort_link(signed_in, fleet):
    html = signed_in.get("/", {"col": [c.key for c in host_table.COLUMNS]}).content.decode()
    head = html.split("<thead>", 1)[1].split("</thead>", 1)[0]
    assert head.count("<th ") == len(host_table.COLUMNS) == head.count('aria-sort="')


def test_the_column_chooser_keeps_its_choice_in_the_query_string(signed_in, fleet):
    html = signed_in.get("/", {"col": ["memory_total_bytes", "agent_version"], "sort": "hostname"}).content.decode()
    assert headers(html) == ["Hostname", "Memory", "Agent"]
    assert 'href="?col=memory_total_bytes&amp;col=agent_version&amp;sort=-hostname"' in html
    assert re.search(r'<input type="checkbox" name="col" value="memory_total_bytes" checked>', html)
    assert re.search(r'<input type="checkbox" name="col" value="cpu_model">', html)
    # An unknown column drops the choice (a stale bookmark still shows a page).
    assert "CPU" in headers(signed_in.get("/", {"col": ["nope"]}).content.decode())


def test_the_page_size_is_chosen_in_the_query_string(signed_in):
    for i in range(60):
        ingest(make_payload(host_id=f"n{i:02d}", hostname=f"node-{i:02d}", processes=0), ip=f"10.1.0.{i + 1}")
    assert len(signed_in.get("/").context["rows"]) == 50
    small = signed_in.get("/", {"per_page": 25})
    assert len(small.context["rows"]) == 25 and "Page 1 of 3" in text(small)
    assert 'href="?per_page=25&amp;page=2"' in small.content.decode()
    assert len(signed_in.get("/", {"per_page": 100}).context["rows"]) == 60
    assert len(signed_in.get("/", {"per_page": 7}).context["rows"]) == 50   # not a choice: the default


def test_os_links_keep_the_status_filter(signed_in, fleet):
    html = signed_in.get("/", {"status": "online"}).content.decode()
    assert 'href="?status=online&amp;os=Linux"' in html
    assert 'href="?status=online&amp;os=Linux&amp;os_version=CentOS+Linux+7"' in html


def test_postgresql_searches_hosts_through_a_trigram_index_beside_the_host_rows():
    """Migration 0018 keeps it on HostSearch, PostgreSQL only (pg_trgm); SQLite scans that narrow table.

    Not on the host row, which every upload rewrites: no index of the host
    table covers the text (the host's UPDATE would insert its trigrams again).
    """
    from django.db import connection

    with connection.cursor() as cursor:
        host_indexes = connection.introspection.get_constraints(cursor, Host._meta.db_table)
        search_indexes = connection.introspection.get_constraints(cursor, HostSearch._meta.db_table)
    assert ("host_search_trigram" in search_indexes) == (connection.vendor == "postgresql")
    assert not {"host_search_trigram", "host_search_text"} & host_indexes.keys()
    assert "host_hostname_lower" in host_indexes and "host_os_version" in host_indexes


@pytest.mark.postgres_only
def test_the_host_row_has_no_index_an_upload_feeds_for_nothing():
    """Every upload's UPDATE of the host row inserts into each of its indexes (migration 0019 says why).

    No LIKE-prefix copy (varchar_pattern_ops) of any column, no index of the
    OS name alone, and the index of flagged hosts holds only flagged ones.
    """
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s", [Host._meta.db_table])
        indexes = dict(cursor.fetchall())
    assert not [name for name, definition in indexes.items() if "pattern_ops" in definition]
    assert not [name for name, definition in indexes.items() if definition.endswith("(os_name)")]
    assert indexes["host_identity_conflict"].endswith("WHERE (identity_conflict_since IS NOT NULL)")
    assert "host_host_id_unique" in indexes and "host_hostname" in indexes
    assert len(indexes) == 20, sorted(indexes)


def _assert_read_in_index_order(queryset, sort: str, *, bitmap_scans: bool = True) -> None:
    """The plan of *queryset* has no sorting step (SQLite's EXPLAIN QUERY PLAN; PostgreSQL's with the rest priced out)."""
    from django.db import connection

    sql, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute(f"EXPLAIN QUERY PLAN {sql}", params)
            plan = " | ".join(str(row[-1]) for row in cursor.fetchall())
            assert "TEMP B-TREE" not in plan, (sort, plan)
            return
        nearly_unique = sort.lstrip("-") in ("status", "last_seen", "last_ip")
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_sort = off")
        if not bitmap_scans:
            cursor.execute("SET LOCAL enable_bitmapscan = off")
        if not nearly_unique:
            # With the statistics earlier tests leave, the planner may prefer another index plus an
            # incremental sort over a few rows; the question here is whether an index gives the order.
            cursor.execute("SET LOCAL enable_incremental_sort = off")
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = " | ".join(row[0] for row in cursor.fetchall())
        assert not re.search(r"(?<!Incremental )Sort  \(" if nearly_unique else r"Sort  \(", plan), (sort, plan)


@pytest.mark.parametrize("sort", host_table.SORTS)
def test_every_sort_reads_an_index_in_order_instead_of_sorting_the_fleet(sort):
    """At 100,000 hosts a sort SQLite or PostgreSQL must do itself costs 0.2-0.8 s a page (docs/performance.md).

    Each sort's ORDER BY, its pk tie-break included, must match an index read
    forwards or backwards: the plan has no sorting step. Checked on the
    backend the suite runs on (SQLite's EXPLAIN QUERY PLAN; PostgreSQL's plan
    with sequential scans and sorts priced out, so only an index can serve it).
    On PostgreSQL the sorts by last seen (status too) and seen-from address
    may finish with an incremental sort of equal keys: their single-column
    indexes do not order equal values by pk, and those values are nearly
    unique in a fleet. Any other sort must have no sorting step at all.
    """
    from reports import selectors

    ingest(make_payload(host_id="one", hostname="one"))
    _assert_read_in_index_order(selectors.host_list(ordering=sort)[:50], sort)


# --- a broad search: capped count, page read in sort order ----------------------------------

@pytest.fixture
def broad(monkeypatch):
    """35 hosts whose search text holds "10.1.0." and 5 that do not; the count stops at 30 (not 10,000)."""
    from reports import paging

    monkeypatch.setattr(paging.CappedPaginator, "cap", 30)
    for i in range(35):
        ingest(make_payload(host_id=f"m{i:02d}", hostname=f"match-{(i * 8) % 35:02d}", processes=0),
               ip=f"10.1.0.{i + 1}")
    for i in range(5):
        ingest(make_payload(host_id=f"o{i}", hostname=f"other-{i}", processes=0), ip=f"10.2.0.{i + 1}")


def test_a_search_matching_more_than_the_cap_says_cap_plus_and_lists_the_same_hosts(signed_in, reader_client, broad):
    matches = sorted(f"match-{i:02d}" for i in range(35))
    first = signed_in.get("/", {"q": "10.1.0.", "per_page": 25})
    assert first.context["page"].paginator.capped
    assert "Showing 1–25 of 30+ hosts." in text(first) and "Page 1" in text(first)
    assert "Page 1 of" not in text(first)
    assert names(first) == matches[:25]
    # The page past the cap counts exactly: the real total, the real last page.
    second = signed_in.get("/", {"q": "10.1.0.", "per_page": 25, "page": 2})
    assert not second.context["page"].paginator.capped
    assert "Showing 26–35 of 35 hosts." in text(second) and "Page 2 of 2" in text(second)
    assert names(second) == matches[25:]
    # Descending, and against the API, which counts exactly: the same hosts in the same order.
    down = signed_in.get("/", {"q": "10.1.0.", "per_page": 25, "sort": "-hostname"})
    assert names(down) == matches[::-1][:25]
    api = reader_client.get("/api/hosts/", {"search": "10.1.0.", "page_size": 100}).json()
    assert [host["hostname"] for host in api["results"]] == matches


def test_a_search_under_the_cap_or_with_filters_counts_exactly(signed_in, broad):
    few = signed_in.get("/", {"q": "match-0"})
    assert "Showing 1–10 of 10 hosts." in text(few) and not few.context["page"].paginator.capped
    # A filter besides the search: its index leads, the match stays a subquery, the count is capped all the same.
    filtered = signed_in.get("/", {"q": "10.1.0.", "os": "Linux", "per_page": 25})
    assert "Showing 1–25 of 30+ hosts." in text(filtered)
    assert names(filtered) == sorted(f"match-{i:02d}" for i in range(35))[:25]
    assert "Showing 1–5 of 5 hosts." in text(signed_in.get("/", {"q": "other-"}))


@pytest.mark.parametrize("sort", host_table.SORTS)
def test_a_broad_search_reads_the_sort_index_and_filters_until_the_page_is_full(sort):
    """The capped form of a search (``search_in_order``): no sorting step, on either backend (as above)."""
    from reports import selectors

    ingest(make_payload(host_id="one", hostname="one"))
    _assert_read_in_index_order(selectors.host_list(search="10.0.1", ordering=sort, search_in_order=True)[:50], sort,
                                bitmap_scans=False)
