"""CSV rows for the exports, streamed, with spreadsheet formulas neutralised.

A cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return
is run as a formula by Excel, LibreOffice and Google Sheets, and package
names, vendors and hostnames come from the hosts (anyone who can install a
package can choose its name). Such a text cell gets a leading ``'`` (the
OWASP "CSV injection" rule), which the spreadsheets show as text; numbers are
written as they are. A leaf module: it imports nothing of ours.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Iterable, Iterator, Sequence

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def cell(value: object) -> object:
    """One value as a safe cell: None is empty, text that a spreadsheet would run is prefixed with ``'``."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    text = str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


class _Line:
    """A file-like object whose ``write`` hands back the line, so csv.writer can feed a stream."""

    def write(self, text: str) -> str:
        return text


def csv_lines(header: Sequence[str], rows: Iterable[Sequence[object]]) -> Iterator[bytes]:
    """The header and each row as UTF-8 CSV lines (RFC 4180 quoting, CRLF line ends), one at a time."""
    writer = csv.writer(_Line())
    yield writer.writerow([cell(name) for name in header]).encode("utf-8")
    for row in rows:
        yield writer.writerow([cell(value) for value in row]).encode("utf-8")
