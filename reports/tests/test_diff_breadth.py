"""reports.diff over the inventory areas: software, ports, services, disks, interfaces, hardware.

Pure functions over decoded payloads: no database. Each area has a test for
its changes and for "absent is not empty" (an area one snapshot does not
report is not compared, never read as everything removed or added).
"""

from __future__ import annotations

import copy
import uuid

import pytest
from django.utils import timezone

from reports import payload as payload_schema
from reports.diff import FREE_DROP_POINTS, LOW_FREE_PERCENT, Uncompared, snapshot_diff, software_diff, version_compare
from relevo_testing.factories import encode, make_inventory, make_payload, make_software

INVENTORY_FIELDS = ("software", "software_digest", "software_count", "listening", "disks", "interfaces",
                    "services", "hardware")


def snapshot(**inventory) -> payload_schema.SnapshotPayload:
    """A decoded snapshot with the factory's inventory, *inventory* fields replacing or (None) dropping its own."""
    raw = make_payload(processes=0, **make_inventory())
    raw["snapshot_id"] = str(uuid.uuid4())
    for name, value in inventory.items():
        if value is None:
            raw.pop(name, None)
        else:
            raw[name] = copy.deepcopy(value)
    return payload_schema.decode(encode(raw), now=timezone.now())


def old_agent() -> payload_schema.SnapshotPayload:
    """A snapshot from an agent older than the inventory fields: none of them at all."""
    return snapshot(**dict.fromkeys(INVENTORY_FIELDS))


def entries(software: list[dict]) -> list[payload_schema.Software]:
    return snapshot(software=software).software


# --- software --------------------------------------------------------------------

def test_software_installed_removed_upgraded_and_downgraded():
    before = make_software(4)
    after = copy.deepcopy(before)
    after[0]["version"] = "1.0-9"                           # pkg-0000 1.0-0 -> 1.0-9: upgraded
    after[1]["version"] = "0.9-1"                           # pkg-0001 1.0-1 -> 0.9-1: downgraded
    del after[2]                                            # pkg-0002: removed
    after.append(dict(before[3], name="openssl", version="3.0.15-1~deb12u1"))  # installed
    diff = snapshot_diff(snapshot(software=before), snapshot(software=after))
    assert [(c.name, c.old_version, c.new_version) for c in diff.software.upgraded] == [("pkg-0000", "1.0-0", "1.0-9")]
    assert [(c.name, c.old_version, c.new_version) for c in diff.software.downgraded] == [("pkg-0001", "1.0-1", "0.9-1")]
    assert [e.name for e in diff.software.removed] == ["pkg-0002"]
    assert [(e.name, e.version) for e in diff.software.installed] == [("openssl", "3.0.15-1~deb12u1")]
    assert not diff.is_empty and not diff.uncompared


def test_two_architectures_and_two_versions_of_one_name_are_told_apart():
    base = {"vendor": None, "source": "deb", "install_date": None}
    i386 = dict(base, name="libc6", version="2.36-9", arch="i386")
    before = [dict(base, name="libc6", version="2.36-9", arch="amd64"), i386]
    after = [dict(base, name="libc6", version="2.36-9+deb12u4", arch="amd64"), i386]
    diff = software_diff(entries(before), entries(after))
    assert [(c.arch, c.new_version) for c in diff.upgraded] == [("amd64", "2.36-9+deb12u4")]
    assert not (diff.installed or diff.removed or diff.downgraded)
    # Windows keeps two versions of one program side by side: a third one is installed, not an upgrade.
    win = {"vendor": "Microsoft", "arch": "x64", "source": "windows", "install_date": None}
    two = [dict(win, name="Runtime", version="6.0.1"), dict(win, name="Runtime", version="8.0.2")]
    three = two + [dict(win, name="Runtime", version="9.0.0")]
    diff = software_diff(entries(two), entries(three))
    assert [e.version for e in diff.installed] == ["9.0.0"] and not diff.upgraded


@pytest.mark.parametrize("a,b,sign", [
    ("1.0", "1.0", 0), ("1.0", "1.1", -1), ("2.10", "2.9", 1), ("1.0~rc1", "1.0", -1), ("1:1.0", "9.0", 1),
    ("3.0.11-1~deb12u2", "3.0.15-1~deb12u1", -1), ("1.0-1", "1.0-2", -1), ("1.0+b1", "1.0", 1),
    ("10.0.19041.1", "10.0.19041.2", -1), ("1.0a", "1.0", 1), ("1.01", "1.1", 0),
])
def test_versions_sort_by_dpkg_rules(a, b, sign):
    result = version_compare(a, b)
    assert (result > 0) - (result < 0) == sign
    back = version_compare(b, a)
    assert (back > 0) - (back < 0) == -sign


def test_an_omitted_list_with_the_same_digest_is_unchanged_not_all_removed():
    software = make_software(5)
    full = snapshot(software=software)
    digest_only = snapshot(**{**make_inventory(software=software, full=False)})
    assert digest_only.software is None and digest_only.software_digest == full.software_digest
    for old, new in ((full, digest_only), (digest_only, full), (digest_only, digest_only)):
        diff = snapshot_diff(old, new)
        assert diff.software is not None and not diff.software and diff.is_empty
        assert not diff.software_unresolved and not diff.uncompared


def test_an_omitted_list_with_another_digest_is_compared_through_the_known_list():
    before, after = make_software(3), make_software(3)
    after[1]["version"] = "2.0-1"
    old = snapshot(**make_inventory(software=before, full=False))
    new = snapshot(software=after)
    unresolved = snapshot_diff(old, new)
    assert unresolved.software is None and unresolved.software_unresolved
    assert unresolved.uncompared == [Uncompared(
        "software", "the older snapshot sent only the list's digest, and no stored snapshot holds that list")]
    resolved = snapshot_diff(old, new, old_known=entries(before))
    assert [(c.name, c.new_version) for c in resolved.software.upgraded] == [("pkg-0001", "2.0-1")]
    assert not resolved.software.removed and not resolved.software.installed and not resolved.uncompared
    # And the other way round: the newer snapshot sent only its digest.
    newer_digest_only = snapshot(**make_inventory(software=after, full=False))
    diff = snapshot_diff(snapshot(software=before), newer_digest_only, new_known=entries(after))
    assert [c.name for c in diff.software.upgraded] == ["pkg-0001"] and not diff.software.removed


def test_software_an_older_agent_did_not_report_is_not_compared():
    new = snapshot()
    diff = snapshot_diff(old_agent(), new)
    assert diff.software is None and not diff.software_unresolved
    assert Uncompared("software", "not reported by the older snapshot") in diff.uncompared
    diff = snapshot_diff(new, old_agent())
    assert diff.software is None and Uncompared("software", "not reported by the newer snapshot") in diff.uncompared
    # An empty list is reported: it removes everything.
    diff = snapshot_diff(new, snapshot(software=[]))
    assert len(diff.software.removed) == len(new.software)


# --- listening ports --------------------------------------------------------------------

SSH = {"protocol": "tcp", "address": "0.0.0.0", "port": 22, "pid": 812, "process": "sshd"}
DNS = {"protocol": "udp", "address": "::", "port": 53, "pid": None, "process": None}


def test_ports_opened_and_closed_with_their_process():
    web = {"protocol": "tcp", "address": "0.0.0.0", "port": 443, "pid": 900, "process": "nginx"}
    diff = snapshot_diff(snapshot(listening=[SSH, DNS]), snapshot(listening=[SSH, web, web]))
    assert [(s.port, s.process) for s in diff.ports_opened] == [(443, "nginx")]
    assert [(s.port, s.protocol, s.process) for s in diff.ports_closed] == [(53, "udp", None)]
    # Same port, another program: closed by one and opened by the other; a name turned unreadable is no change.
    apache = dict(web, process="apache2", pid=901)
    diff = snapshot_diff(snapshot(listening=[web, SSH]), snapshot(listening=[apache, dict(SSH, pid=None, process=None)]))
    assert [s.process for s in diff.ports_opened] == ["apache2"] and [s.process for s in diff.ports_closed] == ["nginx"]


def test_ports_absent_on_one_side_are_not_compared():
    diff = snapshot_diff(old_agent(), snapshot(listening=[SSH]))
    assert not diff.ports_opened and Uncompared("listening ports", "not reported by the older snapshot") in diff.uncompared
    diff = snapshot_diff(snapshot(listening=[SSH]), snapshot(listening=[]))
    assert [s.port for s in diff.ports_closed] == [22]


# --- services -----------------------------------------------------------------------

def test_services_added_removed_and_changed_state():
    ssh = {"name": "ssh.service", "active_state": "active", "sub_state": "running", "enabled": "enabled"}
    cron = {"name": "cron.service", "active_state": "active", "sub_state": "running", "enabled": "enabled"}
    spooler = {"name": "Spooler", "display_name": "Print Spooler", "status": "running", "start_type": "automatic",
               "account": "LocalSystem", "binary_path": "C:\\Windows\\System32\\spoolsv.exe"}
    new_spooler = dict(spooler, status="stopped", binary_path="C:\\Temp\\evil.exe")
    redis = {"name": "redis-server.service", "active_state": "active", "sub_state": "running", "enabled": "enabled"}
    before = [ssh, cron, spooler]
    after = [dict(ssh, active_state="failed", sub_state="failed"), new_spooler, redis]
    diff = snapshot_diff(snapshot(services=before), snapshot(services=after))
    assert [s.name for s in diff.services_added] == ["redis-server.service"]
    assert [s.name for s in diff.services_removed] == ["cron.service"]
    assert [(c.name, c.changes) for c in diff.services_changed] == [
        ("Spooler", (("status", "running", "stopped"),
                     ("binary path", "C:\\Windows\\System32\\spoolsv.exe", "C:\\Temp\\evil.exe"))),
        ("ssh.service", (("active", "active", "failed"), ("sub-state", "running", "failed"))),
    ]
    assert diff.services_changed[0].display_name == "Print Spooler"
    unreported = snapshot_diff(snapshot(services=before), snapshot(services=None))
    assert not unreported.services_removed
    assert Uncompared("services", "not reported by the newer snapshot") in unreported.uncompared


# --- disks --------------------------------------------------------------------------

GB = 1_000_000_000


def disk(mount: str, total: int | None, free: int | None, device: str = "/dev/sda1") -> dict:
    return {"mount_point": mount, "device": device, "fs_type": "ext4", "total_bytes": total, "free_bytes": free}


def test_disks_added_removed_and_large_drops_in_free_space():
    assert (FREE_DROP_POINTS, LOW_FREE_PERCENT) == (10.0, 10.0), "docs/dashboard.md states these"
    before = [disk("/", 100 * GB, 50 * GB), disk("/var", 100 * GB, 15 * GB), disk("/srv", 100 * GB, 30 * GB),
              disk("/home", 100 * GB, 8 * GB), disk("/mnt/old", 10 * GB, 5 * GB), disk("/media/cd", None, None)]
    after = [disk("/", 100 * GB, 40 * GB),       # 50% -> 40%: exactly 10 points, reported
             disk("/var", 100 * GB, 9 * GB),     # 15% -> 9%: fell below 10%, reported
             disk("/srv", 100 * GB, 21 * GB),    # 30% -> 21%: 9 points, not reported
             disk("/home", 100 * GB, 2 * GB),    # already below 10%, 6 points: not reported
             disk("/media/cd", 1 * GB, 0),       # size unknown before: not compared
             disk("/data", 500 * GB, 400 * GB, device="/dev/sdb1")]
    diff = snapshot_diff(snapshot(disks=before), snapshot(disks=after))
    assert [d.mount_point for d in diff.disks_added] == ["/data"]
    assert [d.mount_point for d in diff.disks_removed] == ["/mnt/old"]
    assert [(d.mount_point, round(d.old_free_percent), round(d.new_free_percent)) for d in diff.disks_filling] == [
        ("/", 50, 40), ("/var", 15, 9)]
    assert diff.disks_filling[1].new_free_bytes == 9 * GB and diff.disks_filling[1].total_bytes == 100 * GB
    unreported = snapshot_diff(snapshot(disks=None), snapshot(disks=after))
    assert not unreported.disks_added and Uncompared("disks", "not reported by the older snapshot") in unreported.uncompared


# --- interfaces ----------------------------------------------------------------------

def interface(name: str, mac: str | None, *addresses: str, up: bool | None = True) -> dict:
    return {"name": name, "mac": mac, "up": up, "speed_mbps": 1000, "mtu": 1500,
            "addresses": [{"address": a.split("/")[0], "prefix_length": int(a.split("/")[1])} for a in addresses]}


def test_interfaces_mac_address_and_link_changes():
    before = [interface("eth0", "02:fc:00:00:00:01", "10.0.0.5/24", "fe80::1/64"), interface("lo", None, "127.0.0.1/8"),
              interface("eth1", "02:fc:00:00:00:02", up=True), interface("eth2", "02:fc:00:00:00:03", up=None)]
    after = [interface("eth0", "02:fc:00:00:00:99", "10.0.0.6/24", "fe80::1/64"), interface("lo", None, "127.0.0.1/8"),
             interface("eth1", "02:fc:00:00:00:02", up=False), interface("eth2", "02:fc:00:00:00:03", up=True),
             interface("docker0", "02:42:ac:11:00:01", "172.17.0.1/16")]
    diff = snapshot_diff(snapshot(interfaces=before), snapshot(interfaces=after))
    assert [i.name for i in diff.interfaces_added] == ["docker0"] and not diff.interfaces_removed
    eth0, eth1 = diff.interfaces_changed
    assert (eth0.name, eth0.old_mac, eth0.new_mac, eth0.mac_changed) == (
        "eth0", "02:fc:00:00:00:01", "02:fc:00:00:00:99", True)
    assert (eth0.addresses_added, eth0.addresses_removed, eth0.up_changed) == (
        ("10.0.0.6/24",), ("10.0.0.5/24",), False)
    assert (eth1.name, eth1.mac_changed, eth1.old_up, eth1.new_up, eth1.up_changed) == (
        "eth1", False, True, False, True)
    # eth2's link state was unknown before: not a change.
    unreported = snapshot_diff(snapshot(interfaces=before), old_agent())
    assert not unreported.interfaces_removed
    assert Uncompared("network interfaces", "not reported by the newer snapshot") in unreported.uncompared


# --- hardware -----------------------------------------------------------------------

def test_a_hardware_change_is_a_field_change():
    hardware = make_inventory()["hardware"]
    moved = dict(hardware, serial="ec2-other-9999", bios_version="1.1", virtual=False)
    diff = snapshot_diff(snapshot(hardware=hardware), snapshot(hardware=moved))
    assert {(c.section, c.label, c.old, c.new) for c in diff.fields} == {
        ("Hardware", "Hardware serial number", "ec2abcdef-0123", "ec2-other-9999"), ("Hardware", "BIOS version", "1.0", "1.1"),
        ("Hardware", "Virtual machine", True, False)}
    unreported = snapshot_diff(old_agent(), snapshot(hardware=hardware))
    assert not unreported.fields and Uncompared("hardware", "not reported by the older snapshot") in unreported.uncompared


def test_two_old_agent_snapshots_say_nothing_about_the_inventory():
    diff = snapshot_diff(old_agent(), old_agent())
    assert diff.is_empty and diff.software is None and not diff.uncompared


def test_the_same_inventory_is_no_change():
    diff = snapshot_diff(snapshot(), snapshot())
    assert diff.is_empty and diff.software is not None and not diff.uncompared
