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
_BINARY_UNITS = ("KiB", "MiB", "GiB", "TiB", "PiB", "EiB")


def binary_size(value: float) -> str:
    """A byte count in binary units: '512 B', '1.5 KiB', '8 GiB', '120 GiB'."""
    size = float(value)
    if abs(size) < 1024:
        return f"{int(size)} B"
    for unit in _BINARY_UNITS:
        size /= 1024
        if abs(size) < 1024 or unit == _BINARY_UNITS[-1]:
            break
    text = f"{size:.1f}" if abs(size) < 100 else f"{size:.0f}"
    return f"{text.removesuffix('.0')} {unit}"


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
                     f'{age(seconds)} ago</time>')


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


def _dash(value) -> str:
    return "–" if value in (None, "") else escape(value)


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


def age(seconds: float) -> str:
    """A short age: '40 s', '5 min', '3 h', '9 d' (cheaper than timesince, and fits a phone)."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 86400:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} d"


_CONFLICT_BADGE = ' <span class="badge offline" title="Two machines seem to send this host id">id conflict</span>'


@register.simple_tag
def host_table_rows(rows, now) -> str:
    """The rows of the host list, built in Python for the same reason as ``process_table_rows``."""
    detail_url = reverse("reports:host_detail", args=[0])[: -len("0/")]
    parts = []
    for host, status in rows:
        seen = timezone.localtime(host.last_seen)
        parts.append(
            f'<tr><td><span class="badge {status}">{status}</span></td>'
            f'<th scope="row" class="c-host"><a href="{detail_url}{host.pk}/">{escape(host.hostname)}</a>'
            f'{_CONFLICT_BADGE if host.identity_conflict_since else ""}</th>'
            f'<td class="c-ip mono">{escape(host.last_ip)}</td><td>{_dash(host.os_name)}</td>'
            f'<td class="opt">{_dash(host.os_version)}</td><td class="opt small">{_dash(host.cpu_model)}</td>'
            f'<td class="c-num">{host.process_count}</td><td class="c-num opt">{host.user_count}</td>'
            f'<td class="c-time"><time datetime="{seen.isoformat()}" title="{seen:%Y-%m-%d %H:%M:%S %Z}">'
            f'{age((now - host.last_seen).total_seconds())} ago</time></td></tr>'
        )
    return mark_safe("\n".join(parts))
