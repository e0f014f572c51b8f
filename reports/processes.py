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

``Host.process_index`` holds these texts, one line per process of the newest
snapshot, so ``HostQuerySet.running`` (one LIKE over that column) finds
exactly the hosts for which ``process_matches`` holds for some process: the
needle holds no newline, so it cannot match across two processes' lines.
"""

from __future__ import annotations

from collections.abc import Iterable

from reports import payload as payload_schema

CMDLINE_CHARS = 200


def process_text(process: payload_schema.Process) -> str:
    """The searchable text of one process: its line of ``process_index``."""
    cmdline = " ".join(process.cmdline)[:CMDLINE_CHARS] if process.cmdline else ""
    return f"{process.name or ''}\t{cmdline}".replace("\n", " ").lower()


def process_index(processes: list[payload_schema.Process]) -> str:
    """``process_text`` of every process, one line each: the text ``Host.process_index`` stores.

    One text column on Host answers "which hosts run X now" with a single
    LIKE scan over the newest snapshot of every host, without a row per process.
    """
    limit = CMDLINE_CHARS
    # The same text as process_text, built for a whole list at once (this runs on
    # every upload): lines are joined with a separator no name can hold (the
    # payload refuses NUL), so newlines inside names and command lines are blanked
    # and the text lower-cased in three passes over the whole string.
    text = "\0".join([f"{p.name or ''}\t{' '.join(p.cmdline)[:limit] if p.cmdline else ''}" for p in processes])
    return text.replace("\n", " ").replace("\0", "\n").lower()


KERNEL_THREAD_PREFIXES = ("kworker/", "ksoftirqd/", "migration/", "rcu_", "cpuhp/", "idle_inject/", "irq/", "watchdog/")


def is_kernel_thread(process: payload_schema.Process) -> bool:
    """Whether *process* is a Linux kernel thread, which pages hide by default.

    Kernel threads have no command line and are kthreadd (pid 2) or its
    children (ppid 2). When the agent could not read the parent, names like
    ``kworker/0:1`` or ``rcu_gp`` still give them away. They are noise to an
    operator: dozens per host, 0 bytes resident, renamed as they work.
    Windows's "System" (pid 4) has no command line either but is not matched:
    its ppid is 0.
    """
    if process.cmdline:
        return False
    if process.pid == 2 or process.ppid == 2:
        return True
    name = process.name or ""
    return name.startswith(KERNEL_THREAD_PREFIXES)


def query_needle(query: str) -> str:
    """What a query is looked for as: stripped, lower-cased, newlines blanked ('' matches nothing)."""
    return query.strip().lower().replace("\n", " ")


def process_matches(process: payload_schema.Process, needle: str) -> bool:
    """Whether *process* matches *needle* (a ``query_needle``)."""
    return bool(needle) and needle in process_text(process)


def matching_lines(index: str, needle: str) -> list[str]:
    """The lines of a ``process_index`` that match *needle*: the same rule, read from the stored text."""
    if not needle:
        return []
    return [line for line in index.split("\n") if needle in line]


def matching_processes(processes: Iterable[payload_schema.Process], needle: str) -> list[payload_schema.Process]:
    return [process for process in processes if process_matches(process, needle)]
