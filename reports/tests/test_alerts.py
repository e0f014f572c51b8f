"""Alerts: rules over a host's before/after state, the outbox written by ingest, and the worker's delivery.

Deliveries go to a real webhook receiver on loopback (``relevo_testing.webhook``)
and to Django's locmem mail backend; the SIGKILL, PostgreSQL and SMTP cases
are in test_alerts_system.py.
"""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.core import mail
from django.db import connection
from django.test.utils import CaptureQueriesContext

from relevo_testing.factories import make_inventory, make_payload, make_software
from relevo_testing.webhook import WebhookReceiver
from reports.alerts import delivery, outbox, rules, worker
from reports.models import AlertDelivery, AlertDestination, AlertRule, Host
from reports.tests.helpers import ingest, same_day_start

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fresh_rule_cache():
    outbox.rules_changed()
    yield
    outbox.rules_changed()


@pytest.fixture
def receiver():
    hook = WebhookReceiver().start()
    yield hook
    hook.stop()


def webhook(receiver, **fields) -> AlertDestination:
    return outbox.alert_destination_save(destination=AlertDestination(
        name=fields.pop("name", "hook"), kind="webhook", url=receiver.url, **fields))


def rule(destinations, *, name="rule", kind="process_started", group_seconds=0, **fields) -> AlertRule:
    return outbox.alert_rule_save(rule=AlertRule(name=name, kind=kind, group_seconds=group_seconds, **fields),
                                  destinations=destinations)


def procs(*names: str) -> list[dict]:
    return [{"pid": 100 + i, "name": name, "cmdline": [f"/usr/bin/{name}"]} for i, name in enumerate(names)]


def series(*fields_list: dict, host_id="host-1", hostname="web-01"):
    """Ingest one snapshot per dict, a minute apart, for one host."""
    start = same_day_start()
    for i, fields in enumerate(fields_list):
        payload = make_payload(host_id=host_id, hostname=hostname, collected_at=start + dt.timedelta(minutes=i))
        ingest({**payload, **fields})


# --- the pure rules -----------------------------------------------------------------

def test_process_rule_reports_started_and_stopped_matching_lines_only():
    started = rules.Rule(pk=1, name="r", kind="process_started", pattern="NGINX")
    stopped = rules.Rule(pk=1, name="r", kind="process_stopped", pattern="nginx")
    before, after = "sshd\t/usr/sbin/sshd", "sshd\t/usr/sbin/sshd\nnginx\tnginx: master\nnginx\tnginx: master"
    up, down = rules.index_difference(before, after)
    assert [c.subject for c in rules.process_changes(started, started=up, stopped=down)] == ["process nginx started"]
    assert rules.process_changes(stopped, started=up, stopped=down) == []
    assert len(rules.process_changes(stopped, **dict(zip(["started", "stopped"],
                                                          rules.index_difference(after, before))))) == 1
    assert rules.index_difference(after, after) == (frozenset(), frozenset())


def test_software_rule_tells_installed_removed_and_upgraded_apart():
    def kind(k):
        return rules.Rule(pk=1, name="r", kind=k, pattern="ssl")
    before, after = [("openssl", "3.0.11"), ("libssl-old", "1")], [("openssl", "3.0.13"), ("sslh", "2"), ("vim", "9")]
    assert [c.subject for c in rules.software_changes(kind("software_installed"), before=before, after=after)] == [
        "sslh 2 installed"]
    assert [c.subject for c in rules.software_changes(kind("software_removed"), before=before, after=after)] == [
        "libssl-old 1 removed"]
    upgraded = rules.software_changes(kind("software_upgraded"), before=before, after=after)
    assert [(c.before, c.after) for c in upgraded] == [(["3.0.11"], ["3.0.13"])]


def test_port_disk_and_status_rules():
    port = rules.Rule(pk=1, name="r", kind="port_opened", allowed_ports=rules.parse_ports("22, 443"))
    assert [c.detail for c in rules.port_changes(port, before=[("tcp", 22)],
                                                 after=[("tcp", 22), ("tcp", 443), ("tcp", 3389)])] == ["tcp/3389"]
    disk = rules.Rule(pk=1, name="r", kind="disk_full", threshold_percent=90)
    assert [c.detail for c in rules.disk_changes(disk, before={"/": 85.0, "/var": 95.0},
                                                 after={"/": 91.0, "/var": 96.0, "/tmp": None})] == ["/"]
    offline = rules.Rule(pk=1, name="r", kind="host_offline")
    back = rules.Rule(pk=1, name="r", kind="host_back")
    assert rules.status_changes(offline, before="online", after="offline")
    assert not rules.status_changes(offline, before="offline", after="offline")
    assert rules.status_changes(back, before="stale", after="online")
    with pytest.raises(ValueError):
        rules.parse_ports("22, 70000")


def test_scope_follows_the_hosts_list_filters():
    scoped = rules.Rule(pk=1, name="r", kind="host_back", os_name="linux", hostname_pattern="WEB")
    assert scoped.in_scope(hostname="web-01", os_name="Linux", os_version="Debian GNU/Linux 12")
    assert not scoped.in_scope(hostname="db-01", os_name="Linux", os_version="Debian GNU/Linux 12")
    assert not scoped.in_scope(hostname="web-01", os_name="Windows", os_version="Windows Server 2022")
    centos = rules.Rule(pk=2, name="c", kind="host_back", os_version="CentOS Linux 7")
    assert centos.in_scope(hostname="web-01", os_name="Linux", os_version="CentOS Linux 7")
    assert not centos.in_scope(hostname="web-01", os_name="Linux", os_version="Rocky Linux 9.4")


def test_a_distribution_scoped_rule_fires_for_that_distribution_only(receiver):
    rule([webhook(receiver)], pattern="nginx", os_version="Debian GNU/Linux 12")
    series({"processes": procs("sshd")}, {"processes": procs("nginx")})
    assert AlertDelivery.objects.count() == 1  # make_payload's host is Debian GNU/Linux 12
    rule([webhook(receiver, name="other")], name="rocky", pattern="postgres", os_version="Rocky Linux 9.4")
    series({"processes": procs("sshd")}, {"processes": procs("postgres")}, host_id="host-2", hostname="db-01")
    assert AlertDelivery.objects.count() == 1


def test_signature_verifies_and_refuses_tampering_and_old_timestamps():
    body = b'{"a":1}'
    header = delivery.signature("s3cret", 1_700_000_000, body)
    assert delivery.signature_verify("s3cret", header, body, now=1_700_000_010)
    assert not delivery.signature_verify("s3cret", header, b'{"a":2}', now=1_700_000_010)
    assert not delivery.signature_verify("other", header, body, now=1_700_000_010)
    assert not delivery.signature_verify("s3cret", header, body, now=1_700_000_000 + 301)
    assert not delivery.signature_verify("s3cret", "garbage", body)


# --- the outbox, written by ingest ------------------------------------------------------

def test_with_no_rule_an_upload_costs_no_alert_query(receiver):
    series({})
    outbox.active_rules()  # the cache is warm, as in a running server
    with CaptureQueriesContext(connection) as queries:
        series({})
    assert not [q for q in queries.captured_queries if "alert" in q["sql"].lower()]


def test_a_process_rule_fires_once_per_matching_change_in_the_upload_transaction(receiver):
    rule([webhook(receiver)], pattern="nginx")
    series({"processes": procs("sshd")}, {"processes": procs("sshd", "nginx")},
           {"processes": procs("sshd", "nginx")}, {"processes": procs("sshd")}, {"processes": procs("sshd", "nginx")})
    rows = list(AlertDelivery.objects.order_by("id"))
    assert [(r.kind, r.subject, r.host_name) for r in rows] == [("process_started", "process nginx started", "web-01")] * 2
    assert worker.run_once() == 1  # both were due together: one message
    [message] = receiver.wait_for(1)
    assert [a["subject"] for a in message.json["alerts"]] == ["process nginx started"] * 2
    assert message.json["alerts"][0]["changes_url"].endswith(f"/hosts/{Host.objects.get().pk}/changes/")
    assert set(AlertDelivery.objects.values_list("state", flat=True)) == {"delivered"}
    assert worker.run_once() == 0 and len(receiver.received) == 1


def test_a_first_snapshot_and_an_out_of_scope_host_fire_nothing(receiver):
    rule([webhook(receiver)], pattern="nginx", hostname_pattern="db-")
    series({"processes": procs("nginx")}, {"processes": procs("sshd", "nginx", "other")})
    series({"processes": procs("sshd")}, {"processes": procs("nginx")}, host_id="host-2", hostname="web-02")
    assert AlertDelivery.objects.count() == 0


def test_software_port_and_disk_rules_read_the_stored_rows(receiver):
    hook = webhook(receiver)
    rule([hook], name="ssl", kind="software_upgraded", pattern="pkg-0001")
    rule([hook], name="ports", kind="port_opened", allowed_ports="53")
    rule([hook], name="disk", kind="disk_full", threshold_percent=95)
    first = make_inventory(software=make_software(3))
    second = make_inventory(software=make_software(3, version="2.0"))
    second["listening"].append({"protocol": "tcp", "address": "0.0.0.0", "port": 8080, "pid": 9, "process": "x"})
    second["disks"][0]["free_bytes"] = 1_000_000_000
    series(first, second)
    assert sorted(AlertDelivery.objects.values_list("kind", "subject")) == [
        ("disk_full", "disk / 99.1% full (over 95%)"),
        ("port_opened", "new listening port tcp/8080"),
        ("software_upgraded", "pkg-0001 1.0-1 -> 2.0-1"),
    ]


def test_a_failed_upload_writes_no_alert(receiver, monkeypatch):
    rule([webhook(receiver)], pattern="nginx")
    series({"processes": procs("sshd")})
    from reports import inventory_index

    def broken(**kwargs):
        raise RuntimeError("the disk rows cannot be written")
    monkeypatch.setattr(inventory_index, "host_rows_update", broken)
    with pytest.raises(RuntimeError):
        series({"processes": procs("nginx")})
    assert AlertDelivery.objects.count() == 0


# --- delivery -----------------------------------------------------------------------------

def test_receiver_down_then_up_gets_the_message_once_with_a_valid_signature(receiver):
    hook = webhook(receiver)
    rule([hook], pattern="nginx")
    series({"processes": procs("sshd")}, {"processes": procs("nginx")})
    receiver.failing = True
    assert worker.run_once() == 1
    row = AlertDelivery.objects.get()
    assert (row.state, row.attempts) == ("pending", 1) and "HTTP 503" in row.last_error
    assert row.next_attempt_at > row.created_at
    receiver.failing = False
    assert worker.run_once() == 0  # backing off: not due yet
    AlertDelivery.objects.update(next_attempt_at=row.created_at)
    assert worker.run_once() == 1
    [message] = receiver.wait_for(1)
    assert delivery.signature_verify(hook.secret, message.headers["X-Relevo-Signature"], message.body)
    assert message.headers["Idempotency-Key"] == message.json["idempotency_key"] == row.key
    assert AlertDelivery.objects.get().state == "delivered"


def test_a_delivery_past_the_give_up_time_is_marked_failed(receiver, settings):
    settings.ALERTS_GIVE_UP_AFTER = "1s"
    rule([webhook(receiver)], pattern="nginx")
    series({"processes": procs("sshd")}, {"processes": procs("nginx")})
    receiver.failing = True
    worker.run_once()
    row = AlertDelivery.objects.get()
    assert row.state == "failed" and "HTTP 503" in row.last_error
    assert worker.run_once() == 0  # failed rows are not retried


def test_backoff_doubles_with_jitter_and_is_bounded():
    for attempts, base in [(1, 5), (2, 10), (5, 80), (30, 3600)]:
        waits = [worker.backoff_seconds(attempts) for _ in range(50)]
        assert all(base * 0.5 <= w <= base * 1.5 for w in waits) and len(set(waits)) > 1


def test_three_hundred_hosts_offline_make_one_grouped_message(receiver, settings):
    rule([webhook(receiver)], kind="host_offline")
    now = dt.datetime.now(dt.timezone.utc)
    hosts = Host.objects.bulk_create([Host(host_id=f"h{i}", hostname=f"h{i}", last_ip="10.0.0.1", first_seen=now,
                                           last_seen=now) for i in range(300)])
    assert worker.run_once() == 0  # first round: statuses recorded, nothing fired
    Host.objects.filter(pk__in=[h.pk for h in hosts]).update(last_seen=now - dt.timedelta(hours=1))
    assert worker.run_once() == 1
    [message] = receiver.wait_for(1)
    assert message.json["count"] == 300 and {a["subject"] for a in message.json["alerts"]} == {"host offline"}
    assert worker.run_once() == 0


def test_grouping_interval_delays_the_first_send():
    destination = outbox.alert_destination_save(destination=AlertDestination(
        name="mail", kind="email", emails="ops@example.com, oncall@example.com"))
    rule([destination], pattern="nginx", group_seconds=60)
    series({"processes": procs("sshd")}, {"processes": procs("nginx")})
    assert worker.run_once() == 0
    AlertDelivery.objects.update(next_attempt_at=dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc))
    assert worker.run_once() == 1
    [email] = mail.outbox
    assert email.to == ["ops@example.com", "oncall@example.com"]
    assert "process nginx started" in email.body and "[Relevo] rule: 1 alert(s)" == email.subject


def test_slack_destination_gets_a_text_body(receiver):
    rule([webhook(receiver, slack=True)], pattern="nginx")
    series({"processes": procs("sshd")}, {"processes": procs("nginx")})
    worker.run_once()
    [message] = receiver.wait_for(1)
    assert set(message.json) == {"text"} and "process nginx started" in message.json["text"]


def test_saving_a_rule_refreshes_the_cache_at_once(receiver):
    assert outbox.active_rules() == ()
    made = rule([webhook(receiver)], pattern="nginx")
    assert [r.pk for r in outbox.active_rules()] == [made.pk]
    made.active = False
    outbox.alert_rule_save(rule=made)
    assert outbox.active_rules() == ()


def test_a_snapshot_refused_from_a_known_agent_fires_and_the_answer_stays_400(receiver, agent_token):
    from reports.tests.helpers import assert_error, upload

    rule([webhook(receiver)], kind="snapshot_rejected")
    assert upload(agent_token, make_payload(host_id="host-9")).status_code == 201
    broken = make_payload(host_id="host-9")
    broken["processes"] = "not a list"
    assert_error(upload(agent_token, broken), 400)
    unknown = make_payload(host_id="never-seen")
    unknown["processes"] = "not a list"
    assert_error(upload(agent_token, unknown), 400)
    row = AlertDelivery.objects.get()
    assert (row.kind, row.host_name) == ("snapshot_rejected", "web-01") and "processes" in str(row.after)


# --- admin ------------------------------------------------------------------------------------

def test_admin_writes_rules_through_the_services_and_lists_deliveries(admin_client, receiver):
    response = admin_client.post("/admin/reports/alertdestination/add/", {
        "name": "hook", "kind": "webhook", "url": receiver.url, "secret": "", "emails": ""})
    assert response.status_code == 302, response.content
    hook = AlertDestination.objects.get()
    assert len(hook.secret) == 64  # the service made one
    outbox.active_rules()  # warm the cache: the admin's write must drop it
    refused = admin_client.post("/admin/reports/alertrule/add/", {
        "name": "bad", "kind": "port_opened", "allowed_ports": "22,99999", "group_seconds": 0,
        "destinations": [hook.pk]})
    assert refused.status_code == 200 and AlertRule.objects.count() == 0
    response = admin_client.post("/admin/reports/alertrule/add/", {
        "name": "nginx", "kind": "process_started", "pattern": "nginx", "active": "on", "group_seconds": 0,
        "destinations": [hook.pk]})
    assert response.status_code == 302, response.content
    assert [r.destinations for r in outbox.active_rules()] == [(hook.pk,)]
    series({"processes": procs("sshd")}, {"processes": procs("nginx")})
    receiver.failing = True
    worker.run_once()
    page = admin_client.get("/admin/reports/alertdelivery/")
    assert b"process nginx started" in page.content and b"HTTP 503" in page.content
    assert admin_client.get("/admin/reports/alertdelivery/add/").status_code == 403


# --- pages and read API --------------------------------------------------------------------------

def test_recent_alerts_page_host_page_and_read_api_list_what_fired(receiver, signed_in, reader_client):
    from reports.tests.helpers import assert_error, text

    hook = webhook(receiver, secret="never-shown")
    made = rule([hook], pattern="nginx")
    series({"processes": procs("sshd")}, {"processes": procs("nginx")})
    host = Host.objects.get()
    page = text(signed_in.get("/alerts/"))
    assert "Recent alerts" in page and "process nginx started" in page and "web-01" in page
    html = signed_in.get("/alerts/").content.decode()
    assert re.search(r'<td class="c-time"><time datetime="[^"]+" title="[^"]+">\d{4}-\d\d-\d\d \d\d:\d\d</time>', html), \
        "the dashboard's one time format"
    assert "process nginx started" in text(signed_in.get(f"/hosts/{host.pk}/"))
    assert "No alerts yet" in text(signed_in.get("/alerts/?host=999"))
    rules_body = reader_client.get("/api/alerts/rules/").json()
    assert [r["name"] for r in rules_body["results"]] == ["rule"] and b"never-shown" not in reader_client.get(
        "/api/alerts/rules/").content
    alerts = reader_client.get(f"/api/alerts/?host={host.pk}&state=pending&rule={made.pk}").json()["results"]
    assert [(a["subject"], a["rule"], a["destination"]) for a in alerts] == [("process nginx started", "rule", "hook")]
    assert_error(reader_client.get("/api/alerts/?state=lost"), 400)
    assert reader_client.get("/api/alerts/?state=failed").json()["results"] == []


def test_alert_api_refuses_ids_past_the_database_range(reader_client):
    from reports.tests.helpers import assert_error

    assert_error(reader_client.get(f"/api/alerts/?host={2**70}"), 400)


def test_alerts_worker_once_runs_one_round(receiver):
    from io import StringIO

    from django.core.management import call_command

    rule([webhook(receiver)], pattern="nginx")
    series({"processes": procs("sshd")}, {"processes": procs("nginx")})
    out = StringIO()
    call_command("alerts_worker", "--once", stdout=out)
    assert out.getvalue().strip() == "1 message(s) tried" and len(receiver.wait_for(1)) == 1


def test_rebuilding_the_database_from_day_files_fires_nothing(receiver):
    from reports import services
    from reports.addresses import parse_ip
    from reports.models import Snapshot

    series({"processes": procs("sshd")}, {"processes": procs("nginx")})
    Snapshot.objects.all().delete()
    Host.objects.all().delete()
    rule([webhook(receiver)], pattern="nginx")
    change = services.day_reindex(ip=parse_ip("10.0.0.5"), day=same_day_start().date())
    assert change.snapshots == 2 and AlertDelivery.objects.count() == 0


def test_an_identity_conflict_fires_once_when_the_host_is_flagged(receiver):
    rule([webhook(receiver)], kind="identity_conflict")
    start = same_day_start()

    def machine(serial: str, uuid: str, ip: str) -> dict:
        return {"ip": ip, "hardware": {"vendor": "QEMU", "model": "PC", "serial": serial, "uuid": uuid}}
    a = machine("VM-A", "11111111-aaaa-4aaa-8aaa-000000000001", "10.0.0.5")
    b = machine("VM-B", "22222222-bbbb-4bbb-8bbb-000000000002", "10.0.0.9")
    for n, fields in enumerate([a, b] * 4):
        fields = dict(fields)
        ingest(ip=fields.pop("ip"), collected_at=start + dt.timedelta(minutes=5 * n), **fields)
    assert Host.objects.get().identity_conflict
    [row] = AlertDelivery.objects.all()
    assert row.kind == "identity_conflict" and "hardware serial" in row.subject


@pytest.mark.postgres_only
def test_a_group_another_worker_is_claiming_is_passed_over_whole(receiver):
    """Two workers must not split one rule's alerts into two messages: the second takes another group."""
    import psycopg

    hook = webhook(receiver)
    first, second = rule([hook], name="first", kind="host_offline"), rule([hook], name="second", kind="host_offline")
    now = dt.datetime.now(dt.timezone.utc)
    AlertDelivery.objects.bulk_create([AlertDelivery(rule=r, destination=hook, host_name=f"h{i}", kind="host_offline",
                                                     subject="host offline", key=f"k-{r.name}-{i}", created_at=now,
                                                     next_attempt_at=now)
                                       for r in (first, second) for i in range(3)])
    params = connection.get_connection_params()
    with psycopg.connect(**{k: v for k, v in params.items() if k in ("host", "port", "user", "password", "dbname")},
                         autocommit=False) as other:  # another worker, mid-claim on the first rule's group
        other.execute("SELECT pg_advisory_xact_lock(%s)", [worker.group_lock_key(("", first.pk, hook.pk))])
        claimed = worker.claim()
    assert {row.rule_id for row in claimed} == {second.pk} and len(claimed) == 3
    assert len(worker.claim()) == 3  # the first rule's group, whole, once the other claim has ended
