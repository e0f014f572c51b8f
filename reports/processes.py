"""Process matching: the one rule for "this process matches the query".

A process's searchable text is ``name<TAB>command line``, lower-cased, with
newlines blanked and the command line cut at ``CMDLINE_CHARS``. A process
matches a query when the query, normalised by ``query_needle`` (stripped,
lower-cased, newlines blanked), is a substring of that text.

The user name does not count. The process search page ("Process name or
command line"), ``/api/processes/?name=`` ("Substring of a process name or
command line") and docs/dashboard.md all say so; only the host page's filter
also looked at the user, and it now follows the same rule. Sorting by user
is still there for finding one user's processes.

``Host.process_index`` holds these texts, one line per distinct text of the
newest snapshot (sorted), so ``HostQuerySet.running`` (one LIKE over that column) finds
exactly the hosts for which ``process_matches`` holds for some process: the
needle holds no newline, so it cannot match across two processes' lines.

Name-only matching (``match=name``, the default of process search): the
needle is a substring of the process *name* alone, so ``vim
/etc/nginx/nginx.conf`` is not an nginx process; ``match=cmdline`` is the
rule above (name or command line). ``MATCH_MODES`` names both.

Kernel threads (``is_kernel_thread``) are the other rule this module owns:
the changes page hides them unless asked (``?kernel=on``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from reports import digests
from reports import payload as payload_schema

CMDLINE_CHARS = 200
# What a process search compares the needle with: the name alone, or the name and command line.
MATCH_NAME, MATCH_CMDLINE = "name", "cmdline"
MATCH_MODES = (MATCH_NAME, MATCH_CMDLINE)


def process_text(process: payload_schema.Process) -> str:
    """The searchable text of one process: its line of ``process_index``."""
    cmdline = " ".join(process.cmdline)[:CMDLINE_CHARS] if process.cmdline else ""
    return f"{process.name or ''}\t{cmdline}".replace("\n", " ").lower()


def process_index(processes: list[payload_schema.Process]) -> str:
    """The distinct ``process_text`` values of *processes*, sorted, one a line: what ``Host.process_index`` stores.

    One text column on Host answers "which hosts run X now" with a single
    LIKE scan over the newest snapshot of every host, without a row per process.
    Sorted and unique, so it changes only when a distinct text appears or goes:
    a new pid of the same program, or the same programs listed in another
    order, gives an equal string, which the upload then does not write again
    (``rowsql.update``'s ``keep_if_equal``) and which tells
    ``reports.process_history`` that nothing started or stopped.
    """
    limit = CMDLINE_CHARS
    # The same text as process_text, built for a whole list at once (this runs on
    # every upload). Copies of one program are dropped before the text is
    # normalised, so most of the work is done once per distinct program: the
    # lines are joined with a separator no name can hold (the payload refuses
    # NUL), newlines inside names and command lines are blanked and the text is
    # lower-cased in two passes over the whole string, then split, made unique
    # again (two texts may differ only in case) and sorted.
    raw = {f"{p.name or ''}\t{' '.join(p.cmdline)[:limit] if p.cmdline else ''}" for p in processes}
    if not raw:
        return ""
    return "\n".join(sorted(set("\0".join(raw).replace("\n", " ").lower().split("\0"))))


def index_digest(index: str) -> str:
    """What ``Host.process_index_digest`` holds for *index* (the rule is `reports.digests`).

    An upload compares it with the host's instead of reading the stored
    index back (tens of kilobytes on every upload) to learn that the list is
    unchanged, which it usually is.
    """
    return digests.text_digest(index)


def index_columns(processes: list[payload_schema.Process]) -> dict[str, str]:
    """The Host columns a process list gives: ``process_index`` and its digest (for loaders that skip ingest)."""
    index = process_index(processes)
    return {"process_index": index, "process_index_digest": index_digest(index)}


def query_needle(query: str) -> str:
    """What a query is looked for as: stripped, lower-cased, newlines blanked ('' matches nothing)."""
    return query.strip().lower().replace("\n", " ")


def process_matches(process: payload_schema.Process, needle: str, match: str = MATCH_CMDLINE) -> bool:
    """Whether *process* matches *needle* (a ``query_needle``) under *match*."""
    if match == MATCH_NAME:
        return bool(needle) and needle in name_text(process)
    return bool(needle) and needle in process_text(process)


def name_text(process: payload_schema.Process) -> str:
    """The searchable name of one process (the part of ``process_text`` before the tab)."""
    return (process.name or "").replace("\n", " ").lower()


def line_matches(line: str, needle: str, match: str = MATCH_CMDLINE) -> bool:
    """Whether one ``process_index`` line matches *needle* under *match* (one of ``MATCH_MODES``)."""
    if not needle:
        return False
    if match == MATCH_NAME:
        return needle in line.split("\t", 1)[0]
    return needle in line


def matching_lines(index: str, needle: str, match: str = MATCH_CMDLINE) -> list[str]:
    """The lines of a ``process_index`` that match *needle*: the same rule, read from the stored text."""
    if not needle:
        return []
    return [line for line in index.split("\n") if line_matches(line, needle, match)]


def matching_processes(processes: Iterable[payload_schema.Process], needle: str,
                       match: str = MATCH_CMDLINE) -> list[payload_schema.Process]:
    return [process for process in processes if process_matches(process, needle, match)]


# --- kernel threads ------------------------------------------------------------------

# Name patterns of Linux kernel threads (kthreadd's children), for a process
# whose parent is not known. A per-CPU suffix (``/0``), a work queue
# (``kworker/u8:2-events``) and a renamed ``rcu_*`` thread all match.
KERNEL_THREAD_NAMES = re.compile(
    r"^(?:kthreadd|kworker/.*|rcu_.*|migration/.*|ksoftirqd/.*|cpuhp/.*|idle_inject/.*|watchdog[d/].*"
    r"|irq/.*|kcompactd\d*|khugepaged|kswapd\d*|kauditd|kdevtmpfs|khungtaskd|oom_reaper|kblockd|ksmd"
    r"|writeback|kintegrityd|jbd2/.*|scsi_eh_\d+|scsi_tmf_\d+|card\d+-crtc\d+|xfs.*|ext4-rsv-conver"
    r"|kthrotld|zswap-shrink|mm_percpu_wq|netns|inet_frag_wq|ecryptfs-kthread|kstrp|charger_manager"
    r"|pool_workqueue_release|ipv6_addrconf|blkcg_punt_bio|tpm_dev_wq|devfreq_wq|edac-poller|kmpath_rdacd"
    r"|kaluad|md|raid5wq|dm_bufio_cache|ata_sff|acpi_thermal_pm|vmstat)$"
)
KTHREADD_PID = 2


def is_kernel_thread(process: payload_schema.Process) -> bool:
    """Whether *process* is a Linux kernel thread: the one rule the changes page hides by default.

    A kernel thread has no command line (``/proc/<pid>/cmdline`` is empty) and
    is kthreadd (pid 2) or its child (ppid 2). When the agent could not read
    the parent, a name in ``KERNEL_THREAD_NAMES`` (``kworker/*``, ``rcu_*``,
    ``migration/*``, ``ksoftirqd/*`` ...) decides. A process with a command
    line is never one: a user-space program cannot hide by naming itself
    ``kworker/0:1`` unless it also blanks its command line, and then its ppid
    (not 2) gives it away.
    """
    if process.cmdline and any(process.cmdline):
        return False
    if process.pid == KTHREADD_PID or process.ppid == KTHREADD_PID:
        return True
    if process.ppid is not None and process.ppid not in (0, KTHREADD_PID):
        return False
    return bool(process.name) and KERNEL_THREAD_NAMES.match(process.name) is not None
