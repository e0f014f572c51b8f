"""The dashboard pages, against real ingested snapshots (real day files, real SQLite)."""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid

import pytest
from django.urls import reverse
from django.utils import timezone

from relevo_testing.factories import encode, make_payload, rewrite_as_zlib
from reports import diff as snapshot_diff_module
from reports import payload as payload_schema
from reports import charts, selectors
from reports.models import Host, Snapshot
from reports.host_table import age
from reports.templatetags.relevo import bytes_or_dash
from reports.tests.helpers import ingest, text

pytestmark = pytest.mark.django_db


def process(pid: int, name: str, cmdline: list[str], *, ppid: int = 1, user: str = "root",
            cpu: float = 0.0, rss: int = 1_000_000) -> dict:
    return {"pid": pid, "ppid": ppid, "name": name, "username": user, "status": "sleeping",
            "create_time": None, "cpu_percent": cpu, "memory_rss_bytes": rss, "memory_percent": 0.1,
            "num_threads": 1, "exe": None, "cmdline": cmdline}


def ago(**kwargs) -> dt.datetime:
    return (timezone.now() - dt.timedelta(**kwargs)).replace(microsecond=0)


def host_of(result) -> Host:
    return Snapshot.objects.get(snapshot_id=result.snapshot_id).host


# --- sign-in ---------------------------------------------------------------------

@pytest.mark.parametrize("name,kwargs", [
    ("reports:host_list", {}), ("reports:process_search", {}), ("reports:host_detail", {"pk": 1}),
    ("reports:host_changes", {"pk": 1}),
    ("reports:host_day_file", {"pk": 1, "ip": "10.0.0.5", "day": dt.date(2026, 11, 27)}),
])
def test_every_page_redirects_anonymous_users_to_the_login_page(client, name, kwargs):
    url = reverse(name, kwargs=kwargs)
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next={url}"


def test_the_login_page_is_styled_like_the_site_and_signs_in(client, django_user_model):
    django_user_model.objects.create_user("ops", password="a-long-test-password")
    page = client.get("/accounts/login/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "reports/relevo.css" in html and '<label for="id_password">' in html
    bad = client.post("/accounts/login/", {"username": "ops", "password": "wrong"})
    assert bad.status_code == 200 and "did not match" in bad.content.decode()
    good = client.post("/accounts/login/", {"username": "ops", "password": "a-long-test-password", "next": "/processes/"})
    assert good.status_code == 302 and good["Location"] == "/processes/"
    assert client.get("/").status_code == 200


def test_sign_out_is_a_post_and_ends_the_session(signed_in):
    assert signed_in.post("/accounts/logout/").status_code == 302
    assert signed_in.get("/").status_code == 302


# --- host list ---------------------------------------------------------------------

def test_a_fresh_install_explains_how_to_add_the_first_host(signed_in):
    response = signed_in.get("/")
    assert response.status_code == 200
    assert "No hosts yet: run the agent" in text(response)
    assert "python -m agent --server http://testserver --token TOKEN" in text(response)


@pytest.fixture
def fleet():
    """Three hosts: online Linux, offline Windows, stale Linux."""
    web = ingest(make_payload(host_id="id-web", hostname="web-01", collected_at=ago(minutes=1), processes=4))
    win = make_payload(host_id="id-win", hostname="win-db", collected_at=ago(hours=3))
    win["os"] = {"name": "Windows", "version": "10.0.19045", "release": "10", "build": "19045",
                 "distribution": "Windows 10 Pro", "distribution_version": "22H2", "kernel": None, "arch": "AMD64"}
    win = ingest(win, ip="10.0.0.9")
    old = ingest(make_payload(host_id="id-old", hostname="legacy-box", collected_at=ago(days=9)), ip="10.0.0.77")
    return {"web": host_of(web), "win": host_of(win), "old": host_of(old)}


def test_the_host_list_shows_every_host_with_status_and_counts(signed_in, fleet):
    response = signed_in.get("/")
    page = text(response)
    for hostname in ("web-01", "win-db", "legacy-box"):
        assert hostname in page
    assert response.context["counts"] == {
        "os": {"Linux": 2, "Windows": 1}, "status": {"online": 1, "offline": 1, "stale": 1},
        "versions": {"Linux": {"Debian GNU/Linux 12": 2}, "Windows": {"Windows 10 Pro 22H2": 1}},
    }
    statuses = {host.hostname: status for host, status in response.context["rows"]}
    assert statuses == {"web-01": "online", "win-db": "offline", "legacy-box": "stale"}
    assert "Windows 10 Pro 22H2" in page and "10.0.0.9" in page
    assert reverse("reports:host_detail", args=[fleet["web"].pk]) in response.content.decode()


@pytest.mark.parametrize("query,expected", [
    ({"q": "WEB"}, ["web-01"]),
    ({"q": "10.0.0.9"}, ["win-db"]),
    ({"q": "id-old"}, ["legacy-box"]),
    ({"os": "Windows"}, ["win-db"]),
    ({"status": "online"}, ["web-01"]),
    ({"status": "offline"}, ["win-db"]),
    ({"status": "stale"}, ["legacy-box"]),
    ({"os": "Linux", "status": "stale"}, ["legacy-box"]),
    ({"sort": "-hostname"}, ["win-db", "web-01", "legacy-box"]),
    ({"sort": "last_seen"}, ["legacy-box", "win-db", "web-01"]),
    ({"sort": "-process_count"}, ["web-01", "legacy-box", "win-db"]),
    ({"sort": "no_such_column"}, ["legacy-box", "web-01", "win-db"]),
    ({"sort": "--hostname"}, ["legacy-box", "web-01", "win-db"]),  # was a 500 (order_by("--hostname"))
    ({"q": "x" * 257}, ["legacy-box", "web-01", "win-db"]),  # over the API's limit too: dropped, not an error
    ({"status": "bogus"}, ["legacy-box", "web-01", "win-db"]),
])
def test_the_host_list_searches_filters_and_sorts(signed_in, fleet, query, expected):
    response = signed_in.get("/", query)
    assert response.status_code == 200
    assert [host.hostname for host, _ in response.context["rows"]] == expected


@pytest.mark.parametrize("query", [
    {}, {"q": "WEB"}, {"os": "Linux", "status": "stale"}, {"sort": "-process_count"}, {"status": "bogus"},
    {"q": "x" * 257},
])
def test_the_host_lists_csv_link_exports_the_hosts_it_lists_in_its_order(signed_in, fleet, query):
    import csv
    import html as html_module
    import io

    response = signed_in.get("/", query)
    [link] = re.findall(r'<a href="(/api/hosts\.csv[^"]*)">CSV</a>', response.content.decode())
    exported = signed_in.get(html_module.unescape(link))
    assert exported.status_code == 200, exported.content
    rows = list(csv.DictReader(io.StringIO(b"".join(exported.streaming_content).decode()
                                           if exported.streaming else exported.content.decode())))
    assert [row["hostname"] for row in rows] == [host.hostname for host, _ in response.context["rows"]]


def test_a_filter_that_matches_nothing_says_so(signed_in, fleet):
    response = signed_in.get("/", {"q": "nothing-like-this"})
    assert "No hosts match" in text(response)


def test_the_host_list_paginates(signed_in):
    for i in range(53):
        ingest(make_payload(host_id=f"h{i:02d}", hostname=f"node-{i:02d}", processes=0), ip=f"10.1.0.{i + 1}")
    first = signed_in.get("/")
    assert len(first.context["rows"]) == 50 and "Page 1 of 2" in text(first)
    second = signed_in.get("/", {"page": 2})
    assert [h.hostname for h, _ in second.context["rows"]] == ["node-50", "node-51", "node-52"]
    assert signed_in.get("/", {"page": "abc"}).status_code == 200


def test_sort_headers_toggle_and_keep_the_filters(signed_in, fleet):
    html = signed_in.get("/", {"os": "Linux", "sort": "hostname"}).content.decode()
    assert 'href="?os=Linux&amp;sort=-hostname"' in html
    assert 'aria-sort="ascending"' in html


# --- host detail ---------------------------------------------------------------------

@pytest.fixture
def busy_host():
    payload = make_payload(host_id="id-busy", hostname="busy", collected_at=ago(minutes=5), processes=0)
    payload["processes"] = [
        process(1, "systemd", ["/sbin/init"], ppid=0, rss=12_000_000),
        process(400, "nginx", ["nginx: master process"], ppid=1, cpu=1.0, rss=5_000_000),
        process(401, "nginx", ["nginx: worker process"], ppid=400, user="www-data", cpu=30.0, rss=9_000_000),
        process(900, "postgres", ["/usr/lib/postgresql/15/bin/postgres", "-D", "/var/lib/pg"], ppid=1,
                user="postgres", cpu=5.0, rss=80_000_000),
    ]
    payload["users"] = [{"name": "alice", "terminal": "pts/0", "host": "10.0.0.7", "started": None}]
    first = ingest(payload)
    second = dict(payload, snapshot_id=str(uuid.uuid4()), collected_at=ago(minutes=1).isoformat())
    ingest(second)
    return host_of(first)


def test_host_detail_shows_identity_users_processes_history_and_charts(signed_in, busy_host):
    response = signed_in.get(reverse("reports:host_detail", args=[busy_host.pk]))
    assert response.status_code == 200
    page = text(response)
    assert "busy" in page and "id-busy" in page and "10.0.0.5" in page
    assert "Intel(R) Xeon(R) CPU E5-2686 v4" in page and "Debian GNU/Linux 12" in page
    assert "alice" in page and "pts/0" in page
    names = [p.name for _, p in response.context["process_rows"]]
    assert names == ["nginx", "postgres", "nginx", "systemd"], "default sort: CPU, busiest first"
    assert len(response.context["history"].object_list) == 2
    html = response.content.decode()
    assert html.count('<svg class="chart"') == 2 and "<polyline" in html
    day = timezone.localtime(busy_host.last_seen).date().isoformat()
    assert f"/hosts/{busy_host.pk}/days/10.0.0.5/{day}.json" in html


@pytest.mark.parametrize("query,expected", [
    ({"psort": "memory"}, ["postgres", "systemd", "nginx", "nginx"]),
    ({"psort": "name"}, ["nginx", "nginx", "postgres", "systemd"]),
    ({"psort": "user"}, ["postgres", "nginx", "systemd", "nginx"]),
    ({"pq": "WORKER"}, ["nginx"]),
    ({"pq": "www-data"}, []),  # the user name does not count (reports.processes)
    ({"pq": "/var/lib/pg"}, ["postgres"]),
    ({"pq": "/var/lib/pg", "match": "cmdline"}, ["postgres"]),
    ({"pq": "/var/lib/pg", "match": "name"}, []),  # process search's name-only match
    ({"pq": "NGINX", "match": "name"}, ["nginx", "nginx"]),
    ({"pq": "/var/lib/pg", "match": "bogus"}, ["postgres"]),  # an unknown match is the default
])
def test_the_process_table_filters_and_sorts(signed_in, busy_host, query, expected):
    response = signed_in.get(reverse("reports:host_detail", args=[busy_host.pk]), query)
    assert [p.name for _, p in response.context["process_rows"]] == expected


def test_the_parent_child_view_nests_children_under_their_parent(signed_in, busy_host):
    response = signed_in.get(reverse("reports:host_detail", args=[busy_host.pk]), {"tree": "on"})
    assert [(depth, p.pid) for depth, p in response.context["process_rows"]] == [(0, 1), (1, 400), (2, 401), (1, 900)]


def test_process_tree_survives_pid_cycles():
    a = payload_schema.Process(pid=10, ppid=11, name="a")
    b = payload_schema.Process(pid=11, ppid=10, name="b")
    c = payload_schema.Process(pid=12, ppid=12, name="self-parent")
    assert sorted(p.pid for _, p in selectors.process_tree([a, b, c])) == [10, 11, 12]


def test_an_unknown_host_is_an_html_404(signed_in):
    for name in ("reports:host_detail", "reports:host_changes"):
        response = signed_in.get(reverse(name, args=[999999]))
        assert response.status_code == 404
        assert "No such host" in text(response)


def test_the_raw_day_file_downloads_through_the_store(signed_in, busy_host, data_dir):
    day = timezone.localtime(busy_host.last_seen).date()
    response = signed_in.get(reverse("reports:host_day_file", args=[busy_host.pk, "10.0.0.5", day]))
    assert response.status_code == 200
    assert response["Content-Disposition"] == f'attachment; filename="10.0.0.5_{day.isoformat()}.json"'
    assert response.streaming  # from disk, in chunks: a big day file is never held in memory
    content = b"".join(response.streaming_content)
    assert content == (data_dir / f"10.0.0.5_{day.isoformat()}.json").read_bytes()
    assert int(response["Content-Length"]) == len(content) and len(json.loads(content)) == 2


def test_a_day_file_of_another_host_or_a_bad_address_is_not_served(signed_in, busy_host, fleet):
    day = timezone.localtime(busy_host.last_seen).date()
    for ip in ("10.0.0.9", "../../etc", "not-an-ip"):
        response = signed_in.get(f"/hosts/{busy_host.pk}/days/{ip}/{day.isoformat()}.json")
        assert response.status_code == 404
    assert signed_in.get(f"/hosts/{busy_host.pk}/days/10.0.0.5/2026-13-45.json").status_code == 404


# --- changes -------------------------------------------------------------------------

def test_changes_default_to_the_last_two_snapshots(signed_in):
    base = make_payload(host_id="id-chg", hostname="chg", collected_at=ago(hours=2), processes=0)
    base["processes"] = [process(100, "sshd", ["/usr/sbin/sshd", "-D"]), process(200, "cron", ["/usr/sbin/cron"]),
                         process(300, "old-job", ["/opt/job", "--nightly"])]
    older = ingest(base)
    middle = dict(base, snapshot_id=str(uuid.uuid4()), collected_at=ago(hours=1).isoformat())
    ingest(middle)
    newest = dict(middle, snapshot_id=str(uuid.uuid4()), collected_at=ago(minutes=1).isoformat())
    newest["processes"] = [
        process(100, "sshd", ["/usr/sbin/sshd", "-D"]),
        process(5123, "cron", ["/usr/sbin/cron"]),           # same service, new pid: not started
        process(300, "redis-server", ["redis-server", "*:6379"]),  # pid reused by another program
    ]
    newest["users"] = [{"name": "bob", "terminal": "pts/1", "host": "10.0.0.8", "started": None}]
    newest["memory"] = {"total_bytes": 16_000_000_000, "available_bytes": 6_012_345_344}
    newest["os"] = dict(base["os"], kernel="6.1.0-31-amd64", release="6.1.0-31-amd64")
    ingest(newest)
    host = host_of(older)
    response = signed_in.get(reverse("reports:host_changes", args=[host.pk]))
    assert response.status_code == 200
    changes = response.context["changes"]
    assert str(changes.new.snapshot_id) == newest["snapshot_id"]
    assert str(changes.old.snapshot_id) == middle["snapshot_id"]
    diff = changes.diff
    assert [(c.name, c.cmdline) for c in diff.started] == [("redis-server", "redis-server *:6379")]
    assert [(c.name, c.cmdline) for c in diff.stopped] == [("old-job", "/opt/job --nightly")]
    assert [u.name for u in diff.logged_in] == ["bob"] and [u.name for u in diff.logged_out] == ["alice"]
    assert {(c.label, c.old, c.new) for c in diff.fields} == {
        ("OS release", "6.1.0-30-amd64", "6.1.0-31-amd64"), ("Kernel", "6.1.0-30-amd64", "6.1.0-31-amd64"),
        ("Total memory", 8_245_592_064, 16_000_000_000),
    }
    page = text(response)
    assert "redis-server" in page and "old-job" in page and "bob" in page and "6.1.0-31-amd64" in page
    assert "cron" not in " ".join(c.name for c in diff.started)

    explicit = signed_in.get(reverse("reports:host_changes", args=[host.pk]),
                             {"from": older.snapshot_id, "to": middle["snapshot_id"]})
    assert explicit.context["diff"].is_empty and "Nothing changed" in text(explicit)


def test_changes_with_one_snapshot_say_there_is_nothing_to_compare(signed_in):
    host = host_of(ingest(make_payload(host_id="solo", hostname="solo")))
    response = signed_in.get(reverse("reports:host_changes", args=[host.pk]))
    assert response.status_code == 200 and "Nothing to compare: this is the first snapshot" in text(response)
    assert "after its next upload" in text(response)


def test_changes_refuse_a_snapshot_of_another_host_or_a_bad_id(signed_in, busy_host, fleet):
    other = fleet["web"].latest_snapshot.snapshot_id
    mine = busy_host.latest_snapshot.snapshot_id
    url = reverse("reports:host_changes", args=[busy_host.pk])
    assert signed_in.get(url, {"from": other, "to": mine}).status_code == 404
    assert signed_in.get(url, {"from": "not-a-uuid", "to": mine}).status_code == 404


def test_diff_counts_duplicates_and_ignores_pids():
    def payload(processes, users=()):
        raw = make_payload(processes=0)
        raw["processes"], raw["users"] = processes, list(users)
        return payload_schema.decode(encode(raw), now=timezone.now())

    worker = ["nginx: worker process"]
    old = payload([process(10, "nginx", worker), process(11, "nginx", worker), process(12, "bash", ["-bash"])])
    new = payload([process(20, "nginx", worker), process(21, "nginx", worker), process(22, "nginx", worker),
                   process(23, "nginx", worker), process(12, "bash", ["-bash", "-l"])])
    result = snapshot_diff_module.snapshot_diff(old, new)
    assert [(c.name, c.count) for c in result.started] == [("bash", 1), ("nginx", 2)]
    assert [(c.name, c.cmdline, c.count) for c in result.stopped] == [("bash", "-bash", 1)]
    assert result.unchanged_processes == 2
    assert snapshot_diff_module.snapshot_diff(old, old).is_empty


# --- process search ----------------------------------------------------------------

def test_process_search_finds_hosts_running_a_program(signed_in, busy_host, fleet):
    response = signed_in.get(reverse("reports:process_search"), {"q": "POSTGRES"})
    assert response.status_code == 200
    assert [r.host.hostname for r in response.context["page"]] == ["busy"]
    assert ("postgres", "/usr/lib/postgresql/15/bin/postgres -d /var/lib/pg") in response.context["page"][0].matches
    link = f'{reverse("reports:host_detail", args=[busy_host.pk])}?pq=POSTGRES&amp;match=name#processes'
    assert link in response.content.decode(), "name-only: the host page filters by name too"
    page = text(response)
    assert "online" in page and "Debian GNU/Linux" in page, "status and OS columns"

    by_cmdline = signed_in.get(reverse("reports:process_search"), {"q": "--flag", "match": "cmdline"})
    assert {r.host.hostname for r in by_cmdline.context["page"]} == {"web-01", "win-db", "legacy-box"}
    by_name = signed_in.get(reverse("reports:process_search"), {"q": "--flag"})
    assert list(by_name.context["page"]) == [], "name-only matching is the default"
    by_path = signed_in.get(reverse("reports:process_search"), {"q": "/var/lib/pg", "match": "cmdline"})
    link = f'{reverse("reports:host_detail", args=[busy_host.pk])}?pq=/var/lib/pg#processes'
    assert link in by_path.content.decode(), "name or command line: the host page's default, not named"


def test_process_search_explains_empty_queries_and_misses(signed_in, fleet):
    assert "Type part of a process name" in text(signed_in.get(reverse("reports:process_search")))
    miss = signed_in.get(reverse("reports:process_search"), {"q": "no-such-daemon"})
    assert "No host runs a process matching" in text(miss)


def test_pages_use_only_local_static_files(signed_in, busy_host):
    for url in ("/", reverse("reports:host_detail", args=[busy_host.pk]),
                reverse("reports:host_changes", args=[busy_host.pk]), reverse("reports:process_search")):
        html = signed_in.get(url).content.decode()
        assert not re.search(r'(src|href)="(https?:)?//', html), url
        assert "<script" not in html, f"{url} must work without JavaScript"


def test_charts_are_plain_svg_with_a_text_summary_and_gaps():
    empty = charts.time_chart([], title="Processes")
    assert "no data yet" in empty and 'aria-label="Processes: no data"' in empty
    start = dt.datetime(2026, 11, 29, 12, 0, tzinfo=dt.timezone.utc)
    points = [(start + dt.timedelta(minutes=5 * i), v) for i, v in enumerate([10, 12, None, 11, 30])]
    chart = charts.time_chart(points, title="Processes", format_value=lambda v: f"{v:.0f}")
    assert chart.count("<polyline") == 2, "a missing value breaks the line"
    assert "latest 30, lowest 10, highest 30 over 4 snapshots" in chart
    assert "<script" not in chart


def test_process_names_and_command_lines_are_escaped(signed_in):
    payload = make_payload(host_id="xss", hostname="xss", processes=0)
    payload["processes"] = [process(66, "<script>alert(1)</script>", ["sh", "-c", "echo '<b>&'"])]
    host = host_of(ingest(payload))
    html = signed_in.get(reverse("reports:host_detail", args=[host.pk])).content.decode()
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "echo &#x27;&lt;b&gt;&amp;&#x27;" in html


def test_a_history_link_compares_a_snapshot_with_the_one_before_it(signed_in):
    payloads = []
    for hours, name in ((3, "a"), (2, "b"), (1, "c")):
        raw = make_payload(host_id="hist", hostname="hist", collected_at=ago(hours=hours), processes=0)
        raw["processes"] = [process(10, name, [name])]
        ingest(raw)
        payloads.append(raw)
    host = Host.objects.get(host_id="hist")
    detail = signed_in.get(reverse("reports:host_detail", args=[host.pk])).content.decode()
    link = f'{reverse("reports:host_changes", args=[host.pk])}?to={payloads[1]["snapshot_id"]}'
    assert link in detail
    diff = signed_in.get(link).context["diff"]
    assert [c.name for c in diff.started] == ["b"] and [c.name for c in diff.stopped] == ["a"]
    first = signed_in.get(reverse("reports:host_changes", args=[host.pk]), {"to": payloads[0]["snapshot_id"]})
    assert first.context["changes"].old == first.context["changes"].new
    assert "Nothing to compare: this is the first snapshot" in text(first)
    assert signed_in.get(reverse("reports:host_changes", args=[host.pk]), {"to": str(uuid.uuid4())}).status_code == 404


def test_pages_read_a_zlib_row_from_before_zstd_beside_a_zstd_one(signed_in):
    """After an upgrade a host's older rows hold zlib and its newer ones zstd; the pages read both."""
    for hours, name in ((2, "old-program"), (1, "new-program")):
        raw = make_payload(host_id="upgraded", hostname="upgraded", collected_at=ago(hours=hours), processes=0)
        raw["processes"] = [process(10, name, [name])]
        result = ingest(raw)
    host = Host.objects.get(host_id="upgraded")
    rewrite_as_zlib(result.snapshot_id)
    blobs = [bytes(blob)[:1] for blob in host.snapshots.order_by("collected_at").values_list(
        "document_compressed", flat=True)]
    assert blobs == [b"\x28", b"\x78"], "zstd then zlib"
    detail = signed_in.get(reverse("reports:host_detail", args=[host.pk]))
    assert [p.name for _, p in detail.context["process_rows"]] == ["new-program"]
    diff = signed_in.get(reverse("reports:host_changes", args=[host.pk])).context["diff"]
    assert [c.name for c in diff.started] == ["new-program"] and [c.name for c in diff.stopped] == ["old-program"]


@pytest.mark.parametrize("seconds,expected", [(-5, "0 s"), (59, "59 s"), (60, "1 min"), (3599, "59 min"),
                                              (3600, "1 h"), (86399, "23 h"), (86400 * 9, "9 d")])
def test_ages_are_short(seconds, expected):
    assert age(seconds) == expected


def test_host_rows_show_age_and_escape_hostnames(signed_in):
    ingest(make_payload(host_id="odd", hostname="<i>odd</i>", collected_at=ago(hours=3)))
    html = signed_in.get("/").content.decode()
    assert "&lt;i&gt;odd&lt;/i&gt;" in html and "<i>odd</i>" not in html
    assert re.search(r">3 h ago</time>", html)


def test_changes_from_an_old_snapshot_default_to_the_newest(signed_in):
    ids = []
    for hours, name in ((3, "a"), (2, "b"), (1, "c")):
        raw = make_payload(host_id="from-only", hostname="from-only", collected_at=ago(hours=hours), processes=0)
        raw["processes"] = [process(10, name, [name])]
        ingest(raw)
        ids.append(raw["snapshot_id"])
    host = Host.objects.get(host_id="from-only")
    diff = signed_in.get(reverse("reports:host_changes", args=[host.pk]), {"from": ids[0]}).context["diff"]
    assert [c.name for c in diff.started] == ["c"] and [c.name for c in diff.stopped] == ["a"]


# --- one clock, units, the process table, charts (issue 18) ---------------------------

@pytest.fixture
def madrid(settings):
    settings.TIME_ZONE = "Europe/Madrid"
    timezone.deactivate()
    yield
    timezone.deactivate()


def test_every_time_on_the_host_and_changes_pages_is_in_the_servers_zone_and_one_format(signed_in, madrid):
    first = make_payload(host_id="clock", hostname="clock", collected_at=ago(hours=2), processes=1)
    first["host"]["boot_time"] = "2026-11-20T06:12:00+00:00"
    second = dict(first, snapshot_id=str(uuid.uuid4()), collected_at=ago(minutes=1).isoformat(),
                  host=dict(first["host"], boot_time="2026-11-29T17:44:00+00:00"))
    ingest(first)
    host = host_of(ingest(second))
    for url in (reverse("reports:host_detail", args=[host.pk]), reverse("reports:host_changes", args=[host.pk])):
        html = signed_in.get(url).content.decode()
        assert "+00:00<" not in html and "+00:00 " not in html, f"a raw UTC time on {url}"
        assert not re.search(r"\b(a\.m\.|p\.m\.)", html), f"Django's default date format on {url}"
        assert "CET" in html, "the zone abbreviation is given"
    detail = signed_in.get(reverse("reports:host_detail", args=[host.pk])).content.decode()
    assert "2026-11-27 08:40</time>" in detail, "Logged in since (07:40 UTC) in Madrid"
    assert "2026-11-29 18:44</time>" in detail, "Booted (17:44 UTC) in Madrid"
    changes = signed_in.get(reverse("reports:host_changes", args=[host.pk])).content.decode()
    assert "2026-11-20 07:12</time>" in changes and "2026-11-29 18:44</time>" in changes, "boot time, both sides"


def test_relative_times_keep_the_absolute_time_in_their_title(signed_in, busy_host):
    html = signed_in.get(reverse("reports:host_detail", args=[busy_host.pk])).content.decode()
    seen = timezone.localtime(busy_host.last_seen)
    assert re.search(rf'<time datetime="{re.escape(seen.isoformat())}" title="{seen:%Y-%m-%d %H:%M:%S} \w+">\d+ min ago</time>',
                     html)


@pytest.mark.parametrize("value,expected", [
    (512, "512 B"), (1536, "1.5 KiB"), (8 * 2**30, "8 GiB"), (8_245_592_064, "7.7 GiB"), (200 * 2**30, "200 GiB"),
    (None, "–"),
])
def test_byte_counts_are_labelled_in_binary_units(value, expected):
    assert bytes_or_dash(value) == expected


def test_the_os_is_named_once_and_memory_shows_used_total_and_percent(signed_in, busy_host):
    page = text(signed_in.get(reverse("reports:host_detail", args=[busy_host.pk])))
    assert "Debian GNU/Linux 12" in page and "Linux Debian" not in page
    assert "2.1 GiB used of 7.7 GiB (27%)" in page  # 8,245,592,064 total, 6,012,345,344 available
    assert re.search(r"Booted 2026-11-20 \d\d:12 \(up \d+ d \d+ h at the last snapshot\)", page)


def test_a_long_command_line_opens_in_details_and_the_short_one_stays_plain(signed_in):
    long_cmdline = ["/usr/bin/java"] + [f"-Dproperty{i}=value{i}" for i in range(20)]
    payload = make_payload(host_id="long", hostname="long", processes=0)
    payload["processes"] = [process(5, "java", long_cmdline), process(6, "sh", ["sh", "-c", "true"])]
    host = host_of(ingest(payload))
    html = signed_in.get(reverse("reports:host_detail", args=[host.pk])).content.decode()
    full = " ".join(long_cmdline)
    assert len(full) > 160
    assert re.search(r'<details class="cmd-more"><summary>.*…</span>.*show all.*</summary>' + re.escape(full) + "</details>",
                     html)
    assert ">sh -c true</td>" in html
    assert "break-all" not in open("reports/static/reports/relevo.css").read()


@pytest.fixture
def crowded_host():
    """A Linux host with kthreadd, 40 kernel threads and 230 user-space processes."""
    payload = make_payload(host_id="crowded", hostname="crowded", processes=0)
    payload["processes"] = (
        [process(1, "systemd", ["/sbin/init"], ppid=0), dict(process(2, "kthreadd", None, ppid=0), cmdline=None)]
        + [dict(process(10 + i, f"kworker/{i}:0", None, ppid=2), cmdline=None) for i in range(40)]
        + [dict(process(1000 + i, f"app-{i:03d}", [f"/usr/bin/app-{i:03d}"], cpu=i / 10),
                status="running" if i % 2 else "sleeping", num_threads=i % 9 + 1, exe=f"/usr/bin/app-{i:03d}",
                create_time="2026-11-29T08:00:00+00:00") for i in range(229)]
    )
    return host_of(ingest(payload))


def test_the_process_table_hides_kernel_threads_until_asked(signed_in, crowded_host):
    url = reverse("reports:host_detail", args=[crowded_host.pk])
    default = signed_in.get(url)
    names = [p.name for _, p in default.context["process_rows"]]
    assert not any(name.startswith("kworker/") or name == "kthreadd" for name in names)
    assert default.context["process_total"] == 230 and default.context["kernel_threads"] == 41
    assert "41 kernel threads hidden" in text(default)
    shown = signed_in.get(url, {"kthreads": "on", "psort": "pid"})
    assert shown.context["process_total"] == 271
    assert [p.pid for _, p in shown.context["process_rows"]][:3] == [1, 2, 10]


def test_the_process_table_pages_by_100_and_keeps_its_place(signed_in, crowded_host):
    url = reverse("reports:host_detail", args=[crowded_host.pk])
    first = signed_in.get(url, {"psort": "pid"})
    assert len(first.context["process_rows"]) == 100 and "1–100 of 230 processes" in text(first)
    html = first.content.decode()
    assert 'href="?psort=pid&amp;ppage=2#processes"' in html
    last = signed_in.get(url, {"psort": "pid", "ppage": 3})
    assert [p.pid for _, p in last.context["process_rows"]][-1] == 1228 and len(last.context["process_rows"]) == 30
    assert signed_in.get(url, {"ppage": "junk"}).context["process_page"].number == 1


@pytest.mark.parametrize("psort,first_pid,aria", [
    ("pid", 1, ("PID", "ascending")), ("-pid", 1228, ("PID", "descending")),
    ("status", 1001, ("Status", "ascending")), ("-status", 1228, ("Status", "descending")),
    ("cpu", 1228, ("CPU %", "descending")), ("-cpu", 1, ("CPU %", "ascending")),
])
def test_pid_and_status_sort_both_ways_and_the_header_says_which(signed_in, crowded_host, psort, first_pid, aria):
    response = signed_in.get(reverse("reports:host_detail", args=[crowded_host.pk]), {"psort": psort})
    assert response.context["process_rows"][0][1].pid == first_pid
    html = response.content.decode()
    label, direction = aria
    header = re.search(rf'<th scope="col" class="[^"]*" aria-sort="(\w+)"><a href="([^"]+)">{re.escape(label)}'
                       r'<span class="arrow" aria-hidden="true"> (.)</span>', html)
    assert header and header.group(1) == direction and header.group(3) == ("▲" if direction == "ascending" else "▼")
    key = psort.lstrip("-")
    reverse_link = f"psort={key}" if psort.startswith("-") else f"psort=-{key}"
    assert reverse_link in header.group(2), "clicking the sorted column reverses it"
    assert html.count('aria-sort="none"') == 5


def test_the_process_table_shows_start_time_threads_and_executable(signed_in, crowded_host, madrid):
    html = signed_in.get(reverse("reports:host_detail", args=[crowded_host.pk]), {"psort": "-pid"}).content.decode()
    row = re.search(r"<tr><td class=\"c-num mono\">1228</td>.*?</tr>", html).group(0)
    assert ">2026-11-29 09:00</time>" in row and "/usr/bin/app-228" in row
    assert '<td class="c-num opt">4</td>' in row  # 228 % 9 + 1 threads
    for header in ("Threads", "Started", "Executable"):
        assert f">{header}</th>" in html


def test_history_paging_links_keep_the_history_in_view(signed_in):
    start = ago(hours=30)
    for minutes in range(0, 27 * 5, 5):
        ingest(make_payload(host_id="long-history", hostname="long-history", processes=0,
                            collected_at=start + dt.timedelta(minutes=minutes)))
    host = Host.objects.get(host_id="long-history")
    html = signed_in.get(reverse("reports:host_detail", args=[host.pk])).content.decode()
    assert 'href="?page=2#history" rel="next"' in html


def test_charts_put_time_on_the_x_axis_and_start_at_zero():
    start = dt.datetime(2026, 11, 29, 6, 0, tzinfo=dt.timezone.utc)
    times = [start, start + dt.timedelta(minutes=15), start + dt.timedelta(minutes=30),
             start + dt.timedelta(hours=6, minutes=30), start + dt.timedelta(hours=6, minutes=45)]
    chart = charts.time_chart([(t, 100 + i) for i, t in enumerate(times)], title="Processes",
                              format_value=lambda v: f"{v:.0f}")
    lines = re.findall(r'<polyline points="([^"]+)"', chart)
    assert len(lines) == 2, "a six-hour gap among 15-minute steps breaks the line"
    xs = [float(pair.split(",")[0]) for line in lines for pair in line.split()]
    assert xs[1] - xs[0] < (xs[3] - xs[2]) / 10, "fifteen minutes is narrow, six hours wide"
    assert "2026-11-29 06:00" in chart and "2026-11-29 12:45" in chart, "date and time tick labels"
    assert '>0</text>' in chart
    ys = [float(pair.split(",")[1]) for line in lines for pair in line.split()]
    assert max(ys) - min(ys) < 5, "100 to 104 from a zero baseline is nearly flat"
    memory = charts.time_chart([(times[0], 2 * 2**30), (times[1], 3 * 2**30)], title="Memory in use",
                               format_value=bytes_or_dash, top=8 * 2**30)
    assert ">8 GiB total</text>" in memory


def test_a_mistyped_page_url_answers_html_to_a_browser_and_json_to_api_clients(signed_in):
    browser = signed_in.get("/hots/", HTTP_ACCEPT="text/html,application/xhtml+xml,*/*;q=0.8")
    assert browser.status_code == 404 and browser["Content-Type"].startswith("text/html")
    assert "No such page" in text(browser) and "Back to all hosts" in text(browser)
    for path, accept in (("/api/nope/", "text/html"), ("/hots/", "application/json"), ("/hots/", "*/*")):
        response = signed_in.get(path, HTTP_ACCEPT=accept)
        assert response.status_code == 404 and json.loads(response.content)["error"] == "not_found", (path, accept)


def test_the_online_badge_text_has_at_least_aa_contrast():
    css = open("reports/static/reports/relevo.css").read()
    colours = dict(re.findall(r"--([\w-]+): (#[0-9a-f]{6})", css))

    def luminance(hex_colour: str) -> float:
        channels = [int(hex_colour[i:i + 2], 16) / 255 for i in (1, 3, 5)]
        linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    for status, fg, bg in (("online", "ok", "ok-bg"), ("offline", "warn", "warn-bg"), ("stale", "bad", "bad-bg")):
        assert f".badge.{status} {{ background: var(--{bg}); color: var(--{fg}); }}" in css
        light, dark = sorted((luminance(colours[fg]), luminance(colours[bg])), reverse=True)
        assert (light + 0.05) / (dark + 0.05) >= 4.5, status


def test_each_history_row_says_how_many_processes_started_and_stopped(signed_in, monkeypatch):
    """The "+3 −2" of a history row is what its changes page's tiles say, kernel threads left out."""
    sshd, nginx = process(10, "sshd", ["/usr/sbin/sshd", "-D"]), process(20, "nginx", ["nginx: master"])
    miner, worker = process(30, "xmrig", ["/tmp/.x/xmrig"]), process(40, "kworker/0:1", [], ppid=2)
    lists = [[sshd], [sshd, nginx, miner, worker], [sshd, nginx], [sshd, nginx]]
    for minutes, processes in zip((30, 20, 10, 0), lists):
        payload = make_payload(host_id="hist-counts", hostname="hist-counts", collected_at=ago(minutes=minutes),
                               processes=0)
        payload["processes"] = processes
        ingest(payload)
    host = Host.objects.get(host_id="hist-counts")
    response = signed_in.get(reverse("reports:host_detail", args=[host.pk]))
    counts = [c for _, c in response.context["history_rows"]]
    assert counts == [(0, 0), (0, 1), (2, 0), None], "newest first; the first snapshot has nothing before it"
    html = response.content.decode()
    assert '<span class="n plus">+2</span> <span class="n minus">−0</span>' in html
    newest_but_one = response.context["history_rows"][1][0]
    changes = signed_in.get(reverse("reports:host_changes", args=[host.pk]), {"to": newest_but_one.snapshot_id})
    shown = changes.context["shown"]
    assert (len(shown.started), len(shown.stopped)) == counts[1]

    def unread(**kwargs):
        raise AssertionError("a page seen before reads no document")
    monkeypatch.setattr(selectors, "snapshot_document_json", unread)
    again = signed_in.get(reverse("reports:host_detail", args=[host.pk]))
    assert [c for _, c in again.context["history_rows"]] == counts
