"""The inventory sections of the host page and the changes page, against real ingested snapshots.

Three shapes of snapshot: one with every area, one from an agent older than
the areas (none of them), one with every area null. The software list follows
the digest rule (docs/payload.md): most snapshots carry only its digest.
"""

from __future__ import annotations

import datetime as dt
import html
import re

import pytest
from django.urls import reverse
from django.utils import timezone

from reports import breadth
from reports.models import Snapshot
from relevo_testing.factories import make_inventory, make_payload, make_software
from reports.tests import helpers

pytestmark = pytest.mark.django_db

INVENTORY_FIELDS = ("software", "software_digest", "software_count", "listening", "disks", "interfaces",
                    "services", "hardware")
AREAS = ("hardware", "disks", "interfaces", "listening", "services", "software")


def ingest(payload: dict, ip: str = "10.0.0.5"):
    return Snapshot.objects.get(snapshot_id=helpers.ingest(payload, ip=ip).snapshot_id)


def ago(**kwargs) -> dt.datetime:
    return (timezone.now() - dt.timedelta(**kwargs)).replace(microsecond=0)


def snapshot(*, minutes_ago: int = 1, host_id: str = "inv-1", **fields) -> dict:
    raw = make_payload(host_id=host_id, hostname=host_id, collected_at=ago(minutes=minutes_ago), processes=1)
    raw.update(fields)
    return raw


def text(response) -> str:
    body = re.sub(r"<[^>]+>", " ", response.content.decode())
    return re.sub(r"\s+", " ", html.unescape(body))


def section(response, anchor: str) -> str:
    """The visible text of the page's section or card with this id."""
    page = response.content.decode()
    start = page.index(f'id="{anchor}"')
    end = page.find('<section', start + 1)
    card_end = page.find('<div class="card"', start + 1)
    end = min(e for e in (end, card_end, len(page)) if e > 0)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", page[start:end])))


def host_page(client, snap: Snapshot, **query):
    response = client.get(reverse("reports:host_detail", args=[snap.host_id]), query)
    assert response.status_code == 200
    return response


def full_inventory() -> dict:
    inventory = make_inventory(software=make_software(5))
    inventory["disks"] = [
        {"mount_point": "/", "device": "/dev/nvme0n1p1", "fs_type": "ext4", "total_bytes": 100 * 2**30,
         "free_bytes": 40 * 2**30},
        {"mount_point": "/var/lib/postgresql", "device": "/dev/nvme1n1", "fs_type": "xfs",
         "total_bytes": 200 * 2**30, "free_bytes": 14 * 2**30},            # 93% used: the warning colour
        {"mount_point": "/media/cdrom", "device": "/dev/sr0", "fs_type": None, "total_bytes": None, "free_bytes": None},
    ]
    return inventory


# --- the host page --------------------------------------------------------------------

def test_a_snapshot_with_every_area_shows_every_section(signed_in):
    snap = ingest(snapshot(**full_inventory()))
    response = host_page(signed_in, snap)
    inventory = response.context["inventory"]
    assert all(getattr(inventory, area) is not None for area in AREAS)

    hardware = section(response, "hardware")
    for expected in ("Amazon EC2", "m6i.large", "ec2abcdef-0123", "ec2abcde-f012-3456-789a-bcdef0123456",
                     "1.0", "2017-10-16", "Yes, aws"):
        assert expected in hardware, expected

    disks = section(response, "disks")
    assert "/var/lib/postgresql" in disks and "/dev/nvme1n1" in disks and "xfs" in disks and "93%" in disks
    assert "60%" in disks and "200 GiB" in disks and "14 GiB" in disks
    rows = {row.disk.mount_point: row for row in inventory.disks}
    assert rows["/var/lib/postgresql"].full and not rows["/"].full and rows["/media/cdrom"].used_percent is None
    body = response.content.decode()
    assert len(re.findall(r'<span class="usage warn">', body)) == 1
    assert '<span class="fill" style="width: 93%">' in body and '<span class="fill" style="width: 60%">' in body

    interfaces = section(response, "interfaces")
    for expected in ("ens5", "02:fc:00:00:00:01", "10.0.1.15/24", "fe80::fc:ff:fe00:1/64", "up", "10000 Mb/s", "9001"):
        assert expected in interfaces, expected

    listening = section(response, "listening")
    assert re.search(r"22 TCP 0\.0\.0\.0 sshd 812", listening) and re.search(r"53 UDP :: – –", listening)

    services_text = section(response, "services")
    assert "ssh.service" in services_text and "active (running)" in services_text and "enabled" in services_text
    assert "wuauserv" in services_text and "Windows Update" in services_text and "stopped" in services_text
    assert "manual" in services_text and "LocalSystem" in services_text

    software = section(response, "software")
    assert "5 packages" in software and "pkg-0003" in software and "1.0-3" in software and "2026-05-09" in software
    assert "Not reported" not in text(response)


def test_a_snapshot_from_an_older_agent_says_not_reported_for_every_area(signed_in):
    raw = snapshot()
    for name in INVENTORY_FIELDS:
        raw.pop(name, None)
    response = host_page(signed_in, ingest(raw))
    assert all(getattr(response.context["inventory"], area) is None for area in AREAS)
    for anchor in ("hardware", "disks", "interfaces", "listening", "services", "software"):
        assert "Not reported" in section(response, anchor), anchor
    assert "proc-0" in text(response), "the rest of the page is still there"


def test_a_snapshot_with_every_area_null_or_empty_renders(signed_in):
    response = host_page(signed_in, ingest(snapshot(minutes_ago=3, **dict.fromkeys(INVENTORY_FIELDS))))
    assert text(response).count("Not reported") == len(AREAS)

    nulls = {
        "hardware": dict.fromkeys(("vendor", "model", "serial", "uuid", "bios_vendor", "bios_version",
                                   "bios_date", "virtual", "hypervisor")),
        "disks": [{"mount_point": "/", "device": None, "fs_type": None, "total_bytes": None, "free_bytes": None},
                  {"mount_point": "/tmp", "device": None, "fs_type": None, "total_bytes": 0, "free_bytes": 0}],
        "interfaces": [{"name": "lo", "mac": None, "addresses": [], "up": None, "speed_mbps": None, "mtu": None}],
        "listening": [{"protocol": "tcp", "address": "::", "port": 0, "pid": None, "process": None}],
        "services": [{"name": "odd.service"}],
        "software": [{"name": "bare", "source": "deb"}],
    }
    response = host_page(signed_in, ingest(snapshot(minutes_ago=2, **nulls)))
    page = text(response)
    assert "Not reported" not in page
    assert "bare" in section(response, "software") and "odd.service" in section(response, "services")
    assert "lo" in section(response, "interfaces") and "/tmp" in section(response, "disks")

    empty = {"disks": [], "interfaces": [], "listening": [], "services": [], "software": []}
    response = host_page(signed_in, ingest(snapshot(minutes_ago=1, **empty)))
    page = text(response)
    for said in ("No disks mounted.", "No network interfaces.", "Nothing is listening.", "No services.",
                 "No packages installed.", "0 packages"):
        assert said in page, said


def test_the_software_table_filters_and_pages_two_thousand_packages(signed_in):
    software = make_software(2_000)
    software[1234]["name"] = "openssl"
    software[1234]["version"] = "3.0.15-1~deb12u1"
    software[99]["vendor"] = "OpenSSL Project"
    snap = ingest(snapshot(**make_inventory(software=software)))

    first = host_page(signed_in, snap)
    table = first.context["inventory"].software
    assert (table.total, table.matched, len(table.page.object_list)) == (2_000, 2_000, breadth.SOFTWARE_PER_PAGE)
    assert "2000 packages, 1–250 shown" in text(first) and "Page 1 of 8" in text(first)
    assert "spage=2" in first.content.decode()
    last = host_page(signed_in, snap, spage="8")
    assert [e.name for e in last.context["inventory"].software.page][-1] == "pkg-1999"
    assert host_page(signed_in, snap, spage="junk").context["inventory"].software.page.number == 1

    found = host_page(signed_in, snap, software="OPENSSL")
    table = found.context["inventory"].software
    assert [e.name for e in table.page] == ["openssl", "pkg-0099"], "name or vendor, any case"
    assert "2 of 2000 packages match “OPENSSL”" in text(found)
    narrowed = host_page(signed_in, snap, software="openssl 3.0.15")
    assert [e.name for e in narrowed.context["inventory"].software.page] == ["openssl"], "every word must match"
    missing = host_page(signed_in, snap, software="no-such-thing")
    assert "No package matches this filter." in text(missing)
    assert 'value="no-such-thing"' in missing.content.decode()


def test_the_software_shown_is_the_current_list_when_the_newest_snapshot_sent_only_its_digest(signed_in):
    software = make_software(4)
    full = ingest(snapshot(minutes_ago=30, **make_inventory(software=software)))
    ingest(snapshot(minutes_ago=1, **make_inventory(software=software, full=False)))
    response = host_page(signed_in, full)
    table = response.context["inventory"].software
    assert table.total == 4 and table.as_of == full.collected_at and not table.pending
    assert "pkg-0002" in section(response, "software")

    changed = make_software(5)
    ingest(snapshot(minutes_ago=0, **make_inventory(software=changed, full=False)))
    response = host_page(signed_in, full)
    table = response.context["inventory"].software
    assert table.total == 4 and table.pending, "the old list, and a note that a new one was asked for"
    assert "the server has asked for it" in text(response)


def test_software_names_and_vendors_are_escaped(signed_in):
    hostile = [{"name": "<script>alert(1)</script>", "version": "<b>1</b>", "vendor": "\"&'", "arch": None,
                "source": "windows", "install_date": None}]
    response = host_page(signed_in, ingest(snapshot(**make_inventory(software=hostile))))
    body = response.content.decode()
    assert "<script>alert(1)</script>" not in body and "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert "<b>1</b>" not in body


# --- the changes page -----------------------------------------------------------------

def changes_page(client, snap: Snapshot, **query):
    response = client.get(reverse("reports:host_changes", args=[snap.host_id]), query)
    assert response.status_code == 200
    return response


def test_changes_show_every_inventory_area(signed_in):
    before = full_inventory()
    first = ingest(snapshot(minutes_ago=10, **before))
    after = full_inventory()
    after["software"][2]["version"] = "1.0-9"
    del after["software"][4]
    after["software"].append({"name": "nginx", "version": "1.22.1-9", "vendor": None, "arch": "amd64",
                              "source": "deb", "install_date": None})
    after.update(software_digest=None, software_count=None)
    after["listening"] = [after["listening"][0], {"protocol": "tcp", "address": "0.0.0.0", "port": 443, "pid": 900,
                                                  "process": "nginx"}]
    after["services"][0] = dict(after["services"][0], active_state="failed", sub_state="failed")
    after["disks"][0] = dict(after["disks"][0], free_bytes=5 * 2**30)
    after["interfaces"][0] = dict(after["interfaces"][0], mac="02:fc:00:00:00:77")
    after["hardware"] = dict(after["hardware"], serial="other-serial")
    ingest(snapshot(minutes_ago=1, **after))
    response = changes_page(signed_in, first)
    diff = response.context["diff"]
    assert [c.name for c in diff.software.upgraded] == ["pkg-0002"]
    assert [e.name for e in diff.software.installed] == ["nginx"] and [e.name for e in diff.software.removed] == ["pkg-0004"]
    page = text(response)
    assert re.search(r"pkg-0002 upgraded 1\.0-2 → 1\.0-9", page)
    assert re.search(r"443 opened TCP 0\.0\.0\.0 nginx 900", page) and re.search(r"53 closed UDP ::", page)
    assert re.search(r"ssh\.service changed active: active → failed", page)
    assert re.search(r"/ filling up /dev/nvme0n1p1 free 40 GiB \(40%\) → 5 GiB \(5%\)", page)
    assert re.search(r"ens5 changed MAC 02:fc:00:00:00:01 → 02:fc:00:00:00:77", page)
    assert "Hardware serial number" in page and "other-serial" in page
    assert "Not compared" not in page


def test_changes_compare_a_digest_only_snapshot_through_the_stored_list(signed_in):
    old_list = make_software(3)
    new_list = make_software(3)
    new_list[0]["version"] = "2.0-0"
    ingest(snapshot(minutes_ago=30, **make_inventory(software=old_list)))
    middle = ingest(snapshot(minutes_ago=20, **make_inventory(software=old_list, full=False)))
    ingest(snapshot(minutes_ago=10, **make_inventory(software=new_list)))
    newest = ingest(snapshot(minutes_ago=1, **make_inventory(software=new_list, full=False)))

    # The last two: the newest sent only the digest of the list the one before carried.
    unchanged = changes_page(signed_in, newest)
    assert unchanged.context["diff"].software is not None and not unchanged.context["diff"].software
    # Digest-only (old list) against digest-only (new list): both lists are looked up by digest.
    response = changes_page(signed_in, newest, **{"from": middle.snapshot_id, "to": newest.snapshot_id})
    diff = response.context["diff"]
    assert [(c.name, c.old_version, c.new_version) for c in diff.software.upgraded] == [("pkg-0000", "1.0-0", "2.0-0")]
    assert not diff.software.removed and not diff.software.installed, "an omitted list is never 'all removed'"
    assert re.search(r"pkg-0000 upgraded 1\.0-0 → 2\.0-0", text(response))


def test_changes_say_what_an_unknown_digest_or_an_older_agent_left_uncompared(signed_in):
    raw = snapshot(minutes_ago=30)
    for name in INVENTORY_FIELDS:
        raw.pop(name, None)
    first = ingest(raw)
    ingest(snapshot(minutes_ago=20, **full_inventory()))
    response = changes_page(signed_in, first)
    page = text(response)
    assert "Not compared: software (not reported by the older snapshot); listening ports" in page
    assert response.context["diff"].software is None and not response.context["diff"].ports_opened
    # A digest the server never received a list for (the agent was asked for it).
    ingest(snapshot(minutes_ago=10, **make_inventory(software=make_software(7), full=False)))
    response = changes_page(signed_in, first)
    assert "the newer snapshot sent only the list's digest, and no stored snapshot holds that list" in text(response)
    assert response.context["diff"].software is None
