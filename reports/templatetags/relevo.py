"""Template helpers for the pages: query-string links and human-friendly values.

Every time on every page goes through ``when`` (an absolute time) or ``ago``
(a relative one): one zone, the server's ``TIME_ZONE`` (``DJANGO_TIME_ZONE``),
and one format, ``2026-11-29 18:44``, with seconds and the zone abbreviation in
the ``title`` and the ISO value in ``datetime``. Every byte count goes through
``binary_size``: sizes are powers of 1024, so they are labelled KiB, MiB, GiB.
"""

import datetime as dt

from django import template
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape
from django.utils.safestring import mark_safe

from reports import host_table
from reports.units import binary_size

register = template.Library()


@register.simple_tag(takes_context=True)
def query(context, **changes) -> str:
    """The current query string with *changes* applied ('' or None removes a key), e.g. for sort links."""
    params = context["request"].GET.copy()
    for key, value in changes.items():
        if value in ("", None):
            params.pop(key, None)
        else:
            params[key] = value
    encoded = params.urlencode()
    return f"?{encoded}" if encoded else "?"


@register.simple_tag(takes_context=True)
def page_link(context, param: str, number, anchor: str = "") -> str:
    """``query`` for a pager whose parameter is named at run time (``page``, ``ppage``), plus an anchor."""
    return query(context, **{param: number}) + anchor


TIME_FORMAT = "%Y-%m-%d %H:%M"
TIME_TITLE_FORMAT = "%Y-%m-%d %H:%M:%S %Z"


@register.filter
def bytes_or_dash(value) -> str:
    return "–" if value is None else binary_size(value)


def _local(value) -> dt.datetime | None:
    """*value* (an aware datetime or an ISO string from a payload) in the server's zone; None if unreadable."""
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            return None
    if not isinstance(value, dt.datetime):
        return None
    if timezone.is_naive(value):
        value = timezone.make_aware(value, dt.timezone.utc)
    return timezone.localtime(value)


@register.filter
def time_text(value) -> str:
    """The one visible format of a time, for places that cannot hold markup (an <option>, a chart tick)."""
    local = _local(value)
    return "–" if local is None else local.strftime(TIME_FORMAT)


@register.filter
def when(value) -> str:
    """A ``<time>`` element in the one format; a dash for no time, the text itself if it is not a time."""
    if value in (None, ""):
        return "–"
    local = _local(value)
    if local is None:
        return escape(str(value))
    return mark_safe(f'<time datetime="{local.isoformat()}" title="{local.strftime(TIME_TITLE_FORMAT)}">'
                     f'{local.strftime(TIME_FORMAT)}</time>')


@register.filter
def ago(value, now=None) -> str:
    """'3 h ago' in a ``<time>`` whose ``title`` holds the absolute time in the one format."""
    local = _local(value)
    if local is None:
        return "–"
    seconds = ((now or timezone.now()) - local).total_seconds()
    return mark_safe(f'<time datetime="{local.isoformat()}" title="{local.strftime(TIME_TITLE_FORMAT)}">'
                     f'{host_table.age(seconds)} ago</time>')


@register.filter
def duration(seconds) -> str:
    """A longer span for uptimes: '3 d 4 h', '5 h 12 min', '7 min'."""
    seconds = max(0, int(seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min"


@register.filter
def join_cmdline(value) -> str:
    return " ".join(value or ())


@register.filter
def value_or_dash(value) -> str:
    """The value as text, a dash for none; a time (a boot time in a diff) in the one format."""
    if isinstance(value, dt.datetime):
        return when(value)
    return "–" if value in (None, "") else str(value)


@register.filter
def os_label(host) -> str:
    """The OS once: "Ubuntu 24.04" (the version already names it), "Windows 10.0.19045" (it does not)."""
    name, version = host.os_name or "", host.os_version or ""
    if version and (not version[0].isdigit() or version.lower().startswith(name.lower())):
        return version
    return f"{name} {version}".strip() or "–"


CMDLINE_SHOWN = 160


def _cmdline_cell(cmdline: str) -> str:
    """A command line, escaped; one longer than CMDLINE_SHOWN opens in a ``<details>`` (no JavaScript)."""
    if not cmdline:
        return "–"
    if len(cmdline) <= CMDLINE_SHOWN:
        return escape(cmdline)
    return (f'<details class="cmd-more"><summary><span class="cmd-short">{escape(cmdline[:CMDLINE_SHOWN - 1])}…</span>'
            f'<span class="more"> ({len(cmdline)} characters, show all)</span></summary>{escape(cmdline)}</details>')


@register.filter
def cmdline_cell(value) -> str:
    """``_cmdline_cell`` for templates: *value* is a command line, as a string or a list of arguments."""
    text = value if isinstance(value, str) else " ".join(value or ())
    return mark_safe(_cmdline_cell(text))


_dash = host_table.dash


@register.simple_tag
def process_table_rows(rows) -> str:
    """The rows of the process table, built in Python.

    A host has hundreds of processes; rendering each cell through the
    template engine was most of the host page's time at 10,000 hosts
    (bench/pages.py), so this one hot loop is plain string building, every
    value escaped.
    """
    parts = []
    for depth, p in rows:
        indent = (f' style="padding-left: calc(0.5rem + {int(depth)} * 1.1rem)"', '<span class="tree" aria-hidden="true">└ </span>') if depth else ("", "")
        cpu = "–" if p.cpu_percent is None else f"{p.cpu_percent:.1f}"
        parts.append(
            f'<tr><td class="c-num mono">{p.pid}</td>'
            f'<th scope="row" class="pname"{indent[0]}>{indent[1]}{_dash(p.name)}</th>'
            f'<td>{_dash(p.username)}</td><td class="c-num">{cpu}</td>'
            f'<td class="c-num nowrap">{bytes_or_dash(p.memory_rss_bytes)}</td>'
            f'<td class="c-num opt">{_dash(p.num_threads)}</td>'
            f'<td class="opt">{_dash(p.status)}</td><td class="opt nowrap">{when(p.create_time)}</td>'
            f'<td class="opt cmd mono small">{_dash(p.exe)}</td>'
            f'<td class="opt cmd mono">{_cmdline_cell(" ".join(p.cmdline or ()))}</td></tr>'
        )
    return mark_safe("\n".join(parts))


@register.simple_tag
def software_table_rows(entries) -> str:
    """The rows of a host's software table, built in Python like ``process_table_rows`` (250 to a page)."""
    parts = []
    for e in entries:
        installed = e.install_date.isoformat() if e.install_date else "–"
        parts.append(
            f'<tr><th scope="row">{escape(e.name)}</th><td class="mono">{_dash(e.version)}</td>'
            f'<td class="opt small">{_dash(e.vendor)}</td><td class="opt">{_dash(e.arch)}</td>'
            f'<td>{escape(e.source)}</td><td class="opt nowrap">{installed}</td></tr>'
        )
    return mark_safe("\n".join(parts))


@register.simple_tag
def host_table_rows(columns, rows, now) -> str:
    """The rows of the host list: the cells ``reports.host_table`` defines for the shown *columns*."""
    return mark_safe(host_table.rows_html(columns, rows, now, reverse("reports:host_detail", args=[0])[: -len("0/")]))
