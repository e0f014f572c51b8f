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

from django.utils import timezone
from django.utils.html import escape


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


COLUMNS: tuple[Column, ...] = (
    Column("status", "Status", cell=lambda r: f'<td><span class="badge {r.status}">{r.status}</span></td>'),
    Column("hostname", "Hostname", ("hostname",), "c-host",
           lambda r: f'<th scope="row" class="c-host"><a href="{r.detail_url}{r.host.pk}/">'
                     f'{escape(r.host.hostname)}</a></th>'),
    Column("last_ip", "Last IP", ("last_ip",), "c-ip", lambda r: f'<td class="c-ip mono">{escape(r.host.last_ip)}</td>'),
    Column("os_name", "OS", ("os_name",), "c-os", lambda r: f"<td>{dash(r.host.os_name)}</td>"),
    Column("os_version", "Version", ("os_version",), "opt", lambda r: f'<td class="opt">{dash(r.host.os_version)}</td>'),
    Column("cpu_model", "CPU", ("cpu_model",), "opt", lambda r: f'<td class="opt small">{dash(r.host.cpu_model)}</td>'),
    Column("process_count", "Processes", ("process_count",), "c-num",
           lambda r: f'<td class="c-num">{r.host.process_count}</td>'),
    Column("user_count", "Users", ("user_count",), "c-num opt", lambda r: f'<td class="c-num opt">{r.host.user_count}</td>'),
    Column("last_seen", "Last seen", ("last_seen",), "c-time",
           lambda r: f'<td class="c-time">{_time(r.host.last_seen, r.now)}</td>'),
    Column("first_seen", "First seen", ("first_seen",), "c-time opt",
           lambda r: f'<td class="c-time opt">{_time(r.host.first_seen, r.now)}</td>', shown=False),
)
BY_KEY = {column.key: column for column in COLUMNS}
# Every sort name, ascending and with "-" for descending: the page's ?sort= and the API's ?ordering=.
SORTS = [name for column in COLUMNS if column.sortable for name in (column.key, f"-{column.key}")]


def order_by(sort: str) -> list:
    """The ORDER BY of a sort name (a key of a sortable column, "-" for descending), ties broken by pk.

    An unknown name sorts by host name.
    """
    column = BY_KEY.get(sort.lstrip("-"))
    if column is None or not column.sortable:
        sort, column = "hostname", BY_KEY["hostname"]
    if not sort.startswith("-"):
        return [*column.order_by, "pk"]
    return [_reversed(field) for field in column.order_by] + ["-pk"]


def _reversed(field):
    """A field name or expression of ``Column.order_by``, in the other direction."""
    if isinstance(field, str):
        return field[1:] if field.startswith("-") else f"-{field}"
    return field.desc()


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
