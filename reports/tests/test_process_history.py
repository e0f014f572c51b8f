"""The process history: runs written on change by ingest, rebuilt by reindex, searched by the page and the API."""

from __future__ import annotations

import datetime as dt
import io
from types import SimpleNamespace

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from relevo_testing.factories import make_payload
from reports import forms, process_history, processes, selectors
from reports.models import Host, ProcessRun, ProcessText, Snapshot
from reports.tests.helpers import ingest, text

pytestmark = pytest.mark.django_db

T0 = (timezone.now() - dt.timedelta(days=2)).replace(microsecond=0, second=0)


def at(minutes: int) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


def snapshot(minute: int, programs: list[tuple[str, list[str]]], *, host_id: str = "id-h", hostname: str = "h-1",
             ip: str = "10.0.0.5"):
    """Ingest one snapshot of *host_id* at T0 + *minute* running *programs* (name, cmdline)."""
    payload = make_payload(host_id=host_id, hostname=hostname, collected_at=at(minute), processes=0)
    payload["processes"] = [{"pid": 100 + i, "ppid": 1, "name": name, "cmdline": cmdline}
                            for i, (name, cmdline) in enumerate(programs)]
    return ingest(payload, ip=ip)


def runs(host_id: str = "id-h") -> list[tuple[str, dt.datetime, dt.datetime | None]]:
    """(text, started_at, stopped_at) of the host's runs, by text then start."""
    rows = ProcessRun.objects.filter(host__host_id=host_id).values_list("text__text", "started_at", "stopped_at")
    return sorted(rows, key=lambda r: (r[0], r[1]))


SSHD = ("sshd", ["/usr/sbin/sshd", "-D"])
NGINX = ("nginx", ["nginx: worker process"])
MINER = ("xmrig", ["/tmp/.x/xmrig", "-o", "pool.example:3333"])


# --- ingest writes only the difference ------------------------------------------------------

def test_a_first_snapshot_opens_a_run_per_distinct_text():
    snapshot(0, [SSHD, NGINX, NGINX, ("Nginx", ["NGINX: worker process"])])
    assert runs() == [("nginx\tnginx: worker process", at(0), None), ("sshd\t/usr/sbin/sshd -d", at(0), None)]
    assert ProcessText.objects.get(text="sshd\t/usr/sbin/sshd -d").name == "sshd"


def test_start_stop_and_restart_of_the_same_text():
    snapshot(0, [SSHD])
    snapshot(10, [SSHD, MINER])          # started
    snapshot(20, [SSHD, MINER])          # still running: nothing written
    snapshot(30, [SSHD])                 # stopped: closed at the last snapshot that had it
    snapshot(40, [SSHD, MINER])          # the same text again: a second run
    miner = "xmrig\t/tmp/.x/xmrig -o pool.example:3333"
    assert runs() == [("sshd\t/usr/sbin/sshd -d", at(0), None),
                      (miner, at(10), at(20)), (miner, at(40), None)]


def test_an_unchanged_process_set_writes_no_run_and_keeps_the_index():
    snapshot(0, [SSHD, NGINX])
    index = Host.objects.get().process_index
    with CaptureQueriesContext(connection) as queries:
        snapshot(10, [NGINX, SSHD, NGINX])  # another order, another copy: the same set
    assert not [q for q in queries.captured_queries if "processrun" in q["sql"].lower()]
    # Known unchanged by its digest: the stored index is neither read back nor sent again.
    assert not [q for q in queries.captured_queries if '"process_index"' in q["sql"]]
    host = Host.objects.get()
    assert host.process_index == index == "nginx\tnginx: worker process\nsshd\t/usr/sbin/sshd -d"
    assert host.process_index_digest == processes.index_digest(index)


def test_a_host_without_a_digest_is_compared_by_its_index_and_gets_one():
    snapshot(0, [SSHD])
    Host.objects.update(process_index_digest="")  # as rows written before the digest existed
    snapshot(10, [SSHD, MINER])
    host = Host.objects.get()
    assert [r[0].split("\t")[0] for r in runs() if r[2] is None] == ["sshd", "xmrig"]
    assert host.process_index_digest == processes.index_digest(host.process_index) != ""


def test_a_reboot_keeps_the_programs_that_came_back_and_stops_the_rest():
    snapshot(0, [SSHD, NGINX, MINER])
    rebooted = make_payload(host_id="id-h", hostname="h-1", collected_at=at(10), processes=0)
    rebooted["host"]["boot_time"] = at(8).isoformat()
    rebooted["processes"] = [{"pid": 1, "ppid": 0, "name": "sshd", "cmdline": SSHD[1]},
                             {"pid": 2, "ppid": 1, "name": "nginx", "cmdline": NGINX[1]}]
    ingest(rebooted)
    assert [(t.split("\t")[0], start, stop) for t, start, stop in runs()] == [
        ("nginx", at(0), None), ("sshd", at(0), None), ("xmrig", at(0), at(0))]


def test_a_late_older_snapshot_does_not_touch_the_history():
    snapshot(0, [SSHD])
    snapshot(20, [SSHD, NGINX])
    before = runs()
    snapshot(10, [MINER])  # delivered late from a spool: older than the host's newest
    assert runs() == before
    assert Host.objects.get().process_index == "nginx\tnginx: worker process\nsshd\t/usr/sbin/sshd -d"


def test_runs_are_per_host_and_share_texts():
    snapshot(0, [SSHD], host_id="id-a", hostname="a")
    snapshot(0, [SSHD, NGINX], host_id="id-b", hostname="b", ip="10.0.0.6")
    snapshot(10, [NGINX], host_id="id-b", hostname="b", ip="10.0.0.6")
    assert ProcessText.objects.count() == 2
    assert [r[2] for r in runs("id-a")] == [None]
    assert [(r[0].split("\t")[0], r[2]) for r in runs("id-b")] == [("nginx", None), ("sshd", at(0))]


# --- the search ----------------------------------------------------------------------

@pytest.fixture
def history():
    """a ran the miner from +10 to +20 min; b runs nginx throughout; c ran the miner and went offline at +30."""
    for minute in (0, 10, 20, 30, 40):
        snapshot(minute, [SSHD] + ([MINER] if minute in (10, 20) else []), host_id="id-a", hostname="a-1")
        snapshot(minute, [SSHD, NGINX], host_id="id-b", hostname="b-1", ip="10.0.0.6")
    for minute in (0, 10, 20, 30):
        snapshot(minute, [SSHD, MINER], host_id="id-c", hostname="c-1", ip="10.0.0.7")


def found(query, **kwargs) -> list[tuple[str, dt.datetime, dt.datetime]]:
    results = selectors.process_search(query=query, **kwargs)
    return [(r.host.hostname, r.first_seen, r.last_seen) for r in results[0:results.count()]]


def test_the_default_is_the_newest_snapshot_of_each_host(history):
    assert [h for h, _, _ in found("xmrig")] == ["c-1"], "a stopped it; c's newest snapshot still has it"
    assert [h for h, _, _ in found("xmrig")] == list(
        Host.objects.running("xmrig").order_by("hostname").values_list("hostname", flat=True))


def test_a_range_finds_every_host_that_ran_it_with_first_and_last_seen_within_the_range(history):
    assert found("XMRIG", since=at(0), until=at(60)) == [("a-1", at(10), at(20)), ("c-1", at(0), at(30))]
    assert found("xmrig", since=at(25), until=at(60)) == [("c-1", at(25), at(30))], "a's run ended at +20"
    assert found("xmrig", since=at(15), until=at(15)) == [("a-1", at(15), at(15)), ("c-1", at(15), at(15))]
    assert found("xmrig", since=at(31), until=at(60)) == [], "c's open run ends at its last snapshot"


def test_name_only_and_command_line_matching(history):
    assert found("pool.example", since=at(0), until=at(60)) == []
    assert [h for h, _, _ in found("pool.example", match="cmdline", since=at(0), until=at(60))] == ["a-1", "c-1"]
    assert [h for h, _, _ in found("worker", match="cmdline")] == ["b-1"]
    assert found("   ") == []


def test_results_are_paged_lazily_one_row_per_host(history):
    results = selectors.process_search(query="sshd")
    assert results.count() == 3
    assert [r.host.hostname for r in results[1:3]] == ["b-1", "c-1"]
    [row] = results[0:1]
    assert row.running and row.status and row.matches == [("sshd", "/usr/sbin/sshd -d")] and row.match_count == 1


# --- a search most hosts match: capped count, pages walked in name order ---------------------

@pytest.fixture
def crowd():
    """60 hosts (some names shared, some silent since before the ranges) with open and closed runs of 3 postgres texts."""
    import random
    rng = random.Random(13)
    now = timezone.now().replace(microsecond=0)
    hosts = Host.objects.bulk_create([
        Host(host_id=f"crowd-{i}", hostname=f"db-{rng.randrange(40):02d}", last_ip="10.0.0.1",
             first_seen=now - dt.timedelta(days=20),
             last_seen=now - dt.timedelta(days=rng.choice([0, 0, 0, 2, 9])) - dt.timedelta(minutes=rng.randrange(60)))
        for i in range(60)])
    texts = ProcessText.objects.bulk_create([
        ProcessText(digest=f"{i:032x}", text=t, name=t.split("\t")[0]) for i, t in enumerate(
            ["postgres\tpostgres: checkpointer", "postgres\tpostgres -d /var/lib/pg", "postgres-exporter\t",
             "sshd\t/usr/sbin/sshd -d", "bash\t-bash postgres"])])
    made = []
    for host in hosts:
        for process_text in rng.sample(texts, rng.randrange(0, 4)):
            start = host.last_seen - dt.timedelta(days=rng.randrange(1, 15), hours=rng.randrange(24))
            if rng.random() < 0.7:  # a closed run (stopped by the newest snapshot), then maybe an open one
                made.append(ProcessRun(host=host, text=process_text, started_at=start, stopped_at=min(
                    start + dt.timedelta(hours=rng.randrange(1, 200)), host.last_seen)))
            if host.pk % 3 and rng.random() < 0.6:  # a third of the hosts only ran it, some before the ranges
                made.append(ProcessRun(host=host, text=process_text, stopped_at=None,
                                       started_at=host.last_seen - dt.timedelta(hours=rng.randrange(1, 48))))
    ProcessRun.objects.bulk_create(made)
    return now


def shown(rows) -> list[tuple]:
    return [(r.host.pk, r.host.hostname, r.status, r.first_seen, r.last_seen, r.running, r.matches, r.match_count,
             r.processes) for r in rows]


CROWD_SEARCHES = [
    ({"query": "postgres"}, None),
    ({"query": "postgres", "match": "cmdline"}, None),
    ({"query": "postgres"}, 7),
    ({"query": "POSTGRES", "match": "cmdline"}, 3),
    ({"query": "checkpointer", "match": "cmdline"}, 30),
]


@pytest.mark.parametrize("search,days", CROWD_SEARCHES)
def test_a_broad_search_walks_hosts_in_name_order_and_shows_the_same_rows(crowd, search, days):
    now = crowd
    kwargs = dict(search, now=now, with_processes=True)
    if days is not None:
        kwargs.update(since=now - dt.timedelta(days=days), until=now)
    whole = selectors.process_search(**kwargs)
    expected = shown(whole[0:whole.count()])
    assert len(expected) > 10, "the fixture must give the walk several pages"
    assert len({row[1] for row in expected}) < len(expected), "shared names: the id breaks the tie"
    walked = selectors.process_search(**kwargs)
    assert walked.count_up_to(6) == 6 and walked.in_order, "more than the cap: pages are walked"
    for start in range(0, len(expected) + 7, 7):
        assert shown(walked[start:start + 7]) == expected[start:start + 7], f"the page from row {start}"
    assert walked._found is None, "the walk never read every matching host"
    assert selectors.process_search(**kwargs).count_up_to(len(expected) + 1) == len(expected)


def test_a_narrow_search_keeps_the_grouped_plan(crowd):
    results = selectors.process_search(query="exporter", now=crowd)
    counted = results.count_up_to(10_001)
    assert counted == len(results[0:counted]) > 0 and not results.in_order


def test_the_page_says_cap_plus_until_a_page_past_the_cap(signed_in, crowd, monkeypatch):
    from reports import paging, views
    monkeypatch.setattr(paging.CappedPaginator, "cap", 5)
    monkeypatch.setattr(views, "PROCESS_SEARCH_PER_PAGE", 4)
    whole = selectors.process_search(query="postgres", now=crowd)
    names = [r.host.hostname for r in whole[0:whole.count()]]
    first = signed_in.get(reverse("reports:process_search"), {"q": "postgres"})
    assert "5+ hosts run postgres now." in text(first)
    assert [r.host.hostname for r in first.context["page"]] == names[:4]
    second = signed_in.get(reverse("reports:process_search"), {"q": "postgres", "page": 2})
    assert f"{len(names)} hosts run postgres now." in text(second), "page 2 reaches past the cap: counted exactly"
    assert [r.host.hostname for r in second.context["page"]] == names[4:8]


def test_the_api_pages_a_capped_count(reader_client, crowd, monkeypatch):
    from reports import paging
    monkeypatch.setattr(paging.CappedPaginator, "cap", 5)
    since = crowd - dt.timedelta(days=7)
    whole = selectors.process_search(query="postgres", match="cmdline", since=since, until=crowd, now=crowd)
    names = [r.host.hostname for r in whole[0:whole.count()]]
    params = {"name": "postgres", "since": since.isoformat(), "until": crowd.isoformat(), "page_size": 2}
    first = reader_client.get("/api/processes/", params).json()
    assert (first["count"], first["count_capped"]) == (6, True) and first["next"] and first["previous"] is None
    assert [r["host"]["hostname"] for r in first["results"]] == names[:2]
    third = reader_client.get("/api/processes/", {**params, "page": 3}).json()
    assert (third["count"], third["count_capped"]) == (len(names), False), "page 3 reaches past the cap"
    assert [r["host"]["hostname"] for r in third["results"]] == names[4:6]
    schema = reader_client.get("/api/schema/", {"format": "json"}).json()
    assert "count_capped" in schema["components"]["schemas"]["PaginatedProcessMatchList"]["properties"]


# --- the page -----------------------------------------------------------------------

def test_the_page_shows_status_os_times_and_a_link_to_the_filtered_process_list(signed_in, history):
    local = timezone.localtime
    response = signed_in.get(reverse("reports:process_search"), {
        "q": "xmrig", "since": local(at(0)).strftime("%Y-%m-%dT%H:%M"), "until": local(at(60)).strftime("%Y-%m-%dT%H:%M"),
    })
    assert response.status_code == 200
    page = text(response)
    assert "2 hosts ran xmrig between" in page
    assert [r.host.hostname for r in response.context["page"]] == ["a-1", "c-1"]
    assert "Debian GNU/Linux 12" in page and all(r.status in page for r in response.context["page"])
    c = Host.objects.get(hostname="c-1")
    assert f'{reverse("reports:host_detail", args=[c.pk])}?pq=xmrig&amp;match=name#processes' in response.content.decode()
    a = Host.objects.get(hostname="a-1")
    assert f'{reverse("reports:host_detail", args=[a.pk])}?pq=' not in response.content.decode(), \
        "a no longer runs it: its process list would show nothing"


@pytest.mark.parametrize("params,field,message", [
    ({"since": "yesterday"}, "since", "Enter a valid date/time."),
    ({"since": "2026-11-20T10:00", "until": "2026-11-19T10:00"}, "until", "before its start"),
    ({"since": "2026-10-01T00:00", "until": "2026-11-20T00:00"}, "until", "at most 31 days"),
])
def test_a_bad_range_is_a_400_that_says_what_is_wrong(signed_in, history, params, field, message):
    response = signed_in.get(reverse("reports:process_search"), {"q": "sshd", **params})
    assert response.status_code == 400
    assert message in " ".join(response.context["form"].errors[field])
    assert message in text(response) and "Correct the dates" in text(response)
    assert response.context["page"] is None


def test_the_form_completes_a_half_range():
    now = timezone.now()
    since = now - dt.timedelta(hours=2)
    assert forms.process_range(since, None, now) == (since, now)
    assert forms.process_range(None, since, now) == (since, since)
    assert forms.process_range(None, None, now) == (None, None)
    assert forms.process_range_errors(now, since) and not forms.process_range_errors(since, now)


# --- the API ------------------------------------------------------------------------

def test_the_api_searches_the_history_with_the_same_rules(reader_client, history):
    body = reader_client.get("/api/processes/", {"name": "xmrig", "match": "name", "since": at(0).isoformat(),
                                                 "until": at(60).isoformat()}).json()
    assert body["count"] == 2
    a, c = body["results"]
    assert a["host"]["hostname"] == "a-1" and not a["running"] and a["processes"] == []
    assert dt.datetime.fromisoformat(a["first_seen"]) == at(10) and dt.datetime.fromisoformat(a["last_seen"]) == at(20)
    assert c["running"] and [p["name"] for p in c["processes"]] == ["xmrig"]
    assert c["matches"] == [{"name": "xmrig", "cmdline": "/tmp/.x/xmrig -o pool.example:3333"}]
    now = reader_client.get("/api/processes/", {"name": "xmrig"}).json()
    assert [r["host"]["hostname"] for r in now["results"]] == ["c-1"]
    paged = reader_client.get("/api/processes/", {"name": "sshd", "page_size": 2, "page": 2}).json()
    assert paged["count"] == 3 and [r["host"]["hostname"] for r in paged["results"]] == ["c-1"]


@pytest.mark.parametrize("params,field", [
    ({"since": "not-a-time"}, "since"),
    ({"since": "2026-11-20T10:00:00Z", "until": "2026-11-19T10:00:00Z"}, "until"),
    ({"since": "2026-09-01T00:00:00Z", "until": "2026-11-20T00:00:00Z"}, "until"),
    ({"match": "exe"}, "match"),
])
def test_the_api_refuses_a_bad_range_or_match_with_a_400(reader_client, params, field):
    response = reader_client.get("/api/processes/", {"name": "sshd", **params})
    assert response.status_code == 400, response.content
    assert field in response.json()["fields"]


def test_the_schema_documents_the_new_parameters(reader_client):
    schema = reader_client.get("/api/schema/", {"format": "json"}).json()
    parameters = {p["name"] for p in schema["paths"]["/api/processes/"]["get"]["parameters"]}
    assert {"name", "match", "since", "until", "page", "page_size"} <= parameters


# --- rebuilding ---------------------------------------------------------------------

def test_rebuild_walks_the_snapshots_in_time_order_late_ones_included():
    snapshot(0, [SSHD])
    snapshot(30, [SSHD])
    snapshot(10, [SSHD, MINER])  # late: live ingest leaves the history alone
    assert [r[0].split("\t")[0] for r in runs()] == ["sshd"]
    host = Host.objects.get()
    assert process_history.host_rebuild(host_pk=host.pk) == 2
    assert [(r[0].split("\t")[0], r[1], r[2]) for r in runs()] == [("sshd", at(0), None), ("xmrig", at(10), at(10))]


def test_reindex_rebuilds_the_history_from_the_day_files(data_dir):
    snapshot(0, [SSHD])
    snapshot(10, [SSHD, MINER])
    snapshot(20, [SSHD])
    expected = runs()
    Snapshot.objects.all().delete()
    Host.objects.all().delete()
    assert not ProcessRun.objects.exists()
    call_command("reindex", verbosity=0)
    assert runs() == expected


def test_the_migration_starts_open_runs_from_each_process_index():
    from importlib import import_module

    from django.apps import apps

    snapshot(0, [SSHD, NGINX])
    host = Host.objects.get()
    ProcessRun.objects.all().delete()
    # As a host written before 0016_process_index_digest: an old index, and no digest of it.
    Host.objects.filter(pk=host.pk).update(process_index="sshd\t/usr/sbin/sshd -d\nnew\t/bin/new\nsshd\t/usr/sbin/sshd -d",
                                           process_index_digest="")
    migration = import_module("reports.migrations.0013_process_history")
    migration.open_runs_from_process_index(apps, SimpleNamespace(connection=connection))
    assert runs() == [("new\t/bin/new", at(0), None), ("sshd\t/usr/sbin/sshd -d", at(0), None)]
    snapshot(10, [SSHD, NGINX])  # an unsorted old index is compared as a set: only nginx starts, new stops
    assert [(r[0].split("\t")[0], r[1], r[2]) for r in runs()] == [
        ("new", at(0), at(0)), ("nginx", at(10), None), ("sshd", at(0), None)]


def test_a_deleted_host_takes_its_runs_with_it():
    snapshot(0, [SSHD])
    Host.objects.all().delete()
    assert not ProcessRun.objects.exists()


# --- retention -------------------------------------------------------------------------

def _run(host: Host, text: str, started_days_ago: int, stopped_days_ago: int | None) -> None:
    now = timezone.now()
    row, _ = ProcessText.objects.get_or_create(digest=process_history.text_digest(text),
                                               defaults={"text": text, "name": text.split("\t")[0]})
    ProcessRun.objects.create(host=host, text=row, started_at=now - dt.timedelta(days=started_days_ago),
                              stopped_at=None if stopped_days_ago is None else now - dt.timedelta(days=stopped_days_ago))


@pytest.fixture
def aged_history(data_dir, monkeypatch):
    """A host reporting now (sshd open) with runs made 200 and 10 days back; two prune batches or more each."""
    monkeypatch.setattr(process_history, "PRUNE_BATCH", 2)
    snapshot(0, [SSHD])
    host = Host.objects.get()
    for i in range(3):                                  # stopped 180 days ago: old, and only old
        _run(host, f"old-{i}\t/bin/old", 200, 180)
    _run(host, "cron\t/usr/sbin/cron", 200, 190)      # an old run, and a newer one of the same text
    _run(host, "cron\t/usr/sbin/cron", 20, 10)
    _run(host, "agent\t/opt/agent", 300, None)          # open for 300 days: the host still runs it
    ProcessText.objects.create(digest=process_history.text_digest("never\t"), text="never\t", name="never")
    return host


def _texts() -> list[str]:
    return sorted(ProcessText.objects.values_list("name", flat=True))


def test_prune_removes_closed_runs_older_than_retention_and_the_texts_no_run_names(aged_history):
    before = runs()
    out = io.StringIO()
    call_command("prune", "--older-than", "90d", "--dry-run", stdout=out)
    assert "would remove 4 process runs stopped before" in out.getvalue()
    assert "4 process texts no run names" in out.getvalue(), "old-0..2 and never; cron keeps its newer run"
    assert runs() == before and len(_texts()) == 7, "a dry run changes nothing"

    out = io.StringIO()
    call_command("prune", "--older-than", "90d", stdout=out)
    assert "removed 4 process runs" in out.getvalue() and "4 process texts no run names" in out.getvalue()
    assert [(r[0].split("\t")[0], r[2] is None) for r in runs()] == [("agent", True), ("cron", False), ("sshd", True)]
    assert [r[2] for r in runs() if r[0].startswith("cron")][0] > timezone.now() - dt.timedelta(days=11)
    assert _texts() == ["agent", "cron", "sshd"]
    assert Host.objects.filter(pk=aged_history.pk).exists(), "its snapshots are recent"

    call_command("prune", "--older-than", "90d", stdout=(out := io.StringIO()))
    assert "removed 0 process runs" in out.getvalue() and "0 process texts" in out.getvalue()
    snapshot(10, [SSHD, MINER])                          # ingest carries on from what is left
    assert runs()[-1][:2] == ("xmrig\t/tmp/.x/xmrig -o pool.example:3333", at(10))


def test_prune_that_removes_a_host_removes_its_runs_and_then_its_texts(data_dir):
    snapshot(0, [SSHD, MINER])
    snapshot(0, [NGINX], host_id="id-other", hostname="other", ip="10.0.0.6")
    Host.objects.filter(host_id="id-h").get().delete()  # what day_prune does to a host left without snapshots
    assert runs() == [] and len(_texts()) == 3, "runs cascade with their host; texts wait for prune"
    assert process_history.history_prune(before=timezone.now() - dt.timedelta(days=90)) == (0, 2)
    assert _texts() == ["nginx"]


@pytest.mark.postgres_only  # the race is PostgreSQL's: SQLite takes the write lock up front
@pytest.mark.django_db(transaction=True)
def test_prune_skips_a_text_an_upload_is_about_to_name(aged_history, monkeypatch):
    """An upload between ensuring a text and inserting the run that names it: the prune must not delete the text.

    Without the lock ``_texts_ensure`` takes, the prune deleted the orphan
    text and the upload's INSERT ... SELECT of the run found nothing to name.
    """
    import threading

    from django.db import close_old_connections, transaction

    ensured, resume = threading.Event(), threading.Event()
    failure: list[BaseException] = []
    ensure = process_history._texts_ensure

    def ensure_then_wait(cursor, texts):
        ensure(cursor, texts)
        ensured.set()
        resume.wait(30)

    monkeypatch.setattr(process_history, "_texts_ensure", ensure_then_wait)

    def upload():
        try:
            with transaction.atomic():
                process_history.runs_apply(host_pk=aged_history.pk, started=["never\t"], stopped=[],
                                           started_at=timezone.now(), stopped_at=timezone.now())
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            failure.append(exc)
        finally:
            ensured.set()
            close_old_connections()

    thread = threading.Thread(target=upload)
    thread.start()
    assert ensured.wait(30)
    try:
        pruned = process_history.history_prune(before=timezone.now() - dt.timedelta(days=90))
    finally:
        resume.set()
        thread.join(30)
    assert failure == []
    assert pruned == (4, 3), "old-0..2 go; never has no run yet, but the upload holds it, so it stays"
    assert ProcessRun.objects.filter(text__name="never", stopped_at__isnull=True).count() == 1


def test_the_previous_index_is_read_as_stored():
    from reports import rowsql

    snapshot(0, [SSHD])
    host = Host.objects.get()
    assert rowsql.text_value(Host, "process_index", host.pk) == host.process_index == "sshd\t/usr/sbin/sshd -d"
    assert rowsql.text_value(Host, "process_index", host.pk + 1000) is None


def test_the_schemathesis_hook_keeps_the_servers_range_rule():
    from reports.tests import schemathesis_hooks

    assert schemathesis_hooks.PROCESS_RANGE_MAX == forms.PROCESS_RANGE_MAX


def test_the_bench_loader_fills_the_history_as_ingest_would_leave_it():
    """bench/loader.py writes runs directly: the open ones must be each host's process_index, the rest closed in time."""
    from bench import loader

    now = timezone.now()
    counts = loader.load(hosts=5, snapshots_per_host=3, now=now, progress=lambda _: None)
    assert counts["process_runs"] == ProcessRun.objects.count() > 0
    for host in Host.objects.all():
        open_texts = set(ProcessRun.objects.filter(host=host, stopped_at__isnull=True).values_list("text__text", flat=True))
        assert open_texts == process_history.index_lines(host.process_index)
        for started, stopped in ProcessRun.objects.filter(host=host, stopped_at__isnull=False).values_list(
                "started_at", "stopped_at"):
            assert started < stopped <= host.last_seen
    assert ProcessText.objects.filter(text__contains="\n").count() == 0
    assert selectors.process_search(query="sshd", since=now - dt.timedelta(days=7), until=now).count() == 5
