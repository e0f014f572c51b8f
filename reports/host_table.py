"""The host list's columns, defined once: key, header, sort order and how each cell renders.

The page's headers and cells (``views.host_list``, the ``host_table_rows``
tag), the sort names the page form and the API's ``ordering`` accept
(``forms.HOST_SORTS``) and the ORDER BY the selector applies
(``selectors.host_list``) all read ``COLUMNS``, so adding a column or making
one sortable is one row here. Cells are built as strings rather than
through the template engine: a page holds up to 200 hosts and this loop
was most of its rendering time (bench/pages.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from django.db.models.functions import Lower
from django.utils import timezone
from django.utils.html import escape

from reports.units import binary_size


def dash(value) -> str:
    """The value escaped, or a dash when there is none."""
    return "–" if value in (None, "") else escape(value)


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


@dataclass(frozen=True)
class Row:
    """What a cell may read: the host, its status, the page's clock and the host page's URL prefix."""

    host: object
    status: str
    now: object
    detail_url: str


def _time(value, now) -> str:
    local = timezone.localtime(value)
    return (f'<time datetime="{local.isoformat()}" title="{local:%Y-%m-%d %H:%M:%S %Z}">'
            f'{age((now - value).total_seconds())} ago</time>')


@dataclass(frozen=True)
class Column:
    """One column of the host table.

    ``key`` names it in ``?sort=`` (``-key`` descending); ``order_by`` is
    the ascending ORDER BY for that sort (empty: not sortable); ``css``
    classes the header and cell ("opt" cells are hidden on a phone);
    ``cell`` renders the whole ``<td>``/``<th>`` for one row; ``shown``
    says whether the page shows it by default.
    """

    key: str
    label: str
    order_by: tuple = ()
    css: str = ""
    cell: Callable[[Row], str] = lambda row: "<td></td>"
    shown: bool = True

    @property
    def sortable(self) -> bool:
        return bool(self.order_by)


def _text(css: str, value, *, title: bool = False) -> str:
    """A cell of one line; *title* repeats the value as a tooltip, for the columns CSS truncates."""
    hint = f' title="{escape(value)}"' if title and value else ""
    return f'<td class="{css}"{hint}>{dash(value)}</td>'


def _memory(row: Row) -> str:
    total = row.host.memory_total_bytes
    return f'<td class="c-num opt">{"–" if total is None else binary_size(total)}</td>'


def _uptime(row: Row) -> str:
    """Time since boot, only while the host reports: an offline host's uptime is not known."""
    boot = row.host.boot_time
    if boot is None or row.status != "online":
        return '<td class="c-num opt">–</td>'
    local = timezone.localtime(boot)
    return (f'<td class="c-num opt"><span title="Booted {local:%Y-%m-%d %H:%M %Z}">'
            f'{age((row.now - boot).total_seconds())}</span></td>')


def _users(row: Row) -> str:
    """Sessions open at the newest snapshot; not counted for a host that stopped reporting."""
    value = row.host.user_count if row.status == "online" else "–"
    return f'<td class="c-num opt">{value}</td>'


# Beside the host name of a host flagged as two machines sending one id (reports.identity).
CONFLICT_BADGE = ' <span class="badge offline" title="Two machines seem to send this host id">id conflict</span>'

COLUMNS: tuple[Column, ...] = (
    # Status follows last_seen (online, then offline, then stale), so it sorts by it, newest first.
    Column("status", "Status", ("-last_seen",), "c-status",
           lambda r: f'<td class="c-status"><span class="badge {r.status}">{r.status}</span></td>'),
    Column("hostname", "Hostname", (Lower("hostname"),), "c-host",
           lambda r: f'<th scope="row" class="c-host" title="{escape(r.host.fqdn or r.host.hostname)}">'
                     f'<a href="{r.detail_url}{r.host.pk}/">{escape(r.host.hostname)}</a>'
                     f'{CONFLICT_BADGE if r.host.identity_conflict_since else ""}</th>'),
    Column("own_address", "Address", ("own_address",), "c-ip opt",
           lambda r: _text("c-ip mono opt", r.host.own_address, title=True)),
    Column("last_ip", "Seen from", ("last_ip",), "c-ip opt", lambda r: _text("c-ip mono opt", r.host.last_ip)),
    Column("os_name", "OS", ("os_name",), "c-os", lambda r: _text("c-os", r.host.os_name)),
    Column("os_version", "Version", ("os_version",), "c-trunc opt",
           lambda r: _text("c-trunc opt", r.host.os_version, title=True)),
    Column("cpu_model", "CPU", ("cpu_model",), "c-trunc opt",
           lambda r: _text("c-trunc opt small", r.host.cpu_model, title=True)),
    Column("memory_total_bytes", "Memory", ("memory_total_bytes",), "c-num opt", _memory),
    Column("uptime", "Uptime", ("-boot_time",), "c-num opt", _uptime),
    Column("agent_version", "Agent", ("agent_version",), "opt", lambda r: _text("opt mono", r.host.agent_version),
           shown=False),
    Column("process_count", "Processes", ("process_count",), "c-num",
           lambda r: f'<td class="c-num">{r.host.process_count}</td>'),
    Column("user_count", "Users", ("user_count",), "c-num opt", _users),
    Column("last_seen", "Last seen", ("last_seen",), "c-time",
           lambda r: f'<td class="c-time">{_time(r.host.last_seen, r.now)}</td>'),
    Column("first_seen", "First seen", ("first_seen",), "c-time opt",
           lambda r: f'<td class="c-time opt">{_time(r.host.first_seen, r.now)}</td>', shown=False),
)
BY_KEY = {column.key: column for column in COLUMNS}
# Every sort name, ascending and with "-" for descending: the page's ?sort= and the API's ?ordering=.
SORTS = [name for column in COLUMNS if column.sortable for name in (column.key, f"-{column.key}")]


# Columns a person cannot hide: without them a row names nothing.
REQUIRED = ("hostname",)


def chosen(keys) -> list[Column]:
    """The columns to show, in table order: those named in *keys* (plus REQUIRED), or the defaults if none."""
    keys = set(keys or ())
    if not keys:
        return [column for column in COLUMNS if column.shown]
    return [column for column in COLUMNS if column.key in keys or column.key in REQUIRED]


def order_by(sort: str) -> list:
    """The ORDER BY of a sort name (a key of a sortable column, "-" for descending), ties broken by pk.

    The pk runs in the direction of the column before it, so the column's
    index (``host_sort_*``, which ends in the pk) is read forwards or
    backwards and never sorted: "uptime" is boot time newest first, and
    with the pk ascending behind it every host sharing a boot time was
    sorted (docs/performance.md, fleet scale). An unknown name sorts by
    host name.
    """
    column = BY_KEY.get(sort.lstrip("-"))
    if column is None or not column.sortable:
        sort, column = "hostname", BY_KEY["hostname"]
    fields = list(column.order_by) if not sort.startswith("-") else [_reversed(f) for f in column.order_by]
    return [*fields, "-pk" if _descending(fields[-1]) else "pk"]


def _descending(field) -> bool:
    """Whether a field name or expression of ``Column.order_by`` (or its reverse) sorts descending."""
    if isinstance(field, str):
        return field.startswith("-")
    return bool(getattr(field, "descending", False))


def _reversed(field):
    """A field name or expression of ``Column.order_by``, in the other direction."""
    if isinstance(field, str):
        return field[1:] if field.startswith("-") else f"-{field}"
    return field.asc() if _descending(field) else field.desc()


def header_links(columns, current: str) -> list[dict]:
    """Header links: clicking a column sorts by it, clicking it again reverses."""
    result = []
    for column in columns:
        active = current.lstrip("-") == column.key
        descending = active and current.startswith("-")
        result.append({
            "label": column.label, "css": column.css, "sortable": column.sortable,
            "sort": f"-{column.key}" if active and not descending else column.key,
            "aria_sort": ("descending" if descending else "ascending") if active else "none",
        })
    return result


def rows_html(columns, rows, now, detail_url: str) -> str:
    """The table body's rows for (host, status) pairs, every value escaped."""
    return "\n".join(
        "<tr>" + "".join(column.cell(Row(host, status, now, detail_url)) for column in columns) + "</tr>"
        for host, status in rows
    )
