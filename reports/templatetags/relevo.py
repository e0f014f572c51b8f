"""Template helpers for the pages: query-string links and human-friendly values."""

from django import template
from django.template.defaultfilters import filesizeformat
from django.urls import reverse
from django.utils.html import escape
from django.utils.safestring import mark_safe

from reports import host_table

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


@register.simple_tag
def host_table_rows(columns, rows, now) -> str:
    """The rows of the host list: the cells ``reports.host_table`` defines for the shown *columns*."""
    return mark_safe(host_table.rows_html(columns, rows, now, reverse("reports:host_detail", args=[0])[: -len("0/")]))
