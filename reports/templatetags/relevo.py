"""Template helpers for the pages: query-string links and human-friendly values."""

from django import template
from django.template.defaultfilters import filesizeformat
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


@register.filter
def bytes_or_dash(value) -> str:
    return "–" if value is None else filesizeformat(value)


@register.filter
def join_cmdline(value) -> str:
    return " ".join(value or ())


@register.filter
def value_or_dash(value) -> str:
    return "–" if value in (None, "") else str(value)


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
        cmdline = " ".join(p.cmdline or ())
        if len(cmdline) > 160:
            cmdline = cmdline[:159] + "…"
        parts.append(
            f'<tr><td class="c-num mono">{p.pid}</td>'
            f'<th scope="row" class="pname"{indent[0]}>{indent[1]}{_dash(p.name)}</th>'
            f'<td>{_dash(p.username)}</td><td class="c-num">{cpu}</td>'
            f'<td class="c-num">{bytes_or_dash(p.memory_rss_bytes)}</td>'
            f'<td class="opt">{_dash(p.status)}</td><td class="opt cmd mono">{escape(cmdline) if cmdline else "–"}</td></tr>'
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


@register.simple_tag
def host_table_rows(rows, now) -> str:
    """The rows of the host list, built in Python for the same reason as ``process_table_rows``."""
    detail_url = reverse("reports:host_detail", args=[0])[: -len("0/")]
    parts = []
    for host, status in rows:
        seen = timezone.localtime(host.last_seen)
        parts.append(
            f'<tr><td><span class="badge {status}">{status}</span></td>'
            f'<th scope="row" class="c-host"><a href="{detail_url}{host.pk}/">{escape(host.hostname)}</a></th>'
            f'<td class="c-ip mono">{escape(host.last_ip)}</td><td>{_dash(host.os_name)}</td>'
            f'<td class="opt">{_dash(host.os_version)}</td><td class="opt small">{_dash(host.cpu_model)}</td>'
            f'<td class="c-num">{host.process_count}</td><td class="c-num opt">{host.user_count}</td>'
            f'<td class="c-time"><time datetime="{seen.isoformat()}" title="{seen:%Y-%m-%d %H:%M:%S %Z}">'
            f'{age((now - host.last_seen).total_seconds())} ago</time></td></tr>'
        )
    return mark_safe("\n".join(parts))


@register.filter
def binary_bytes(value) -> str:
    """A size in binary units, labelled as such (8 GiB, 512.0 MiB); a dash when unknown."""
    if value is None:
        return "–"
    size, unit = float(value), "bytes"
    for larger in ("KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024:
            break
        size, unit = size / 1024, larger
    return f"{int(size)} bytes" if unit == "bytes" else f"{size:.1f} {unit}"
