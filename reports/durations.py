"""Durations in settings and command options: ``90s``, ``30m``, ``12h``, ``7d``."""

from __future__ import annotations

import datetime as dt
import re

_DURATION_RE = re.compile(r"^\s*(\d+)\s*([smhd])\s*$", re.I)
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_duration(text: str) -> dt.timedelta:
    """``"7d"`` -> 7 days; ValueError with a readable message otherwise."""
    match = _DURATION_RE.match(str(text))
    if not match:
        raise ValueError(f"{text!r} is not a duration like 90s, 30m, 12h or 7d")
    value = int(match[1])
    if value <= 0:
        raise ValueError(f"{text!r} must be longer than zero")
    return dt.timedelta(**{_UNITS[match[2].lower()]: value})
