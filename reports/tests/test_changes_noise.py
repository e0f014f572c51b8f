"""The changes page without noise: kernel threads hidden (and the toggle), ordering, reboot headline, counts, labels."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from relevo_testing.factories import encode, make_payload
from reports import diff as snapshot_diff
from reports import payload as payload_schema
from reports import processes as process_rule
from reports.models import Host
from reports.tests.helpers import ingest, same_day_start, text

pytestmark = pytest.mark.django_db


def proc(pid: int, name: str, cmdline: list[str] | None, *, ppid: int | None = 1,
         started: dt.datetime | None = None) -> dict:
    return {"pid": pid, "ppid": ppid, "name": name, "username": "root", "status": "sleeping",
            "create_time": started.isoformat() if started else None, "cpu_percent": 0.0,
            "memory_rss_bytes": 0 if cmdline is None else 1_000_000, "memory_percent": 0.0, "num_threads": 1,
            "exe": None, "cmdline": cmdline}


def decoded(processes: list[dict], **overrides) -> payload_schema.SnapshotPayload:
    raw = make_payload(processes=0, **overrides)
    raw["processes"] = processes
    return payload_schema.decode(encode(raw), now=timezone.now())


@pytest.mark.parametrize(("process", "kernel"), [
    (proc(2, "kthreadd", None, ppid=0), True),
    (proc(57, "kworker/3:1-events", None, ppid=2), True),
    (proc(14, "rcu_gp", [], ppid=2), True),
    (proc(15, "migration/0", None, ppid=None), True),          # parent unreadable: the name decides
    (proc(16, "ksoftirqd/1", None, ppid=0), True),
    (proc(900, "kworker/0:1", ["/tmp/.x/kworker"], ppid=1), False),  # a command line: user space
    (proc(901, "kworker/0:1", None, ppid=1), False),           # a user-space parent: not a kernel thread
    (proc(902, "sshd", None, ppid=None), False),                # no command line, but not a kthread name
    (proc(1, "systemd", ["/sbin/init"], ppid=0), False),
])
def test_the_kernel_thread_rule(process, kernel):
    [parsed] = decoded([process]).processes
    assert process_rule.is_kernel_thread(parsed) is kernel


def test_kernel_threads_come_last_and_are_hidden_unless_asked():
    t0 = dt.datetime(2026, 11, 27, 8, 0, tzinfo=dt.timezone.utc)
    old = decoded([proc(10, "sshd", ["/usr/sbin/sshd", "-D"])], collected_at=t0)
    new = decoded([
        proc(10, "sshd", ["/usr/sbin/sshd", "-D"]),
        proc(57, "kworker/3:1-events", None, ppid=2),
        proc(58, "rcu_gp", None, ppid=2),
        proc(300, "sleep", ["sleep", "1"], started=t0 + dt.timedelta(minutes=14, seconds=59)),
        proc(301, "xmrig", ["/tmp/.x/xmrig", "-o", "pool:3333"], started=t0 + dt.timedelta(minutes=1)),
        proc(302, "php-fpm", ["php-fpm: pool www"], started=t0 + dt.timedelta(minutes=5)),
        proc(303, "php-fpm", ["php-fpm: pool www"], started=t0 + dt.timedelta(minutes=5)),
        proc(304, "php-fpm", ["php-fpm: pool www"], started=t0 + dt.timedelta(minutes=6)),
    ], collected_at=t0 + dt.timedelta(minutes=15))
    diff = snapshot_diff.snapshot_diff(old, new)
    # Longest-running user-space process first, the short-lived one after, kernel threads last.
    assert [c.name for c in diff.started] == ["xmrig", "php-fpm", "sleep", "kworker/3:1-events", "rcu_gp"]
    assert [c.kernel for c in diff.started] == [False, False, False, True, True]
    php = diff.started[1]
    assert php.count == 3 and php.example.pid in (302, 303)

    hidden = diff.processes(show_kernel=False)
    assert [c.name for c in hidden.started] == ["xmrig", "php-fpm", "sleep"]
    assert (hidden.hidden_started, hidden.hidden_stopped) == (2, 0)
    shown = diff.processes(show_kernel=True)
    assert len(shown.started) == 5 and shown.hidden_started == 0


def test_a_reboot_is_a_headline_with_the_kernel_not_a_boot_time_row():
    old = decoded([proc(10, "sshd", ["/usr/sbin/sshd", "-D"]), proc(11, "xmrig", ["/tmp/xmrig"])])
    raw_new = make_payload(processes=0)
    new = decoded([proc(700, "sshd", ["/usr/sbin/sshd", "-D"]), proc(701, "cron", ["/usr/sbin/cron", "-f"]),
                   proc(2, "kthreadd", None, ppid=0), proc(40, "kworker/0:0", None, ppid=2)],
                  host=dict(raw_new["host"], boot_time="2026-11-27T09:00:00+00:00"),
                  os=dict(raw_new["os"], kernel="6.1.0-31-amd64", release="6.1.0-31-amd64"))
    diff = snapshot_diff.snapshot_diff(old, new)
    assert diff.reboot is not None and diff.reboot.kernel_changed
    assert (diff.reboot.old_kernel, diff.reboot.new_kernel) == ("6.1.0-30-amd64", "6.1.0-31-amd64")
    assert diff.reboot.processes_since_boot == 2  # sshd and cron; kernel threads are not counted
    labels = [c.label for c in diff.fields]
    assert "Boot time" not in labels and "Kernel" not in labels and "OS release" in labels


def test_a_boot_time_that_moved_by_seconds_is_not_a_reboot():
    raw = make_payload(processes=0)
    old = decoded([], host=dict(raw["host"], boot_time="2026-11-20T06:12:00+00:00"))
    new = decoded([], host=dict(raw["host"], boot_time="2026-11-20T06:12:02+00:00"))
    diff = snapshot_diff.snapshot_diff(old, new)
    assert diff.reboot is None and diff.is_empty


def test_labels_are_readable_and_sizes_are_binary(signed_in):
    start = same_day_start()
    ingest(make_payload(host_id="lbl", hostname="lbl", collected_at=start))
    second = make_payload(host_id="lbl", hostname="lbl", collected_at=start + dt.timedelta(minutes=5),
                          memory={"total_bytes": 8 * 2**30, "available_bytes": 512 * 2**20})
    ingest(second)
    host = Host.objects.get(host_id="lbl")
    page = text(signed_in.get(reverse("reports:host_changes", args=[host.pk])))
    assert "Available memory" in page and "Memory available bytes" not in page
    assert "8 GiB" in page and "512 MiB" in page and "7.7 GB" not in page


def test_the_page_counts_processes_hides_kernel_threads_and_shows_a_reboot(signed_in):
    start = same_day_start()
    base = make_payload(host_id="rb", hostname="rb", collected_at=start, processes=0)
    base["processes"] = [proc(10, "sshd", ["/usr/sbin/sshd", "-D"]), proc(11, "xmrig", ["/tmp/.x/xmrig"]),
                         proc(30, "kworker/0:1-events", None, ppid=2)]
    ingest(base)
    after = make_payload(host_id="rb", hostname="rb", collected_at=start + dt.timedelta(minutes=30), processes=0)
    after["host"]["boot_time"] = (start + dt.timedelta(minutes=20)).isoformat()
    after["os"] = dict(after["os"], kernel="6.1.0-31-amd64")
    after["processes"] = [proc(700, "sshd", ["/usr/sbin/sshd", "-D"]),
                          *(proc(800 + i, "nginx", ["nginx: worker process"]) for i in range(3)),
                          proc(31, "kworker/1:2-mm", None, ppid=2), proc(32, "rcu_gp", None, ppid=2)]
    ingest(after)
    host = Host.objects.get(host_id="rb")
    url = reverse("reports:host_changes", args=[host.pk])
    response = signed_in.get(url)
    page = text(response)
    assert "Rebooted · kernel 6.1.0-30-amd64 → 6.1.0-31-amd64" in page
    assert "2 processes started since boot" in page and "still running" not in page
    assert "+1 started" in page and "−1 stopped" in page   # nginx ×3 is one process; xmrig stopped
    assert "×3" in page and "kworker" not in page and "rcu_gp" not in page
    assert "2 kernel threads started and 1 stopped are hidden" in page

    shown = text(signed_in.get(url, {"kernel": "on"}))
    assert "kworker/1:2-mm" in shown and "rcu_gp" in shown and "+3 started" in shown and "−2 stopped" in shown
    assert "Hide kernel threads" in shown
    # Anything but "on" is the default, never an error.
    assert signed_in.get(url, {"kernel": "yes please"}).status_code == 200
